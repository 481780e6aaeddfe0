"""Journal entries: append one entry of a running invocation and carry out what its kind asks.

The rules of each kind (which take a completion, need the key's lock, must carry their result)
come from the journal protocol, `endure.proto.journal`, shared with the SDK and the invoker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from endure.proto import ids, journal
from endure.proto import records_pb2 as pb
from endure.runtime.partition import keys
from endure.runtime.partition.effects import CompleteEntry, Effect
from endure.runtime.partition.state_machine.deployments import pin_first
from endure.runtime.partition.state_machine.object_state import read_state, read_state_keys, write_state
from endure.runtime.partition.state_machine.promises import promise_entry
from endure.runtime.partition.state_machine.shared import (
    Rejected,
    arm_timer,
    load_status,
    outbox,
    save_status,
)
from endure.runtime.partition.state_machine.streams import step_journaled
from endure.runtime.partition.store import Transaction

if TYPE_CHECKING:
    from endure.runtime.partition.state_machine.machine import StateMachine

PROMISE_KINDS = ("promise_get", "promise_peek", "promise_complete")


def on_append_entry(sm: StateMachine, tx: Transaction, rec: pb.AppendEntry, now: int,
                    effects: list[Effect]) -> None:
    status = load_status(tx, rec.invocation_id)
    if status.status != pb.RUNNING:
        raise Rejected(f"{rec.invocation_id} is {pb.Status.Name(status.status)}, not running")
    pin_first(tx, status, rec.pin)
    if rec.index != status.journal_length:
        raise Rejected(f"{rec.invocation_id}: entry index {rec.index}, expected {status.journal_length}",
                       restart=rec.invocation_id)
    entry = pb.JournalEntry()
    entry.CopyFrom(rec.entry)
    kind = entry.WhichOneof("kind")
    if kind is None:
        raise Rejected(f"{rec.invocation_id}: entry {rec.index} has no kind", restart=rec.invocation_id)
    rules = journal.RULES[kind]
    if rules.result_on_append and not journal.has_result(entry):
        raise Rejected(f"{rec.invocation_id}: {kind} entry {rec.index} arrived without its result",
                       restart=rec.invocation_id)
    if not entry.appended_at_ms:
        entry.appended_at_ms = now
    status.journal_length += 1
    completed_now = False

    if rules.needs_lock:
        write_state(tx, status, kind, entry)
    elif kind == "get_state" and not journal.has_result(entry):
        read_state(tx, status, entry)
        completed_now = True
    elif kind == "get_state_keys" and not journal.has_result(entry):
        read_state_keys(tx, status, entry)
        completed_now = True
    elif kind == "sleep":
        arm_timer(tx, pb.Timer(wake_at_ms=entry.sleep.wake_at_ms, invocation_id=rec.invocation_id,
                               complete_sleep=rec.index), f"sleep{rec.index}", effects)
    elif kind in ("call", "send"):
        dispatch_call(sm, tx, status, rec.index, entry, now, effects)
    elif kind in PROMISE_KINDS:
        completed_now = promise_entry(sm, tx, status, rec.index, entry, now, effects)

    usage = dict(entry.usage)
    usage["journal.bytes"] = float(rec.entry.ByteSize())
    if kind == "meter":
        for name, amount in entry.meter.counters.items():
            usage[name] = usage.get(name, 0.0) + amount
    elif kind == "set_state":
        usage["state.bytes"] = float(len(entry.set_state.value))
    sm.metering.meter(status, now, usage)
    tx.put_proto(keys.journal(rec.invocation_id, rec.index), entry)
    save_status(tx, status, now)
    if kind == "run" and status.has_streams:
        step_journaled(tx, status, rec.index + 1, rec.step_try_token, effects)
    if completed_now:
        effects.append(CompleteEntry(rec.invocation_id, rec.index, entry))


def dispatch_call(sm: StateMachine, tx: Transaction, status: pb.InvocationStatus, index: int,
                  entry: pb.JournalEntry, now: int, effects: list[Effect]) -> None:
    """Send the Invoke of a call or a one-way send to the callee's partition, through the outbox."""
    call = entry.call if entry.HasField("call") else entry.send
    if not call.invocation_id:
        call.invocation_id = ids.call_invocation_id(status.invocation_id, index, call.target.key)
    kind = call.handler_kind
    if kind == pb.HANDLER_KIND_UNSPECIFIED:
        # The invoker could not resolve the target; a call fails right away, a send is dropped.
        if entry.HasField("call"):
            entry.failure.code = 404
            entry.failure.message = f"no handler {call.target.service}/{call.target.handler}"
            effects.append(CompleteEntry(status.invocation_id, index, entry))
        return
    invoke = pb.Invoke(
        invocation_id=call.invocation_id, target=call.target, handler_kind=kind, input=call.input,
        tenant=status.tenant, priority=status.priority,
    )
    invoke.headers.update(status.headers)
    if entry.HasField("call"):
        invoke.caller.invocation_id = status.invocation_id
        invoke.caller.entry_index = index
    else:
        invoke.execute_at_ms = entry.send.execute_at_ms
    outbox(tx, sm.config, call.invocation_id, pb.Envelope(header=pb.Header(timestamp_ms=now), invoke=invoke),
           effects)
