"""What every record handler of the state machine uses: its errors, status rows, sequences, timers, outbox.

Kept in one small module so the concern modules depend on it and never on each other in a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

from endure.proto import ids
from endure.proto import records_pb2 as pb
from endure.proto.streams import StreamLimits
from endure.runtime.partition import keys
from endure.runtime.partition.effects import ArmTimer, DeliverOutbox, Effect, StartInvocation
from endure.runtime.partition.store import Transaction

FINAL = (pb.COMPLETED, pb.KILLED, pb.CANCELLED)
LOCKING = (pb.EXCLUSIVE, pb.WORKFLOW_RUN)


class Rejected(Exception):
    """A record that cannot apply; the reason is logged and the record changes nothing.

    `restart` names an invocation whose running attempt sent the bad record: the leader aborts that
    attempt and starts it again from the journal in the store.
    """

    def __init__(self, reason: str, restart: str | None = None) -> None:
        super().__init__(reason)
        self.restart = restart


@dataclass(frozen=True, slots=True)
class StateMachineConfig:
    partition: int
    partitions: int
    retention_ms: int = 24 * 3600 * 1000  # how long completed invocations (and idempotency hits) are kept
    stream_limits: StreamLimits = StreamLimits()


def read_u64(tx: Transaction, key: bytes) -> int:
    """A counter row; 0 when it was never written."""
    raw = tx.get(key)
    return keys.read_u64(raw) if raw else 0


def next_seq(tx: Transaction, key: bytes) -> int:
    """Bump a sequence row and return its new value (inbox and outbox positions)."""
    seq = read_u64(tx, key) + 1
    tx.put(key, keys.u64(seq))
    return seq


def load_status(tx: Transaction, invocation_id: str) -> pb.InvocationStatus:
    """The invocation's status; a record naming an unknown invocation is rejected."""
    status = tx.get_proto(keys.status(invocation_id), pb.InvocationStatus)
    if status is None:
        raise Rejected(f"unknown invocation {invocation_id}")
    return status


def save_status(tx: Transaction, status: pb.InvocationStatus, now: int) -> None:
    """Write the status and keep the index of running invocations (what a new leader restarts) in step."""
    status.modified_at_ms = now
    tx.put_proto(keys.status(status.invocation_id), status)
    if status.status == pb.RUNNING:
        tx.put(keys.running(status.invocation_id), b"")
    elif status.status not in (pb.SCHEDULED, pb.INBOXED):  # (those never ran)
        tx.delete(keys.running(status.invocation_id))


def load_entry(tx: Transaction, invocation_id: str, index: int) -> pb.JournalEntry | None:
    return tx.get_proto(keys.journal(invocation_id, index), pb.JournalEntry)


def start(tx: Transaction, status: pb.InvocationStatus, now: int, effects: list[Effect]) -> None:
    """Run (or resume) the invocation: the leader starts a new attempt on a worker.

    `status.attempts` counts these starts (the first one included), so `describe` of an invocation
    that ran once shows 1; the retry policy counts failed attempts instead (see on_attempt_failed).
    """
    status.attempts += 1
    status.status = pb.RUNNING
    status.waiting_on[:] = []
    save_status(tx, status, now)
    effects.append(StartInvocation.of(status))


def arm_timer(tx: Transaction, timer: pb.Timer, action: str, effects: list[Effect]) -> str:
    """Store a timer row (what a TimerFired record names) and ask the leader to arm it."""
    key = keys.timer_key(timer.wake_at_ms, timer.invocation_id, action)
    tx.put_proto(keys.timer(key), timer)
    effects.append(ArmTimer(key, timer.wake_at_ms))
    return key


def outbox(tx: Transaction, config: StateMachineConfig, target_invocation: str, env: pb.Envelope,
           effects: list[Effect]) -> None:
    """Queue a record for the partition of target_invocation; the shuffle delivers it (at least once)."""
    seq = next_seq(tx, keys.OUTBOX_NEXT)
    msg = pb.OutboxMessage(
        sequence=seq, partition=ids.partition_of(target_invocation, config.partitions), envelope=env
    )
    tx.put_proto(keys.outbox(seq), msg)
    effects.append(DeliverOutbox(msg))
