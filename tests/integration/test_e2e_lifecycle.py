"""Issue 5, end to end: `endure serve` stops cleanly on SIGTERM (exit 0, nothing acknowledged
lost) and starts cleanly after kill -9; clients attach to earlier results across restarts."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import Cluster, rerun_acknowledged_steps, running_cluster, wait_until

from endure.proto import admin_pb2 as apb
from endure.sdk.client import Client, RequestError

APP = "e2eapp:app"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-lifecycle")


@pytest.fixture(scope="module")
def cluster(root: Path) -> Iterator[Cluster]:
    with running_cluster(root, APP) as c:
        yield c


def partitions_consistent(cluster: Cluster) -> None:
    channel, stub = cluster.admin_stub()
    try:
        resp = stub.ListPartitions(apb.ListPartitionsRequest(), timeout=10)
    finally:
        channel.close()
    assert len(resp.partitions) == cluster.partitions
    for p in resp.partitions:
        assert p.leader and p.applied_lsn <= p.log_tail, p


async def test_attach_after_runtime_kill9_and_restart(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        done = await client.send("e2e/echo", "before the crash", idempotency_key="crash-1")
        assert await client.attach(done, timeout=30) == "before the crash"
        pending = await client.send("e2e/sleeper", 1500)
    cluster.runtime.kill9()
    cluster.start_runtime()  # starts cleanly on the same data dir after kill -9
    partitions_consistent(cluster)
    async with Client(cluster.ingress) as client:
        assert await client.attach(done, timeout=30) == "before the crash"
        assert await client.attach(handler="e2e/echo", idempotency_key="crash-1", timeout=30) == "before the crash"
        assert await client.send("e2e/echo", "ignored", idempotency_key="crash-1") == done
        assert await client.attach(pending, timeout=60) == "slept 1500"  # the worker reconnected
        assert await client.call("e2e/add", {"a": 1, "b": 1}, timeout=30) == 2


async def test_sigterm_stops_cleanly_and_keeps_every_acknowledged_invocation(cluster: Cluster) -> None:
    acked: list[str] = []
    refused: list[str] = []
    async with Client(cluster.ingress) as client:
        done = await client.send("e2e/echo", "finished before SIGTERM")
        assert await client.attach(done, timeout=30) == "finished before SIGTERM"
        pending = await client.send("e2e/sleeper", 1500)

        async def sender(i: int) -> None:
            while True:
                try:
                    acked.append(await client.send("e2e/echo", i))
                except RequestError as exc:  # the server went away mid-stream: not acknowledged
                    refused.append(exc.code.name)
                    return

        senders = [asyncio.create_task(sender(i)) for i in range(8)]
        await asyncio.to_thread(wait_until, lambda: len(acked) >= 50, 30, "sends in flight")
        code = await asyncio.to_thread(cluster.runtime.terminate)
        await asyncio.wait_for(asyncio.gather(*senders), timeout=30)
    assert code == 0, cluster.runtime.tail()
    assert "shutting down" in cluster.runtime.tail(200)
    assert set(refused) <= {"UNAVAILABLE", "CANCELLED"}, refused
    cluster.start_runtime()
    partitions_consistent(cluster)
    async with Client(cluster.ingress) as client:
        assert await client.attach(done, timeout=30) == "finished before SIGTERM"
        assert await client.attach(pending, timeout=60) == "slept 1500"
        missing = []
        for inv in acked:  # every id a client got back was durable before the answer
            try:
                await client.attach(inv, timeout=60)
            except RequestError as exc:
                missing.append((inv, exc.code.name))
        assert not missing, missing


async def test_sigterm_drains_a_worker_under_load_and_its_work_moves_on(tmp_path: Path) -> None:
    """Two workers, a steady stream of multi-step invocations, SIGTERM to one: it sends a drain,
    gets no StartFrame after the runtime's answer, suspends or hands back what it has and exits
    within its grace; every invocation completes once with its result and no acknowledged step
    runs again (the survivor resumes the rest)."""
    grace = 10.0
    c = Cluster(tmp_path, env={"ENDURE_TEST_DIR": str(tmp_path)})
    sent: dict[str, str] = {}
    try:
        c.start_runtime()
        draining = c.start_worker(APP, concurrency=8, name="w1", extra_args=["--shutdown-grace", str(grace)])
        c.start_worker(APP, concurrency=8, name="w2")
        stop = asyncio.Event()
        async with Client(c.ingress) as client:

            async def stream() -> None:
                while not stop.is_set():
                    tag = f"t{len(sent)}"
                    sent[tag] = await client.send("e2e/multistep", tag, idempotency_key=tag)
                    await asyncio.sleep(0.02)  # the pace of the load, not a race fix

            load = asyncio.create_task(stream())
            await asyncio.to_thread(wait_until, lambda: len(sent) >= 30, 60, "invocations in flight")
            started = time.monotonic()
            code = await asyncio.to_thread(draining.terminate, 60)
            took = time.monotonic() - started
            await asyncio.to_thread(wait_until, lambda: len(sent) >= 60, 60, "more invocations after the drain")
            stop.set()
            await load
            results = await asyncio.gather(*(client.attach(inv, timeout=120) for inv in sent.values()))
        log = draining.tail(400)
        assert code == 0 and took < grace + 5, (code, took, log)
        held = re.search(r"stopping: draining (\d+) invocation", log)
        assert held and int(held.group(1)) > 0, log  # SIGTERM came mid-load
        assert "runtime acknowledged the drain" in log, log
        assert re.search(r"drained: \d+ attempt\(s\) handed back; 0 start\(s\) after the runtime's drain ack\n",
                         log + "\n"), log
        assert "worker w1 draining" in c.runtime.tail(400)
        assert all(res == [f"s{i}" for i in range(5)] for res in results), results
        rerun = rerun_acknowledged_steps(tmp_path, sent)
        assert not rerun, f"acknowledged steps ran again: {rerun}"
        for inv in sent.values():  # completed once: one journal, each step recorded once
            journal = c.describe(inv).journal
            assert [e.name for e in journal if e.WhichOneof("kind") == "run"] == [f"step{i}" for i in range(5)]
            assert sum(e.WhichOneof("kind") == "output" for e in journal) == 1
    finally:
        c.stop()
