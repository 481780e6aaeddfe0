"""Leadership and outbox: a new leader's epoch, and dropping outbox rows the shuffle delivered."""

from __future__ import annotations

from typing import TYPE_CHECKING

from endure.proto import records_pb2 as pb
from endure.runtime.partition import keys
from endure.runtime.partition.effects import Effect
from endure.runtime.partition.state_machine.shared import Rejected, read_u64
from endure.runtime.partition.store import Transaction

if TYPE_CHECKING:
    from endure.runtime.partition.state_machine.machine import StateMachine


def on_announce_leader(sm: StateMachine, tx: Transaction, rec: pb.AnnounceLeader, now: int,
                       effects: list[Effect]) -> None:
    if rec.epoch <= read_u64(tx, keys.LEADER_EPOCH):
        raise Rejected(f"leader epoch {rec.epoch} is not newer than the current one")
    tx.put(keys.LEADER_EPOCH, keys.u64(rec.epoch))


def on_outbox_truncate(sm: StateMachine, tx: Transaction, rec: pb.OutboxTruncate, now: int,
                       effects: list[Effect]) -> None:
    for k in tx.scan_keys(keys.OUTBOX):
        if keys.read_u64(k[len(keys.OUTBOX):]) > rec.up_to:
            break
        tx.delete(k)
