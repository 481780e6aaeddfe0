"""What the side-by-side systems share: free ports, process trees, temp dirs, waiting, measuring.

Every system is started on 127.0.0.1 on free ports, in a temp dir of its own; `System.close()`
kills each process tree it started (SIGTERM, then SIGKILL after a grace period) and removes the
temp dir. Nothing is downloaded: a missing piece raises `Unavailable` naming it and the install
command.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil

Request = Callable[[int], Awaitable[object]]

INSTALL_PY = "pip install -e '.[compare]'"


class Unavailable(RuntimeError):
    """A system cannot run here: the message names the missing piece and the install command."""


def require_modules(system: str, *modules: str, install: str = INSTALL_PY) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise Unavailable(f"{system}: Python package(s) {', '.join(missing)} not installed; install with: {install}")


def require_binary(system: str, what: str, candidates: list[str], install: str, env: str | None = None) -> str:
    """The first executable among env var `env`, then `candidates` (names on PATH or absolute paths)."""
    if env and os.environ.get(env):
        path = os.environ[env]
        if os.access(path, os.X_OK):
            return path
        raise Unavailable(f"{system}: {env}={path} is not an executable")
    for c in candidates:
        found = shutil.which(c) if os.sep not in c else (c if os.access(c, os.X_OK) else None)
        if found:
            return found
    raise Unavailable(f"{system}: executable {what!r} not found; install with: {install}"
                      + (f" (or set {env})" if env else ""))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None, log: Path | None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}" + _tail(log))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s" + _tail(log))


def wait_for_http(url: str, proc: subprocess.Popen[bytes] | None, log: Path | None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered" + _tail(log))
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback only
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer after {timeout:.0f} s" + _tail(log))


def _tail(log: Path | None, lines: int = 20) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- last lines of {log} ---\n" + "\n".join(text)


class System:
    """One system under test: its processes, a temp dir, and a client for the three workloads."""

    name = ""
    durability = ""  # the durability settings, stated in the output

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"endure-compare-{self.name}-"))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.versions: dict[str, str] = {}

    # -- lifecycle -------------------------------------------------------------------------------
    @staticmethod
    def check() -> None:
        """Raise Unavailable when something this system needs is not installed."""

    def start(self, concurrency: int) -> None:
        raise NotImplementedError

    async def client(self, workload: str, concurrency: int) -> tuple[Request, Callable[[], Awaitable[None]]]:
        """(request(i), close()) for the workload, i = client index."""
        raise NotImplementedError

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
              **kwargs: Any) -> subprocess.Popen[bytes]:
        log = self.dir / f"{name}.log"
        proc = subprocess.Popen(argv, stdout=open(log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
                                stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                                cwd=cwd or self.dir, start_new_session=True, **kwargs)
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> Path:
        return self.dir / f"{name}.log"

    def processes(self) -> dict[str, psutil.Process]:
        out = {}
        for name, proc in self.procs.items():
            if proc.poll() is None:
                try:
                    out[name] = psutil.Process(proc.pid)
                except psutil.NoSuchProcess:
                    pass
        return out

    def close(self) -> None:
        trees = []
        for proc in self.procs.values():
            try:
                root = psutil.Process(proc.pid)
                trees.append([root, *root.children(recursive=True)])
            except psutil.NoSuchProcess:
                continue
        for proc in reversed(list(self.procs.values())):  # workers first, then servers
            _signal_tree(proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for tree in trees:
            for p in tree:
                try:
                    p.kill()
                except psutil.NoSuchProcess:
                    pass
        for proc in self.procs.values():
            _signal_tree(proc, signal.SIGKILL)
            proc.wait()
        if os.environ.get("ENDURE_COMPARE_KEEP"):  # debugging: keep the logs
            print(f"compare: kept {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> System:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _signal_tree(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the process group (each process is started in a new session) and any stray children."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.send_signal(sig)
    except psutil.NoSuchProcess:
        pass


class TreeMeter:
    """CPU seconds and RSS of process trees (a process and its descendants, e.g. Postgres backends)."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        self.procs = procs
        self._start = {name: self._cpu_by_pid(p) for name, p in procs.items()}
        self._t0 = time.monotonic()

    def _tree(self, p: psutil.Process) -> list[psutil.Process]:
        """p and its descendants, less the trees of the other measured processes (the load generator
        is the parent of the systems' processes but is measured on its own)."""
        try:
            tree = [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        others = {q.pid for q in self.procs.values() if q.pid != p.pid}
        skip: set[int] = set()
        for q in tree:
            if q.pid in others:
                try:
                    skip |= {q.pid, *(c.pid for c in q.children(recursive=True))}
                except psutil.NoSuchProcess:
                    skip.add(q.pid)
        return [q for q in tree if q.pid not in skip]

    def _cpu_by_pid(self, p: psutil.Process) -> dict[int, float]:
        out = {}
        for q in self._tree(p):
            try:
                t = q.cpu_times()
                out[q.pid] = t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return out

    def stop(self) -> dict[str, dict[str, float]]:
        elapsed = time.monotonic() - self._t0
        out = {}
        for name, p in self.procs.items():
            tree = self._tree(p)
            if not tree:
                continue
            cpu = 0.0
            rss = pss = 0
            for q in tree:
                try:
                    t = q.cpu_times()
                    cpu += t.user + t.system - self._start[name].get(q.pid, 0.0)
                    mem = q.memory_full_info()
                    rss += mem.rss
                    pss += getattr(mem, "pss", mem.rss)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            # rss_mb: summed RSS (counts shared memory once per process: overstates Postgres);
            # pss_mb: summed proportional set size (shared pages split between their users).
            out[name] = {"cpu_s": round(cpu, 3), "cpu_pct": round(100 * cpu / elapsed, 1),
                         "rss_mb": round(rss / 2**20, 1), "pss_mb": round(pss / 2**20, 1),
                         "processes": len(tree)}
        return out
