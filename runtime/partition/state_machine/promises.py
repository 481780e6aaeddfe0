"""Completions, awakeables and workflow promises: filling the result of an entry a handler waits on."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from endure.proto import journal
from endure.proto import records_pb2 as pb
from endure.runtime.partition import keys
from endure.runtime.partition.effects import CompleteEntry, Effect
from endure.runtime.partition.state_machine.shared import FINAL, Rejected, load_entry, load_status, start
from endure.runtime.partition.store import Transaction

if TYPE_CHECKING:
    from endure.runtime.partition.state_machine.machine import StateMachine

log = logging.getLogger("endure.partition")


def on_completion(sm: StateMachine, tx: Transaction, rec: pb.Completion, now: int, effects: list[Effect]) -> None:
    if rec.WhichOneof("result") is None:
        raise Rejected(f"completion of {rec.invocation_id}[{rec.entry_index}] without a result")
    complete(tx, rec, now, effects)


def complete(tx: Transaction, rec: pb.Completion, now: int, effects: list[Effect]) -> None:
    """Fill a waiting entry's result; forward it to the running attempt or resume a suspended one."""
    status = load_status(tx, rec.invocation_id)
    if status.status in FINAL:
        return  # nobody waits any more
    entry = load_entry(tx, rec.invocation_id, rec.entry_index)
    if entry is None:
        raise Rejected(f"{rec.invocation_id} has no entry {rec.entry_index}")
    if entry.WhichOneof("kind") not in journal.KINDS_TAKING_COMPLETION:
        raise Rejected(f"{rec.invocation_id}[{rec.entry_index}] is a {entry.WhichOneof('kind')} entry, "
                       "which takes no completion")
    if entry.WhichOneof("result") is not None:
        return  # already completed: a duplicate (an awakeable resolved twice, a re-fired timer)
    journal.copy_result(rec, entry)
    tx.put_proto(keys.journal(rec.invocation_id, rec.entry_index), entry)
    if status.status == pb.RUNNING:
        effects.append(CompleteEntry(rec.invocation_id, rec.entry_index, entry))
    elif status.status == pb.SUSPENDED and rec.entry_index in status.waiting_on:
        start(tx, status, now, effects)


def promise_entry(sm: StateMachine, tx: Transaction, status: pb.InvocationStatus, index: int,
                  entry: pb.JournalEntry, now: int, effects: list[Effect]) -> bool:
    """Apply a promise get / peek / complete entry of a workflow; True when it completed right away."""
    if status.handler_kind not in (pb.WORKFLOW_RUN, pb.WORKFLOW_SHARED):
        raise Rejected(f"{status.invocation_id}: promises belong to workflows")
    pkey = keys.promise(status.tenant, status.target.service, status.target.key, entry.name)
    promise = tx.get_proto(pkey, pb.Promise) or pb.Promise()
    resolved = promise.WhichOneof("result")
    if entry.HasField("promise_get"):
        if resolved:
            journal.copy_result(promise, entry)
            return True
        promise.waiters.add(invocation_id=status.invocation_id, entry_index=index)
        tx.put_proto(pkey, promise)
        return False
    if entry.HasField("promise_peek"):
        if resolved:
            journal.copy_result(promise, entry)
        else:
            entry.void.SetInParent()
        return True
    # resolve / reject
    if resolved:
        entry.failure.code = 409
        entry.failure.message = f"promise {entry.name!r} was already completed"
        return True
    journal.copy_result(entry.promise_complete, promise)
    settle_promise(sm, tx, promise, now, effects, skip=(status.invocation_id, index))
    tx.put_proto(pkey, promise)
    entry.void.SetInParent()
    return True


def settle_promise(sm: StateMachine, tx: Transaction, promise: pb.Promise, now: int, effects: list[Effect],
                   skip: tuple[str, int] | None = None) -> None:
    """Complete every entry waiting on a promise that just got its result (but the one that set it)."""
    waiters = list(promise.waiters)
    del promise.waiters[:]
    for waiter in waiters:
        if skip == (waiter.invocation_id, waiter.entry_index):
            continue
        result = pb.Completion(invocation_id=waiter.invocation_id, entry_index=waiter.entry_index)
        journal.copy_result(promise, result)
        try:
            complete(tx, result, now, effects)
        except Rejected as exc:
            log.info("partition %d: promise waiter skipped: %s", sm.config.partition, exc)


def on_resolve_promise(sm: StateMachine, tx: Transaction, rec: pb.ResolvePromise, now: int,
                       effects: list[Effect]) -> None:
    pkey = keys.promise(rec.tenant, rec.workflow, rec.key, rec.name)
    promise = tx.get_proto(pkey, pb.Promise) or pb.Promise()
    if promise.WhichOneof("result"):
        raise Rejected(f"promise {rec.workflow}/{rec.key}/{rec.name} was already completed")
    if rec.WhichOneof("result") is None:
        raise Rejected("promise resolution without a value or failure")
    journal.copy_result(rec, promise)
    settle_promise(sm, tx, promise, now, effects)
    tx.put_proto(pkey, promise)
