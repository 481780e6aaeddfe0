"""The data directory's format version, and the migrations that bring an older one up to date.

A data directory records its format in a small `FORMAT` file, written when the directory is
created. Opening one checks it before anything else touches the data: a newer format than this
code knows is refused (`DataFormatTooNew`), rather than read with the wrong rules; an older one is
migrated one version at a time by the ordered list `MIGRATIONS` (version N → N+1, like Restate's
store migrations), the file restamped after each step, so a crash mid-way resumes at the step
that did not finish. Every migration is idempotent for that reason.

Versions:
  1. before versioning: a data directory without a `FORMAT` file.
  2. the partition store's running index (`keys.RUNNING`, one row per RUNNING invocation): what a
     new leader scans to restart running invocations.
  3. `InvocationStatus.attempts` counts the attempts started (it counted failed ones), the failed
     ones have a row of their own (`keys.FAILED_ATTEMPTS`, what retry policies count), and
     cancellations and kills carry their `Failure.cause`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from endure.proto import journal
from endure.proto import records_pb2 as pb
from endure.runtime.config import ConfigError
from endure.runtime.partition import keys
from endure.runtime.partition.store import PartitionStore

log = logging.getLogger("endure.data_format")

FORMAT_FILE = "FORMAT"
UNVERSIONED = 1
# What a data directory holds once it has data; an empty directory (none of these) is new.
_DATA_ENTRIES = ("log", "metadata", "partitions")


class DataFormatError(ConfigError):
    """The data directory's format record is unreadable, or its format cannot be opened."""


class DataFormatTooNew(DataFormatError):
    """The data directory was written by a newer Endure, with a format this one does not know."""

    def __init__(self, data_dir: Path, found: int, supported: int) -> None:
        super().__init__(f"{data_dir} has data format version {found}, written by a newer Endure; this Endure "
                         f"reads data format versions up to {supported}: run a newer Endure on it")
        self.found = found
        self.supported = supported


@dataclass(frozen=True)
class Migration:
    """Rewrites a data directory of format `from_version` into format `from_version + 1`."""

    from_version: int
    what: str
    run: Callable[[Path], None]


def partition_dirs(data_dir: Path) -> list[Path]:
    """The partition stores of a data directory (`partitions/p<N>`), in partition order."""
    root = data_dir / "partitions"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("p") and p.name[1:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[1:]))


def build_running_index(store: PartitionStore) -> int:
    """Make `keys.RUNNING` list exactly the store's RUNNING invocations; return how many it lists.

    Written in one batch at the store's own applied LSN (the state it accounts for is unchanged),
    then synced: the format stamp that follows must not outlive a lost index.
    """
    running = set()
    for _, raw in store.scan(keys.STATUS):
        status = pb.InvocationStatus()
        status.ParseFromString(raw)
        if status.status == pb.RUNNING:
            running.add(keys.running(status.invocation_id))
    stale = [key for key, _ in store.scan(keys.RUNNING) if key not in running]
    tx = store.transaction()
    for key in sorted(running):
        tx.put(key, b"")
    for key in stale:
        tx.delete(key)
    tx.commit(store.applied_lsn())
    store.sync()
    return len(running)


def _each_store(step: Callable[[PartitionStore], int], what: str) -> Callable[[Path], None]:
    """A migration that runs step on every partition store of the data directory, one at a time."""

    def run(data_dir: Path) -> None:
        for path in partition_dirs(data_dir):
            store = PartitionStore(path)
            try:
                count = step(store)
            finally:
                store.close()
            log.info("%s: %s %d", path, what, count)

    return run


# Statuses that never started an attempt: their (old) attempt count stays as it is.
_NEVER_STARTED = (pb.PENDING, pb.INBOXED, pb.SCHEDULED)
# Entry kinds whose failure, before failures had a cause, could only be a cancellation: the runtime
# completes these with one when their invocation is cancelled, and a combinator's failure is only
# ever the cancellation the SDK journals. (A call's or a step's failure may be a handler's own.)
_UNTYPED_CANCELLATION_KINDS = journal.KINDS_CANCELLED_WITH_INVOCATION | {"combinator"}


def _untyped(failure: pb.Failure, message: str) -> bool:
    return (failure.cause == pb.FAILURE_ERROR and failure.code == journal.CONFLICT_CODE
            and failure.message == message)


def type_status(status: pb.InvocationStatus) -> bool:
    """Rewrite one status of format 2 into format 3 in place; True when it changed."""
    changed = False
    if status.status not in _NEVER_STARTED:
        # The old count was of failed attempts; every failure but an exhausting one was followed by
        # a start. Resumptions after a suspension before the upgrade are not known, hence + 1.
        status.attempts += 1
        changed = True
    if status.WhichOneof("result") == "failure":
        if status.status == pb.CANCELLED and _untyped(status.failure, "cancelled"):
            status.failure.cause = pb.FAILURE_CANCELLED
            changed = True
        elif status.status == pb.KILLED and _untyped(status.failure, "killed"):
            status.failure.cause = pb.FAILURE_KILLED
            changed = True
    return changed


def type_entry(entry: pb.JournalEntry, invocation_cancelled: bool) -> bool:
    """Give a cancellation journaled by format 2 its cause; True when it changed."""
    kind = entry.WhichOneof("kind")
    if kind == "output":
        if (invocation_cancelled and entry.output.WhichOneof("result") == "failure"
                and _untyped(entry.output.failure, "cancelled")):
            entry.output.failure.cause = pb.FAILURE_CANCELLED
            return True
        return False
    if (kind in _UNTYPED_CANCELLATION_KINDS and entry.WhichOneof("result") == "failure"
            and _untyped(entry.failure, "cancelled")):
        entry.failure.cause = pb.FAILURE_CANCELLED
        return True
    return False


def type_store(store: PartitionStore) -> int:
    """Migrate one partition store from format 2 to 3, in one batch; return the statuses changed.

    The batch also records format 3 in the store itself, so a crash between two partitions'
    migrations (before the directory is restamped) never rewrites a migrated store twice.
    """
    done = store.get(keys.FORMAT)
    if done is not None and keys.read_u64(done) >= 3:
        return 0
    tx = store.transaction()
    tx.put(keys.FORMAT, keys.u64(3))
    changed = 0
    for key, raw in store.scan(keys.STATUS):
        status = pb.InvocationStatus()
        status.ParseFromString(raw)
        inv = status.invocation_id
        failed = status.attempts  # format 2: the failed attempts
        if failed:
            tx.put(keys.failed_attempts(inv), keys.u64(failed))
        cancelled = status.status == pb.CANCELLED or status.cancel_requested
        for index in range(status.journal_length):
            entry = tx.get_proto(keys.journal(inv, index), pb.JournalEntry)
            if entry is not None and type_entry(entry, cancelled):
                tx.put_proto(keys.journal(inv, index), entry)
        if type_status(status):
            tx.put_proto(key, status)
            changed += 1
    tx.commit(store.applied_lsn())
    store.sync()
    return changed


MIGRATIONS: list[Migration] = [
    Migration(1, "build the partition stores' running index",
              _each_store(build_running_index, "running invocations indexed:")),
    Migration(2, "count attempts started, keep failed attempts apart, type cancellations and kills",
              _each_store(type_store, "invocation statuses rewritten:")),
]
CURRENT_VERSION = UNVERSIONED + len(MIGRATIONS)


def read_version(data_dir: Path) -> int | None:
    """The data directory's format version; UNVERSIONED for data without a record; None when new."""
    path = data_dir / FORMAT_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        has_data = any((data_dir / name).exists() for name in _DATA_ENTRIES)
        return UNVERSIONED if has_data else None
    try:
        version = json.loads(text)["version"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataFormatError(f"{path} is not a data format record ({text[:80]!r})") from exc
    if not isinstance(version, int) or isinstance(version, bool) or version < UNVERSIONED:
        raise DataFormatError(f"{path} names no valid data format version ({version!r})")
    return version


def write_version(data_dir: Path, version: int) -> None:
    """Stamp the data directory with `version`, atomically and durably (write, fsync, rename)."""
    path = data_dir / FORMAT_FILE
    tmp = path.with_name(FORMAT_FILE + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps({"version": version}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_data_dir(data_dir: Path) -> int:
    """Check the data directory's format before anything opens it: stamp a new one, migrate an
    older one, refuse a newer one (`DataFormatTooNew`). Returns the version it was found at."""
    data_dir.mkdir(parents=True, exist_ok=True)
    found = read_version(data_dir)
    if found is None:
        write_version(data_dir, CURRENT_VERSION)
        return CURRENT_VERSION
    if found > CURRENT_VERSION:
        raise DataFormatTooNew(data_dir, found, CURRENT_VERSION)
    for migration in MIGRATIONS[found - UNVERSIONED:]:
        log.info("%s: migrating data format %d → %d: %s", data_dir, migration.from_version,
                 migration.from_version + 1, migration.what)
        migration.run(data_dir)
        write_version(data_dir, migration.from_version + 1)
    return found
