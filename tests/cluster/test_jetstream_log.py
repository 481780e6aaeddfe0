"""The virtual log on the JetStream engine, against a real 3-server cluster (R3 streams, R3 bucket):
the behaviours tests/log/test_log_basics.py checks for the local loglet, plus what only a shared,
replicated log has (two writers, lost acknowledgements, a seal racing appends)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
from nats.aio.msg import Msg
from nats_cluster import JsNode, LocalNatsCluster  # noqa: I001 - tests/cluster is on sys.path

from endure.runtime.log import (
    BeyondTailError,
    LogFull,
    LogRecord,
    LogUnavailable,
    SealedError,
    TrimmedError,
    VirtualLog,
)
from endure.runtime.log.jetstream import JetStreamApiError, JetStreamLoglet, SequenceConflict

MakeNode = Callable[..., Awaitable[JsNode]]


def payloads(records: list[LogRecord]) -> list[bytes]:
    return [r.payload for r in records]


def last_loglet(node: JsNode, log: VirtualLog) -> JetStreamLoglet:
    seg = log.segments()[-1]
    return node.provider.loglet(seg.loglet_id, seg.base_lsn)


async def test_lsns_start_at_one_and_are_contiguous(node: JsNode) -> None:
    log = await node.log(0)
    assert log.tail() == 1
    assert log.trim_point() == 0
    assert await log.append([b"a", b"b"]) == range(1, 3)
    assert await log.append([b"c"]) == range(3, 4)
    assert log.tail() == 4
    assert await log.read(1, 4) == [LogRecord(1, b"a"), LogRecord(2, b"b"), LogRecord(3, b"c")]
    assert await log.read(2, 4, limit=1) == [LogRecord(2, b"b")]
    assert await log.read(4, 4) == []
    other = await node.log(1)  # logs are independent, each with its own LSN space
    assert await other.append([b"z"]) == range(1, 2)


async def test_streams_are_replicated_file_backed_and_synced(node: JsNode, nats_cluster: LocalNatsCluster) -> None:
    log = await node.log(0)
    await log.append([b"x"])
    stream = last_loglet(node, log).stream
    info = await node.conn.api(f"STREAM.INFO.{stream}", what="info")
    config = info["config"]
    assert (config["num_replicas"], config["storage"], config["allow_atomic"]) == (3, "file", True)
    assert len(info["cluster"]["replicas"]) == 2  # the leader plus two followers
    bucket = await node.conn.api(f"STREAM.INFO.{node.metadata.stream}", what="info")
    assert bucket["config"]["num_replicas"] == 3
    for i in range(nats_cluster.size):  # every write is fsynced before it is acknowledged
        varz = await asyncio.to_thread(nats_cluster.varz, i)
        assert varz["jetstream"]["config"]["sync_always"] is True


async def test_concurrent_appends_are_group_committed(node: JsNode) -> None:
    log = await node.log(0)
    await log.append([b"warm"])  # creates the stream
    before, trips = node.provider.batches_written, node.conn.round_trips
    ranges = await asyncio.gather(*(log.append([b"r%d" % i]) for i in range(200)))
    assert sorted(r.start for r in ranges) == list(range(2, 202))
    assert all(len(r) == 1 for r in ranges)
    # 200 concurrent single-record appends share atomic batches: far fewer round trips than records.
    assert node.provider.batches_written - before < 20
    assert node.conn.round_trips - trips < 20
    got = await log.read(2, 202, limit=500)
    assert [(r.lsn, r.payload) for r in got] == sorted((r.start, b"r%d" % i) for i, r in enumerate(ranges))


async def test_reopen_recovers_tail_and_bytes(make_node: MakeNode) -> None:
    a = await make_node()
    log = await a.log(0)
    await log.append([b"x" * 1000, b""])
    await log.append([bytes(range(256))])
    b = await make_node()  # a fresh process: state only from the cluster
    again = await b.log(0)
    assert again.tail() == 4
    assert payloads(await again.read(1, 4)) == [b"x" * 1000, b"", bytes(range(256))]
    assert await again.append([b"next"]) == range(4, 5)


async def test_payloads_must_be_bytes_and_batches_fit_jetstream(node: JsNode) -> None:
    log = await node.log(0)
    with pytest.raises(TypeError, match="bytes"):
        await log.append(["text"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at most 1000 records"):
        await log.append([b"x"] * 1001)
    assert log.tail() == 1
    assert await log.append([b"y"] * 1000) == range(1, 1001)  # one atomic batch of the maximum size


async def test_sealed_loglet_refuses_appends_but_reads(node: JsNode) -> None:
    log = await node.log(0)
    await log.append([b"a", b"b"])
    loglet = last_loglet(node, log)
    assert await loglet.seal() == 3
    assert await loglet.seal() == 3  # idempotent
    with pytest.raises(SealedError, match="sealed at tail 3") as err:
        await loglet.append([b"c"])
    assert err.value.tail == 3
    assert payloads(await loglet.read(1, 3)) == [b"a", b"b"]
    assert await loglet.find_tail() == (3, True)
    assert await loglet.wait_for_tail(10) == 3  # a sealed loglet never grows: do not hang
    info = await node.conn.api(f"STREAM.INFO.{loglet.stream}", what="info")
    assert info["config"]["sealed"] is True
    # JetStream itself refuses a publish to the sealed stream, whoever sends it.
    reply = await node.conn.request(f"{node.provider.namespace}.log.0.0.t.c", b"late", what="raw publish")
    assert json.loads(reply.data)["error"]["err_code"] == 10109


async def test_append_after_another_node_sealed_moves_to_new_segment(make_node: MakeNode) -> None:
    a, b = await make_node(), await make_node()
    log = await a.log(0)
    await log.append([b"a"])
    seg = log.segments()[-1]
    await b.provider.loglet(seg.loglet_id, seg.base_lsn).seal()  # node b seals; node a does not know
    # The virtual log meets the sealed stream, finishes the reconfiguration and appends there.
    assert await log.append([b"b"]) == range(2, 3)
    assert [(s.base_lsn, s.sealed, s.tail) for s in log.segments()] == [(1, True, 2), (2, False, None)]
    assert payloads(await log.read(1, 3)) == [b"a", b"b"]


async def test_reconfigure_and_read_across_segments(node: JsNode) -> None:
    log = await node.log(0)
    await log.append([b"1", b"2"])
    await log.reconfigure()
    await log.reconfigure()  # an empty segment in the middle (its stream exists only to be sealed)
    await log.append([b"3"])
    await log.reconfigure()
    await log.append([b"4", b"5"])
    assert [s.base_lsn for s in log.segments()] == [1, 3, 3, 4]
    assert payloads(await log.read(1, 6)) == [b"1", b"2", b"3", b"4", b"5"]
    assert payloads(await log.read(2, 5)) == [b"2", b"3", b"4"]
    assert payloads(await log.read(3, 6, limit=2)) == [b"3", b"4"]


async def test_chain_survives_reopen_and_a_half_done_reconfiguration_is_repaired(make_node: MakeNode) -> None:
    a = await make_node()
    log = await a.log(0)
    await log.append([b"a"])
    await log.reconfigure()
    await log.append([b"b"])
    segs = log.segments()
    again = await (await make_node()).log(0)
    assert again.segments() == segs
    assert payloads(await again.read(1, 3)) == [b"a", b"b"]
    await last_loglet(a, log).seal()  # "crash" after the seal, before the chain's compare-and-set
    repaired = await (await make_node()).log(0)
    assert [(s.base_lsn, s.sealed) for s in repaired.segments()] == [(1, True), (2, True), (3, False)]
    assert await repaired.append([b"c"]) == range(3, 4)


async def test_racing_reconfigurations_on_two_nodes_one_wins(make_node: MakeNode) -> None:
    a, b = await (await make_node()).log(0), await (await make_node()).log(0)
    await a.append([b"x"])
    await asyncio.gather(a.reconfigure(), b.reconfigure())
    assert [s.base_lsn for s in a.segments()] == [1, 2]
    assert [s.base_lsn for s in b.segments()] == [1, 2]
    await a.reconfigure()
    assert len(b.segments()) == 2
    assert await b.append([b"y"]) == range(2, 3)  # b follows the reconfiguration it did not see
    assert len(b.segments()) == 3
    assert payloads(await a.read(1, 2)) == [b"x"]
    assert payloads(await b.read(1, 3)) == [b"x", b"y"]


async def test_appends_racing_reconfigurations_get_one_lsn_each(node: JsNode) -> None:
    log = await node.log(0)

    async def appender(k: int) -> list[tuple[int, bytes]]:
        out = []
        for i in range(20):
            p = b"%d:%d" % (k, i)
            r = await log.append([p])
            out.append((r.start, p))
        return out

    async def reconfigurer() -> None:
        for _ in range(4):
            await log.reconfigure()
            await asyncio.sleep(0.01)

    results = await asyncio.gather(*(appender(k) for k in range(8)), reconfigurer())
    acked = sorted(x for res in results[:8] for x in res)
    assert [lsn for lsn, _ in acked] == list(range(1, 161))
    got = await log.read(1, log.tail(), limit=1000)
    assert [(r.lsn, r.payload) for r in got] == acked
    assert len(log.segments()) == 5


async def test_two_nodes_appending_to_one_log_never_interleave_or_gap(make_node: MakeNode) -> None:
    nodes = [await make_node(), await make_node()]
    logs = [await n.log(0) for n in nodes]

    async def writer(w: int) -> list[tuple[int, bytes]]:
        out = []
        for i in range(30):
            batch = [b"w%d-%d-%d" % (w, i, j) for j in range(1 + i % 3)]
            r = await logs[w].append(batch)
            out.extend(zip(r, batch, strict=True))
        return out

    results = await asyncio.gather(writer(0), writer(1))
    acked = sorted(x for res in results for x in res)
    assert [lsn for lsn, _ in acked] == list(range(1, len(acked) + 1))  # no gap, no LSN twice
    tail, _ = await last_loglet(nodes[0], logs[0]).find_tail()
    got = await logs[0].read(1, tail, limit=1000)
    assert [(r.lsn, r.payload) for r in got] == acked  # every batch whole, in its place
    assert sum(n.provider.conflicts for n in nodes) > 0  # they did collide, and moved behind each other


async def test_a_lost_ack_is_resent_without_a_duplicate(node: JsNode) -> None:
    log = await node.log(0)
    await log.append([b"first"])
    real = node.conn.request
    lost = 0

    async def losing(subject: str, payload: bytes, **kw):  # type: ignore[no-untyped-def]
        nonlocal lost
        reply = await real(subject, payload, **kw)
        if subject.endswith(".t.c") and lost < 2:
            lost += 1  # the batch was stored, but its PubAck "never arrived"
            raise LogUnavailable("simulated lost PubAck", maybe_written=True)
        return reply

    node.conn.request = losing  # type: ignore[method-assign]
    try:
        assert await log.append([b"a", b"b", b"c"]) == range(2, 5)
        assert await log.append([b"d"]) == range(5, 6)
    finally:
        node.conn.request = real  # type: ignore[method-assign]
    assert lost == 2
    assert node.provider.resends >= 2
    tail, _ = await last_loglet(node, log).find_tail()
    assert tail == 6  # stored once each, though sent twice
    assert payloads(await log.read(1, 6)) == [b"first", b"a", b"b", b"c", b"d"]


async def test_appends_racing_a_seal_from_another_node(make_node: MakeNode) -> None:
    a, b = await make_node(), await make_node()
    log = await a.log(0)
    await log.append([b"0"])
    seg = log.segments()[-1]
    loglet = a.provider.loglet(seg.loglet_id, seg.base_lsn)
    acked: list[int] = []
    refused = 0

    async def appender(k: int) -> None:
        nonlocal refused
        for i in range(100_000):  # until the seal stops it
            try:
                r = await loglet.append([b"%d-%d" % (k, i)])
            except SealedError:
                refused += 1
                return
            acked.append(r.start)

    tasks = [asyncio.ensure_future(appender(k)) for k in range(8)]
    await asyncio.sleep(0.05)
    final = await b.provider.loglet(seg.loglet_id, seg.base_lsn).seal()
    await asyncio.gather(*tasks)
    assert refused > 0
    assert all(lsn < final for lsn in acked)  # nothing acknowledged past the seal
    assert sorted(acked) == list(range(2, final))  # and everything below it was acknowledged
    assert len(await loglet.read(1, final, limit=1000)) == final - 1
    assert await loglet.find_tail() == (final, True)


async def test_trim_drops_segments_and_trims_first(node: JsNode) -> None:
    log = await node.log(0)
    await log.append([b"1", b"2", b"3"])
    await log.reconfigure()
    await log.append([b"4", b"5"])
    await log.reconfigure()
    await log.append([b"6"])
    first_stream = last_loglet(node, log).stream.rsplit("_", 1)[0] + "_0"
    await log.trim(2)  # inside the first (sealed) segment: kept in its metadata
    assert log.trim_point() == 2
    assert len(log.segments()) == 3
    assert payloads(await log.read(3, 7)) == [b"3", b"4", b"5", b"6"]
    await log.trim(4)
    assert [s.base_lsn for s in log.segments()] == [4, 6]
    with pytest.raises(JetStreamApiError, match="stream not found"):  # the dropped segment's stream
        await node.conn.api(f"STREAM.INFO.{first_stream}", what="info")
    assert payloads(await log.read(5, 7)) == [b"5", b"6"]
    await log.trim(3)  # going back is a no-op
    assert log.trim_point() == 4
    with pytest.raises(TrimmedError, match="first readable LSN is 5") as err:
        await log.read(4, 6)
    assert err.value.trim_point == 4
    await log.trim(6)  # everything written; the open segment is purged, its tail stays
    assert log.tail() == 7
    assert await log.append([b"7"]) == range(7, 8)
    assert payloads(await log.read(7, 8)) == [b"7"]


async def test_trim_survives_reopen(make_node: MakeNode) -> None:
    a = await make_node()
    log = await a.log(0)
    await log.append([b"a", b"b", b"c"])
    await log.reconfigure()
    await log.append([b"d"])
    await log.trim(2)  # sealed segment: metadata
    again = await (await make_node()).log(0)
    assert again.trim_point() == 2
    with pytest.raises(TrimmedError):
        await again.read(2, 3)
    assert payloads(await again.read(3, 5)) == [b"c", b"d"]
    await again.trim(4)  # the open segment: purged
    third = await (await make_node()).log(0)
    assert (third.tail(), third.trim_point()) == (5, 4)


async def test_bad_reads_and_trims(node: JsNode) -> None:
    log = await node.log(0)
    await log.append([b"a"])
    with pytest.raises(BeyondTailError, match="the tail is 2") as err:
        await log.read(1, 3)
    assert (err.value.lsn, err.value.tail) == (3, 2)
    with pytest.raises(BeyondTailError, match="trim"):
        await log.trim(2)
    with pytest.raises(ValueError, match="backwards"):
        await log.read(2, 1)
    with pytest.raises(ValueError, match="limit"):
        await log.read(1, 2, limit=0)
    with pytest.raises(TrimmedError):
        await log.read(0, 1)


async def test_bounded_queue_full_and_backpressure(make_node: MakeNode) -> None:
    node = await make_node(max_pending_records=4)
    log = await node.log(0)
    first = asyncio.ensure_future(log.append([b"1", b"2", b"3"]))
    await asyncio.sleep(0)  # let it enqueue (ordering only, nothing is timed)
    assert node.provider.pending_records == 3
    with pytest.raises(LogFull, match="queue is full"):
        await log.append([b"4", b"5"], wait=False)
    waiting = asyncio.ensure_future(log.append([b"4", b"5"]))  # waits for room
    assert await first == range(1, 4)
    assert await waiting == range(4, 6)
    assert await log.append([b"x"] * 10) == range(6, 16)  # bigger than the queue, alone: goes through
    assert node.provider.pending_records == 0


async def test_cancelled_appender_does_not_cancel_its_batch(node: JsNode) -> None:
    log = await node.log(0)
    tasks = [asyncio.ensure_future(log.append([b"%d" % i])) for i in range(10)]
    await asyncio.sleep(0)
    tasks[3].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[3], asyncio.CancelledError)
    assert sorted(r.start for i, r in enumerate(done) if i != 3) == [x for x in range(1, 11) if x != 4]
    tail, _ = await last_loglet(node, log).find_tail()
    assert tail == 11  # the cancelled append was still written
    assert (await log.read(4, 5))[0].payload == b"3"


async def test_wait_for_tail_and_reader_follow_another_nodes_appends(make_node: MakeNode) -> None:
    writer_node, reader_node = await make_node(), await make_node()
    writer = await writer_node.log(0)
    await writer.append([b"a"])
    reader = await reader_node.log(0)
    waiter = asyncio.ensure_future(reader.wait_for_tail(3))
    await writer.append([b"b"])
    await asyncio.sleep(0.05)
    assert not waiter.done()  # the tail is 3: LSN 3 is not committed yet
    await writer.append([b"c"])
    assert await asyncio.wait_for(waiter, 10) == 4  # learnt from the stream, not from an own ack

    seen: list[LogRecord] = []
    got_all = asyncio.Event()

    async def follow() -> None:
        async for batch in reader.reader(2):
            seen.extend(batch)
            if len(seen) >= 5:
                got_all.set()

    task = asyncio.ensure_future(follow())
    try:
        await writer.append([b"d"])
        await writer.reconfigure()  # the reader crosses into the new segment by itself
        await writer.append([b"e", b"f"])
        await asyncio.wait_for(got_all.wait(), 20)
        assert [(r.lsn, r.payload) for r in seen] == [(2, b"b"), (3, b"c"), (4, b"d"), (5, b"e"), (6, b"f")]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_reads_of_many_records_are_batched(node: JsNode) -> None:
    log = await node.log(0)
    for _ in range(3):
        await log.append([b"%d" % i for i in range(1000)])
    trips = node.conn.round_trips
    got = await log.read(1, 3001, limit=5000)
    assert [r.lsn for r in got] == list(range(1, 3001))
    assert node.conn.round_trips - trips <= 4  # a few direct gets of up to 1000 records, not 3000


async def test_a_batch_refused_for_its_sequence_until_the_timeout_is_a_typed_conflict(make_node: MakeNode) -> None:
    node = await make_node(append_timeout=0.5)
    log = await node.log(0)
    await log.append([b"first"])
    real = node.conn.request

    async def always_refused(subject: str, payload: bytes, **kw):  # type: ignore[no-untyped-def]
        if subject.endswith(".t.c"):  # as if another writer always got in first (nothing is sent)
            return Msg(node.conn.nc, data=b'{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 1"}}')
        return await real(subject, payload, **kw)

    node.conn.request = always_refused  # type: ignore[method-assign]
    try:
        with pytest.raises(SequenceConflict, match="it was not written"):
            await log.append([b"never"])
    finally:
        node.conn.request = real  # type: ignore[method-assign]
    assert await log.append([b"second"]) == range(2, 3)  # the writer re-read the tail and goes on
