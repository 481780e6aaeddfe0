"""A worker connects to one address and ends up serving every node: two independent runtimes A and
B, A reports B's worker endpoint as a peer (ENDURE_WORKER_PEERS, the static form of the peer list),
and ONE worker pointed at A serves invocations sent to B, and drains both on SIGTERM."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cluster import Cluster, free_port, wait_until

from endure.sdk.client import Client

APP = "e2eapp:app"


def cluster_in(root: Path, env: dict[str, str] | None = None) -> Cluster:
    root.mkdir()
    return Cluster(root, env=env)


def worker_on(cluster: Cluster, name: str) -> bool:
    try:
        return name in cluster.connected_workers()
    except Exception:  # noqa: BLE001 - the runtime may be starting: poll again
        return False


async def test_one_worker_serves_both_runtimes_and_drains_both(tmp_path: Path) -> None:
    grace = 10.0
    b = cluster_in(tmp_path / "b")
    a: Cluster | None = None
    try:
        b.start_runtime()
        a = cluster_in(tmp_path / "a", env={"ENDURE_WORKER_PEERS": b.admin})
        a.start_runtime()
        w = a.start_worker(APP, name="w1", extra_args=["--shutdown-grace", str(grace)])
        await asyncio.to_thread(wait_until, lambda: worker_on(b, "w1"), 30, "the worker on B")
        async with Client(b.ingress) as client:
            assert await client.call("e2e/echo", "through B", timeout=30) == "through B"
        async with Client(a.ingress) as client:
            assert await client.call("e2e/echo", "through A", timeout=30) == "through A"
        started = time.monotonic()
        code = await asyncio.to_thread(w.terminate, 60)
        took = time.monotonic() - started
        log = w.tail(200)
        assert code == 0 and took < grace + 5, (code, took, log)
        for runtime in (a, b):
            assert runtime.runtime is not None
            assert "worker w1 draining" in runtime.runtime.tail(400), runtime.runtime.tail(100)
        assert f"runtime acknowledged the drain on {a.admin}" in log, log
        assert f"runtime acknowledged the drain on {b.admin}" in log, log
    finally:
        if a is not None:
            a.stop()
        b.stop()


async def test_a_peer_down_at_first_is_served_once_it_comes_up(tmp_path: Path) -> None:
    b = cluster_in(tmp_path / "b")
    b.admin = f"127.0.0.1:{free_port()}"  # known before B runs: A names it from the start
    a = cluster_in(tmp_path / "a", env={"ENDURE_WORKER_PEERS": b.admin})
    try:
        a.start_runtime()
        a.start_worker(APP, name="w1")
        async with Client(a.ingress) as client:  # the peer that is down blocks nothing
            assert await client.call("e2e/echo", "A alone", timeout=30) == "A alone"
        b.start_runtime()
        await asyncio.to_thread(wait_until, lambda: worker_on(b, "w1"), 30, "the worker on B")
        async with Client(b.ingress) as client:
            assert await client.call("e2e/echo", "B came up", timeout=30) == "B came up"
    finally:
        a.stop()
        b.stop()
