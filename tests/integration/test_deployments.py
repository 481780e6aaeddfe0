"""Issue 14, end to end: two versions of an app connected at once, with real runtime and worker
processes. Invocations stay on the version their first attempt ran on; new ones go to the latest;
a version without workers makes its invocations wait (and says so); an operator drains, promotes,
removes and moves; `patched()` takes both paths; `deployments check` and `replay` find a
divergence before it happens.

Each version is a real module file `shopapp.py` in its own folder (as a new release of the same
code would be), so both register the same deployment id `shopapp:app` with versions that differ
because their code differs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cluster import Cluster, scrape, wait_until  # noqa: I001 - tests/integration is on sys.path

from endure.proto import admin_pb2 as apb
from endure.proto import records_pb2 as pb
from endure.sdk.client import Client

APP = "shopapp:app"

HEADER = '''
import os
from pathlib import Path

from endure.sdk import App, Context, ObjectContext, Service, VirtualObject

ROOT = Path(os.environ["ENDURE_TEST_DIR"])
shop = Service("shop")
cart = VirtualObject("cart")


def publish(name: str, value: str) -> str:
    """A side effect the test reads: an awakeable id to complete."""
    (ROOT / name).write_text(value)
    return value


def count(name: str) -> str:
    with open(ROOT / "runs.txt", "a") as f:
        f.write(name + "\\n")
    return name
'''

# v1 and v2 differ in the steps `order` takes: a v1 journal replayed on v2 diverges at entry 0.
ORDER_V1 = '''
VERSION = "v1"


@shop.handler()
async def order(ctx: Context, n: str) -> str:
    await ctx.run("reserve", count, f"reserve-{n}")
    aid, fut = ctx.awakeable()
    await ctx.run("publish", publish, f"aw-{n}", aid)
    await fut
    await ctx.run("ship", count, f"ship-{n}")
    return f"{VERSION}:{n}"
'''

ORDER_V2 = '''
VERSION = "v2"


@shop.handler()
async def order(ctx: Context, n: str) -> str:
    await ctx.run("reserve-stock", count, f"reserve2-{n}")
    aid, fut = ctx.awakeable()
    await ctx.run("publish", publish, f"aw-{n}", aid)
    await fut
    return f"{VERSION}:{n}"
'''

# v3 fixes v2: the steps of v1, so v1 journals replay on it, with its own result.
ORDER_V3 = ORDER_V1.replace('VERSION = "v1"', 'VERSION = "v3"')

CART = '''

@cart.handler()
async def add(ctx: ObjectContext, item: str) -> str:
    if item.startswith("hold"):
        aid, fut = ctx.awakeable()
        await ctx.run("publish", publish, f"aw-{item}", aid)
        await fut
    items = await ctx.get("items") or []
    ctx.set("items", [*items, f"{item}@{VERSION}"])
    return VERSION


app = App([shop, cart], name="shop")
'''


def write_version(root: Path, name: str, order: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "shopapp.py").write_text(HEADER + order + CART)
    return folder


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name, order in (("v1", ORDER_V1), ("v2", ORDER_V2), ("v3", ORDER_V3)):
        write_version(tmp_path, name, order)
    return tmp_path


@pytest.fixture(params=[1, 2], ids=["p1", "p2"])
def cluster(root: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """One node, and two node processes (`--processes 2`: each keeps its own registry; changes and
    counts go through every node)."""
    c = Cluster(root, env={"ENDURE_TEST_DIR": str(root)}, processes=int(request.param))
    try:
        c.start_runtime()
        yield c
    finally:
        c.stop()


def start_version(cluster: Cluster, version: str, name: str | None = None) -> None:
    """A worker of the code in root/<version> (its own folder first on the path)."""
    path = os.pathsep.join([str(cluster.root / version), cluster.env["PYTHONPATH"]])
    cluster.start_worker(APP, name=name or f"w-{version}", env={"PYTHONPATH": path})


def endure(cluster: Cluster, *args: str, ok: bool = True, version: str | None = None) -> subprocess.CompletedProcess[str]:
    """`endure ARGS` as a user runs it (with root/<version> importable, for --app / check)."""
    env = dict(cluster.env, ENDURE_INGRESS=cluster.ingress, ENDURE_ADMIN=cluster.admin, COLUMNS="200")
    if version:
        env["PYTHONPATH"] = os.pathsep.join([str(cluster.root / version), env["PYTHONPATH"]])
    proc = subprocess.run([sys.executable, "-m", "endure.runtime.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120)
    if ok:
        assert proc.returncode == 0, f"endure {' '.join(args)} → {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def deployments(cluster: Cluster) -> dict[str, dict]:
    """`endure deployments list --json`, by the code version of each deployment ("v1" ... from its
    `VERSION`, found through the worker that registered it)."""
    listed = json.loads(endure(cluster, "deployments", "list", "--json").stdout)
    return {f"{d['deployment']['id']}@{d['deployment']['version']}": d for d in listed.get("deployments", [])}


def ref_of(cluster: Cluster, worker: str) -> str:
    for ref, d in deployments(cluster).items():
        if any(w["name"] == worker for w in d.get("workers", [])):
            return ref
    raise AssertionError(f"no deployment lists worker {worker}")


def waiting_metric(cluster: Cluster) -> dict[str, float]:
    """`endure_invocations_waiting_for_deployment` summed over the nodes (each counts its own queues)."""
    metrics = [cluster.metrics] if cluster.processes == 1 else [cluster.node_metrics(n) for n in range(cluster.processes)]
    total: dict[str, float] = {}
    for address in metrics:
        for ref, n in scrape(address, "endure_invocations_waiting_for_deployment", "deployment").items():
            total[ref] = total.get(ref, 0.0) + n
    return total


def awakeable(root: Path, name: str) -> str:
    path = root / f"aw-{name}"
    return str(wait_until(lambda: path.exists() and path.read_text(), 60, f"awakeable {name} published"))


def admin(cluster: Cluster, method: str, request: object) -> object:
    channel, stub = cluster.admin_stub()
    try:
        return getattr(stub, method)(request, timeout=30)
    finally:
        channel.close()


# ---------------------------------------------------------------------- pinning and routing


async def test_started_invocations_finish_on_their_version_while_new_ones_go_to_the_latest(
        cluster: Cluster, root: Path) -> None:
    start_version(cluster, "v1")
    v1 = ref_of(cluster, "w-v1")
    async with Client(cluster.ingress) as client:
        a1 = await client.send("shop/order", "a1")
        awakeable(root, "a1")  # a1 ran on v1 up to its wait: pinned there
        # One object key: its lock holder started on v1; more arrive in its inbox before and after v2.
        hold = await client.send("cart/add", "hold", key="k")
        awakeable(root, "hold")
        b1 = await client.send("cart/add", "b1", key="k")
        start_version(cluster, "v2")
        v2 = ref_of(cluster, "w-v2")
        assert v1 != v2 and v1.rpartition("@")[0] == v2.rpartition("@")[0] == APP
        b2 = await client.send("cart/add", "b2", key="k")
        # New invocations go to v2, the latest, while a1 still waits on v1.
        a2 = await client.send("shop/order", "a2")
        await client.resolve_awakeable(awakeable(root, "a2"), "go")
        assert await client.attach(a2, timeout=60) == "v2:a2"
        listed = deployments(cluster)
        assert listed[v1]["in_flight"] == "2" and sorted(listed[v2].get("latest_for", [])) == ["cart", "shop"], listed
        assert cluster.describe(a1).status.deployment == pb.DeploymentRef(id=APP, version=v1.rpartition("@")[2])
        # a1 resumes on v1 (its v2 replay would diverge at entry 0); the key's queue keeps arrival order.
        await client.resolve_awakeable(awakeable(root, "a1"), "go")
        await client.resolve_awakeable(awakeable(root, "hold"), "go")
        assert await client.attach(a1, timeout=60) == "v1:a1"
        assert [await client.attach(i, timeout=60) for i in (hold, b1, b2)] == ["v1", "v2", "v2"]
        assert await client.call("cart/add", "last", key="k", timeout=60) == "v2"
    state = cluster.describe(b2).journal
    got = json.loads(next(e.value for e in state if e.WhichOneof("kind") == "get_state"))
    assert got == ["hold@v1", "b1@v2"]
    assert cluster.describe(a1).status.status == pb.COMPLETED
    assert deployments(cluster)[v1].get("in_flight", "0") == "0"  # (JSON leaves out zero counts)


async def test_invocations_of_a_version_without_workers_wait_and_say_so_until_it_is_back(
        cluster: Cluster, root: Path) -> None:
    start_version(cluster, "v1")
    v1 = ref_of(cluster, "w-v1")
    async with Client(cluster.ingress) as client:
        a1 = await client.send("shop/order", "a1")
        aid = awakeable(root, "a1")
        start_version(cluster, "v2")
        cluster.workers[0].kill9()  # every v1 worker is gone
        wait_until(lambda: "w-v1" not in cluster.connected_workers(), 30, "w-v1 gone")
        await client.resolve_awakeable(aid, "go")
        wait_until(lambda: cluster.describe(a1).waiting_for, 30, "a1 waiting")
        described = cluster.describe(a1)
        assert described.status.status == pb.RUNNING and not described.on_worker
        assert described.waiting_for.startswith(f"deployment {v1} (pinned"), described.waiting_for
        text = endure(cluster, "invocations", "describe", a1).stdout
        assert f"waiting for deployment {v1}" in text.replace("\n", " "), text
        assert waiting_metric(cluster) == {v1: 1.0}
        listed = deployments(cluster)
        assert listed[v1]["waiting"] == "1" and listed[v1]["in_flight"] == "1" and not listed[v1].get("workers")
        # It is never run on other code meanwhile: new work runs on v2 and a1 still waits.
        a2 = await client.send("shop/order", "a2")
        await client.resolve_awakeable(awakeable(root, "a2"), "go")
        assert await client.attach(a2, timeout=60) == "v2:a2"
        assert cluster.describe(a1).waiting_for and "ship-a1" not in (root / "runs.txt").read_text()
        start_version(cluster, "v1", name="w-v1-again")
        assert await client.attach(a1, timeout=60) == "v1:a1"
    assert waiting_metric(cluster) == {}


async def test_drain_and_promote_choose_where_new_invocations_go(cluster: Cluster, root: Path) -> None:
    start_version(cluster, "v1")
    start_version(cluster, "v2")
    v1, v2 = ref_of(cluster, "w-v1"), ref_of(cluster, "w-v2")
    async with Client(cluster.ingress) as client:
        assert await client.call("cart/add", "x", key="d1", timeout=60) == "v2"
        drained = endure(cluster, "deployments", "drain", v2.rpartition("@")[2][:8]).stdout
        assert f"draining {v2}" in drained
        assert await client.call("cart/add", "x", key="d2", timeout=60) == "v1"  # v2 drains: v1 is latest
        endure(cluster, "deployments", "promote", v2)
        assert await client.call("cart/add", "x", key="d3", timeout=60) == "v2"
        endure(cluster, "deployments", "promote", v1)  # a rollback
        assert await client.call("cart/add", "x", key="d4", timeout=60) == "v1"
    listed = deployments(cluster)
    assert sorted(listed[v1].get("latest_for", [])) == ["cart", "shop"] and not listed[v2].get("latest_for"), listed
    assert "latest" in endure(cluster, "deployments", "describe", v1).stdout


# ---------------------------------------------------------------------- patching in place


PATCHED = '''
VERSION = "v1"


@shop.handler()
async def order(ctx: Context, n: str) -> str:
    if ctx.patched("reserve-twice"):
        await ctx.run("reserve-a", count, f"reserve-a-{n}")
        await ctx.run("reserve-b", count, f"reserve-b-{n}")
        path = "new"
    else:
        await ctx.run("reserve", count, f"reserve-{n}")
        path = "old"
    aid, fut = ctx.awakeable()
    await ctx.run("publish", publish, f"aw-{n}", aid)
    await fut
    await ctx.run("ship", count, f"ship-{n}")
    return f"{path}:{n}"
'''


async def test_patched_code_replays_old_journals_on_the_old_path_and_runs_new_ones_on_the_new(
        cluster: Cluster, root: Path) -> None:
    write_version(root, "v1-patched", PATCHED)
    env = {"ENDURE_DEPLOYMENT_VERSION": "release-1"}  # a version the user names: patched in place
    path = os.pathsep.join([str(root / "v1"), cluster.env["PYTHONPATH"]])
    cluster.start_worker(APP, name="w-old", env={**env, "PYTHONPATH": path})
    async with Client(cluster.ingress) as client:
        before = await client.send("shop/order", "p1")
        aid = awakeable(root, "p1")
        cluster.workers[0].kill9()
        wait_until(lambda: "w-old" not in cluster.connected_workers(), 30, "w-old gone")
        path = os.pathsep.join([str(root / "v1-patched"), cluster.env["PYTHONPATH"]])
        cluster.start_worker(APP, name="w-patched", env={**env, "PYTHONPATH": path})
        await client.resolve_awakeable(aid, "go")
        assert await client.attach(before, timeout=60) == "old:p1"  # its journal predates the patch
        after = await client.send("shop/order", "p2")
        await client.resolve_awakeable(awakeable(root, "p2"), "go")
        assert await client.attach(after, timeout=60) == "new:p2"
    journal = cluster.describe(after).journal
    assert journal[0].WhichOneof("kind") == "patch" and journal[0].name == "reserve-twice"
    assert all(e.WhichOneof("kind") != "patch" for e in cluster.describe(before).journal)
    runs = (root / "runs.txt").read_text().split()
    assert runs.count("reserve-p1") == 1 and "reserve-a-p1" not in runs and runs.count("reserve-a-p2") == 1


# ---------------------------------------------------------------------- check before you ship


async def test_check_finds_a_divergence_before_it_happens_and_resume_moves_it_onto_fixed_code(
        cluster: Cluster, root: Path) -> None:
    start_version(cluster, "v1")
    v1 = ref_of(cluster, "w-v1")
    async with Client(cluster.ingress) as client:
        inv = await client.send("shop/order", "c1")
        aid = awakeable(root, "c1")
        wait_until(lambda: len(cluster.describe(inv).journal) >= 3, 30, "c1's journal")
        # Offline: v2 would diverge on c1's journal, v3 replays it cleanly. Nothing runs, nothing is appended.
        bad = endure(cluster, "deployments", "check", APP, ok=False, version="v2")
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert inv in bad.stdout and "entry 0" in bad.stdout and "reserve" in bad.stdout, bad.stdout
        good = endure(cluster, "deployments", "check", APP, version="v3")
        assert inv in good.stdout and "replays cleanly" in good.stdout, good.stdout
        one = endure(cluster, "replay", inv, "--app", APP, ok=False, version="v2")
        assert one.returncode == 1 and "entry 0" in one.stdout and "run 'reserve'" in one.stdout, one.stdout
        assert "replays cleanly" in endure(cluster, "replay", inv, "--app", APP, version="v3").stdout
        assert (root / "runs.txt").read_text().split() == ["reserve-c1"]  # the replays ran no step
        assert len(cluster.describe(inv).journal) == 3
        # Moved onto v2 anyway, it diverges and pauses, and the failure names both versions.
        start_version(cluster, "v2")
        v2 = ref_of(cluster, "w-v2")
        endure(cluster, "invocations", "pause", inv)
        wait_until(lambda: cluster.describe(inv).status.status == pb.PAUSED, 30, "paused")
        endure(cluster, "invocations", "resume", inv, "--deployment", "latest")
        await client.resolve_awakeable(aid, "go")
        wait_until(lambda: cluster.describe(inv).status.status == pb.PAUSED and
                   cluster.describe(inv).status.last_failure.message, 60, "a divergence")
        status = cluster.describe(inv).status
        message = status.last_failure.message
        assert "entry 0" in message and f"written on {v1}" in message and f"replayed on {v2}" in message, message
        assert [(m.from_deployment.version, m.to_deployment.version) for m in status.moves] == [
            (v1.rpartition("@")[2], v2.rpartition("@")[2])]
        start_version(cluster, "v3")
        v3 = ref_of(cluster, "w-v3")
        endure(cluster, "invocations", "resume", inv, "--deployment", v3)
        assert await client.attach(inv, timeout=60) == "v3:c1"
    assert (root / "runs.txt").read_text().split() == ["reserve-c1", "ship-c1"]


# ---------------------------------------------------------------------- bad input and removal


async def test_bad_deployment_requests_get_precise_errors_and_remove_force_moves_pinned_work(
        cluster: Cluster, root: Path) -> None:
    start_version(cluster, "v1")
    v1 = ref_of(cluster, "w-v1")
    async with Client(cluster.ingress) as client:
        inv = await client.send("shop/order", "r1")
        aid = awakeable(root, "r1")
        start_version(cluster, "v3")
        v3 = ref_of(cluster, "w-v3")
        endure(cluster, "invocations", "pause", inv)
        wait_until(lambda: cluster.describe(inv).status.status == pb.PAUSED, 30, "paused")
        with pytest.raises(grpc.RpcError) as unknown:
            admin(cluster, "ResumeInvocation", apb.ResumeRequest(invocation_id=inv, deployment="nosuch"))
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND and "nosuch" in unknown.value.details()
        cli = endure(cluster, "invocations", "resume", inv, "--deployment", "nosuch", ok=False)
        assert cli.returncode == 1 and "NOT_FOUND" in cli.stdout and "nosuch" in cli.stdout
        missing = endure(cluster, "replay", "inv_doesnotexist0000000000000", "--app", APP, ok=False, version="v1")
        assert missing.returncode != 0 and "no invocation" in missing.stdout + missing.stderr
        with pytest.raises(grpc.RpcError) as connected:
            admin(cluster, "RemoveDeployment", apb.RemoveDeploymentRequest(deployment=v1))
        assert connected.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "connected" in connected.value.details()
        cluster.workers[0].kill9()
        wait_until(lambda: "w-v1" not in cluster.connected_workers(), 30, "w-v1 gone")
        refused = endure(cluster, "deployments", "remove", v1, ok=False)
        assert refused.returncode == 1 and "FAILED_PRECONDITION" in refused.stdout and "1 unfinished" in refused.stdout
        assert v1 in deployments(cluster)
        forced = endure(cluster, "deployments", "remove", v1, "--force").stdout
        assert f"removed {v1}; moved 1 pinned invocation" in forced, forced
        assert v1 not in deployments(cluster)
        status = cluster.describe(inv).status
        assert status.deployment.version == v3.rpartition("@")[2] and status.moves[-1].reason.startswith(
            "deployments remove --force")
        endure(cluster, "invocations", "resume", inv)
        await client.resolve_awakeable(aid, "go")
        assert await client.attach(inv, timeout=60) == "v3:r1"
