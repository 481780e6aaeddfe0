"""PartitionProcessor on a real NodeLog and a real store: apply, leadership, effects, restart, shuffle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import partition_testkit
import pytest
from partition_testkit import end, entry, env, inv_id, invoke, output, run_entry

from endure.proto import records_pb2 as pb
from endure.runtime.partition import keys
from endure.runtime.partition.api import LocalPartition
from endure.runtime.partition.effects import CompleteEntry, Effect, InvocationCompleted, StartInvocation
from endure.runtime.partition.state_machine import StateMachine, StateMachineConfig
from endure.runtime.partition.store import PartitionStore
from endure.runtime.partition.timer_service import now_ms

log_pkg = pytest.importorskip("endure.runtime.log")
processor_mod = pytest.importorskip("endure.runtime.partition.processor")
NodeLog = log_pkg.NodeLog
LogRecord = log_pkg.LogRecord
PartitionProcessor = processor_mod.PartitionProcessor

PARTITIONS = 2


class Sink:
    """The invoker / ingress stand-in: collects effects and leadership changes, wakes waiters."""

    def __init__(self) -> None:
        self.effects: list[tuple[int, Effect]] = []
        self.leadership: list[tuple[int, bool]] = []
        self._changed = asyncio.Event()

    def on_effects(self, partition: int, effects: Sequence[Effect]) -> None:
        self.effects.extend((partition, e) for e in effects)
        self._changed.set()

    def on_leadership(self, partition: int, leading: bool) -> None:
        self.leadership.append((partition, leading))
        self._changed.set()

    def of(self, cls: type) -> list:
        return [e for _, e in self.effects if isinstance(e, cls)]

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


class Node:
    """A NodeLog plus one processor per partition, restartable on the same directories."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sink = Sink()
        self.log: NodeLog | None = None
        self.procs: list[PartitionProcessor] = []
        self.partitions: dict[int, LocalPartition] = {}

    async def start(self) -> None:
        self.log = await NodeLog.open(self.root / "log", PARTITIONS)
        self.procs = []
        self.partitions = {}
        for p in range(PARTITIONS):
            store = PartitionStore(self.root / f"store-{p}")
            sm = StateMachine(StateMachineConfig(partition=p, partitions=PARTITIONS, retention_ms=60_000))
            # Looked up at delivery: partition 1 is built after partition 0 starts.
            proc = PartitionProcessor(p, self.log.log(p), store, sm, self.sink, lambda t: self.partitions[t],
                                      node="n1")
            self.procs.append(proc)
            self.partitions[p] = LocalPartition(proc)
            await proc.start()
        await self.sink.until(lambda: all(proc.is_leader for proc in self.procs))

    async def stop(self) -> None:
        for proc in self.procs:
            await proc.stop()
            proc.store.close()
        assert self.log is not None
        await self.log.close()

    async def append(self, p: int, *records: pb.Envelope | bytes) -> int:
        """Append like the ingress (no epoch); wait until applied; return the last LSN."""
        assert self.log is not None
        lsns = await self.log.log(p).append([r if isinstance(r, bytes) else r.SerializeToString() for r in records])
        await self.procs[p].wait_applied(lsns[-1])
        return lsns[-1]

    async def lead_append(self, p: int, *records: pb.Envelope) -> int:
        """Append as the leader (the invoker's path): stamped with the leader's epoch."""
        lsns = await self.procs[p].append(list(records))
        await self.procs[p].wait_applied(lsns[-1])
        return lsns[-1]

    async def read_until(self, p: int, predicate: Callable[[pb.Envelope], bool]) -> tuple[int, pb.Envelope]:
        """Follow partition p's log from the start until a record matches."""
        assert self.log is not None
        async with asyncio.timeout(10):
            async for batch in self.log.log(p).reader(1):
                for rec in batch:
                    e = pb.Envelope()
                    try:
                        e.ParseFromString(rec.payload)
                    except Exception:
                        continue
                    if predicate(e):
                        return rec.lsn, e
        raise AssertionError("unreachable")


def on_partition(p: int, name: str) -> str:
    return partition_testkit.on_partition(p, name, PARTITIONS)


@pytest.fixture
async def node(tmp_path):
    n = Node(tmp_path)
    await n.start()
    yield n
    await n.stop()


async def test_processor_applies_leads_and_restarts(tmp_path, caplog):
    n = Node(tmp_path)
    await n.start()
    assert n.sink.leadership == [(0, True), (1, True)]
    assert [proc.store.leader_epoch() for proc in n.procs] == [1, 1]

    a, b = on_partition(0, "a"), on_partition(0, "b")
    await n.append(0, invoke(a, ts=now_ms()), invoke(b, ts=now_ms()))
    assert [e.invocation_id for e in n.sink.of(StartInvocation)] == [a, b]
    # The worker journals a step and b finishes: effects reach the sink.
    await n.lead_append(0, run_entry(a, 0), output(b, 0, b"B"), end(b))
    assert [e.status.value for e in n.sink.of(InvocationCompleted)] == [b"B"]
    # Bad bytes and a stale epoch do not stop the partition.
    with caplog.at_level(logging.WARNING, logger="endure.partition"):
        await n.append(0, b"\x0a\xff\x01")
    assert any("undecodable record" in r.getMessage() for r in caplog.records)
    applied_before = n.procs[0].applied_lsn
    await n.stop()

    # Restart: replay from the applied LSN, announce epoch 2, re-derive the owed start of `a`.
    n2 = Node(tmp_path)
    await n2.start()
    proc = n2.procs[0]
    assert proc.epoch == 2 and proc.store.leader_epoch() == 2
    assert proc.applied_lsn > applied_before
    assert [e.invocation_id for e in n2.sink.of(StartInvocation)] == [a]
    # A record from the old leader's epoch is fenced off.
    stale = run_entry(a, 1)
    stale.header.leader_epoch = 1
    await n2.append(0, stale)
    assert proc.store.status(a).journal_length == 1
    await n2.lead_append(0, run_entry(a, 1), output(a, 2), end(a))
    assert proc.store.status(a).status == pb.COMPLETED
    await n2.stop()


async def test_sleep_timer_fires_through_the_log(node):
    a = on_partition(1, "sleeper")
    await node.append(1, invoke(a, ts=now_ms()))
    await node.lead_append(1, entry(a, 0, sleep=pb.SleepEntry(wake_at_ms=now_ms() + 50)))
    await node.sink.until(lambda: any(isinstance(e, CompleteEntry) and e.invocation_id == a
                                      for e in node.sink.of(CompleteEntry)))
    assert node.procs[1].store.journal(a)[0].HasField("void")
    assert list(node.procs[1].store.scan(keys.TIMER)) == []


async def test_outbox_is_delivered_with_producer_and_sequence_then_truncated(node):
    parent = on_partition(0, "parent")
    await node.append(0, invoke(parent, ts=now_ms()))
    # Call a keyed object; find a key whose callee lands on partition 1.
    from endure.proto import ids

    key = next(k for k in (f"k{i}" for i in range(100))
               if ids.partition_of(ids.call_invocation_id(parent, 0, k), PARTITIONS) == 1)
    child = ids.call_invocation_id(parent, 0, key)
    await node.lead_append(0, entry(parent, 0, call=pb.CallEntry(
        target=pb.Target(service="obj", handler="h", key=key), handler_kind=pb.EXCLUSIVE)))

    _, delivered = await node.read_until(1, lambda e: e.HasField("invoke"))
    assert delivered.invoke.invocation_id == child
    assert (delivered.header.producer, delivered.header.sequence) == ("partition-0", 1)
    # The callee starts on partition 1 ...
    await node.sink.until(lambda: any(e.invocation_id == child for e in node.sink.of(StartInvocation)))
    # ... and partition 0 truncates its outbox through its own log.
    lsn, _ = await node.read_until(0, lambda e: e.HasField("outbox_truncate"))
    await node.procs[0].wait_applied(lsn)
    assert list(node.procs[0].store.scan(keys.OUTBOX)) == []

    # The callee's result travels back the same way and completes the parent's call entry.
    await node.lead_append(1, output(child, 0, b"child"), end(child))
    await node.sink.until(lambda: any(e.invocation_id == parent and e.index == 0
                                      for e in node.sink.of(CompleteEntry)))
    assert node.procs[0].store.journal(parent)[0].value == b"child"


async def test_effects_after_the_announcement_in_the_same_batch_are_not_lost(tmp_path):
    """A client answer (idempotent re-invoke of a finished invocation) applied in the batch that
    made this processor leader must still reach the sink."""
    log = await NodeLog.open(tmp_path / "log", 1)
    store = PartitionStore(tmp_path / "store")
    sink = Sink()
    sm = StateMachine(StateMachineConfig(partition=0, partitions=1))
    proc = PartitionProcessor(0, log.log(0), store, sm, sink, lambda _: LocalPartition(proc))
    done = inv_id("done")
    proc._apply_batch([LogRecord(lsn, r.SerializeToString()) for lsn, r in enumerate(
        [invoke(done), output(done, 0, b"R"), end(done)], start=1)])
    proc._announced = 1
    batch = [env(announce_leader=pb.AnnounceLeader(epoch=1, node="n")), invoke(done)]
    proc._apply_batch([LogRecord(lsn, r.SerializeToString()) for lsn, r in enumerate(batch, start=4)])
    assert proc.is_leader
    assert [e.status.value for e in sink.of(InvocationCompleted)] == [b"R"]
    await proc.stop()
    store.close()
    await log.close()


async def test_a_rejected_announcement_does_not_make_a_leader(tmp_path):
    log = await NodeLog.open(tmp_path / "log", 1)
    store = PartitionStore(tmp_path / "store")
    sink = Sink()
    proc = PartitionProcessor(0, log.log(0), store, StateMachine(StateMachineConfig(0, 1)), sink,
                              lambda _: LocalPartition(proc))
    proc._apply_batch([LogRecord(1, env(announce_leader=pb.AnnounceLeader(epoch=3)).SerializeToString())])
    # Our own announcement of an epoch that is no longer newer (another leader got there) is rejected.
    proc._announced = 2
    proc._apply_batch([LogRecord(2, env(announce_leader=pb.AnnounceLeader(epoch=2)).SerializeToString())])
    assert not proc.is_leader and sink.leadership == []
    await proc.stop()
    store.close()
    await log.close()
