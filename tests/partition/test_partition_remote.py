"""RemotePartition and PartitionServicer over real gRPC on loopback: appends coalesce into few RPCs
with each caller's own LSNs, the client's queue is bounded, and bad requests get a precise status
with nothing appended. (The behaviour shared with LocalPartition is test_partition_api's, run on both.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest
from partition_testkit import invoke
from remote_kit import Served
from test_partition_api import Node, on_partition

from endure.proto import partition_pb2 as ppb
from endure.proto import partition_pb2_grpc as ppb_grpc
from endure.proto import records_pb2 as pb
from endure.runtime.log import LogFull
from endure.runtime.partition.api import InvocationFilter, LocalPartition
from endure.runtime.partition.remote import (
    MAX_APPEND,
    InvalidPartitionRequest,
    PartitionNotOwned,
    PartitionUnavailable,
    RemotePartition,
)
from endure.runtime.partition.timer_service import now_ms


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    n = Node(tmp_path, "remote")
    await n.start()
    yield n
    await n.stop()


def served(node: Node) -> Served:
    assert node.served is not None
    return node.served


async def records_at(node: Node, p: int, lsns: range) -> list[pb.Envelope]:
    out = []
    for record in await node.log.log(p).read(lsns.start, lsns.stop):
        env = pb.Envelope()
        env.ParseFromString(record.payload)
        out.append(env)
    return out


async def test_concurrent_appends_coalesce_and_each_caller_gets_its_own_lsns_in_order(node: Node) -> None:
    remote = served(node).remote(0)
    tail = node.log.log(0).tail()
    batches = [[invoke(on_partition(0, f"c{i}-{j}"), ts=now_ms()) for j in range(1 + i % 3)] for i in range(60)]
    ranges = await asyncio.gather(*(remote.append(b) for b in batches))

    # One RPC carried all 60 calls (they were all queued before the first went out).
    assert served(node).counter.calls.get("Append") == remote.append_rpcs == 1
    # Contiguous, in call order, each exactly as long as its caller's batch ...
    assert ranges[0].start == tail
    for i, (got, batch) in enumerate(zip(ranges, batches, strict=True)):
        assert len(got) == len(batch), i
        if i:
            assert got.start == ranges[i - 1].stop, i
    # ... and at each caller's LSNs are its own records.
    for got, batch in zip(ranges, batches, strict=True):
        assert await records_at(node, 0, got) == batch

    # While one RPC is in flight the next calls queue up and go together: few RPCs for many calls.
    before = remote.append_rpcs
    waves = []
    for w in range(5):
        waves.append(asyncio.ensure_future(remote.append([invoke(on_partition(0, f"w{w}-first"), ts=now_ms())])))
        await asyncio.sleep(0)
        waves.extend(asyncio.ensure_future(remote.append([invoke(on_partition(0, f"w{w}-{k}"), ts=now_ms())],
                                                         wait=k % 2 == 0)) for k in range(20))
    got = await asyncio.gather(*waves)
    assert [r.start for r in got] == list(range(got[0].start, got[0].start + len(got)))  # call order
    rpcs = remote.append_rpcs - before
    assert rpcs < len(waves) // 4, rpcs
    assert served(node).counter.calls["Append"] == remote.append_rpcs


class GatedPartition(LocalPartition):
    """Holds every append until the test opens the gate (to keep one RPC in flight)."""

    def __init__(self, inner: LocalPartition) -> None:
        super().__init__(inner._processor)
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def append(self, envelopes: Sequence[pb.Envelope], *, wait: bool = True) -> range:
        self.entered.set()
        await self.gate.wait()
        return await super().append(envelopes, wait=wait)


async def test_the_client_queue_is_bounded_log_full_at_once_without_wait_else_waits_for_room(node: Node) -> None:
    gated = GatedPartition(node.local[0])
    kit = Served({0: gated})
    await kit.start()
    try:
        remote = kit.remote(0, max_batch=2, max_pending_records=4)
        first = asyncio.ensure_future(remote.append([invoke(on_partition(0, f"b{i}"), ts=now_ms()) for i in range(2)]))
        async with asyncio.timeout(10):
            await gated.entered.wait()  # in flight: 2 records
        queued = asyncio.ensure_future(remote.append([invoke(on_partition(0, f"q{i}"), ts=now_ms()) for i in range(2)]))
        await asyncio.sleep(0)
        with pytest.raises(LogFull) as full:
            await remote.append([invoke(on_partition(0, "nowait"), ts=now_ms())], wait=False)
        assert (full.value.pending, full.value.limit) == (4, 4)
        waiting = asyncio.ensure_future(remote.append([invoke(on_partition(0, "waits"), ts=now_ms())]))
        await asyncio.sleep(0.1)
        assert not waiting.done() and not queued.done() and not first.done()
        gated.gate.set()
        async with asyncio.timeout(10):
            a, b, c = await asyncio.gather(first, queued, waiting)
        assert (len(a), len(b), len(c)) == (2, 2, 1)
        assert a.stop == b.start and b.stop == c.start
        assert kit.counter.calls["Append"] == 3
    finally:
        gated.gate.set()
        await kit.stop()


async def expect_status(call: object, code: grpc.StatusCode, *phrases: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() == code, info.value.details()
    for phrase in phrases:
        assert phrase in (info.value.details() or ""), (phrase, info.value.details())


async def test_bad_requests_get_a_precise_status_and_append_nothing(node: Node) -> None:
    assert served(node).channel is not None
    stub = ppb_grpc.PartitionServiceStub(served(node).channel)
    log = node.log.log(0)
    tail = log.tail()

    def envs(n: int) -> list[pb.Envelope]:
        return [invoke(on_partition(0, f"bad{i}"), ts=now_ms()) for i in range(n)]

    await expect_status(stub.Append(ppb.AppendRequest(partition=0)), grpc.StatusCode.INVALID_ARGUMENT,
                        "1 to 1000 envelopes, got 0", "nothing was appended")
    await expect_status(stub.Append(ppb.AppendRequest(partition=0, envelopes=envs(MAX_APPEND + 1))),
                        grpc.StatusCode.INVALID_ARGUMENT, f"got {MAX_APPEND + 1}")
    stamped = envs(4)
    stamped[2].header.leader_epoch = 7
    await expect_status(stub.Append(ppb.AppendRequest(partition=0, envelopes=stamped, wait=True)),
                        grpc.StatusCode.INVALID_ARGUMENT, "envelopes[2] carries leader epoch 7", "nothing was appended")
    for limit in (0, -1, 1001):
        await expect_status(stub.ScanInvocations(ppb.ScanRequest(partition=0, limit=limit)),
                            grpc.StatusCode.INVALID_ARGUMENT, f"scan limit must be 1 to 1000, got {limit}")
    await expect_status(stub.Append(ppb.AppendRequest(partition=9, envelopes=envs(1))),
                        grpc.StatusCode.FAILED_PRECONDITION, "partition 9 is not owned here", "owns partitions: 0, 1")
    await expect_status(stub.GetInfo(ppb.InfoRequest(partition=2)), grpc.StatusCode.FAILED_PRECONDITION,
                        "partition 2 is not owned here")
    assert log.tail() == tail  # nothing was appended
    # The server still serves.
    assert (await stub.Append(ppb.AppendRequest(partition=0, envelopes=envs(1)))).first_lsn == tail


async def test_the_client_maps_errors_to_types(node: Node) -> None:
    stranger = served(node).remote(9)
    with pytest.raises(PartitionNotOwned) as not_owned:
        await stranger.get_info()
    assert not_owned.value.partition == 9 and "partition 9 is not owned here" in str(not_owned.value)
    with pytest.raises(PartitionNotOwned):
        await stranger.append([invoke(on_partition(0, "x"), ts=now_ms())])
    with pytest.raises(PartitionNotOwned):
        await stranger.scan_invocations(InvocationFilter(), None, 10)

    remote = served(node).remote(0)
    tail = node.log.log(0).tail()
    stamped = invoke(on_partition(0, "stamped"), ts=now_ms())
    stamped.header.leader_epoch = 3
    good = invoke(on_partition(0, "good"), ts=now_ms())
    bad_call, good_call = await asyncio.gather(remote.append([good, stamped]), remote.append([good]),
                                               return_exceptions=True)
    assert isinstance(bad_call, InvalidPartitionRequest) and "envelopes[1] carries leader epoch 3" in str(bad_call)
    assert good_call == range(tail, tail + 1)  # one caller's bad record does not fail the others
    with pytest.raises(InvalidPartitionRequest):
        await remote.append([good] * (MAX_APPEND + 1))
    assert node.log.log(0).tail() == tail + 1

    # Nobody listening: unavailable, not a hang.
    async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
        with pytest.raises(PartitionUnavailable):
            await RemotePartition(0, channel, timeout=5).get_info()
        with pytest.raises(PartitionUnavailable):
            await RemotePartition(0, channel, timeout=5).append([good])


class FullPartition(LocalPartition):
    """The log's queue is full, for a caller that does not wait (one that waits gets room at once)."""

    async def append(self, envelopes: Sequence[pb.Envelope], *, wait: bool = True) -> range:
        if not wait:
            raise LogFull(5, 5)
        return await super().append(envelopes, wait=wait)


async def test_the_owners_log_full_is_resource_exhausted_and_log_full_at_the_client(node: Node) -> None:
    kit = Served({0: FullPartition(node.local[0]._processor)})
    channel = await kit.start()
    try:
        await expect_status(ppb_grpc.PartitionServiceStub(channel).Append(
            ppb.AppendRequest(partition=0, envelopes=[invoke(on_partition(0, "f"), ts=now_ms())])),
            grpc.StatusCode.RESOURCE_EXHAUSTED, str(LogFull(5, 5)))
        with pytest.raises(LogFull) as full:
            await kit.remote(0).append([invoke(on_partition(0, "f"), ts=now_ms())], wait=False)
        assert (full.value.pending, full.value.limit) == (5, 5)
        assert str(full.value) == str(LogFull(5, 5))

        # A batch mixing both: those that do not wait get LogFull, those that wait are sent again, with wait.
        remote = kit.remote(0)
        tail = node.log.log(0).tail()
        calls = [remote.append([invoke(on_partition(0, f"mix{i}"), ts=now_ms())], wait=i % 2 == 1) for i in range(6)]
        got = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, LogFull) for r in got[0::2]), got
        assert got[1::2] == [range(tail, tail + 1), range(tail + 1, tail + 2), range(tail + 2, tail + 3)]
        assert remote.append_rpcs == 2
    finally:
        await kit.stop()


async def test_a_scan_above_one_page_is_fetched_in_pages(node: Node) -> None:
    made = sorted(on_partition(0, f"page{i}") for i in range(5))
    lsns = await node.partitions[0].append([invoke(inv, ts=now_ms()) for inv in made])
    await node.local[0].wait_applied(lsns[-1])
    remote = node.partitions[0]
    got = await remote.scan_invocations(InvocationFilter(), None, 5000)
    assert [s.invocation_id for s in got] == made
    assert served(node).counter.calls["ScanInvocations"] == 1  # fewer than a page: one call
