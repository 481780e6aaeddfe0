"""Data format 2 → 3 on a real partition store: attempts count starts, failed attempts get their
own row, and cancellations / kills journaled as bare (409, "cancelled" / "killed") get their cause,
while a handler's own (409, "cancelled") stays a plain error."""

from __future__ import annotations

import json
from pathlib import Path

from partition_testkit import inv_id

from endure.proto import records_pb2 as pb
from endure.runtime import data_format
from endure.runtime.data_format import CURRENT_VERSION, open_data_dir, read_version
from endure.runtime.partition import keys
from endure.runtime.partition.migrations import type_store
from endure.runtime.partition.store import PartitionStore


def _failure(message: str) -> pb.Failure:
    return pb.Failure(code=409, message=message)  # as format 2 wrote it: no cause


def _status(inv: str, state: int, attempts: int, failure: pb.Failure | None = None, journal: int = 0,
            cancel_requested: bool = False) -> pb.InvocationStatus:
    s = pb.InvocationStatus(invocation_id=inv, status=state, attempts=attempts, journal_length=journal,  # type: ignore[arg-type]
                            tenant="default", target=pb.Target(service="svc", handler="run"),
                            handler_kind=pb.SERVICE, cancel_requested=cancel_requested)
    if failure is not None:
        s.failure.CopyFrom(failure)
    else:
        s.value = b"null"
    return s


def _write(path: Path) -> dict[str, str]:
    """A format-2 store; returns the ids by role."""
    ids = {role: inv_id(role) for role in ("retried", "cancelled", "own", "killed", "pending")}
    store = PartitionStore(path)
    tx = store.transaction()
    # Failed once, then completed: format 2 counted 1 (the failure).
    tx.put_proto(keys.status(ids["retried"]), _status(ids["retried"], pb.COMPLETED, 1))
    # Really cancelled while sleeping: the sleep and the output hold the bare cancellation.
    tx.put_proto(keys.status(ids["cancelled"]),
                 _status(ids["cancelled"], pb.CANCELLED, 0, _failure("cancelled"), journal=3, cancel_requested=True))
    sleep = pb.JournalEntry(sleep=pb.SleepEntry(wake_at_ms=1), failure=_failure("cancelled"))
    step = pb.JournalEntry(name="step", run=pb.RunEntry(), failure=_failure("cancelled"))  # a step's own failure
    out = pb.JournalEntry(output=pb.OutputEntry(failure=_failure("cancelled")))
    for i, e in enumerate((sleep, step, out)):
        tx.put_proto(keys.journal(ids["cancelled"], i), e)
    # A handler that raised TerminalError("cancelled", 409) itself, with no cancel request.
    tx.put_proto(keys.status(ids["own"]), _status(ids["own"], pb.COMPLETED, 0, _failure("cancelled"), journal=1))
    tx.put_proto(keys.journal(ids["own"], 0), pb.JournalEntry(output=pb.OutputEntry(failure=_failure("cancelled"))))
    tx.put_proto(keys.status(ids["killed"]), _status(ids["killed"], pb.KILLED, 0, _failure("killed")))
    pending = _status(ids["pending"], pb.PENDING, 0)
    pending.ClearField("value")
    tx.put_proto(keys.status(ids["pending"]), pending)
    tx.commit(7)
    store.close()
    return ids


def _entry(store: PartitionStore, inv: str, index: int) -> pb.JournalEntry:
    entry = store.get_proto(keys.journal(inv, index), pb.JournalEntry)
    assert entry is not None
    return entry


def _get(store: PartitionStore, inv: str) -> pb.InvocationStatus:
    status = store.status(inv)
    assert status is not None
    return status


def test_format_2_store_is_typed_and_counts_attempts_started(tmp_path: Path) -> None:
    path = tmp_path / "p0"
    ids = _write(path)
    store = PartitionStore(path)
    try:
        assert type_store(store) == 4  # retried, cancelled, own, killed (pending never started)
        assert store.applied_lsn() == 7  # the state it accounts for is unchanged
        retried = _get(store, ids["retried"])
        assert retried.attempts == 2 and store.failed_attempts(ids["retried"]) == 1
        cancelled = _get(store, ids["cancelled"])
        assert cancelled.failure.cause == pb.FAILURE_CANCELLED and cancelled.attempts == 1
        assert _entry(store, ids["cancelled"], 0).failure.cause == pb.FAILURE_CANCELLED
        assert _entry(store, ids["cancelled"], 1).failure.cause == pb.FAILURE_ERROR  # a step's failure: not typed
        assert _entry(store, ids["cancelled"], 2).output.failure.cause == pb.FAILURE_CANCELLED
        own = _get(store, ids["own"])
        assert own.failure.cause == pb.FAILURE_ERROR
        assert _entry(store, ids["own"], 0).output.failure.cause == pb.FAILURE_ERROR
        assert _get(store, ids["killed"]).failure.cause == pb.FAILURE_KILLED
        pending = _get(store, ids["pending"])
        assert pending.attempts == 0 and store.failed_attempts(ids["pending"]) == 0
        # A second run (a crash before the directory was restamped) changes nothing.
        assert type_store(store) == 0
        assert _get(store, ids["retried"]).attempts == 2
    finally:
        store.close()


def test_open_data_dir_migrates_format_2_to_current(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ids = _write(data_dir / "partitions" / "p0")
    (data_dir / data_format.FORMAT_FILE).write_text(json.dumps({"version": 2}) + "\n")
    assert open_data_dir(data_dir) == 2
    assert read_version(data_dir) == CURRENT_VERSION
    store = PartitionStore(data_dir / "partitions" / "p0")
    try:
        assert _get(store, ids["retried"]).attempts == 2
        assert _get(store, ids["killed"]).failure.cause == pb.FAILURE_KILLED
    finally:
        store.close()


def test_the_created_index_is_built_for_a_store_written_before_it(tmp_path: Path) -> None:
    from endure.runtime.partition.migrations import build_created_index

    store = PartitionStore(tmp_path / "p0")
    tx = store.transaction()
    made = {inv_id(f"old{i}"): 1_000 + i for i in range(3)}
    for inv, created in made.items():
        s = _status(inv, pb.COMPLETED, 1)
        s.created_at_ms = created
        tx.put_proto(keys.status(inv), s)
    tx.put(keys.created(5, inv_id("gone")), b"")  # a row whose invocation is not there
    tx.commit(7)
    try:
        assert build_created_index(store) == 3
        rows = [keys.parse_created(k) for k, _ in store.scan(keys.CREATED)]
        assert rows == sorted((created, inv) for inv, created in made.items())
        assert {keys.parse_created_value(v) for _, v in store.scan(keys.CREATED)} == {("default", "svc", "run", "", "")}
        assert store.applied_lsn() == 7
        assert build_created_index(store) == 3  # idempotent: a crash mid-way runs it again
    finally:
        store.close()
