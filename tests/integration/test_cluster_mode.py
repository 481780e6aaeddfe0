"""Cluster mode on a real 3-server NATS JetStream cluster: Endure nodes (separate `endure serve`
processes, each with its own data dir) share the replicated log and metadata; any live node may
lead any partition, and the partitions of a node killed with `kill -9` move to the others.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
import pytest

pytest.importorskip("nats", reason="cluster mode needs the cluster extra (nats-py)")

from cluster import Cluster, _env, attach_all, free_port, read_markers, rerun_acknowledged_steps, wait_until  # noqa: E402, I001

from endure.proto import ids  # noqa: E402
from endure.runtime.launcher import serve_argv  # noqa: E402
from endure.runtime.log.jetstream.local_cluster import LocalNatsCluster  # noqa: E402
from endure.sdk.client import Client, RequestError  # noqa: E402

PARTITIONS = 4


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNatsCluster]:
    c = LocalNatsCluster(tmp_path_factory.mktemp("nats"), 3)
    try:
        c.start()
        yield c
    finally:
        c.stop()


class Nodes:
    """Endure cluster nodes 0..n-1 on one NATS cluster, sharing one marker folder."""

    def __init__(self, root: Path, nats: LocalNatsCluster, count: int, bucket: str) -> None:
        self.root = root
        name = "".join(c for c in bucket if c.isalnum())[-24:] + str(time.monotonic_ns() % 10_000)
        self.env = {"ENDURE_TEST_DIR": str(root), "ENDURE_CLUSTER_NATS": ",".join(nats.urls),
                    "ENDURE_CLUSTER_NAME": name, "ENDURE_CLUSTER_SNAPSHOTS": f"dir:{root / 'snapshots'}",
                    # Snapshots (and trimming below them) often, so the tests see them.
                    "ENDURE_SNAPSHOT_EVERY_RECORDS": "20", "ENDURE_SNAPSHOT_INTERVAL_S": "0.5"}
        for i in range(count):
            (root / f"n{i}").mkdir()
        self.nodes = [Cluster(root / f"n{i}", partitions=PARTITIONS, env=self.env) for i in range(count)]

    def start(self, i: int) -> Cluster:
        self.nodes[i].start_runtime(["--cluster-node-id", str(i)])
        return self.nodes[i]

    def leaders(self, via: int) -> dict[int, str]:
        try:
            resp = self.nodes[via].list_partitions()
        except grpc.RpcError:
            return {}
        return {p.partition: p.node for p in resp.partitions if p.leader}

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()


@pytest.fixture
def nodes(tmp_path: Path, nats: LocalNatsCluster, request: pytest.FixtureRequest) -> Iterator[Nodes]:
    n = Nodes(tmp_path, nats, 2, request.node.name)
    try:
        yield n
    finally:
        n.stop()


def test_nodes_share_the_partitions_and_a_killed_nodes_partitions_move_with_nothing_lost(nodes: Nodes) -> None:
    first, second = nodes.start(0), nodes.start(1)
    # Every partition is led, by both nodes (the controller balances them), seen from either node.
    wait_until(lambda: len(nodes.leaders(0)) == PARTITIONS and set(nodes.leaders(0).values()) == {"node-0", "node-1"},
               timeout=30, what="both nodes to lead partitions")
    assert nodes.leaders(1) == nodes.leaders(0)
    first.start_worker("e2eapp:app", name="w0")
    wait_until(lambda: "w0" in second.connected_workers(), what="w0 on node 1 too")
    tags = [f"k{i}" for i in range(12)]

    async def send() -> dict[str, str]:
        async with Client(second.ingress) as client:
            return {tag: await client.send("e2e/multistep", tag, idempotency_key=tag) for tag in tags}

    sent = asyncio.run(send())  # acknowledged: in the replicated log
    leaders = nodes.leaders(0)
    on_1 = [t for t, inv in sent.items() if leaders[ids.partition_of(inv, PARTITIONS)] == "node-1"]
    assert on_1, "no invocation on node 1's partitions"
    wait_until(lambda: any(f"{t}:step1:ack" in read_markers(nodes.root) for t in on_1), what="steps on node 1")
    assert second.runtime is not None
    killed = psutil.Process(second.runtime.pid)
    killed.kill()  # kill -9: its lease runs out, the controller gives its partitions to node 0
    start = time.monotonic()
    killed.wait(10)
    wait_until(lambda: set(nodes.leaders(0).values()) == {"node-0"} and len(nodes.leaders(0)) == PARTITIONS,
               timeout=30, interval=0.05, what="node 1's partitions to lead on node 0")
    failover = time.monotonic() - start
    print(f"failover: {failover:.2f} s")
    assert failover < 10, failover  # the figure itself is a benchmark (bench cluster); this bounds a hang

    assert attach_all(first.ingress, sent.values()) == [[f"s{i}" for i in range(5)]] * len(tags)
    rerun = rerun_acknowledged_steps(nodes.root, tags)
    assert not rerun, f"acknowledged steps ran again: {rerun}"


def test_an_unreachable_nats_is_one_line_naming_the_address(tmp_path: Path) -> None:
    dead = f"nats://127.0.0.1:{free_port()}"
    argv = serve_argv(tmp_path / "data", metrics="off", extra=["--cluster-nats", dead, "--cluster-node-id", "0"])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=_env({}))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and dead in lines[0], done.stderr


def test_a_paused_leader_changes_nothing_when_it_wakes(nodes: Nodes) -> None:
    """SIGSTOP node 1 until its partitions lead on node 0, then SIGCONT it: whatever it still
    appends carries its old epoch and is ignored on apply; it steps down; nothing runs twice."""
    first, second = nodes.start(0), nodes.start(1)
    wait_until(lambda: set(nodes.leaders(0).values()) == {"node-0", "node-1"} and len(nodes.leaders(0)) == PARTITIONS,
               timeout=30, what="both nodes to lead partitions")
    first.start_worker("e2eapp:app", name="w0")
    wait_until(lambda: "w0" in second.connected_workers(), what="w0 on node 1 too")
    tags = [f"p{i}" for i in range(12)]

    async def send() -> dict[str, str]:
        async with Client(first.ingress) as client:
            return {tag: await client.send("e2e/multistep", tag, idempotency_key=tag) for tag in tags}

    sent = asyncio.run(send())
    before = nodes.leaders(0)
    on_1 = [t for t, inv in sent.items() if before[ids.partition_of(inv, PARTITIONS)] == "node-1"]
    assert on_1
    wait_until(lambda: any(f"{t}:step1:ack" in read_markers(nodes.root) for t in on_1), what="steps on node 1")
    assert second.runtime is not None
    paused = psutil.Process(second.runtime.pid)
    paused.suspend()  # SIGSTOP
    try:
        wait_until(lambda: set(nodes.leaders(0).values()) == {"node-0"} and len(nodes.leaders(0)) == PARTITIONS,
                   timeout=30, interval=0.05, what="node 1's partitions to lead on node 0")
        moved = {p for p, n in before.items() if n == "node-1"}
        epochs = {p.partition: p.leader_epoch for p in first.list_partitions().partitions}
    finally:
        paused.resume()  # SIGCONT: it still believes it leads until it applies the newer epochs
    assert attach_all(first.ingress, sent.values()) == [[f"s{i}" for i in range(5)]] * len(tags)
    rerun = rerun_acknowledged_steps(nodes.root, tags)
    assert not rerun, f"acknowledged steps ran again: {rerun}"
    # The woken node leads none of the moved partitions with its old epoch: it stepped down (it may
    # lead some again later, given back by the controller with a newer epoch).
    def stepped_down() -> bool:
        try:
            mine = {p.partition: p.leader_epoch for p in second.list_partitions().partitions if p.leader}
        except grpc.RpcError:
            return False
        return all(p not in mine or mine[p] > epochs[p] for p in moved)

    wait_until(stepped_down, timeout=30, what="node 1 to step down")


def test_the_whole_cluster_restarts_and_every_partition_resumes(nodes: Nodes) -> None:
    first, second = nodes.start(0), nodes.start(1)
    wait_until(lambda: len(nodes.leaders(0)) == PARTITIONS, timeout=30, what="every partition led")
    first.start_worker("e2eapp:app", name="w0")
    wait_until(lambda: "w0" in second.connected_workers(), what="w0 on node 1 too")
    tags = [f"r{i}" for i in range(8)]

    async def send() -> dict[str, str]:
        async with Client(first.ingress) as client:
            return {tag: await client.send("e2e/multistep", tag, idempotency_key=tag) for tag in tags}

    sent = asyncio.run(send())
    wait_until(lambda: sum(f"{t}:step1:ack" in read_markers(nodes.root) for t in tags) >= 2, what="some steps")
    for n in (first, second):  # SIGTERM every node (the worker stays): nothing leads any more
        assert n.runtime is not None and n.runtime.terminate(timeout=30) == 0
    nodes.start(1)
    nodes.start(0)  # on the same ports: the worker reconnects
    wait_until(lambda: len(nodes.leaders(0)) == PARTITIONS, timeout=30, what="every partition led again")
    assert attach_all(first.ingress, sent.values()) == [[f"s{i}" for i in range(5)]] * len(tags)
    rerun = rerun_acknowledged_steps(nodes.root, tags)
    assert not rerun, f"acknowledged steps ran again: {rerun}"


def test_a_node_that_joins_takes_over_partitions_from_snapshots(nodes: Nodes) -> None:
    first = nodes.start(0)
    wait_until(lambda: set(nodes.leaders(0).values()) == {"node-0"} and len(nodes.leaders(0)) == PARTITIONS,
               timeout=30, what="node 0 to lead every partition")
    first.start_worker("e2eapp:app", name="w0")
    keys = [f"obj-{i}" for i in range(8)]

    async def fill() -> None:
        async with Client(first.ingress) as client:
            for round_ in range(4):
                for key in keys:
                    await client.call("e2eobj/append", f"v{round_}", key=key, timeout=30)

    asyncio.run(fill())
    # Every partition's log is trimmed below a snapshot: a new leader cannot replay from LSN 1.
    wait_until(lambda: all(p.trim_point > 0 for p in first.list_partitions().partitions), timeout=30,
               what="every log trimmed below a snapshot")
    second = nodes.start(1)
    wait_until(lambda: set(nodes.leaders(0).values()) == {"node-0", "node-1"}, timeout=30,
               what="node 1 to take over partitions")
    moved = sorted(p for p, n in nodes.leaders(0).items() if n == "node-1")
    assert moved
    log_text = (second.root / "runtime-1.log").read_text()
    assert all(f"partition {p}: restored the snapshot at LSN" in log_text for p in moved), log_text[-2000:]

    async def read() -> list[object]:
        out = []
        async with Client(second.ingress) as client:
            for key in keys:
                for tries in range(4):  # a read (a new invocation each time) caught by a partition move
                    try:
                        out.append(await client.call("e2eobj/items", key=key, timeout=15))
                        break
                    except RequestError as exc:
                        if exc.code not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE) \
                                or tries == 3:
                            raise
        return out

    assert asyncio.run(read()) == [[f"v{r}" for r in range(4)]] * len(keys)


def test_nats_servers_lost_and_back(tmp_path: Path) -> None:
    """One NATS server of three killed: invocations go on. Two of three: a new invocation is refused
    with UNAVAILABLE and none is half-written. Both back: the cluster recovers and everything acknowledged
    completes."""
    nats = LocalNatsCluster(tmp_path / "nats", 3)
    nats.start()
    nodes = Nodes(tmp_path, nats, 2, "natsloss")
    try:
        first, second = nodes.start(0), nodes.start(1)
        wait_until(lambda: len(nodes.leaders(0)) == PARTITIONS, timeout=30, what="every partition led")
        first.start_worker("e2eapp:app", name="w0")
        wait_until(lambda: "w0" in second.connected_workers(), what="w0 on node 1 too")

        async def send(tags: list[str]) -> dict[str, str]:
            out: dict[str, str] = {}
            async with Client(first.ingress) as client:
                for t in tags:
                    for _ in range(100):  # idempotent: sent again while a server's streams elect leaders
                        try:
                            out[t] = await client.send("e2e/multistep", t, idempotency_key=t)
                            break
                        except RequestError as exc:
                            if exc.code != grpc.StatusCode.UNAVAILABLE:
                                raise
                            await asyncio.sleep(0.2)
            return out

        sent = asyncio.run(send([f"a{i}" for i in range(6)]))
        nats.kill(0)
        sent |= asyncio.run(send([f"b{i}" for i in range(6)]))  # one of three gone: appends go on
        assert attach_all(first.ingress, sent.values()) == [[f"s{i}" for i in range(5)]] * len(sent)

        nats.kill(1)  # two of three gone: no quorum

        async def refused() -> str:
            async with Client(first.ingress, routing=False) as client:
                try:
                    await client.call("e2e/echo", 1, idempotency_key="during-the-outage", timeout=60)
                except RequestError as exc:
                    return exc.code.name
                return "accepted"

        assert asyncio.run(refused()) in ("UNAVAILABLE", "DEADLINE_EXCEEDED")
        nats.restart(0)
        nats.restart(1)
        later = asyncio.run(send([f"c{i}" for i in range(4)]))
        assert attach_all(first.ingress, later.values(), timeout=180) == [[f"s{i}" for i in range(5)]] * len(later)
        # The refused call left nothing half-written: it is either absent or ran once, whole.
        async def again() -> object:
            async with Client(first.ingress) as client:
                return await client.call("e2e/echo", 1, idempotency_key="during-the-outage", timeout=60)

        assert asyncio.run(again()) == 1
        rerun = rerun_acknowledged_steps(nodes.root, [*sent, *later])
        assert not rerun, f"acknowledged steps ran again: {rerun}"
    finally:
        nodes.stop()
        nats.stop()
