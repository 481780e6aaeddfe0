"""Unit tests of the virtual log on real RocksDB: appends, reads, seals, reconfiguration, trim."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from endure.runtime.log import (
    BeyondTailError,
    LocalLogletStore,
    LocalMetadataStore,
    LogClosedError,
    LogFull,
    LogletFailedError,
    LogRecord,
    NodeLog,
    SealedError,
    TrimmedError,
    VersionMismatch,
    VirtualLog,
)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[NodeLog]:
    n = await NodeLog.open(tmp_path / "node", 2)
    try:
        yield n
    finally:
        await n.close()


def payloads(records: list[LogRecord]) -> list[bytes]:
    return [r.payload for r in records]


async def test_lsns_start_at_one_and_are_contiguous(node: NodeLog) -> None:
    log = node.log(0)
    assert log.tail() == 1
    assert log.trim_point() == 0
    assert await log.append([b"a", b"b"]) == range(1, 3)
    assert await log.append([b"c"]) == range(3, 4)
    assert log.tail() == 4
    assert await log.read(1, 4) == [LogRecord(1, b"a"), LogRecord(2, b"b"), LogRecord(3, b"c")]
    assert await log.read(2, 4, limit=1) == [LogRecord(2, b"b")]
    assert await log.read(4, 4) == []
    # Partitions are independent logs with their own LSN space.
    assert await node.log(1).append([b"z"]) == range(1, 2)


async def test_concurrent_appends_are_group_committed(node: NodeLog) -> None:
    log = node.log(0)
    before = node.store.batches_written
    ranges = await asyncio.gather(*(log.append([b"r%d" % i]) for i in range(200)))
    lsns = sorted(r.start for r in ranges)
    assert lsns == list(range(1, 201))
    assert all(len(r) == 1 for r in ranges)
    # 200 concurrent single-record appends must not cost 200 fsyncs.
    assert node.store.batches_written - before < 50
    got = await log.read(1, 201, limit=500)
    by_lsn = {r.start: b"r%d" % i for i, r in enumerate(ranges)}
    assert [(r.lsn, r.payload) for r in got] == sorted(by_lsn.items())


async def test_reopen_recovers_tail_and_bytes(tmp_path: Path) -> None:
    n = await NodeLog.open(tmp_path, 3)
    await n.log(0).append([b"x" * 1000, b""])
    await n.log(2).append([bytes(range(256))])
    await n.close()
    n = await NodeLog.open(tmp_path, 3)
    try:
        assert n.log(0).tail() == 3
        assert n.log(1).tail() == 1
        assert n.log(2).tail() == 2
        assert payloads(await n.log(0).read(1, 3)) == [b"x" * 1000, b""]
        assert payloads(await n.log(2).read(1, 2)) == [bytes(range(256))]
        assert await n.log(0).append([b"next"]) == range(3, 4)
    finally:
        await n.close()


async def test_payloads_must_be_bytes(node: NodeLog) -> None:
    with pytest.raises(TypeError, match="bytes"):
        await node.log(0).append(["text"])  # type: ignore[list-item]
    assert node.log(0).tail() == 1


async def test_sealed_loglet_refuses_appends_but_reads(node: NodeLog) -> None:
    log = node.log(0)
    await log.append([b"a", b"b"])
    loglet = node.store.loglet(log.segments()[-1].loglet_id, 1)
    assert await loglet.seal() == 3
    assert await loglet.seal() == 3  # idempotent
    with pytest.raises(SealedError, match="sealed at tail 3") as err:
        await loglet.append([b"c"])
    assert err.value.tail == 3
    assert payloads(await loglet.read(1, 3)) == [b"a", b"b"]
    assert await loglet.find_tail() == (3, True)
    assert await loglet.wait_for_tail(10) == 3  # a sealed loglet never grows: do not hang


async def test_append_after_external_seal_moves_to_new_segment(node: NodeLog) -> None:
    log = node.log(0)
    await log.append([b"a"])
    await node.store.loglet(log.segments()[-1].loglet_id, 1).seal()
    # The virtual log finishes the reconfiguration itself; the append is not lost or doubled.
    assert await log.append([b"b"]) == range(2, 3)
    segs = log.segments()
    assert [(s.base_lsn, s.sealed, s.tail) for s in segs] == [(1, True, 2), (2, False, None)]
    assert payloads(await log.read(1, 3)) == [b"a", b"b"]


async def test_reconfigure_and_read_across_segments(node: NodeLog) -> None:
    log = node.log(0)
    await log.append([b"1", b"2"])
    await log.reconfigure()
    await log.reconfigure()  # an empty segment in the middle
    await log.append([b"3"])
    await log.reconfigure()
    await log.append([b"4", b"5"])
    assert [s.base_lsn for s in log.segments()] == [1, 3, 3, 4]
    assert payloads(await log.read(1, 6)) == [b"1", b"2", b"3", b"4", b"5"]
    assert payloads(await log.read(2, 5)) == [b"2", b"3", b"4"]
    assert payloads(await log.read(3, 6, limit=2)) == [b"3", b"4"]


async def test_chain_survives_reopen(tmp_path: Path) -> None:
    n = await NodeLog.open(tmp_path, 1)
    log = n.log(0)
    await log.append([b"a"])
    await log.reconfigure()
    await log.append([b"b"])
    segs = log.segments()
    await n.close()
    n = await NodeLog.open(tmp_path, 1)
    try:
        assert n.log(0).segments() == segs
        assert payloads(await n.log(0).read(1, 3)) == [b"a", b"b"]
    finally:
        await n.close()


async def test_reopen_repairs_half_done_reconfiguration(tmp_path: Path) -> None:
    n = await NodeLog.open(tmp_path, 1)
    log = n.log(0)
    await log.append([b"a"])
    await n.store.loglet(log.segments()[-1].loglet_id, 1).seal()  # "crash" before the CAS
    await n.close()
    n = await NodeLog.open(tmp_path, 1)
    try:
        segs = n.log(0).segments()
        assert [(s.base_lsn, s.sealed) for s in segs] == [(1, True), (2, False)]
        assert await n.log(0).append([b"b"]) == range(2, 3)
    finally:
        await n.close()


async def test_racing_reconfigurations_one_wins(node: NodeLog) -> None:
    a = node.log(0)
    # A second handle on the same log (as another process would have, via the metadata store).
    b = await VirtualLog.open(0, node.metadata, {"local": node.store})
    await a.append([b"x"])
    await asyncio.gather(a.reconfigure(), b.reconfigure())
    assert a.segments() == b.segments()
    assert [s.base_lsn for s in a.segments()] == [1, 2]
    # The stale handle follows a reconfiguration it did not see.
    await a.reconfigure()
    assert len(b.segments()) == 2
    assert await b.append([b"y"]) == range(2, 3)
    assert a.segments() == b.segments()
    assert len(b.segments()) == 3
    assert payloads(await a.read(1, 3)) == [b"x", b"y"]


async def test_appends_racing_reconfigurations_get_one_lsn_each(node: NodeLog) -> None:
    log = node.log(0)

    async def appender(k: int) -> list[tuple[int, bytes]]:
        out = []
        for i in range(30):
            p = b"%d:%d" % (k, i)
            r = await log.append([p])
            out.append((r.start, p))
        return out

    async def reconfigurer() -> None:
        for _ in range(10):
            await log.reconfigure()
            await asyncio.sleep(0)

    results = await asyncio.gather(*(appender(k) for k in range(8)), reconfigurer())
    acked = sorted(x for res in results[:8] for x in res)
    assert [lsn for lsn, _ in acked] == list(range(1, 241))
    got = await log.read(1, log.tail(), limit=1000)
    assert [(r.lsn, r.payload) for r in got] == acked
    assert len(log.segments()) == 11


async def test_trim_drops_segments_and_trims_first(node: NodeLog, tmp_path: Path) -> None:
    log = node.log(0)
    await log.append([b"1", b"2", b"3"])
    await log.reconfigure()
    await log.append([b"4", b"5"])
    await log.reconfigure()
    await log.append([b"6"])
    await log.trim(2)
    assert log.trim_point() == 2
    assert len(log.segments()) == 3
    assert payloads(await log.read(3, 7)) == [b"3", b"4", b"5", b"6"]
    await log.trim(4)
    assert [s.base_lsn for s in log.segments()] == [4, 6]
    assert payloads(await log.read(5, 7)) == [b"5", b"6"]
    await log.trim(3)  # going back is a no-op
    assert log.trim_point() == 4
    with pytest.raises(TrimmedError, match="first readable LSN is 5") as err:
        await log.read(4, 6)
    assert err.value.trim_point == 4
    # Trimming everything written is allowed; the tail stays.
    await log.trim(6)
    assert log.tail() == 7
    assert await log.append([b"7"]) == range(7, 8)
    assert payloads(await log.read(7, 8)) == [b"7"]


async def test_trim_survives_reopen(tmp_path: Path) -> None:
    n = await NodeLog.open(tmp_path, 1)
    await n.log(0).append([b"a", b"b", b"c"])
    await n.log(0).trim(2)
    await n.close()
    n = await NodeLog.open(tmp_path, 1)
    try:
        assert n.log(0).trim_point() == 2
        with pytest.raises(TrimmedError):
            await n.log(0).read(2, 3)
        assert payloads(await n.log(0).read(3, 4)) == [b"c"]
        await n.log(0).trim(3)
        await n.close()
        n = await NodeLog.open(tmp_path, 1)
        # Everything trimmed: the tail is still recovered (from the trim point).
        assert (n.log(0).tail(), n.log(0).trim_point()) == (4, 3)
    finally:
        await n.close()


async def test_bad_reads_and_trims(node: NodeLog) -> None:
    log = node.log(0)
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
        await log.read(0, 1)  # LSN 0 never exists: it is "trimmed" from the start


async def test_metadata_compare_and_set(tmp_path: Path) -> None:
    md = LocalMetadataStore(tmp_path / "md")
    try:
        assert await md.get("svc/a") is None
        assert await md.put("svc/a", b"v1", 0) == 1
        with pytest.raises(VersionMismatch, match="expected to not exist yet") as err:
            await md.put("svc/a", b"again", 0)
        assert (err.value.key, err.value.expected, err.value.actual) == ("svc/a", 0, 1)
        assert await md.put("svc/a", b"v2", 1) == 2
        with pytest.raises(VersionMismatch, match="expected version 1, but it is at version 2"):
            await md.put("svc/a", b"stale", 1)
        with pytest.raises(VersionMismatch, match="does not exist"):
            await md.put("svc/b", b"x", 3)
        assert await md.get("svc/a") == (2, b"v2")
        # Racing creators: exactly one wins.
        results = await asyncio.gather(*(md.put("race", b"%d" % i, 0) for i in range(5)), return_exceptions=True)
        assert sum(r == 1 for r in results) == 1
        assert sum(isinstance(r, VersionMismatch) for r in results) == 4
        assert await md.keys("svc/") == ["svc/a"]
    finally:
        await md.close()
    md = LocalMetadataStore(tmp_path / "md")
    try:
        assert await md.get("svc/a") == (2, b"v2")
    finally:
        await md.close()


async def test_bounded_queue_full_and_backpressure(tmp_path: Path) -> None:
    store = LocalLogletStore(tmp_path / "db", max_pending_records=4)
    md = LocalMetadataStore(tmp_path / "md")
    try:
        log = await VirtualLog.open(0, md, {"local": store})
        first = asyncio.ensure_future(log.append([b"1", b"2", b"3"]))
        await asyncio.sleep(0)  # let it enqueue (ordering only, nothing is timed)
        assert store.pending_records == 3
        with pytest.raises(LogFull, match="queue is full"):
            await log.append([b"4", b"5"], wait=False)
        waiting = asyncio.ensure_future(log.append([b"4", b"5"]))  # waits for room
        assert await first == range(1, 4)
        assert await waiting == range(4, 6)
        # A batch bigger than the whole queue still goes through when the queue is empty.
        assert await log.append([b"x"] * 10) == range(6, 16)
    finally:
        await store.close()
        await md.close()


async def test_cancelled_appender_does_not_cancel_its_batch(node: NodeLog) -> None:
    log = node.log(0)
    tasks = [asyncio.ensure_future(log.append([b"%d" % i])) for i in range(10)]
    await asyncio.sleep(0)
    tasks[3].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[3], asyncio.CancelledError)
    assert sorted(r.start for i, r in enumerate(done) if i != 3) == [x for x in range(1, 11) if x != 4]
    # The cancelled append was still written (it was already on its way to disk).
    assert log.tail() == 11
    assert (await log.read(4, 5))[0].payload == b"3"


async def test_close_finishes_in_flight_appends(tmp_path: Path) -> None:
    n = await NodeLog.open(tmp_path, 1)
    tasks = [asyncio.ensure_future(n.log(0).append([b"%d" % i])) for i in range(50)]
    await asyncio.sleep(0)
    await n.close()
    assert sorted(t.result().start for t in tasks) == list(range(1, 51))
    with pytest.raises(LogClosedError):
        await n.log(0).append([b"late"])
    n = await NodeLog.open(tmp_path, 1)
    try:
        assert n.log(0).tail() == 51
    finally:
        await n.close()


async def test_wait_for_tail_and_reader_follow_the_tail(node: NodeLog) -> None:
    log = node.log(1)
    waiter = asyncio.ensure_future(log.wait_for_tail(3))
    await log.append([b"a", b"b"])
    await asyncio.sleep(0)
    assert not waiter.done()  # tail is 3: LSN 3 is not committed yet
    await log.append([b"c"])
    assert await waiter == 4

    seen: list[LogRecord] = []
    got_all = asyncio.Event()

    async def follow() -> None:
        async for batch in log.reader(2):
            seen.extend(batch)
            if len(seen) >= 5:
                got_all.set()

    db_reads = 0
    real = node.store._read_range

    def counting(*args):  # type: ignore[no-untyped-def]
        nonlocal db_reads
        db_reads += 1
        return real(*args)

    node.store._read_range = counting  # type: ignore[method-assign]
    task = asyncio.ensure_future(follow())
    try:
        await log.append([b"d"])
        await log.reconfigure()  # the reader crosses into the new segment by itself
        await log.append([b"e", b"f"])
        await got_all.wait()
        assert [(r.lsn, r.payload) for r in seen] == [(2, b"b"), (3, b"c"), (4, b"d"), (5, b"e"), (6, b"f")]
        # Fresh records came from memory, not from RocksDB.
        assert db_reads == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_reader_reads_old_records_from_disk(tmp_path: Path) -> None:
    n = await NodeLog.open(tmp_path, 1, cache_records=4)
    try:
        log = n.log(0)
        for i in range(20):
            await log.append([b"%d" % i])
        it = log.reader(1, limit=7)
        batches = [await anext(it) for _ in range(3)]
        await it.aclose()
        assert [len(b) for b in batches] == [7, 7, 6]
        assert [r.payload for b in batches for r in b] == [b"%d" % i for i in range(20)]
    finally:
        await n.close()


async def test_trimmed_away_loglets_are_deleted(node: NodeLog) -> None:
    log = node.log(0)
    await log.append([b"a", b"b"])
    first = log.segments()[0].loglet_id
    await log.reconfigure()
    await log.append([b"c"])
    await log.trim(2)
    assert first not in node.store._loglets
    prefix = b"R" + first.to_bytes(8, "big")
    it = node.store._db.iter()
    it.seek(prefix)
    assert not (it.valid() and it.key().startswith(prefix))
    assert node.store._db.get(b"M" + first.to_bytes(8, "big")) is None
    del it
    assert payloads(await log.read(3, 4)) == [b"c"]


async def test_failed_write_poisons_the_store_until_reopen(tmp_path: Path) -> None:
    n = await NodeLog.open(tmp_path, 1)
    log = n.log(0)
    await log.append([b"ok"])

    def broken(*_args: object) -> None:
        raise OSError("disk on fire")

    n.store._write = broken  # type: ignore[method-assign]
    results = await asyncio.gather(log.append([b"a"]), log.append([b"b"]), return_exceptions=True)
    assert all(isinstance(r, LogletFailedError) and "disk on fire" in str(r) for r in results)
    with pytest.raises(LogletFailedError, match="reopen"):
        await log.append([b"c"])
    await n.close()
    n = await NodeLog.open(tmp_path, 1)
    try:
        assert n.log(0).tail() == 2
        assert await n.log(0).append([b"again"]) == range(2, 3)
    finally:
        await n.close()


def test_runs_on_uvloop(tmp_path: Path) -> None:
    import uvloop

    async def main() -> list[int]:
        n = await NodeLog.open(tmp_path, 2)
        try:
            log = n.log(0)
            it = log.reader(1)
            ranges = await asyncio.gather(*(log.append([b"%d" % i]) for i in range(20)))
            got = await anext(it)
            await it.aclose()
            assert [r.lsn for r in got] == list(range(1, 21))
            return sorted(r.start for r in ranges)
        finally:
            await n.close()

    assert uvloop.run(main()) == list(range(1, 21))


async def test_trim_racing_reconfigure_keeps_the_chain_consistent(tmp_path: Path) -> None:
    n = await NodeLog.open(tmp_path, 1)
    log = n.log(0)
    written: dict[int, bytes] = {}
    for i in range(25):
        r = await log.append([b"%d-a" % i, b"%d-b" % i])
        written.update(zip(r, [b"%d-a" % i, b"%d-b" % i], strict=True))
        ops = [log.trim(log.tail() - 2), log.reconfigure()]
        if i % 2:
            ops.reverse()
        results = await asyncio.gather(*ops, log.append([b"%d-c" % i]))
        written[results[2].start] = b"%d-c" % i
        segs = log.segments()
        assert [s.base_lsn for s in segs] == sorted(s.base_lsn for s in segs)
        assert [s.sealed for s in segs] == [True] * (len(segs) - 1) + [False]
        assert segs[0].base_lsn <= log.trim_point() + 1
    got = await log.read(log.trim_point() + 1, log.tail())
    assert [(r.lsn, r.payload) for r in got] == [(k, written[k]) for k in range(log.trim_point() + 1, log.tail())]
    segs, tp, tail = log.segments(), log.trim_point(), log.tail()
    await n.close()
    n = await NodeLog.open(tmp_path, 1)
    try:
        assert (n.log(0).segments(), n.log(0).trim_point(), n.log(0).tail()) == (segs, tp, tail)
    finally:
        await n.close()
