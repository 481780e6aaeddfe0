"""The partition stores' side of the data format migrations (see endure.runtime.data_format).

Each step rewrites one partition store's rows, so it lives here, beside the store and its keys;
`data_format` keeps the directory's format record and the ordered list of migrations, and runs
these steps through `each_store` without knowing the key layout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from endure.proto import journal
from endure.proto import records_pb2 as pb
from endure.runtime.partition import keys
from endure.runtime.partition.store import PartitionStore

log = logging.getLogger("endure.data_format")  # as data_format's: one logger for a whole migration


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


def build_created_index(store: PartitionStore) -> int:
    """Make `keys.CREATED` list exactly the store's invocations by creation time; return how many.

    One batch at the store's applied LSN, then synced (as build_running_index)."""
    rows: dict[bytes, bytes] = {}
    for _, raw in store.scan(keys.STATUS):
        s = pb.InvocationStatus()
        s.ParseFromString(raw)
        t = s.target
        rows[keys.created(s.created_at_ms, s.invocation_id)] = keys.created_value(
            s.tenant, t.service, t.handler, t.key, s.idempotency_key)
    tx = store.transaction()
    for key, _ in store.scan(keys.CREATED):
        if key not in rows:
            tx.delete(key)
    for key in sorted(rows):
        tx.put(key, rows[key])
    tx.commit(store.applied_lsn())
    store.sync()
    return len(rows)


def each_store(step: Callable[[PartitionStore], int], what: str) -> Callable[[Path], None]:
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
