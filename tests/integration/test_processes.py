"""`endure serve --processes 2`: a supervisor and two real node processes on one data dir.

Each node runs the invocations of the partitions it owns; a worker started against one node
learns the others when it registers and serves them all.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
import pytest
from cluster import Cluster, attach_all, get_limits, read_markers, rerun_acknowledged_steps, wait_until  # noqa: I001 - tests/integration is on sys.path

from endure.proto import admin_pb2 as apb
from endure.proto import admin_pb2_grpc as apb_grpc
from endure.proto import ids
from endure.proto import records_pb2 as pb
from endure.runtime.admin.service import FORWARDED
from endure.runtime.launcher import serve_argv
from endure.sdk.client import Client

PARTITIONS = 4


@pytest.fixture
def two(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, partitions=PARTITIONS, processes=2, env={"ENDURE_TEST_DIR": str(tmp_path)})
    try:
        c.start_runtime()
        yield c
    finally:
        c.stop()


def _leaders(cluster: Cluster) -> dict[int, tuple[bool, int]] | None:
    try:
        resp = cluster.list_partitions()
    except grpc.RpcError:  # a node is still restarting: its partitions cannot be read yet
        return None
    return {p.partition: (p.leader, p.leader_epoch) for p in resp.partitions}


def _completed(cluster: Cluster, invocation_id: str) -> bool:
    try:
        return cluster.describe(invocation_id).status.status == pb.COMPLETED
    except grpc.RpcError:
        return False


def test_two_nodes_serve_every_partition_and_run_on_the_owner(two: Cluster) -> None:
    assert len(two.node_pids()) == 2
    placement = json.loads((two.data_dir / "placement.json").read_text())
    assert placement == {"nodes": 2, "partitions": PARTITIONS, "owners": [0, 1, 0, 1]}
    assert {p: leader for p, (leader, _) in (_leaders(two) or {}).items()} == {p: True for p in range(PARTITIONS)}
    # The CLI on node 0's admin: its own partitions, and node 1's through the PartitionService.
    out = subprocess.run(["endure", "partitions", "--admin", two.admin, "--json"], capture_output=True,
                         text=True, timeout=60, check=True, env=two.env).stdout
    assert sorted(int(p.get("partition", 0)) for p in json.loads(out)["partitions"]) == list(range(PARTITIONS))
    # ... each with the node that owns it, as the placement says.
    assert {int(p.get("partition", 0)): p["node"] for p in json.loads(out)["partitions"]} == {
        p: f"node-{owner}" for p, owner in enumerate(placement["owners"])}

    two.start_worker("e2eapp:app", name="w0", node=0)
    two.start_worker("e2eapp:app", name="w1", node=1)

    async def run() -> None:
        # Keyed, so they spread over every partition whichever node's ingress takes them.
        async with Client(two.ingress) as client:
            sent = [await client.send("e2e/echo", i, idempotency_key=f"echo-{i}") for i in range(12)]
            on_node_1 = [(i, inv) for i, inv in enumerate(sent) if ids.partition_of(inv, PARTITIONS) % 2 == 1]
            assert on_node_1, "no invocation landed on node 1's partitions"
            for inv in sent:
                wait_until(lambda inv=inv: _completed(two, inv), what=f"{inv} to complete")
            for i, inv in on_node_1:
                assert await client.attach(inv, timeout=30) == i

    import asyncio

    asyncio.run(run())


def test_a_node_killed_mid_invocation_is_restarted_and_loses_nothing_acknowledged(two: Cluster) -> None:
    """kill -9 of node 1 while multi-step invocations run on both nodes: the supervisor restarts it
    on the same ports, the one worker (started against node 0, serving both) reconnects to it, every
    invocation completes with its result, and no acknowledged step runs again."""
    two.start_worker("e2eapp:app", name="w0", node=0)
    wait_until(lambda: "w0" in two.connected_workers(two.node_admin(1)), what="w0 on node 1 too")
    epochs = {p: epoch for p, (_, epoch) in (_leaders(two) or {}).items()}
    old = two.node_admin(1)
    tags = [f"k{i}" for i in range(16)]

    async def send() -> dict[str, str]:
        async with Client(two.ingress) as client:
            return {tag: await client.send("e2e/multistep", tag, idempotency_key=tag) for tag in tags}

    import asyncio

    sent = asyncio.run(send())  # acknowledged: durable on their owners
    on_node_1 = [tag for tag, inv in sent.items() if ids.partition_of(inv, PARTITIONS) % 2 == 1]
    assert on_node_1, "no invocation landed on node 1's partitions"
    # Mid-invocation: some of node 1's invocations have acknowledged steps, not all have ended.
    wait_until(lambda: any(f"{t}:step1:ack" in read_markers(two.root) for t in on_node_1), what="steps on node 1")
    node_1 = psutil.Process(two.node_pid(1))
    node_1.kill()  # kill -9
    node_1.wait(10)

    def restarted() -> bool:
        leaders = _leaders(two)
        return bool(leaders) and all(leader for leader, _ in leaders.values()) and all(
            leaders[p][1] > epochs[p] for p in range(1, PARTITIONS, 2))

    wait_until(restarted, timeout=60, what="node 1's partitions to lead again")
    assert len(two.node_pids()) == 2 and node_1.pid not in two.node_pids()
    assert two.node_admin(1) == old  # the same ports: the worker and the peers reconnect there

    assert attach_all(two.ingress, sent.values()) == [[f"s{i}" for i in range(5)]] * len(tags)
    rerun = rerun_acknowledged_steps(two.root, tags)
    assert not rerun, f"acknowledged steps ran again: {rerun}"


def test_supervisor_killed_takes_its_nodes_and_the_placement_is_fixed(tmp_path: Path) -> None:
    c = Cluster(tmp_path, partitions=PARTITIONS, processes=2, env={"ENDURE_TEST_DIR": str(tmp_path)})
    try:
        c.start_runtime()
        nodes = [psutil.Process(pid) for pid in c.node_pids()]
        assert len(nodes) == 2
        assert c.runtime is not None
        c.runtime.kill9()

        def gone() -> bool:
            for proc in nodes:
                try:
                    if proc.status() != psutil.STATUS_ZOMBIE:
                        return False
                except psutil.NoSuchProcess:
                    pass
            return True

        wait_until(gone, timeout=30, what="the nodes to die with their supervisor")

        # A clean stop: SIGTERM stops every node within the grace.
        c.start_runtime()
        nodes = [psutil.Process(pid) for pid in c.node_pids()]
        assert c.runtime.terminate(timeout=30) == 0
        wait_until(gone, timeout=10, what="the nodes to stop with their supervisor")
    finally:
        c.stop()

    for asked in ("3", "1"):
        argv = serve_argv(c.data_dir, partitions=PARTITIONS, metrics="off", extra=["--processes", asked])
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=c.env)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "--processes 2" in lines[0] and f"--processes {asked}" in lines[0], lines[0]


def _own_limits(admin: str) -> apb.LimitsResponse:
    """One node's own view (the marker a node sets when it passes an admin call on)."""
    with grpc.insecure_channel(admin) as channel:
        return apb_grpc.AdminStub(channel).GetLimits(apb.GetLimitsRequest(), timeout=10,
                                                     metadata=((FORWARDED, "1"),))


def test_limits_set_on_one_node_reach_every_node_and_survive_a_restart(two: Cluster) -> None:
    with grpc.insecure_channel(two.node_admin(1)) as channel:
        apb_grpc.AdminStub(channel).SetLimits(
            apb.SetLimitsRequest(tenant="acme", limits=apb.LimitSpec(max_running=6, rate_per_s=4)), timeout=30)
    for node in (0, 1):
        got = _own_limits(two.node_admin(node)).tenants["acme"]
        assert (got.max_running, got.rate_per_s) == (6, 4.0), f"node {node}"
    node_0 = psutil.Process(two.node_pid(0))
    node_0.kill()  # kill -9: the supervisor restarts it, and it loads what it stored
    node_0.wait(10)
    wait_until(lambda: (_leaders(two) or {}).get(0, (False, 0))[0], timeout=60, what="node 0 to lead again")
    got = _own_limits(two.node_admin(0)).tenants["acme"]
    assert (got.max_running, got.rate_per_s) == (6, 4.0)

    # The backlog the admin API shows is the whole cluster's: with the worker gone (its services stay
    # registered), every sent invocation waits, on whichever node owns it.
    worker = two.start_worker("e2eapp:app", name="w0", node=0)
    wait_until(lambda: "w0" in two.connected_workers(two.node_admin(1)), what="w0 on node 1 too")
    worker.stop()
    wait_until(lambda: not two.connected_workers(two.node_admin(0)) and not two.connected_workers(two.node_admin(1)),
               what="w0 to be gone")
    async def send() -> list[str]:
        async with Client(two.ingress) as client:
            return [await client.send("e2e/echo", i, idempotency_key=f"limits-{i}") for i in range(8)]

    import asyncio

    sent = asyncio.run(send())
    assert {ids.partition_of(inv, PARTITIONS) % 2 for inv in sent} == {0, 1}
    wait_until(lambda: sum(get_limits(two).backlog.values()) == 8, timeout=60, what="8 queued in all")
