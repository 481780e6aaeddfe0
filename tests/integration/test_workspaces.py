"""Sandbox workspaces on real processes: a worker killed (-9) between the two runs of a workspace
flow; the worker that resumes sees the files the first run left (from the journal, not by running
it again), and `endure invocations files` lists and fetches them."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import Cluster

from endure.sdk.client import Client

APP = "workspaceapp:app"


@pytest.fixture
def ws_cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, env={"ENDURE_TEST_DIR": str(tmp_path)})
    try:
        yield c
    finally:
        c.stop()


def wait_for_marker(cluster: Cluster, root: Path, marker: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    path = root / "markers.txt"
    while not (path.exists() and marker in path.read_text().split()):  # written by the worker process
        if time.monotonic() > deadline:
            logs = "\n".join(w.tail(30) for w in cluster.workers)
            raise TimeoutError(f"marker {marker!r} never appeared; workers:\n{logs}")
        time.sleep(0.02)


def endure(cluster: Cluster, *args: str, ok: bool = True) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run([sys.executable, "-m", "endure.runtime.cli", *args, "--admin", cluster.admin],
                          env=cluster.env, capture_output=True, timeout=60)
    assert (proc.returncode == 0) == ok, proc
    return proc


def recorded_step1(cluster: Cluster, inv: str) -> str:
    """What data/step1.txt holds according to run 1's journaled entry."""
    run1 = next(e for e in cluster.describe(inv).journal if e.name == "sandbox.python")
    body = json.loads(run1.value)["endure.workspace"]
    return base64.b64decode(body["blobs"][body["files"]["data/step1.txt"]]).decode()


async def test_worker_killed_between_runs_resumes_with_the_first_runs_files(
    ws_cluster: Cluster, tmp_path: Path
) -> None:
    ws_cluster.start_runtime()
    first = ws_cluster.start_worker(APP, name="w1")
    async with Client(ws_cluster.ingress) as client:
        inv = await client.send("wsflow/two_runs", "a")
        wait_for_marker(ws_cluster, tmp_path, "a:gate:start")
        first.kill9()
        step1 = recorded_step1(ws_cluster, inv)  # durable before the kill
        ws_cluster.start_worker(APP, name="w2")
        (tmp_path / "gate-a").touch()
        result = await client.attach(inv, timeout=120)

    assert result["stdout"] == f"{step1} ['data', 'scratch.tmp']\n"  # run 1's files, seed.txt deleted
    assert result["files"] == {"data/step1.txt": 16, "step2.txt": 16 + 4}
    names = [e.name for e in ws_cluster.describe(inv).journal]
    assert names == ["workspace.put", "sandbox.python", "gate", "sandbox.python", ""]
    assert recorded_step1(ws_cluster, inv) == step1  # run 1 was not run again

    listed = json.loads(endure(ws_cluster, "invocations", "files", inv, "--json").stdout)
    files = listed["workspaces"]["default"]
    assert {p: f["size"] for p, f in files.items()} == result["files"]
    assert all(f["in_journal"] for f in files.values())
    table = endure(ws_cluster, "invocations", "files", inv).stdout.decode()
    assert "data/step1.txt" in table and "step2.txt" in table and "default" in table
    fetched = endure(ws_cluster, "invocations", "files", inv, "--get", "step2.txt").stdout
    assert fetched == f"{step1}+two".encode()
    out = tmp_path / "step1.out"
    endure(ws_cluster, "invocations", "files", inv, "--workspace", "default", "--get", "/data/step1.txt",
           "--out", str(out))
    assert out.read_text() == step1
    missing = endure(ws_cluster, "invocations", "files", inv, "--get", "seed.txt", ok=False)
    assert b"no file 'seed.txt'" in missing.stdout
    unknown = endure(ws_cluster, "invocations", "files", inv, "--workspace", "nope", ok=False)
    assert b"no workspace 'nope'" in unknown.stdout


async def test_an_object_workspace_persists_across_invocations_of_its_key(ws_cluster: Cluster) -> None:
    ws_cluster.start_runtime()
    ws_cluster.start_worker(APP, name="w1")
    async with Client(ws_cluster.ingress) as client:
        assert await client.call("wsnotes/add", "first", key="k", timeout=120) == "first\n"
        second = await client.send("wsnotes/add", "second", key="k")
        assert await client.attach(second, timeout=120) == "first\nsecond\n"
        assert await client.call("wsnotes/add", "other key", key="k2", timeout=120) == "other key\n"
        listing = await client.send("wsnotes/sizes", key="k")
        assert await client.attach(listing, timeout=60) == {"notes.txt": 13}

    # the second invocation read the first one's file from the state into its journal
    fetched = endure(ws_cluster, "invocations", "files", second, "--workspace", "proj", "--get", "notes.txt").stdout
    assert fetched == b"first\nsecond\n"
    # a shared handler that only listed holds the manifest, not the contents
    listed = json.loads(endure(ws_cluster, "invocations", "files", listing, "--json").stdout)
    assert listed["workspaces"] == {"object:proj": {"notes.txt": {
        "size": 13, "sha256": listed["workspaces"]["object:proj"]["notes.txt"]["sha256"], "in_journal": False}}}
    not_here = endure(ws_cluster, "invocations", "files", listing, "--get", "notes.txt", ok=False)
    assert b"in the object's state" in not_here.stdout
