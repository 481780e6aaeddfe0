"""kill -9 of JetStream servers under a running log (a cluster of its own: these tests kill servers).

One server of three down (the stream's leader, the hard case): appends stall for the raft
election (4-9 s, not tunable in nats-server) and then go on, with no error, gap or duplicate.
Two of three down: no quorum, so appends fail with LogUnavailable within the append timeout;
after both servers restart the log carries on, and every acknowledged record is there once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats_cluster import JsNode, LocalNatsCluster, open_node, start_cluster, stream_leader  # noqa: I001

from endure.runtime.log import LogError, LogUnavailable, VirtualLog


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNatsCluster]:
    c = start_cluster(Path(tmp_path_factory.mktemp("nats-failover")))
    try:
        yield c
    finally:
        c.close()


class Appenders:
    """`count` tasks appending one unique record at a time, until stopped; what was acknowledged."""

    def __init__(self, log: VirtualLog, count: int = 16) -> None:
        self.log = log
        self.acked: dict[int, bytes] = {}
        self.errors: list[tuple[float, LogError]] = []
        self.attempted: set[bytes] = set()
        self._stop = False
        self._tasks = [asyncio.ensure_future(self._run(k)) for k in range(count)]

    async def _run(self, k: int) -> None:
        i = 0
        while not self._stop:
            payload = b"%d-%d" % (k, i)
            i += 1
            self.attempted.add(payload)
            try:
                r = await self.log.append([payload])
            except LogError as exc:
                self.errors.append((time.monotonic(), exc))
                await asyncio.sleep(0.05)
                continue
            self.acked[r.start] = payload

    async def wait_for(self, predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} within {timeout} s: {len(self.acked)} acked, errors {self.errors[-3:]}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._stop = True
        await asyncio.gather(*self._tasks)


async def check_log(node: JsNode, acked: dict[int, bytes], attempted: set[bytes]) -> int:
    """Every acknowledged record at its LSN, no LSN missing, no record twice; returns the tail."""
    log = await node.log(0)
    seg = log.segments()[-1]
    tail, _ = await node.provider.loglet(seg.loglet_id, seg.base_lsn).find_tail()
    records = await log.read(1, tail, limit=1_000_000)
    assert [r.lsn for r in records] == list(range(1, tail))
    stored = [r.payload for r in records]
    assert len(set(stored)) == len(stored), "a record was stored twice"
    assert set(stored) <= attempted | {b"warm"}
    for lsn, payload in acked.items():
        assert stored[lsn - 1] == payload
    return tail


async def test_kill_one_server_of_three_appends_go_on(cluster: LocalNatsCluster) -> None:
    node = await open_node(cluster.urls, "one", append_timeout=30.0, ack_timeout=2.0)
    try:
        log = await node.log(0)
        await log.append([b"warm"])
        seg = log.segments()[-1]
        stream = node.provider.loglet(seg.loglet_id, seg.base_lsn).stream
        leader = cluster.index_of(await stream_leader(node.conn, stream))
        work = Appenders(log)
        await work.wait_for(lambda: len(work.acked) > 200, 20, "appends before the kill")
        cluster.kill(leader)  # kill -9 of the stream's leader
        killed_at = len(work.acked)
        await work.wait_for(lambda: len(work.acked) > killed_at + 500, 30, "appends after the kill")
        await work.stop()
        assert work.errors == []  # the election was ridden out inside the append timeout
        assert await stream_leader(node.conn, stream) != cluster.servers[leader].name
        await check_log(node, work.acked, work.attempted)
    finally:
        await node.close()
        cluster.restart(leader)


async def test_kill_two_of_three_appends_fail_typed_then_the_log_recovers(cluster: LocalNatsCluster) -> None:
    cluster.wait_ready()
    node = await open_node(cluster.urls, "two", append_timeout=3.0, ack_timeout=1.0)
    try:
        log = await node.log(0)
        await log.append([b"warm"])
        work = Appenders(log)
        await work.wait_for(lambda: len(work.acked) > 200, 20, "appends before the kill")
        killed = [0, 1]
        start = time.monotonic()
        for i in killed:
            cluster.kill(i)
        await work.wait_for(lambda: bool(work.errors), 15, "an append to fail")
        failed_after = work.errors[0][0] - start
        assert failed_after < 3.0 + 2.0  # the append timeout, and a little
        first = work.errors[0][1]
        assert isinstance(first, LogUnavailable), repr(first)
        assert "\n" not in str(first) and str(first).startswith("log unavailable: ")
        await asyncio.sleep(0.5)
        acked_while_down = len(work.acked)
        await asyncio.sleep(1.0)
        assert len(work.acked) == acked_while_down  # nothing is acknowledged without a quorum
        await work.stop()
    finally:
        await node.close()
    for i in killed:
        cluster.restart(i, wait=False)
    await asyncio.to_thread(cluster.wait_ready)
    # A fresh node (state only from the cluster) carries on once the stream has a leader again.
    fresh = await open_node(cluster.urls, "two", append_timeout=30.0)
    try:
        log = await fresh.log(0)
        r = await log.append([b"after"])
        work.acked[r.start] = b"after"
        work.attempted.add(b"after")
        tail = await check_log(fresh, work.acked, work.attempted)
        assert tail == r.stop
    finally:
        await fresh.close()
