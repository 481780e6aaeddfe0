"""Timers: a fired timer completes a sleep, starts a delayed invocation, retries one, or purges one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from endure.proto import records_pb2 as pb
from endure.runtime.partition import keys
from endure.runtime.partition.effects import Effect
from endure.runtime.partition.state_machine.object_state import admit
from endure.runtime.partition.state_machine.promises import complete
from endure.runtime.partition.state_machine.shared import FINAL, start
from endure.runtime.partition.state_machine.streams import purge_streams
from endure.runtime.partition.store import Transaction

if TYPE_CHECKING:
    from endure.runtime.partition.state_machine.machine import StateMachine


def on_timer_fired(sm: StateMachine, tx: Transaction, rec: pb.TimerFired, now: int, effects: list[Effect]) -> None:
    row = keys.timer(rec.timer_key)
    timer = tx.get_proto(row, pb.Timer)
    if timer is None:
        return  # fired before, or cancelled: nothing to do
    tx.delete(row)
    action = timer.WhichOneof("action")
    status = tx.get_proto(keys.status(timer.invocation_id), pb.InvocationStatus)
    if status is None:
        return
    if action == "complete_sleep":
        complete(tx, pb.Completion(invocation_id=timer.invocation_id, entry_index=timer.complete_sleep,
                                   void=pb.Void()), now, effects)
    elif action == "start" and status.status == pb.SCHEDULED:
        admit(tx, status, now, effects)
    elif action == "retry" and status.status == pb.BACKING_OFF:
        start(tx, status, now, effects)
    elif (action == "purge" and status.status in FINAL
          and timer.wake_at_ms == status.completed_at_ms + sm.config.retention_ms):
        purge(tx, status)  # (a purge timer of an earlier invocation with this id does nothing)


def purge(tx: Transaction, status: pb.InvocationStatus) -> None:
    """Drop a finished invocation: status, journal, idempotency row, and a workflow's key and promises."""
    inv = status.invocation_id
    tx.delete(keys.status(inv))
    tx.delete(keys.created(status.created_at_ms, inv))
    tx.delete(keys.failed_attempts(inv))
    purge_streams(tx, status)
    for index in range(status.journal_length):
        tx.delete(keys.journal(inv, index))
    t = status.target
    if status.idempotency_key:
        tx.delete(keys.idempotency(status.tenant, t.service, t.handler, t.key, status.idempotency_key))
    if status.handler_kind == pb.WORKFLOW_RUN:
        wf_key = keys.workflow(status.tenant, t.service, t.key)
        if tx.get(wf_key) == inv.encode():
            tx.delete(wf_key)
            for k in tx.scan_keys(keys.object_prefix(keys.PROMISE, status.tenant, t.service, t.key)):
                tx.delete(k)
