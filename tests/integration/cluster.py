"""Real processes for integration tests: an `endure serve` runtime and `endure worker` workers,
started through the one launcher (`endure.runtime.launcher`), so they die with the test process.

Every process binds 127.0.0.1 on a free port (port 0, read back from the runtime's ready line),
is killed at the end of the test, and lives in the test's own temporary folder. On top of the
launcher this keeps test conveniences: each child's output in a log file for failure messages,
and admin-client helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import grpc

from endure.proto import admin_pb2 as apb
from endure.proto import admin_pb2_grpc as apb_grpc
from endure.runtime.launcher import Child, RuntimeChild, serve_argv, worker_argv

APPS_DIR = Path(__file__).resolve().parent / "apps"


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(APPS_DIR), env.get("PYTHONPATH", "")])
    env.setdefault("ENDURE_LOG_LEVEL", "INFO")
    env.update(extra or {})
    return env


class Proc(Child):
    """A launcher child whose stdout and stderr go to log_path (for failure messages); always reaped."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str]) -> None:
        super().__init__(log_path.stem, args, env=env, log_path=log_path)

    def kill9(self) -> None:
        self.kill()

    def stop(self) -> None:
        self.close()


class RuntimeProc(RuntimeChild, Proc):
    """The runtime: a Proc that also knows its ready line."""


class Cluster:
    """One runtime (restartable on the same data dir) and any number of workers.

    processes > 1: the runtime is `endure serve --processes N` (a supervisor and N node processes);
    `admin` is node 0's, `node_admin(i)` node i's (read from its published endpoint file)."""

    def __init__(self, root: Path, partitions: int = 2, env: dict[str, str] | None = None,
                 admin_token: str | None = None, processes: int = 1, console: bool = False) -> None:
        self.processes = processes
        self.serve_console = console  # start the web console (on a free port; `console` is its address)
        self.admin_metadata = (("authorization", f"Bearer {admin_token}"),) if admin_token else ()
        self.root = root
        self.data_dir = root / "data"
        self.partitions = partitions
        self.env = _env(env)
        self.runtime: RuntimeProc | None = None
        self.workers: list[Proc] = []
        self.ingress = ""
        self.admin = ""
        self.metrics = ""
        self.console = ""
        self._restarts = 0

    def start_runtime(self, extra_args: list[str] | None = None) -> RuntimeProc:
        # The first start picks free ports; restarts reuse them so clients and workers reconnect.
        self._restarts += 1
        extra = ["--processes", str(self.processes), *(extra_args or [])]
        console = (self.console or "127.0.0.1:0") if self.serve_console else "off"
        args = serve_argv(self.data_dir, partitions=self.partitions, ingress=self.ingress or "127.0.0.1:0",
                          admin=self.admin or "127.0.0.1:0", metrics="127.0.0.1:0", console=console, extra=extra)
        proc = RuntimeProc(args, self.root / f"runtime-{self._restarts}.log", self.env)
        try:
            ready = proc.wait_ready()
        except BaseException:
            proc.stop()
            raise
        self.ingress, self.admin, self.metrics, self.console = ready.ingress, ready.admin, ready.metrics, ready.console
        self.runtime = proc
        return proc

    def start_worker(self, app: str, concurrency: int = 64, name: str | None = None,
                     extra_args: list[str] | None = None, node: int | None = None,
                     env: dict[str, str] | None = None) -> Proc:
        """`endure worker APP` against this runtime (node `node`'s admin if given), with env added
        to the cluster's; returns once that admin lists it."""
        name = name or f"worker-{len(self.workers) + 1}"
        admin = self.admin if node is None else self.node_admin(node)
        args = worker_argv(app, admin, concurrency=concurrency, name=name, extra=extra_args or [])
        proc = Proc(args, self.root / f"{name}.log", {**self.env, **(env or {})})
        self.workers.append(proc)
        if node is None:
            self.wait_for_workers(sum(1 for w in self.workers if w.alive()))
        else:
            def connected() -> bool:
                try:
                    return name in self.connected_workers(admin)
                except grpc.RpcError:
                    return False

            wait_until(connected, what=f"{name} on node {node}")
        return proc

    def node_admin(self, node: int, timeout: float = 30.0) -> str:
        """Node `node`'s admin address, as it publishes it (processes > 1)."""
        path = self.data_dir / "nodes" / str(node) / "endpoint"
        return str(wait_until(lambda: path.exists() and path.read_text().strip(), timeout,
                              what=f"{path} to be published"))

    def node_ingress(self, node: int, timeout: float = 30.0) -> str:
        """An ingress address of node `node` alone (processes > 1; the shared port reaches any node)."""
        path = self.data_dir / "nodes" / str(node) / "ingress"
        return str(wait_until(lambda: path.exists() and path.read_text().strip(), timeout,
                              what=f"{path} to be published"))

    def node_metrics(self, node: int, timeout: float = 30.0) -> str:
        """Node `node`'s Prometheus endpoint, as it publishes it (processes > 1)."""
        path = self.data_dir / "nodes" / str(node) / "metrics"
        return str(wait_until(lambda: path.exists() and path.read_text().strip(), timeout,
                              what=f"{path} to be published"))

    def forwarded(self, node: int) -> dict[str, float]:
        """Node `node`'s `endure_ingress_forwarded_total` by RPC: requests its ingress took for a
        partition another node owns (processes > 1)."""
        return scrape(self.node_metrics(node), "endure_ingress_forwarded_total", "rpc")

    def node_pids(self) -> list[int]:
        """The pids of the supervisor's node processes (processes > 1)."""
        import psutil

        assert self.runtime is not None
        return [p.pid for p in psutil.Process(self.runtime.pid).children() if "--node-id" in p.cmdline()]

    def node_pid(self, node: int) -> int:
        """The pid of node `node` (processes > 1)."""
        import psutil

        assert self.runtime is not None
        for proc in psutil.Process(self.runtime.pid).children():
            argv = proc.cmdline()
            if "--node-id" in argv and argv[argv.index("--node-id") + 1] == str(node):
                return int(proc.pid)
        raise LookupError(f"node {node} is not running")

    def admin_stub(self, admin: str | None = None) -> tuple[grpc.Channel, apb_grpc.AdminStub]:
        channel = grpc.insecure_channel(admin or self.admin)
        return channel, apb_grpc.AdminStub(channel)

    def list_partitions(self, admin: str | None = None) -> apb.ListPartitionsResponse:
        channel, stub = self.admin_stub(admin)
        try:
            return stub.ListPartitions(apb.ListPartitionsRequest(), timeout=10, metadata=self.admin_metadata)
        finally:
            channel.close()

    def connected_workers(self, admin: str | None = None) -> set[str]:
        channel, stub = self.admin_stub(admin)
        try:
            resp = stub.ListServices(apb.ListServicesRequest(), timeout=10, metadata=self.admin_metadata)
        finally:
            channel.close()
        return {w.name for s in resp.services for w in s.workers}

    def wait_for_workers(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if len(self.connected_workers()) >= count:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                logs = "\n".join(w.tail(20) for w in self.workers)
                raise TimeoutError(f"{count} workers did not connect; logs:\n{logs}")
            time.sleep(0.05)  # polling an external process's readiness, not a race

    def describe(self, invocation_id: str) -> apb.InvocationDescription:
        channel, stub = self.admin_stub()
        try:
            return stub.DescribeInvocation(apb.InvocationRef(invocation_id=invocation_id), timeout=10,
                                           metadata=self.admin_metadata)
        finally:
            channel.close()

    def stop(self) -> None:
        for proc in [*self.workers, *([self.runtime] if self.runtime else [])]:
            proc.stop()


# ---------------------------------------------------------------------- helpers for the e2e matrix


def scrape(address: str, name: str, label: str) -> dict[str, float]:
    """The samples of one metric at a Prometheus endpoint, by the value of one label."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {s.labels[label]: s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name}


@contextlib.contextmanager
def running_cluster(root: Path, app: str, processes: int = 1, partitions: int = 2) -> Iterator[Cluster]:
    """A runtime (with `processes` node processes) and one worker ("w1") serving app, with
    ENDURE_TEST_DIR=root; stopped on exit. With several nodes the worker is started against node 0
    and returned once every node lists it (it learns the others from its registration)."""
    c = Cluster(root, partitions=partitions, env={"ENDURE_TEST_DIR": str(root)}, processes=processes)
    try:
        c.start_runtime()
        c.start_worker(app, name="w1")
        for node in range(1, processes):
            admin = c.node_admin(node)
            wait_until(lambda a=admin: "w1" in c.connected_workers(a), what=f"w1 on node {node}")
        yield c
    finally:
        c.stop()


def wait_until(predicate, timeout: float = 60.0, what: str = "condition", interval: float = 0.02):  # noqa: ANN001, ANN201
    """Poll another process's observable state until predicate() is truthy (returns its value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_entry(cluster: Cluster, inv: str, kind: str, name: str | None = None, timeout: float = 60.0) -> int:
    """Index of the first journal entry of that kind (and name), once it is durable."""

    def find() -> int | None:
        for i, entry in enumerate(cluster.describe(inv).journal):
            if entry.WhichOneof("kind") == kind and (name is None or entry.name == name):
                return i + 1
        return None

    return wait_until(find, timeout, f"a {kind} entry {name or ''} in {inv}") - 1


def attach_all(ingress: str, invocation_ids: Iterable[str], timeout: float = 120.0) -> list[object]:
    """The results of these invocations, waited for together through a client of ingress (retrying
    UNAVAILABLE until the timeout)."""
    from endure.sdk.client import Client, RequestError

    async def one(client: Client, inv: str) -> object:
        deadline = time.monotonic() + timeout
        while True:  # UNAVAILABLE is what a client retries: a leader moving, the log without quorum
            try:
                return await client.attach(inv, timeout=max(1.0, deadline - time.monotonic()))
            except RequestError as exc:
                if exc.code != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.2)

    async def run() -> list[object]:
        async with Client(ingress) as client:
            return list(await asyncio.gather(*(one(client, inv) for inv in invocation_ids)))

    return asyncio.run(run())


def read_markers(root: Path) -> list[str]:
    path = root / "markers.txt"
    return path.read_text().split("\n") if path.exists() else []


def rerun_acknowledged_steps(root: Path, tags: Iterable[str], steps: int = 5) -> list[str]:
    """The `e2e/multistep` steps (as "tag:stepN") that started again after their result was
    acknowledged, from the `start`/`ack` markers that handler writes under root."""
    markers = read_markers(root)
    rerun = []
    for tag in tags:
        for i in range(steps):
            seen = [m for m in markers if m.startswith(f"{tag}:step{i}:")]
            first_ack = seen.index(f"{tag}:step{i}:ack")
            if f"{tag}:step{i}:start" in seen[first_ack:]:
                rerun.append(f"{tag}:step{i}")
    return rerun


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def list_services(cluster: Cluster) -> apb.ListServicesResponse:
    channel, stub = cluster.admin_stub()
    try:
        return stub.ListServices(apb.ListServicesRequest(), timeout=10)
    finally:
        channel.close()


def get_limits(cluster: Cluster) -> apb.LimitsResponse:
    channel, stub = cluster.admin_stub()
    try:
        return stub.GetLimits(apb.GetLimitsRequest(), timeout=10, metadata=cluster.admin_metadata)
    finally:
        channel.close()


def admin_call(cluster: Cluster, method: str, invocation_id: str) -> None:
    channel, stub = cluster.admin_stub()
    try:
        getattr(stub, method)(apb.InvocationRef(invocation_id=invocation_id), timeout=10)
    finally:
        channel.close()
