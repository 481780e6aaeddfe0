"""Snapshotter: one per partition leader; checkpoints its store, uploads it, indexes it, trims the log.

A snapshot is due every `interval_s`, or as soon as `every_records` records were applied since
the last one, whichever comes first, and only when the applied LSN moved since the last one.
A snapshot is: checkpoint the store (in a temp folder beside it) → upload it to the snapshot
store → add it to the index (compare-and-set, newest `keep` kept) → delete the snapshots the
index dropped → trim the partition's log up to the oldest LSN the index still names, never above
`trim_floor()` (what the caller still needs, e.g. the lowest applied LSN of its followers).
A failure is logged and retried at the next interval; it never reaches the partition.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from endure.runtime.log import MetadataStore
from endure.runtime.tasks import cancel_and_wait

from .base import SnapshotRef, SnapshotStore, blocking
from .errors import SnapshotError
from .index import DEFAULT_KEEP, latest_snapshot, record_snapshot

log = logging.getLogger("endure.partition.snapshots")

DEFAULT_INTERVAL_S = 60.0
DEFAULT_EVERY_RECORDS = 50_000
_TEMP_PREFIX = ".snapshot-p"


class CheckpointSource(Protocol):
    """What a Snapshotter needs of a partition store (PartitionStore is one)."""

    path: Path

    def applied_lsn(self) -> int: ...

    def checkpoint(self, path: Path) -> int: ...


class TrimmableLog(Protocol):
    """What a Snapshotter needs of a partition's log (VirtualLog is one)."""

    def tail(self) -> int: ...

    def trim_point(self) -> int: ...

    async def trim(self, up_to_lsn: int) -> None: ...


class Snapshotter:
    def __init__(
        self,
        partition: int,
        store: CheckpointSource,
        log: TrimmableLog,
        metadata: MetadataStore,
        snapshots: SnapshotStore,
        *,
        trim_floor: Callable[[], int] | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        every_records: int = DEFAULT_EVERY_RECORDS,
        keep: int = DEFAULT_KEEP,
        work_dir: Path | None = None,
        applied_lsn: Callable[[], int] | None = None,
        poll_s: float = 1.0,
    ) -> None:
        if interval_s <= 0 or every_records < 1 or keep < 1 or poll_s <= 0:
            raise ValueError(f"need interval_s > 0, every_records >= 1, keep >= 1, poll_s > 0; got {interval_s}, "
                             f"{every_records}, {keep}, {poll_s}")
        self.partition = partition
        self.store = store
        self.log = log
        self.metadata = metadata
        self.snapshots = snapshots
        self.trim_floor = trim_floor
        self.interval_s = interval_s
        self.every_records = every_records
        self.keep = keep
        self.work_dir = Path(work_dir) if work_dir is not None else Path(store.path).parent
        self._applied = applied_lsn if applied_lsn is not None else store.applied_lsn
        self.poll_s = min(poll_s, interval_s)
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._last_lsn: int | None = None  # of the newest snapshot indexed; None until read
        # What the loop, tests and metrics read:
        self.last_ref: SnapshotRef | None = None
        self.snapshots_taken = 0
        self.failures = 0
        self.last_error: BaseException | None = None
        self.trimmed_to = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the background task (idempotent); temp folders a crash left behind are removed first."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"snapshotter-{self.partition}")

    async def stop(self) -> None:
        """Stop the task; a blocking step in flight (a checkpoint, an upload) finishes first, so the
        store may be closed once this returns. Idempotent."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        await blocking(self._clean_temp)
        loop = asyncio.get_running_loop()
        due_at = loop.time() + self.interval_s
        retry_at = 0.0  # after a failure, the record trigger waits for the next interval too
        while True:
            await asyncio.sleep(self.poll_s)
            now = loop.time()
            try:
                if self._last_lsn is None:
                    self._last_lsn = await self._indexed_lsn()
                applied = self._applied()
            except Exception as exc:
                self._failed(exc, "reading the snapshot index")
                retry_at = due_at = now + self.interval_s
                continue
            if applied <= self._last_lsn:
                if now >= due_at:
                    due_at = now + self.interval_s  # nothing new: the next interval starts
                continue
            by_records = applied - self._last_lsn >= self.every_records and now >= retry_at
            if not (now >= due_at or by_records):
                continue
            try:
                await self.snapshot_now()
            except Exception as exc:
                self._failed(exc, "taking a snapshot")
                retry_at = loop.time() + self.interval_s
            due_at = loop.time() + self.interval_s

    async def _indexed_lsn(self) -> int:
        ref = await latest_snapshot(self.metadata, self.partition)
        return 0 if ref is None else ref.lsn

    def _failed(self, exc: Exception, what: str) -> None:
        self.failures += 1
        self.last_error = exc
        # A typed snapshot error says what and where; anything else gets its traceback.
        log.warning("partition %d: %s failed (retried in %g s): %s", self.partition, what, self.interval_s, exc,
                    exc_info=not isinstance(exc, SnapshotError))

    def _clean_temp(self) -> None:
        if not self.work_dir.is_dir():
            return
        for entry in self.work_dir.glob(f"{_TEMP_PREFIX}{self.partition}-*"):
            shutil.rmtree(entry, ignore_errors=True)

    # ------------------------------------------------------------------ one snapshot

    async def snapshot_now(self, *, force: bool = False) -> SnapshotRef | None:
        """Take one snapshot now (what the loop does when one is due) and return its reference; None
        when the applied LSN has not moved since the newest indexed snapshot (unless `force`).
        Raises on failure (SnapshotError, metadata errors); the loop logs and retries."""
        async with self._lock:
            if self._last_lsn is None:
                self._last_lsn = await self._indexed_lsn()
            if not force and self._applied() <= self._last_lsn:
                return None
            tmp = self.work_dir / f"{_TEMP_PREFIX}{self.partition}-{uuid.uuid4().hex[:8]}"
            try:
                t0 = time.perf_counter()
                lsn = await blocking(self.store.checkpoint, tmp)
                if not force and lsn <= self._last_lsn:
                    return None
                t1 = time.perf_counter()
                ref = await self.snapshots.put(self.partition, lsn, tmp)
                t2 = time.perf_counter()
            finally:
                await blocking(functools.partial(shutil.rmtree, tmp, ignore_errors=True))
            # If this fails the upload stays unindexed; it is not deleted here, since a metadata write
            # that failed without a definite answer may still have indexed it: the sweep removes it
            # once `keep` newer snapshots are indexed.
            kept, dropped = await record_snapshot(self.metadata, self.partition, ref, self.keep)
            self._last_lsn = max(self._last_lsn, kept[-1].lsn)
            self.snapshots_taken += 1
            if ref in kept:  # else `keep` newer ones were indexed meanwhile (by another leader)
                self.last_ref = ref
            for old in dropped:
                await self._delete_quietly(old)
            if len(kept) >= self.keep:
                await self._sweep(kept)
            try:
                await self._trim(kept[0].lsn)
            except Exception as exc:
                self._failed(exc, f"trimming the log below snapshot LSN {kept[0].lsn}")
            log.info("partition %d: snapshot at LSN %d, %d bytes, %s (checkpoint %.3f s, upload %.3f s); "
                     "log trimmed to %d", self.partition, lsn, ref.size, ref.location, t1 - t0, t2 - t1,
                     self.trimmed_to)
            return ref

    async def _delete_quietly(self, ref: SnapshotRef) -> None:
        try:
            await self.snapshots.delete(ref)
        except Exception as exc:
            log.warning("partition %d: could not delete snapshot %s (left for the next sweep): %s",
                        self.partition, ref.location, exc)

    async def _sweep(self, kept: list[SnapshotRef]) -> None:
        """Delete snapshots the index does not name and never will: older than the oldest it keeps,
        with `keep` newer ones indexed (left over from a crash between upload, index and delete)."""
        names = {r.key for r in kept}
        try:
            found = await self.snapshots.list(self.partition)
        except Exception as exc:
            log.warning("partition %d: could not list snapshots to sweep: %s", self.partition, exc)
            return
        for ref in found:
            if ref.key not in names and ref.lsn < kept[0].lsn:
                await self._delete_quietly(ref)

    async def _trim(self, oldest_snapshot_lsn: int) -> None:
        target = oldest_snapshot_lsn
        if self.trim_floor is not None:
            target = min(target, self.trim_floor())
        target = min(target, self.log.tail() - 1)
        if target > self.log.trim_point():
            await self.log.trim(target)
        self.trimmed_to = self.log.trim_point()
