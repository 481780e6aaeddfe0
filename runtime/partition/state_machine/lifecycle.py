"""Invocation lifecycle: invoke, suspend, end, a failed attempt, and making an invocation final."""

from __future__ import annotations

from typing import TYPE_CHECKING

from endure.proto import ids
from endure.proto import records_pb2 as pb
from endure.runtime.partition import keys
from endure.runtime.partition.effects import Effect, InvocationCompleted
from endure.runtime.partition.state_machine.deployments import pin_first, unpin
from endure.runtime.partition.state_machine.object_state import admit, release_lock
from endure.runtime.partition.state_machine.shared import (
    FINAL,
    Rejected,
    arm_timer,
    load_entry,
    load_status,
    outbox,
    read_u64,
    save_status,
    start,
)
from endure.runtime.partition.state_machine.streams import invocation_ended
from endure.runtime.partition.store import Transaction

if TYPE_CHECKING:
    from endure.runtime.partition.state_machine.machine import StateMachine


def on_invoke(sm: StateMachine, tx: Transaction, rec: pb.Invoke, now: int, effects: list[Effect]) -> None:
    if not rec.invocation_id or not rec.target.service or not rec.target.handler:
        raise Rejected("invoke needs an invocation id, a service and a handler")
    try:
        ids.partition_key_of(rec.invocation_id)
    except ids.InvalidId as exc:
        raise Rejected(str(exc)) from exc
    if rec.handler_kind == pb.HANDLER_KIND_UNSPECIFIED:
        raise Rejected(f"invoke {rec.invocation_id}: handler kind unspecified")
    if rec.handler_kind != pb.SERVICE and not rec.target.key:
        raise Rejected(f"invoke {rec.invocation_id}: keyed handler without a key")
    existing = tx.get_proto(keys.status(rec.invocation_id), pb.InvocationStatus)
    if existing is not None:
        # Idempotency hit, a workflow submitted twice, or a re-delivered message: same invocation.
        if existing.status in FINAL:
            effects.append(InvocationCompleted(existing.invocation_id, existing))
            if rec.HasField("caller") and rec.caller.invocation_id:
                complete_caller(sm, tx, existing, rec.caller, effects)
        return
    if rec.handler_kind == pb.WORKFLOW_RUN:
        wf_key = keys.workflow(rec.tenant, rec.target.service, rec.target.key)
        first = tx.get(wf_key)
        if first is not None:
            # The workflow already ran (or runs) for this key: a caller gets a clear failure.
            if rec.HasField("caller") and rec.caller.invocation_id:
                refusal = pb.InvocationStatus(invocation_id=rec.invocation_id, modified_at_ms=now)
                refusal.failure.code = 409
                refusal.failure.message = (f"workflow {rec.target.service}/{rec.target.key} was already "
                                           f"submitted as {first.decode()}")
                complete_caller(sm, tx, refusal, rec.caller, effects)
            return
        tx.put(wf_key, rec.invocation_id.encode())
    status = pb.InvocationStatus(
        invocation_id=rec.invocation_id,
        target=rec.target,
        handler_kind=rec.handler_kind,
        tenant=rec.tenant,
        priority=rec.priority,
        input=rec.input,
        idempotency_key=rec.idempotency_key,
        created_at_ms=now,
        execute_at_ms=rec.execute_at_ms,
    )
    status.headers.update(rec.headers)
    t = rec.target  # the newest-first index (dropped with the status):
    tx.put(keys.created(now, rec.invocation_id),
           keys.created_value(rec.tenant, t.service, t.handler, t.key, rec.idempotency_key))
    if rec.HasField("caller"):
        status.caller.CopyFrom(rec.caller)
    if rec.idempotency_key:
        t = rec.target
        tx.put(keys.idempotency(rec.tenant, t.service, t.handler, t.key, rec.idempotency_key),
               rec.invocation_id.encode())
    sm.metering.meter(status, now, {"invocations": 1.0})
    if rec.execute_at_ms > now:
        status.status = pb.SCHEDULED
        save_status(tx, status, now)
        arm_timer(tx, pb.Timer(wake_at_ms=rec.execute_at_ms, invocation_id=rec.invocation_id,
                               start=pb.Void()), "start", effects)
        return
    admit(tx, status, now, effects)


def on_suspend(sm: StateMachine, tx: Transaction, rec: pb.Suspend, now: int, effects: list[Effect]) -> None:
    status = load_status(tx, rec.invocation_id)
    if status.status != pb.RUNNING:
        raise Rejected(f"{rec.invocation_id} is {pb.Status.Name(status.status)}, cannot suspend")
    pin_first(tx, status, rec.pin)
    if not rec.waiting_on:
        raise Rejected(f"{rec.invocation_id} suspends waiting on nothing", restart=rec.invocation_id)
    if rec.run_ms:
        sm.metering.meter(status, now, {"handler.run_ms": float(rec.run_ms)})
    for index in rec.waiting_on:
        entry = load_entry(tx, rec.invocation_id, index)
        if entry is None:
            raise Rejected(f"{rec.invocation_id} waits on entry {index}, which does not exist")
        if entry.WhichOneof("result") is not None or status.cancel_requested:
            # Completed while the worker was suspending: resume at once.
            start(tx, status, now, effects)
            return
    status.status = pb.SUSPENDED
    status.waiting_on[:] = rec.waiting_on
    save_status(tx, status, now)


def on_end(sm: StateMachine, tx: Transaction, rec: pb.End, now: int, effects: list[Effect]) -> None:
    status = load_status(tx, rec.invocation_id)
    if status.status != pb.RUNNING:
        raise Rejected(f"{rec.invocation_id} is {pb.Status.Name(status.status)}, cannot end")
    pin_first(tx, status, rec.pin)
    if rec.run_ms:
        sm.metering.meter(status, now, {"handler.run_ms": float(rec.run_ms)})
    output = None
    if status.journal_length:
        last = load_entry(tx, rec.invocation_id, status.journal_length - 1)
        if last is not None and last.HasField("output"):
            output = last.output
    if output is None:
        raise Rejected(f"{rec.invocation_id} ended without an output entry")
    if output.WhichOneof("result") == "value":
        status.value = output.value
    else:
        status.failure.CopyFrom(output.failure)
    # CANCELLED only when a cancellation was asked for: a handler's own 409 failure is COMPLETED.
    final = pb.CANCELLED if status.cancel_requested and output.HasField("failure") else pb.COMPLETED
    finish(sm, tx, status, final, now, effects)


def finish(sm: StateMachine, tx: Transaction, status: pb.InvocationStatus, final: int, now: int,
           effects: list[Effect]) -> None:
    """Make the invocation final: answer waiters and caller, free its key, arm its purge."""
    status.status = final  # type: ignore[assignment]
    status.completed_at_ms = now
    status.waiting_on[:] = []
    unpin(tx, status)
    invocation_ended(tx, status, effects)
    save_status(tx, status, now)
    effects.append(InvocationCompleted(status.invocation_id, status))
    if status.HasField("caller") and status.caller.invocation_id:
        complete_caller(sm, tx, status, status.caller, effects)
    release_lock(tx, status, now, effects)
    arm_timer(tx, pb.Timer(wake_at_ms=now + sm.config.retention_ms,
                           invocation_id=status.invocation_id, purge=pb.Void()), "purge", effects)


def complete_caller(sm: StateMachine, tx: Transaction, status: pb.InvocationStatus, caller: pb.Caller,
                    effects: list[Effect]) -> None:
    """Send the outcome to the calling invocation's call entry, through the outbox."""
    completion = pb.Completion(invocation_id=caller.invocation_id, entry_index=caller.entry_index)
    if status.WhichOneof("result") == "value":
        completion.value = status.value
    else:
        completion.failure.CopyFrom(status.failure)
    env = pb.Envelope(header=pb.Header(timestamp_ms=status.modified_at_ms), completion=completion)
    outbox(tx, sm.config, caller.invocation_id, env, effects)


def on_attempt_failed(sm: StateMachine, tx: Transaction, rec: pb.AttemptFailed, now: int,
                      effects: list[Effect]) -> None:
    status = load_status(tx, rec.invocation_id)
    if status.status != pb.RUNNING:
        raise Rejected(f"{rec.invocation_id} is {pb.Status.Name(status.status)}, not running")
    pin_first(tx, status, rec.pin)
    if rec.run_ms:
        sm.metering.meter(status, now, {"handler.run_ms": float(rec.run_ms)})
    # The retry policy counts failures (a resumption after a suspension is an attempt, not a failure).
    failures = read_u64(tx, keys.failed_attempts(rec.invocation_id)) + 1
    tx.put(keys.failed_attempts(rec.invocation_id), keys.u64(failures))
    status.last_failure.CopyFrom(rec.failure)
    if rec.pause:
        status.status = pb.PAUSED
        save_status(tx, status, now)
    elif rec.retry_at_ms == 0:
        status.failure.CopyFrom(rec.failure)
        finish(sm, tx, status, pb.COMPLETED, now, effects)
    else:
        status.status = pb.BACKING_OFF
        status.retry_at_ms = rec.retry_at_ms
        save_status(tx, status, now)
        arm_timer(tx, pb.Timer(wake_at_ms=rec.retry_at_ms, invocation_id=rec.invocation_id,
                               retry=pb.Void()), f"retry{status.attempts}", effects)  # one per attempt
