"""Operator actions: cancel, kill, pause, resume (optionally onto other code) and purge an invocation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from endure.proto import journal
from endure.proto import records_pb2 as pb
from endure.runtime.partition import keys
from endure.runtime.partition.effects import AbortAttempt, CancelAttempt, CompleteEntry, Effect
from endure.runtime.partition.state_machine.deployments import move
from endure.runtime.partition.state_machine.lifecycle import finish
from endure.runtime.partition.state_machine.shared import (
    FINAL,
    Rejected,
    load_entry,
    load_status,
    outbox,
    save_status,
    start,
)
from endure.runtime.partition.state_machine.timers import purge
from endure.runtime.partition.store import Transaction

if TYPE_CHECKING:
    from endure.runtime.partition.state_machine.machine import StateMachine

def on_cancel(sm: StateMachine, tx: Transaction, rec: pb.Cancel, now: int, effects: list[Effect]) -> None:
    status = load_status(tx, rec.invocation_id)
    if status.status in FINAL:
        return
    if status.status in (pb.INBOXED, pb.SCHEDULED):
        if status.status == pb.INBOXED:
            tx.delete(keys.inbox(status.tenant, status.target.service, status.target.key, status.inbox_seq))
        status.failure.CopyFrom(journal.cancelled_failure())
        finish(sm, tx, status, pb.CANCELLED, now, effects)
        return
    if status.cancel_requested and status.status == pb.RUNNING:
        return  # already delivered
    status.cancel_requested = True
    signal_children(sm, tx, status, now, effects, pb.Envelope(cancel=pb.Cancel()))
    cancel_waits(tx, status, effects)
    if status.status == pb.RUNNING:
        save_status(tx, status, now)
        effects.append(CancelAttempt(status.invocation_id))
    else:  # suspended, backing off, paused: resume so the handler sees the cancellation and compensates
        start(tx, status, now, effects)


def cancel_waits(tx: Transaction, status: pb.InvocationStatus, effects: list[Effect]) -> None:
    """Complete the sleeps, awakeables and promise gets the handler waits on with a typed cancellation.

    Journaled, so a replay raises the cancellation at exactly the await that saw it. Calls
    are left to complete when their cancelled callee ends (after its own compensations).
    """
    for index in range(status.journal_length):
        entry = load_entry(tx, status.invocation_id, index)
        if entry is None or entry.WhichOneof("result") is not None:
            continue
        if entry.WhichOneof("kind") in journal.KINDS_CANCELLED_WITH_INVOCATION:
            entry.failure.CopyFrom(journal.cancelled_failure())
            tx.put_proto(keys.journal(status.invocation_id, index), entry)
            if status.status == pb.RUNNING:
                effects.append(CompleteEntry(status.invocation_id, index, entry))


def on_kill(sm: StateMachine, tx: Transaction, rec: pb.Kill, now: int, effects: list[Effect]) -> None:
    status = load_status(tx, rec.invocation_id)
    if status.status in FINAL:
        return
    if status.status == pb.INBOXED:
        tx.delete(keys.inbox(status.tenant, status.target.service, status.target.key, status.inbox_seq))
    if status.status in (pb.RUNNING, pb.SUSPENDED, pb.BACKING_OFF, pb.PAUSED):
        effects.append(AbortAttempt(status.invocation_id, "killed"))
        signal_children(sm, tx, status, now, effects, pb.Envelope(kill=pb.Kill()))
    status.failure.CopyFrom(journal.killed_failure())
    finish(sm, tx, status, pb.KILLED, now, effects)


def signal_children(sm: StateMachine, tx: Transaction, status: pb.InvocationStatus, now: int,
                    effects: list[Effect], template: pb.Envelope) -> None:
    """Send cancel / kill to every call this invocation still waits on."""
    for index in range(status.journal_length):
        entry = load_entry(tx, status.invocation_id, index)
        if entry is None or not entry.HasField("call") or entry.WhichOneof("result") is not None:
            continue
        child = entry.call.invocation_id
        env = pb.Envelope()
        env.CopyFrom(template)
        env.header.timestamp_ms = now
        body = env.WhichOneof("body")
        assert body is not None  # the template names cancel or kill
        getattr(env, body).invocation_id = child
        outbox(tx, sm.config, child, env, effects)


def on_purge(sm: StateMachine, tx: Transaction, rec: pb.Purge, now: int, effects: list[Effect]) -> None:
    status = load_status(tx, rec.invocation_id)
    if status.status not in FINAL:
        raise Rejected(f"{rec.invocation_id} is {pb.Status.Name(status.status)}; only finished invocations "
                       "can be purged")
    purge(tx, status)


def on_pause(sm: StateMachine, tx: Transaction, rec: pb.Pause, now: int, effects: list[Effect]) -> None:
    status = load_status(tx, rec.invocation_id)
    if status.status not in (pb.RUNNING, pb.SUSPENDED, pb.BACKING_OFF):
        raise Rejected(f"{rec.invocation_id} is {pb.Status.Name(status.status)}, cannot pause")
    if status.status == pb.RUNNING:
        effects.append(AbortAttempt(status.invocation_id, "paused"))
    status.status = pb.PAUSED
    save_status(tx, status, now)


def on_resume(sm: StateMachine, tx: Transaction, rec: pb.Resume, now: int, effects: list[Effect]) -> None:
    status = load_status(tx, rec.invocation_id)
    if status.status != pb.PAUSED:
        raise Rejected(f"{rec.invocation_id} is {pb.Status.Name(status.status)}, not paused")
    if rec.HasField("deployment"):
        if not rec.deployment.id or not rec.deployment.version:
            raise Rejected(f"resume of {rec.invocation_id} names no deployment version")
        move(tx, status, rec.deployment, "resume --deployment", now)
    start(tx, status, now, effects)
