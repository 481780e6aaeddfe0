"""Real processes for integration tests: an `endure serve` runtime and `endure.sdk.worker` workers.

Every process binds 127.0.0.1 on a free port (port 0, read back from the runtime's ready line),
is killed at the end of the test, and lives in the test's own temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

from endure.proto import admin_pb2 as apb
from endure.proto import admin_pb2_grpc as apb_grpc
from endure.runtime.ready import ReadyLine

APPS_DIR = Path(__file__).resolve().parent / "apps"
_READY = re.compile(r"endure: ready ")


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(APPS_DIR), env.get("PYTHONPATH", "")])
    env.setdefault("ENDURE_LOG_LEVEL", "INFO")
    env.update(extra or {})
    return env


class Proc:
    """A child process whose output is kept (for failure messages) and which is always reaped."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log, env=env)
        self.lines: list[str] = []
        self._line_event = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            line = raw.decode(errors="replace")
            self._log.write(raw)
            self._log.flush()
            with self._line_event:
                self.lines.append(line)
                self._line_event.notify_all()

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._line_event:
            while True:
                for line in self.lines[seen:]:
                    match = pattern.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                if self.popen.poll() is not None:
                    raise RuntimeError(f"process exited ({self.popen.returncode}); log:\n{self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no line matching {pattern.pattern!r}; log:\n{self.tail()}")
                self._line_event.wait(min(left, 0.5))

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=30)

    def terminate(self, timeout: float = 30.0) -> int:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return -9

    def stop(self) -> None:
        self.kill9()
        self._reader.join(timeout=5)
        self._log.close()


class Cluster:
    """One runtime (restartable on the same data dir) and any number of workers."""

    def __init__(self, root: Path, partitions: int = 2, env: dict[str, str] | None = None,
                 admin_token: str | None = None) -> None:
        self.admin_metadata = (("authorization", f"Bearer {admin_token}"),) if admin_token else ()
        self.root = root
        self.data_dir = root / "data"
        self.partitions = partitions
        self.env = _env(env)
        self.runtime: Proc | None = None
        self.workers: list[Proc] = []
        self.ingress = ""
        self.admin = ""
        self._restarts = 0

    def start_runtime(self, extra_args: list[str] | None = None) -> Proc:
        # The first start picks free ports; restarts reuse them so clients and workers reconnect.
        ingress = self.ingress or "127.0.0.1:0"
        admin = self.admin or "127.0.0.1:0"
        self._restarts += 1
        args = [sys.executable, "-m", "endure.runtime.cli", "serve", "--data-dir", str(self.data_dir),
                "--partitions", str(self.partitions), "--ingress", ingress, "--admin", admin, "--metrics", "127.0.0.1:0", *(extra_args or [])]
        proc = Proc(args, self.root / f"runtime-{self._restarts}.log", self.env)
        ready = ReadyLine.parse(proc.wait_for_line(_READY).string)
        assert ready is not None
        self.ingress, self.admin, self.metrics = ready.ingress, ready.admin, ready.metrics
        self.runtime = proc
        return proc

    def start_worker(self, app: str, concurrency: int = 64, name: str | None = None,
                     extra_args: list[str] | None = None) -> Proc:
        name = name or f"worker-{len(self.workers) + 1}"
        args = [sys.executable, "-m", "endure.sdk.worker", app, "--runtime", self.admin,
                "--concurrency", str(concurrency), "--name", name, *(extra_args or [])]
        proc = Proc(args, self.root / f"{name}.log", self.env)
        self.workers.append(proc)
        self.wait_for_workers(sum(1 for w in self.workers if w.alive()))
        return proc

    def admin_stub(self) -> tuple[grpc.Channel, apb_grpc.AdminStub]:
        channel = grpc.insecure_channel(self.admin)
        return channel, apb_grpc.AdminStub(channel)

    def connected_workers(self) -> set[str]:
        channel, stub = self.admin_stub()
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


@contextlib.contextmanager
def running_cluster(root: Path, app: str) -> Iterator[Cluster]:
    """A runtime and one worker ("w1") serving app, with ENDURE_TEST_DIR=root; stopped on exit."""
    c = Cluster(root, env={"ENDURE_TEST_DIR": str(root)})
    try:
        c.start_runtime()
        c.start_worker(app, name="w1")
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


def read_markers(root: Path) -> list[str]:
    path = root / "markers.txt"
    return path.read_text().split("\n") if path.exists() else []


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


def admin_call(cluster: Cluster, method: str, invocation_id: str) -> None:
    channel, stub = cluster.admin_stub()
    try:
        getattr(stub, method)(apb.InvocationRef(invocation_id=invocation_id), timeout=10)
    finally:
        channel.close()
