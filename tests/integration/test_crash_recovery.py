"""kill -9 of a worker or of the runtime in the middle of a handler: it completes, and no
acknowledged step runs again."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cluster import Cluster

from endure.sdk.client import Client

STEP2_STARTED = "{tag}:step2:start"


def markers(root: Path) -> list[str]:
    path = root / "markers.txt"
    return path.read_text().split() if path.exists() else []


def wait_for_marker(cluster: Cluster, root: Path, marker: str, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while marker not in markers(root):  # the marker is written by another process
        if time.monotonic() > deadline:
            logs = "\n".join(w.tail(30) for w in cluster.workers)
            raise TimeoutError(f"marker {marker!r} never appeared; workers:\n{logs}")
        time.sleep(0.01)


@pytest.fixture
def crash_cluster(tmp_path: Path):
    c = Cluster(tmp_path, env={"ENDURE_TEST_DIR": str(tmp_path)})
    try:
        yield c
    finally:
        c.stop()


async def test_worker_killed_during_step2_completes_elsewhere(crash_cluster: Cluster, tmp_path: Path) -> None:
    crash_cluster.start_runtime()
    first = crash_cluster.start_worker("crashapp:app", name="w1")
    async with Client(crash_cluster.ingress) as client:
        inv = await client.send("steps/three", "a")
        wait_for_marker(crash_cluster, tmp_path, "a:step2:start")
        first.kill9()
        (tmp_path / "gate-a").touch()
        crash_cluster.start_worker("crashapp:app", name="w2")
        result = await client.attach(inv, timeout=60)
    assert result == ["step1", "step2", "step3"]
    seen = markers(tmp_path)
    assert seen.count("a:step1:start") == 1, seen  # acknowledged: never re-run
    assert seen.count("a:step2:start") == 2, seen  # not durable when the worker died: run again
    assert seen.count("a:step3:start") == 1, seen
    journal = crash_cluster.describe(inv).journal
    assert [e.name for e in journal] == ["step1", "step2", "step3", ""]


async def test_runtime_killed_mid_invocation_resumes_after_restart(crash_cluster: Cluster, tmp_path: Path) -> None:
    crash_cluster.start_runtime()
    crash_cluster.start_worker("crashapp:app", name="w1")
    async with Client(crash_cluster.ingress) as client:
        inv = await client.send("steps/three", "b")
    wait_for_marker(crash_cluster, tmp_path, "b:step2:start")
    crash_cluster.runtime.kill9()
    crash_cluster.start_runtime()
    (tmp_path / "gate-b").touch()
    async with Client(crash_cluster.ingress) as client:
        result = await client.attach(inv, timeout=60)
    assert result == ["step1", "step2", "step3"]
    seen = markers(tmp_path)
    assert seen.count("b:step1:start") == 1, seen
    assert seen.count("b:step3:start") == 1, seen
    assert re.match(r"inv_", inv)
