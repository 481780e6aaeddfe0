"""The Partition interface over a real NodeLog and real stores: the reads and appends every other part uses.

Every test runs on both implementations: LocalPartition in process, and RemotePartition over a real
gRPC PartitionService on loopback serving the same LocalPartitions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import partition_testkit
import pytest
from partition_testkit import end, entry, env, invoke, output, run_entry
from remote_kit import RemoteView, Served

from endure.proto import records_pb2 as pb
from endure.runtime.log import NodeLog
from endure.runtime.partition.api import InvocationFilter, LocalPartition, local_partitions
from endure.runtime.partition.effects import Effect, InvocationCompleted
from endure.runtime.partition.processor import PartitionProcessor
from endure.runtime.partition.remote import InvalidPartitionRequest
from endure.runtime.partition.state_machine import StateMachine, StateMachineConfig
from endure.runtime.partition.store import PartitionStore
from endure.runtime.partition.timer_service import now_ms
from endure.runtime.partition.waiters import CompletionWaiters, TooManyWaiters

PARTITIONS = 2
DAY = 86_400_000
MAX_WAITERS = 8


class Sink:
    """Completions answer the node's waiters, as the node's sink does; other effects go nowhere (these
    tests read the partition back through its interface); leadership is awaited before a test starts."""

    def __init__(self, waiters: CompletionWaiters) -> None:
        self.waiters = waiters
        self.leading: set[int] = set()
        self._changed = asyncio.Event()

    def on_effects(self, partition: int, effects: Sequence[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, InvocationCompleted):
                self.waiters.complete(effect.invocation_id, effect.status)

    def on_leadership(self, partition: int, leading: bool) -> None:
        (self.leading.add if leading else self.leading.discard)(partition)
        self._changed.set()

    async def until_leading(self, procs: Sequence[PartitionProcessor]) -> None:
        async with asyncio.timeout(10):
            while not all(proc.is_leader and proc.partition in self.leading for proc in procs):
                self._changed.clear()
                await self._changed.wait()


class Node:
    """A NodeLog, one processor per partition, the LocalPartition over each, and the partitions under
    test: those LocalPartitions, or RemotePartitions to a PartitionService serving them."""

    def __init__(self, root: Path, kind: str = "local", max_waiters: int = MAX_WAITERS) -> None:
        self.root = root
        self.kind = kind
        self.waiters = CompletionWaiters(max_waiters)
        self.procs: list[PartitionProcessor] = []
        self.local: dict[int, LocalPartition] = {}
        self.partitions: dict[int, Any] = {}  # LocalPartition or RemoteView: the Partition under test
        self.served: Served | None = None

    async def start(self) -> None:
        self.log = await NodeLog.open(self.root / "log", PARTITIONS)
        sink = Sink(self.waiters)
        for p in range(PARTITIONS):
            store = PartitionStore(self.root / f"store-{p}")
            sm = StateMachine(StateMachineConfig(partition=p, partitions=PARTITIONS, retention_ms=3_600_000))
            proc = PartitionProcessor(p, self.log.log(p), store, sm, sink, self.log.log, node="n1")
            self.procs.append(proc)
            await proc.start()
        self.local = local_partitions(self.procs, self.waiters)
        await sink.until_leading(self.procs)
        if self.kind == "local":
            self.partitions = dict(self.local)
        else:
            self.served = Served(self.local)
            await self.served.start()
            self.partitions = {p: RemoteView(self.served.remote(p), local) for p, local in self.local.items()}

    async def stop(self) -> None:
        if self.served is not None:
            await self.served.stop()
        for proc in self.procs:
            await proc.stop()
            proc.store.close()
        await self.log.close()

    async def write(self, p: int, *records: pb.Envelope) -> int:
        """Append as an outside writer (the ingress's path); wait until applied; the last LSN."""
        lsns = await self.partitions[p].append(records)
        await self.partitions[p].wait_applied(lsns[-1])
        return lsns[-1]

    async def lead(self, p: int, *records: pb.Envelope) -> int:
        """Append as the leader (the invoker's path); wait until applied; the last LSN."""
        lsns = await self.partitions[p].append_as_leader(records)
        await self.partitions[p].wait_applied(lsns[-1])
        return lsns[-1]


def on_partition(p: int, name: str) -> str:
    return partition_testkit.on_partition(p, name, PARTITIONS)


@pytest.fixture(params=["local", "remote"])
async def node(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Node]:
    n = Node(tmp_path, request.param)
    await n.start()
    yield n
    await n.stop()


async def test_append_as_an_outside_writer_is_applied(node: Node) -> None:
    part = node.partitions[0]
    a = on_partition(0, "outside")
    assert part.id == 0
    assert await part.get_status(a) is None
    lsns = await part.append([invoke(a, tenant="t", ts=now_ms())])
    assert len(lsns) == 1
    await part.wait_applied(lsns[-1])
    status = await part.get_status(a)
    assert status is not None and status.invocation_id == a and status.tenant == "t"
    await node.lead(0, run_entry(a, 0, value=b"step"))
    journal = await part.get_journal(a)
    assert [e.value for e in journal] == [b"step"]
    # The other partition saw none of it.
    assert await node.partitions[1].get_status(a) is None


async def test_scan_invocations_honours_filter_after_and_limit(node: Node) -> None:
    part = node.partitions[0]
    t0 = now_ms()
    made: dict[str, tuple[str, str, int]] = {}  # id -> (service, tenant, created_at)
    for i in range(9):
        inv = on_partition(0, f"scan{i}")
        service, tenant, ts = ("a" if i % 3 else "b"), ("t1" if i < 5 else "t2"), t0 + i * 1000
        made[inv] = (service, tenant, ts)
        await node.write(0, invoke(inv, service=service, tenant=tenant, ts=ts))
    done = sorted(made)[:2]
    for inv in done:
        await node.lead(0, output(inv, 0, ts=t0), end(inv, ts=t0))

    everything = await part.scan_invocations(InvocationFilter(), None, 100)
    assert [s.invocation_id for s in everything] == sorted(made)  # in invocation-id order
    assert await part.scan_invocations(InvocationFilter(), None, 0) == []

    def expect(**f: object) -> list[str]:
        flt = InvocationFilter(**f)  # type: ignore[arg-type]
        return [s.invocation_id for s in everything if flt.matches(s)]

    cases: list[dict[str, object]] = [
        {"service": "a"}, {"tenant": "t2"}, {"service": "b", "tenant": "t1"},
        {"status": pb.COMPLETED}, {"created_after_ms": t0 + 3000}, {"created_before_ms": t0 + 3000},
        {"created_after_ms": t0 + 2000, "created_before_ms": t0 + 6000},
    ]
    for f in cases:
        got = [s.invocation_id for s in await part.scan_invocations(InvocationFilter(**f), None, 100)]  # type: ignore[arg-type]
        assert got == expect(**f), f
        assert got, f"{f} should match something"
    completed = await part.scan_invocations(InvocationFilter(status=pb.COMPLETED), None, 100)
    assert sorted(s.invocation_id for s in completed) == done
    assert {made[inv][0] for inv in expect(service="a")} == {"a"}
    assert all(made[inv][2] >= t0 + 3000 for inv in expect(created_after_ms=t0 + 3000))
    assert all(made[inv][2] < t0 + 3000 for inv in expect(created_before_ms=t0 + 3000))

    # Paging: `after` is exclusive, `limit` caps each page; every match comes exactly once, in order.
    for flt, limit in ((InvocationFilter(), 2), (InvocationFilter(service="a"), 2), (InvocationFilter(tenant="t1"), 3)):
        pages: list[list[str]] = []
        after: str | None = None
        while True:
            page = [s.invocation_id for s in await part.scan_invocations(flt, after, limit)]
            assert len(page) <= limit
            if not page:
                break
            pages.append(page)
            assert len(pages) <= len(everything), "paging does not advance"
            after = page[-1]
        assert len(pages) >= 2
        assert [inv for page in pages for inv in page] == [s.invocation_id for s in everything if flt.matches(s)]
    # An `after` that is not itself a stored id starts at the next id.
    first = sorted(made)[0]
    got = await part.scan_invocations(InvocationFilter(), first[:-1], 100)
    assert [s.invocation_id for s in got] == sorted(made)


async def test_get_usage_filters_by_tenant_and_day(node: Node) -> None:
    part = node.partitions[0]
    today = now_ms() // DAY
    yesterday_ts, today_ts = (today - 1) * DAY + 1000, today * DAY + 1000
    rows = [("t", yesterday_ts), ("t", today_ts), ("tt", today_ts), ("u", yesterday_ts)]
    for i, (tenant, ts) in enumerate(rows):
        inv = on_partition(0, f"usage{i}")
        await node.write(0, invoke(inv, service="svc", handler="run", tenant=tenant, ts=ts))
        e = run_entry(inv, 0, ts=ts)
        e.append_entry.entry.usage["fuel"] = 10.0 * (i + 1)
        await node.lead(0, e)

    def seen(records: list) -> set[tuple[str, int]]:
        return {(r.tenant, r.day) for r in records}

    all_rows = await part.get_usage(None, 0)
    assert seen(all_rows) == {("t", today - 1), ("t", today), ("tt", today), ("u", today - 1)}
    assert all((r.service, r.handler) == ("svc", "run") for r in all_rows)
    assert {(r.tenant, r.day): r.counters["fuel"] for r in all_rows} == {
        ("t", today - 1): 10.0, ("t", today): 20.0, ("tt", today): 30.0, ("u", today - 1): 40.0}
    assert all(r.counters["journal.bytes"] > 0 for r in all_rows)
    # A tenant is a whole name: "t" does not take "tt"'s rows.
    assert seen(await part.get_usage("t", 0)) == {("t", today - 1), ("t", today)}
    assert seen(await part.get_usage("t", today)) == {("t", today)}
    assert seen(await part.get_usage(None, today)) == {("t", today), ("tt", today)}
    assert await part.get_usage("nobody", 0) == []
    assert await node.partitions[1].get_usage(None, 0) == []


async def test_get_promises_returns_resolved_promises_by_name(node: Node) -> None:
    part = node.partitions[1]
    ts = now_ms()
    await node.write(1,
                     env(ts=ts, resolve_promise=pb.ResolvePromise(workflow="wf", key="k", name="b", tenant="t",
                                                                  value=b"B")),
                     env(ts=ts, resolve_promise=pb.ResolvePromise(workflow="wf", key="k", name="a", tenant="t",
                                                                  failure=pb.Failure(code=400, message="no"))),
                     env(ts=ts, resolve_promise=pb.ResolvePromise(workflow="wf", key="k2", name="c", tenant="t",
                                                                  value=b"C")),
                     env(ts=ts, resolve_promise=pb.ResolvePromise(workflow="wf", key="k", name="d", tenant="u",
                                                                  value=b"D")))
    got = await part.get_promises("t", "wf", "k")
    assert [name for name, _ in got] == ["a", "b"]
    promises = dict(got)
    assert promises["a"].failure.code == 400 and promises["a"].failure.message == "no"
    assert promises["b"].value == b"B"
    assert [name for name, _ in await part.get_promises("t", "wf", "k2")] == ["c"]
    assert [name for name, _ in await part.get_promises("u", "wf", "k")] == ["d"]
    assert await part.get_promises("t", "other", "k") == []
    assert await node.partitions[0].get_promises("t", "wf", "k") == []


async def test_get_info_reports_leader_epoch_and_applied_lsn(node: Node) -> None:
    part = node.partitions[0]
    a = on_partition(0, "info")
    await node.write(0, invoke(a, ts=now_ms()))
    last = await node.lead(0, entry(a, 0, sleep=pb.SleepEntry(wake_at_ms=now_ms() + 3_600_000)))
    info = await part.get_info()
    assert info.partition == 0 and info.leader is True and info.leader_epoch == 1
    assert info.applied_lsn == last
    assert info.log_tail == last + 1 and info.apply_lag == 0
    assert info.trim_point <= 1
    assert info.timers_in_memory == 1
    assert info.segments and info.segments[0].base_lsn <= 1 and not info.segments[-1].sealed
    assert info.segments[0].loglet
    other = await node.partitions[1].get_info()
    assert other.partition == 1 and other.leader and other.leader_epoch == 1 and other.timers_in_memory == 0


async def test_object_state_reads_through_the_interface(node: Node) -> None:
    part = node.partitions[0]
    inv = on_partition(0, "obj")
    key = "k"
    await node.write(0, invoke(inv, service="obj", handler="h", key=key, kind=pb.EXCLUSIVE, tenant="t", ts=now_ms()))
    await node.lead(0, entry(inv, 0, name="n", set_state=pb.SetStateEntry(value=b"v")))
    assert await part.get_object_state("t", "obj", key) == [("n", b"v")]
    assert await part.get_object_state("u", "obj", key) == []


# ---------------------------------------------------------------------------------------- await_completion


async def finish(node: Node, p: int, inv: str, value: bytes = b"out") -> int:
    """The invoker's end of an invocation: its output, then End, as the leader."""
    ts = now_ms()  # not the kit's old default: an end long ago would be purged at once
    return await node.lead(p, output(inv, 0, value=value, ts=ts), end(inv, ts=ts))


async def until_waiting(node: Node, n: int, fewer: bool = False) -> None:
    """Until the owner holds n waiters (fewer: fewer than n); a remote caller's waiter registers on the
    server, a round trip later. (Polled: the waiters announce no change.)"""
    for _ in range(1000):
        if (len(node.waiters) < n) if fewer else (len(node.waiters) >= n):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(node.waiters)} waiters, expected {'fewer than ' if fewer else ''}{n}")


async def test_await_completion_returns_the_final_status_of_an_invocation_that_ends_later(node: Node) -> None:
    part = node.partitions[0]
    a = on_partition(0, "later")
    lsn = await node.write(0, invoke(a, tenant="t", ts=now_ms()))
    waiting = asyncio.ensure_future(part.await_completion(a, lsn))
    await until_waiting(node, 1)
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await finish(node, 0, a, b"done")
    async with asyncio.timeout(10):
        status = await waiting
    assert status is not None and status.invocation_id == a and status.tenant == "t"
    assert status.status == pb.COMPLETED and status.value == b"done"
    assert len(node.waiters) == 0  # answered waiters are gone


async def test_await_completion_returns_at_once_for_a_final_invocation(node: Node) -> None:
    part = node.partitions[1]
    a = on_partition(1, "final")
    await node.write(1, invoke(a, ts=now_ms()))
    await finish(node, 1, a)
    killed = on_partition(1, "killed")
    await node.write(1, invoke(killed, ts=now_ms()), env(ts=now_ms(), kill=pb.Kill(invocation_id=killed)))
    async with asyncio.timeout(5):
        done = await part.await_completion(a)
        gone = await part.await_completion(killed)
    assert done is not None and done.status == pb.COMPLETED and done.value == b"out"
    assert gone is not None and gone.status == pb.KILLED
    assert len(node.waiters) == 0


async def test_await_completion_is_none_for_an_id_that_does_not_exist_once_its_lsn_is_applied(node: Node) -> None:
    part = node.partitions[0]
    nobody = on_partition(0, "nobody")
    lsn = (await part.append([invoke(on_partition(0, "someone"), ts=now_ms())]))[-1]
    async with asyncio.timeout(5):
        assert await part.await_completion(nobody, lsn) is None
        assert await part.await_completion(nobody) is None
    assert len(node.waiters) == 0


async def test_await_completion_never_misses_an_end_applied_right_after_the_append(node: Node) -> None:
    """The ingress's path: append, then wait from that append's LSN, while the end record is appended
    right behind the invoke (applied before, during or after the call: each must be seen)."""
    part = node.partitions[0]
    for i in range(20):
        a = on_partition(0, f"race{i}")
        lsn = (await part.append([invoke(a, ts=now_ms())]))[-1]
        ts = now_ms()
        ending = asyncio.ensure_future(node.local[0].append_as_leader([output(a, 0, value=b"%d" % i, ts=ts),
                                                                       end(a, ts=ts)]))
        if i % 5 == 4:  # the end applied before the wait begins
            await node.local[0].wait_applied((await ending)[-1])
        for _ in range(i % 4):
            await asyncio.sleep(0)  # vary where the end lands relative to the wait
        async with asyncio.timeout(10):
            status = await part.await_completion(a, lsn)
            await ending
        assert status is not None and status.status == pb.COMPLETED and status.value == b"%d" % i, i
    assert len(node.waiters) == 0


async def test_too_many_waiters_is_a_typed_error_and_a_cancelled_wait_frees_its_place(node: Node) -> None:
    part = node.partitions[0]
    running = [on_partition(0, f"bound{i}") for i in range(MAX_WAITERS)]
    lsn = await node.write(0, *(invoke(a, ts=now_ms()) for a in running))
    waits = [asyncio.ensure_future(part.await_completion(a, lsn)) for a in running]
    try:
        await until_waiting(node, MAX_WAITERS)
        with pytest.raises(TooManyWaiters, match=f"limit {MAX_WAITERS}"):
            await part.await_completion(running[0], lsn)
        # A caller that stops waiting frees its place (remote: cancelling the call cancels the RPC).
        waits[0].cancel()
        await until_waiting(node, MAX_WAITERS, fewer=True)
        again = asyncio.ensure_future(part.await_completion(running[0], lsn))
        await until_waiting(node, MAX_WAITERS)
        await finish(node, 0, running[0])
        async with asyncio.timeout(10):
            status = await again
        assert status is not None and status.status == pb.COMPLETED
    finally:
        for w in waits:
            w.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


async def test_an_applied_lsn_past_the_log_is_refused_by_the_owner(node: Node) -> None:
    """It would never be applied: the owner answers INVALID_ARGUMENT (InvalidPartitionRequest) rather
    than hold a waiter for ever. In process the caller's own append gives the LSN, so no check."""
    if node.kind != "remote":
        pytest.skip("a remote caller's input")
    tail = (await node.partitions[0].get_info()).log_tail
    with pytest.raises(InvalidPartitionRequest, match=f"applied_lsn {tail + 5} is past"):
        await node.partitions[0].await_completion(on_partition(0, "future"), tail + 5)
    assert len(node.waiters) == 0


# ---------------------------------------------------------------------------------------- what the web console reads


async def test_scan_invocations_filters_by_handler_failure_and_idempotency_key(node: Node) -> None:
    part = node.partitions[0]
    ts = now_ms()
    ok, failed, other, keyed = (on_partition(0, name) for name in ("ok", "failed", "other", "keyed"))
    await node.write(0, invoke(ok, handler="run", ts=ts), invoke(failed, handler="run", ts=ts),
                     invoke(other, handler="walk", ts=ts), invoke(keyed, handler="run", idempotency_key="order-7", ts=ts))
    await node.lead(0, output(ok, 0, ts=ts), end(ok, ts=ts))
    await node.lead(0, entry(failed, 0, ts=ts, output=pb.OutputEntry(failure=pb.Failure(code=500, message="boom"))),
                    end(failed, ts=ts))

    async def ids_of(**f: object) -> set[str]:
        return {s.invocation_id for s in await part.scan_invocations(InvocationFilter(**f), None, 100)}  # type: ignore[arg-type]

    assert await ids_of(handler="walk") == {other}
    assert await ids_of(handler="run") == {ok, failed, keyed}
    assert await ids_of(failed=True) == {failed}
    assert await ids_of(idempotency_key="order-7") == {keyed}
    assert await ids_of(idempotency_key="order-8") == set()


async def test_a_long_journal_is_read_in_pages(node: Node) -> None:
    part = node.partitions[0]
    inv = on_partition(0, "long")
    await node.write(0, invoke(inv, ts=now_ms()))
    await node.lead(0, *(run_entry(inv, i, value=str(i).encode()) for i in range(30)))
    assert [e.value for e in await part.get_journal(inv)] == [str(i).encode() for i in range(30)]
    assert [e.value for e in await part.get_journal(inv, 10, 5)] == [str(i).encode() for i in range(10, 15)]
    assert [e.value for e in await part.get_journal(inv, 28, 5)] == [b"28", b"29"]
    assert [e.value for e in await part.get_journal(inv, 25)] == [str(i).encode() for i in range(25, 30)]
    assert await part.get_journal(inv, 30, 5) == []


async def test_scan_object_keys_lists_each_key_with_state_once_per_tenant(node: Node) -> None:
    part = node.partitions[0]
    ts = now_ms()
    for n, (tenant, key) in enumerate([("t", "alice"), ("t", "bob"), ("t", "carol"), ("u", "dave")]):
        inv = on_partition(0, f"keys{n}")
        await node.write(0, invoke(inv, service="obj", handler="h", key=key, kind=pb.EXCLUSIVE, tenant=tenant, ts=ts))
        await node.lead(0, *(entry(inv, i, name=f"s{i}", set_state=pb.SetStateEntry(value=b"v")) for i in range(3)))
    everything = await part.scan_object_keys("t", "obj", None, 100)
    assert sorted(everything) == ["alice", "bob", "carol"]
    first = await part.scan_object_keys("t", "obj", None, 2)
    assert first == everything[:2]
    assert await part.scan_object_keys("t", "obj", first[-1], 2) == everything[2:]
    assert await part.scan_object_keys("u", "obj", None, 100) == ["dave"]
    assert await part.scan_object_keys("t", "other", None, 100) == []
    await node.write(0, env(ts=ts, resolve_promise=pb.ResolvePromise(workflow="wf", key="run-1", name="a", tenant="t",
                                                                     value=b"A")))
    assert await part.scan_object_keys("t", "wf", None, 100, promises=True) == ["run-1"]
    assert await part.scan_object_keys("t", "wf", None, 100) == []


async def test_scan_recent_lists_newest_first_with_a_cursor_a_filter_and_a_time_range(node: Node) -> None:
    part = node.partitions[0]
    t0 = now_ms()
    made = []
    for i in range(8):
        inv = on_partition(0, f"recent{i}")
        await node.write(0, invoke(inv, service="a" if i % 2 else "b", ts=t0 + i * 1000))
        made.append(inv)
    newest = [s.invocation_id for s in await part.scan_recent(InvocationFilter(), None, 100)]
    assert newest == made[::-1]
    first = await part.scan_recent(InvocationFilter(), None, 3)
    cursor = (first[-1].created_at_ms, first[-1].invocation_id)
    rest = await part.scan_recent(InvocationFilter(), cursor, 100)
    assert [s.invocation_id for s in first + rest] == newest  # each once, in order
    assert [s.invocation_id for s in await part.scan_recent(InvocationFilter(service="a"), None, 100)] == [
        made[i] for i in (7, 5, 3, 1)]
    window = InvocationFilter(created_after_ms=t0 + 2000, created_before_ms=t0 + 5000)
    assert [s.invocation_id for s in await part.scan_recent(window, None, 100)] == [made[4], made[3], made[2]]
    assert await part.scan_recent(InvocationFilter(), None, 0) == []
    # A purged invocation leaves the index with its status.
    await node.lead(0, output(made[7], 0, ts=t0), end(made[7], ts=t0))
    await node.write(0, env(ts=t0, purge=pb.Purge(invocation_id=made[7])))
    assert [s.invocation_id for s in await part.scan_recent(InvocationFilter(), None, 100)] == newest[1:]
