"""Restoring a partition store from the newest indexed snapshot, before its processor opens it."""

from __future__ import annotations

import functools
import logging
import shutil
import uuid
from pathlib import Path

from endure.runtime.data_format import CURRENT_VERSION
from endure.runtime.log import MetadataStore
from endure.runtime.partition.store import install_checkpoint, is_store, read_applied_lsn

from .base import SnapshotStore, blocking
from .errors import SnapshotError, SnapshotNotFound
from .index import latest_snapshot

log = logging.getLogger("endure.partition.snapshots")


def local_applied_lsn(store_path: Path) -> int | None:
    """The applied LSN of the store at `store_path` (opened read-only); None if there is none.
    An unreadable store counts as none (it is logged): a snapshot plus the log rebuild it."""
    if not is_store(store_path):
        return None
    try:
        return read_applied_lsn(store_path)
    except Exception as exc:  # rocksdict raises plain Exception for a corrupt database
        log.warning("partition store %s is unreadable (%s): it will be replaced by a snapshot", store_path, exc)
        return None


async def restore_latest(metadata: MetadataStore, snapshot_store: SnapshotStore, partition: int,
                         store_path: Path, *, work_dir: Path | None = None, attempts: int = 3) -> int | None:
    """Put the partition's newest indexed snapshot in place as its store folder `store_path`, when
    the local store is missing (or unreadable) or has an older applied LSN; return the snapshot's
    LSN, after which the log must be replayed (from LSN + 1). None when nothing was restored: no
    snapshot is indexed, or the local store is as new or newer.

    The store must not be open. The download goes to a temporary folder next to `store_path` (or
    in `work_dir`), is checked (checksum, applied LSN, data format), and only then replaces the
    store, atomically. A snapshot deleted between reading the index and downloading it (the index
    moved on) is retried with the new index up to `attempts` times.
    """
    store_path = Path(store_path)
    work = Path(work_dir) if work_dir is not None else store_path.parent
    for attempt in range(1, attempts + 1):
        ref = await latest_snapshot(metadata, partition)
        if ref is None:
            return None
        local = await blocking(local_applied_lsn, store_path)
        if local is not None and local >= ref.lsn:
            log.info("partition %d: local store at LSN %d is not older than snapshot %s (LSN %d): kept",
                     partition, local, ref.location, ref.lsn)
            return None
        if ref.format is not None and ref.format != CURRENT_VERSION:
            raise SnapshotError(f"snapshot {ref.location} has data format {ref.format}; this Endure reads "
                                f"format {CURRENT_VERSION} snapshots")
        tmp = work / f".restore-p{partition}-{uuid.uuid4().hex[:8]}"
        try:
            try:
                await snapshot_store.get(ref, tmp)
            except SnapshotNotFound:
                if attempt == attempts:
                    raise
                log.info("partition %d: snapshot %s vanished before download; reading the index again",
                         partition, ref.location)
                continue
            got = await blocking(read_applied_lsn, tmp)
            if got != ref.lsn:
                raise SnapshotError(f"snapshot {ref.location} holds applied LSN {got}, but the index says {ref.lsn}")
            await blocking(functools.partial(install_checkpoint, tmp, store_path, move=True))
        finally:
            await blocking(functools.partial(shutil.rmtree, tmp, ignore_errors=True))
        log.info("partition %d: store %s restored from snapshot %s at LSN %d (local store was at %s)",
                 partition, store_path, ref.location, ref.lsn, "none" if local is None else local)
        return ref.lsn
    return None  # not reached: the last attempt returns or raises
