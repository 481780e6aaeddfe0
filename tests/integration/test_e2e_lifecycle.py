"""Issue 5, end to end: `endure serve` stops cleanly on SIGTERM (exit 0, nothing acknowledged
lost) and starts cleanly after kill -9; clients attach to earlier results across restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import Cluster, running_cluster, wait_until

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
