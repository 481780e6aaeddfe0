"""Partition snapshots (DESIGN.md, "Nodes and partitions"): RocksDB checkpoints of a partition's
store in a snapshot store, an index of the newest ones in the metadata store, the log trimmed
below the oldest one still indexed, and a new leader restoring the newest before it replays.

Typical use by a node, for each partition it leads::

    snapshots = open_snapshot_store(cfg.snapshot_store)        # "dir:/path" or "s3://bucket/prefix"
    lsn = await restore_latest(metadata, snapshots, p, store_path)   # before opening the store
    store = PartitionStore(store_path)                          # the processor replays from its LSN + 1
    snapshotter = Snapshotter(p, store, vlog, metadata, snapshots, trim_floor=lambda: ...)
    snapshotter.start()
    ...
    await snapshotter.stop()                                     # before closing the store
    await snapshots.close()
"""

from .base import SnapshotRef, SnapshotStore, check_url, open_snapshot_store
from .dir_store import DirSnapshotStore
from .errors import SnapshotConfigError, SnapshotError, SnapshotNotFound
from .index import (
    DEFAULT_KEEP,
    forget_snapshot,
    index_key,
    latest_snapshot,
    list_snapshots,
    read_index,
    record_snapshot,
)
from .restore import local_applied_lsn, restore_latest
from .s3_store import ENDPOINT_ENV, S3SnapshotStore
from .snapshotter import (
    DEFAULT_EVERY_RECORDS,
    DEFAULT_INTERVAL_S,
    CheckpointSource,
    Snapshotter,
    TrimmableLog,
)

__all__ = [
    "DEFAULT_EVERY_RECORDS",
    "DEFAULT_INTERVAL_S",
    "DEFAULT_KEEP",
    "ENDPOINT_ENV",
    "CheckpointSource",
    "DirSnapshotStore",
    "S3SnapshotStore",
    "SnapshotConfigError",
    "SnapshotError",
    "SnapshotNotFound",
    "SnapshotRef",
    "SnapshotStore",
    "Snapshotter",
    "TrimmableLog",
    "check_url",
    "forget_snapshot",
    "index_key",
    "latest_snapshot",
    "list_snapshots",
    "local_applied_lsn",
    "open_snapshot_store",
    "read_index",
    "record_snapshot",
    "restore_latest",
]
