"""Start a runtime and workers as separate processes for a benchmark (through the one launcher,
`endure.runtime.launcher`), and measure them."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import grpc
import psutil

from endure.proto import admin_pb2 as apb
from endure.proto import admin_pb2_grpc as apb_grpc
from endure.runtime.launcher import Child, Launcher, RuntimeChild, serve_argv, worker_argv


def wait_for_workers(admin: str, count: int, timeout: float = 60.0) -> None:
    """Until the node at `admin` lists `count` connected workers."""
    channel = grpc.insecure_channel(admin)
    stub = apb_grpc.AdminStub(channel)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                resp = stub.ListServices(apb.ListServicesRequest(), timeout=5)
                if len({w.worker_id for s in resp.services for w in s.workers}) >= count:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.05)
    finally:
        channel.close()
    raise RuntimeError(f"{count} workers did not connect to {admin}")


class BenchCluster:
    """A runtime on free loopback ports plus workers; everything is killed and removed on close."""

    def __init__(self, partitions: int = 4, workers: int = 1, app: str = "endure.bench.apps:app",
                 concurrency: int = 256, runtime_args: list[str] | None = None, nodes: int = 1) -> None:
        self.nodes = nodes  # `endure serve --processes nodes`: a supervisor and that many node processes
        self.runtime_args = ["--processes", str(nodes), *(runtime_args or [])]
        self.dir = Path(tempfile.mkdtemp(prefix="endure-bench-"))
        self.partitions = partitions
        self.app = app
        self.worker_count = workers
        self.worker_concurrency = concurrency
        self.launcher = Launcher(log_dir=self.dir)
        self.runtime: RuntimeChild | None = None
        self.workers: list[Child] = []
        self.ingress = ""
        self.admin = ""

    def start_runtime(self) -> None:
        # A restart reuses the first start's ports, so clients and workers reconnect.
        self.runtime = self.launcher.start_runtime(serve_argv(
            self.dir / "data", partitions=self.partitions, ingress=self.ingress or "127.0.0.1:0",
            admin=self.admin or "127.0.0.1:0", log_level="WARNING", extra=self.runtime_args))
        self.ingress, self.admin = self.runtime.ready.ingress, self.runtime.ready.admin

    def start_worker(self) -> Child:
        name = f"bench-{len(self.workers) + 1}"
        argv = worker_argv(self.app, self.admin, name=name, concurrency=self.worker_concurrency, log_level="WARNING")
        proc = self.launcher.start_worker(argv, name=name, log_path=self.dir / f"worker{len(self.workers) + 1}.log",
                                          keep_lines=False)
        self.workers.append(proc)
        self.wait_for_workers(sum(1 for w in self.workers if w.alive()))
        return proc

    def start(self) -> BenchCluster:
        self.start_runtime()
        for _ in range(self.worker_count):
            self.start_worker()
        for node in range(1, self.nodes):  # workers learn the other nodes when they register on node 0
            self.wait_for_workers(self.worker_count, admin=self._node_admin(node))
        return self

    def _node_admin(self, node: int, timeout: float = 60.0) -> str:
        path = self.dir / "data" / "nodes" / str(node) / "endpoint"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and (address := path.read_text().strip()):
                return address
            time.sleep(0.05)
        raise RuntimeError(f"node {node} published no endpoint")

    def wait_for_workers(self, count: int, timeout: float = 60.0, admin: str | None = None) -> None:
        wait_for_workers(admin or self.admin, count, timeout)

    def processes(self) -> dict[str, psutil.Process]:
        out = {}
        if self.runtime is not None and self.runtime.alive():
            out["runtime"] = psutil.Process(self.runtime.pid)
            for child in out["runtime"].children() if self.nodes > 1 else []:
                argv = child.cmdline()
                if "--node-id" in argv:
                    out[f"node{argv[argv.index('--node-id') + 1]}"] = child
        for i, w in enumerate(self.workers):
            if w.alive():
                out[f"worker{i + 1}"] = psutil.Process(w.pid)
        return out

    def close(self) -> None:
        self.launcher.stop(grace=None)  # kill -9: only the measurements matter, not a clean stop
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> BenchCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class CpuMeter:
    """CPU seconds and peak RSS of processes over a measured window."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        self.procs = procs
        self._start = {name: p.cpu_times() for name, p in procs.items()}
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, dict[str, float]]:
        elapsed = time.monotonic() - self._t0
        out = {}
        for name, p in self.procs.items():
            try:
                now = p.cpu_times()
                rss = p.memory_info().rss
            except psutil.NoSuchProcess:
                continue
            before = self._start[name]
            cpu = (now.user - before.user) + (now.system - before.system)
            out[name] = {"cpu_s": round(cpu, 3), "cpu_pct": round(100 * cpu / elapsed, 1),
                         "rss_mb": round(rss / 2**20, 1)}
        return out


class ClusterNodes:
    """Endure cluster nodes (`endure serve --cluster-nats ... --cluster-node-id i`, one process
    each, its own data dir) on a running NATS JetStream cluster, named `name` (its streams and
    bucket), plus workers; all on free loopback ports, killed and removed on close."""

    def __init__(self, nats_urls: list[str], name: str, partitions: int, root: Path | None = None) -> None:
        self.name = name
        self.partitions = partitions
        self.dir = Path(tempfile.mkdtemp(prefix=f"endure-{name}-", dir=root))
        env = {**os.environ, "ENDURE_CLUSTER_NAME": name}
        env.pop("ENDURE_PROCESSES", None)
        self.nats = ",".join(nats_urls)
        self.launcher = Launcher(env=env, log_dir=self.dir)
        self.nodes: dict[int, RuntimeChild] = {}
        self.workers: list[Child] = []

    def start_node(self, node: int) -> RuntimeChild:
        argv = serve_argv(self.dir / f"n{node}", partitions=self.partitions, log_level="WARNING",
                          extra=["--cluster-nats", self.nats, "--cluster-node-id", str(node)])
        self.nodes[node] = self.launcher.start_runtime(argv, name=f"node{node}")
        return self.nodes[node]

    def admin(self, node: int) -> str:
        return self.nodes[node].ready.admin

    def ingress(self, node: int) -> str:
        return self.nodes[node].ready.ingress

    def leaders(self, via: int, timeout: float = 5.0) -> dict[int, str]:
        """partition -> the node leading it ("node-N"), as node `via` lists them; {} if it cannot say."""
        channel = grpc.insecure_channel(self.admin(via))
        try:
            resp = apb_grpc.AdminStub(channel).ListPartitions(apb.ListPartitionsRequest(), timeout=timeout)
        except grpc.RpcError:
            return {}
        finally:
            channel.close()
        return {p.partition: p.node for p in resp.partitions if p.leader}

    def wait_balanced(self, timeout: float = 60.0) -> dict[int, str]:
        """Until every partition is led and the live nodes lead within one of each other."""
        want = min(len(self.nodes), self.partitions)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leaders = self.leaders(min(self.nodes))
            counts = [list(leaders.values()).count(f"node-{n}") for n in self.nodes]
            if len(leaders) == self.partitions and sum(c > 0 for c in counts) >= want and max(counts) - min(counts) <= 1:
                return leaders
            time.sleep(0.05)  # polling other processes' state
        raise RuntimeError(f"cluster {self.name}: partitions not led by every node in {timeout:g} s")

    def start_worker(self, app: str = "endure.bench.apps:app", concurrency: int = 256, via: int = 0) -> Child:
        """A worker registered on node `via`'s admin; returns once every node lists it (it learns
        the other nodes at registration)."""
        name = f"bench-{len(self.workers) + 1}"
        argv = worker_argv(app, self.admin(via), name=name, concurrency=concurrency, log_level="WARNING")
        proc = self.launcher.start_worker(argv, name=name, keep_lines=False)
        self.workers.append(proc)
        for node in self.nodes:
            wait_for_workers(self.admin(node), len(self.workers))
        return proc

    def processes(self) -> dict[str, psutil.Process]:
        out = {f"node{n}": psutil.Process(c.pid) for n, c in sorted(self.nodes.items()) if c.alive()}
        for i, w in enumerate(self.workers):
            if w.alive():
                out[f"worker{i + 1}"] = psutil.Process(w.pid)
        return out

    def close(self) -> None:
        self.launcher.stop(grace=None)  # kill -9: only the measurements matter, not a clean stop
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> ClusterNodes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
