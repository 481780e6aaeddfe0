"""One node's log: the log database, the metadata store, and one VirtualLog per partition."""

from __future__ import annotations

from pathlib import Path

from .local_loglet import LocalLogletStore
from .metadata import LocalMetadataStore, MetadataStore
from .virtual_log import VirtualLog

__all__ = ["NodeLog"]


class NodeLog:
    """Opens `data_dir/log` (every partition's records, one RocksDB) and `data_dir/metadata`.

    One database for all partitions means one group-commit writer for the node: records of
    all partitions share each synced write, so fsyncs are amortized across partitions.
    """

    def __init__(self, store: LocalLogletStore, metadata: LocalMetadataStore, logs: list[VirtualLog]) -> None:
        self.store = store
        self.metadata: MetadataStore = metadata
        self._local_metadata = metadata
        self._logs = logs
        self._closed = False

    @classmethod
    async def open(
        cls,
        data_dir: Path,
        partitions: int,
        *,
        max_pending_records: int = 65536,
        cache_records: int = 1024,
    ) -> NodeLog:
        """Open (or create) the node's log; recovers every partition's tail from disk."""
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        data_dir = Path(data_dir)
        store = LocalLogletStore(
            data_dir / "log", max_pending_records=max_pending_records, cache_records=cache_records
        )
        try:
            metadata = LocalMetadataStore(data_dir / "metadata")
        except BaseException:
            await store.close()
            raise
        try:
            logs = [await VirtualLog.open(p, metadata, {"local": store}) for p in range(partitions)]
        except BaseException:
            await store.close()
            await metadata.close()
            raise
        return cls(store, metadata, logs)

    @property
    def partitions(self) -> int:
        return len(self._logs)

    def log(self, partition: int) -> VirtualLog:
        """The virtual log of `partition` (0-based)."""
        if not 0 <= partition < len(self._logs):
            raise IndexError(f"partition {partition} out of range: this node has {len(self._logs)} partitions")
        return self._logs[partition]

    async def close(self) -> None:
        """Finish in-flight appends (they are acknowledged), sync, and close both databases."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.store.close()
        finally:
            await self._local_metadata.close()
