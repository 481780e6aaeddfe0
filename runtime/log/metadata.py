"""Versioned metadata with compare-and-set: the source of truth for each log's segment chain.

Reconfiguration is safe because changing the chain is a compare-and-set: two writers that
read the same version cannot both install their successor. The local store keeps values in
their own RocksDB database (synced writes), separate from the log so that its tiny, rarely
written keys are not buried under log records. Other components (the invoker's service and
deployment registry) store their keys here too, under their own prefix.

Stored value layout: version (8 bytes, big-endian) + the caller's bytes. Version 0 means
"does not exist"; the first successful put (expected_version=0) creates version 1.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, runtime_checkable

from rocksdict import Options, Rdict, WriteOptions

from .loglet import LogClosedError, VersionMismatch

__all__ = ["LocalMetadataStore", "MetadataStore"]


@runtime_checkable
class MetadataStore(Protocol):
    """Versioned key/value store with compare-and-set (version 0 = must not exist yet)."""

    async def get(self, key: str) -> tuple[int, bytes] | None:
        """(version, value) or None when the key does not exist."""
        ...

    async def put(self, key: str, value: bytes, expected_version: int) -> int:
        """Write if the current version is `expected_version`; return the new version.

        Raises VersionMismatch(key, expected, actual) otherwise, without writing.
        """
        ...


class LocalMetadataStore:
    """MetadataStore on a node-local RocksDB database; every put is fsynced before it returns."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        self._db = Rdict(str(self.path), opts)
        self._sync = WriteOptions()
        self._sync.sync = True
        # Puts are serialized so the version check and the write are one atomic step; the
        # synced write runs in a thread so the event loop is not blocked by the fsync.
        self._lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="endure-metadata")
        self._closed = False

    @classmethod
    async def open(cls, path: Path | str) -> LocalMetadataStore:
        return cls(path)

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"the metadata store at {self.path} is closed")

    def _get_now(self, key: str) -> tuple[int, bytes] | None:
        raw = self._db.get(key.encode())
        if raw is None:
            return None
        return int.from_bytes(raw[:8], "big"), raw[8:]

    async def get(self, key: str) -> tuple[int, bytes] | None:
        self._check_open()
        return self._get_now(key)

    async def put(self, key: str, value: bytes, expected_version: int) -> int:
        if type(value) is not bytes:
            raise TypeError(f"metadata values must be bytes, got {type(value).__name__}")
        if expected_version < 0:
            raise ValueError(f"expected_version must be >= 0, got {expected_version}")
        async with self._lock:
            self._check_open()
            current = self._get_now(key)
            actual = 0 if current is None else current[0]
            if actual != expected_version:
                raise VersionMismatch(key, expected_version, actual)
            version = actual + 1
            raw = version.to_bytes(8, "big") + value
            write = asyncio.get_running_loop().run_in_executor(self._executor, self._write, key.encode(), raw)
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                # Hold the lock until the write is done either way, or the next put would
                # compare against a version that is about to change under it.
                await asyncio.wait([write])
                raise
            return version

    def _write(self, key: bytes, raw: bytes) -> None:
        self._db.put(key, raw, self._sync)

    async def keys(self, prefix: str = "") -> list[str]:
        """Keys starting with `prefix`, in order (for admin views and registries)."""
        self._check_open()
        start = prefix.encode()
        it = self._db.iter()
        it.seek(start)
        out: list[str] = []
        while it.valid():
            k = it.key()
            if not k.startswith(start):
                break
            out.append(k.decode())
            it.next()
        del it
        return out

    async def close(self) -> None:
        """Wait for a put in flight, then close the database. Idempotent."""
        if self._closed:
            return
        async with self._lock:
            self._closed = True
            self._executor.shutdown(wait=True)
            self._db.close()
