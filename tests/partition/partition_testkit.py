"""Helpers for the partition tests: build records, apply them like the processor does, inspect rows."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from endure.proto import ids
from endure.proto import records_pb2 as pb
from endure.runtime.log import LogRecord
from endure.runtime.partition import keys
from endure.runtime.partition.effects import Effect
from endure.runtime.partition.state_machine import StateMachine, StateMachineConfig
from endure.runtime.partition.state_machine import apply_batch as run_batch
from endure.runtime.partition.store import PartitionStore

log = logging.getLogger("endure.partition")

T0 = 1_700_000_000_000  # a fixed "now" for records; apply uses only header time


def inv_id(name: str, key: str = "") -> str:
    """A deterministic, valid invocation id (partition key from the object key when there is one)."""
    return ids.derived_invocation_id(ids.stable_hash64(key) if key else 0, "test", name)


def on_partition(p: int, name: str, partitions: int) -> str:
    """A deterministic invocation id (keyed by a name derived from `name`) that routes to partition p."""
    n = 0
    while True:
        inv = inv_id(f"{name}-{n}", key=f"{name}-{n}")
        if ids.partition_of(inv, partitions) == p:
            return inv
        n += 1


def env(ts: int = T0, epoch: int = 0, producer: str = "", seq: int = 0, **body: object) -> pb.Envelope:
    """An envelope with a header: env(invoke=pb.Invoke(...), ts=..)."""
    e = pb.Envelope(header=pb.Header(leader_epoch=epoch, producer=producer, sequence=seq, timestamp_ms=ts))
    for name, msg in body.items():
        getattr(e, name).CopyFrom(msg)
    return e


def invoke(invocation_id: str, service: str = "svc", handler: str = "run", key: str = "",
           kind: int = pb.SERVICE, ts: int = T0, **fields: object) -> pb.Envelope:
    rec = pb.Invoke(invocation_id=invocation_id, target=pb.Target(service=service, handler=handler, key=key),
                    handler_kind=kind, **fields)  # type: ignore[arg-type]
    return env(ts=ts, invoke=rec)


def entry(invocation_id: str, index: int, ts: int = T0, **entry_fields: object) -> pb.Envelope:
    return env(ts=ts, append_entry=pb.AppendEntry(invocation_id=invocation_id, index=index,
                                                  entry=pb.JournalEntry(**entry_fields)))  # type: ignore[arg-type]


def run_entry(invocation_id: str, index: int, value: bytes = b"r", ts: int = T0) -> pb.Envelope:
    return entry(invocation_id, index, ts=ts, name=f"step{index}", run=pb.RunEntry(), value=value)


def output(invocation_id: str, index: int, value: bytes = b"out", ts: int = T0) -> pb.Envelope:
    return entry(invocation_id, index, ts=ts, output=pb.OutputEntry(value=value))


def end(invocation_id: str, ts: int = T0) -> pb.Envelope:
    return env(ts=ts, end=pb.End(invocation_id=invocation_id))


def completion(invocation_id: str, index: int, value: bytes | None = None, failure: pb.Failure | None = None,
               ts: int = T0) -> pb.Envelope:
    c = pb.Completion(invocation_id=invocation_id, entry_index=index)
    if failure is not None:
        c.failure.CopyFrom(failure)
    elif value is not None:
        c.value = value
    else:
        c.void.SetInParent()
    return env(ts=ts, completion=c)


class Partition:
    """A state machine over a real store, applied like the processor: one transaction per batch."""

    def __init__(self, path: Path, retention_ms: int = 3_600_000, partition: int = 0, partitions: int = 4) -> None:
        self.path = path
        self.config = StateMachineConfig(partition=partition, partitions=partitions, retention_ms=retention_ms)
        self.store = PartitionStore(path)
        self.sm = StateMachine(self.config)
        self.lsn = self.store.applied_lsn()

    def reopen(self) -> None:
        self.store.close()
        self.store = PartitionStore(self.path)
        self.sm = StateMachine(self.config)
        self.lsn = self.store.applied_lsn()

    def close(self) -> None:
        self.store.close()

    def apply(self, *records: pb.Envelope | bytes) -> list[Effect]:
        """Apply records as one batch (one commit); return the effects they produced."""
        return apply_batch(self.store, self.sm, self._number(records))

    def apply_each(self, *records: pb.Envelope | bytes) -> list[list[Effect]]:
        return [self.apply(r) for r in records]

    def _number(self, records: Sequence[pb.Envelope | bytes]) -> list[tuple[int, bytes]]:
        out = []
        for r in records:
            self.lsn += 1
            out.append((self.lsn, r if isinstance(r, bytes) else r.SerializeToString()))
        return out

    # ---------------------------------------------------------------- inspection

    def status(self, invocation_id: str) -> pb.InvocationStatus:
        s = self.store.status(invocation_id)
        assert s is not None, f"no status for {invocation_id}"
        return s

    def rows(self, without_lsn: bool = False) -> list[tuple[bytes, bytes]]:
        return [(k, v) for k, v in self.store.items() if not (without_lsn and k == keys.APPLIED_LSN)]

    def table(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        return list(self.store.scan(prefix))

    def timers(self) -> dict[str, pb.Timer]:
        out = {}
        for k, v in self.store.scan(keys.TIMER):
            t = pb.Timer()
            t.ParseFromString(v)
            out[k[len(keys.TIMER):].decode()] = t
        return out

    def outbox(self) -> list[pb.OutboxMessage]:
        out = []
        for _, v in self.store.scan(keys.OUTBOX):
            m = pb.OutboxMessage()
            m.ParseFromString(v)
            out.append(m)
        return out


def apply_batch(store: PartitionStore, sm: StateMachine, batch: Iterable[tuple[int, bytes]]) -> list[Effect]:
    """Apply a batch with the processor's own loop (state_machine.apply_batch), commit once at the last LSN."""
    tx = store.transaction()
    outcome = run_batch(sm, tx, [LogRecord(lsn, payload) for lsn, payload in batch])
    if outcome.last_lsn is not None:
        tx.commit(outcome.last_lsn)
    return outcome.effects


def of_type(effects: Iterable[Effect], cls: type) -> list:
    return [e for e in effects if isinstance(e, cls)]
