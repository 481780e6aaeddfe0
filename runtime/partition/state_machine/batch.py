"""Applying one batch of log records: the loop the partition processor and the tests share.

One function, so the property tests exercise exactly what the processor runs: decode each record
(an undecodable one is rejected and skipped, never stopping the partition), apply it, and note
when the processor's own leader announcement applied (what came before it is re-derived from the
store by the new leader, so those effects are dropped).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from endure.proto import records_pb2 as pb
from endure.runtime.partition.effects import Effect
from endure.runtime.partition.state_machine.machine import StateMachine
from endure.runtime.partition.store import Transaction


class RawRecord(Protocol):
    """A log record as read: its LSN and the bytes appended (maybe not a valid envelope)."""

    @property
    def lsn(self) -> int: ...

    @property
    def payload(self) -> bytes: ...


@dataclass(slots=True)
class BatchOutcome:
    """What applying a batch yields for the processor; the caller commits tx at last_lsn."""

    effects: list[Effect] = field(default_factory=list)
    announced: bool = False  # the announcement of the epoch asked about applied in this batch
    newest_epoch: int = 0  # the highest leader epoch announced (and applied) in this batch
    last_lsn: int | None = None  # None for an empty batch
    records: int = 0


def apply_batch(sm: StateMachine, tx: Transaction, batch: Iterable[RawRecord],
                announced_epoch: int = 0) -> BatchOutcome:
    """Apply every record of batch into tx, in order; does not commit.

    With announced_epoch, the effects so far are dropped when an announcement of that epoch
    applies (the new leader re-derives them from the store), and `announced` says it did.
    """
    out = BatchOutcome()
    env = pb.Envelope()
    for record in batch:
        out.last_lsn = record.lsn
        out.records += 1
        env.Clear()
        try:
            env.ParseFromString(record.payload)
        except Exception:  # a corrupt payload must not stop the partition
            sm.reject(f"LSN {record.lsn}: undecodable record")
            continue
        applied = sm.apply(tx, env, out.effects)
        if applied and env.HasField("announce_leader"):
            out.newest_epoch = max(out.newest_epoch, env.announce_leader.epoch)
            if announced_epoch and env.announce_leader.epoch == announced_epoch:
                out.announced = True
                out.effects.clear()  # everything owed is re-derived from the store by the new leader
    return out
