"""Restate: `restate-server` (the npm package's binary) + the handlers on Restate's Python SDK.

Server: one restate-server node with its defaults (all roles, 24 partitions, replicated loglet
on the local log-server, RocksDB WAL fsync on: `rocksdb-disable-wal-fsync = false`), telemetry
off, on free 127.0.0.1 ports. Service: `restate_app` on hypercorn (HTTP/2, one process, uvloop),
registered through the admin API. Client: the SDK's HTTP/2 ingress client (httpx).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable

from endure.bench.compare.common import (
    INSTALL_PY,
    Request,
    System,
    Unavailable,
    free_port,
    require_binary,
    require_modules,
    wait_for_http,
    wait_for_port,
)

SERVER_INSTALL = "npm install -g @restatedev/restate-server@1.7.12"


def server_binary() -> str:
    """The native binary (not the node wrapper) when the npm package is installed globally."""
    candidates = []
    try:
        root = subprocess.run(["npm", "root", "-g"], capture_output=True, text=True, timeout=10,
                              check=False).stdout.strip()
    except OSError:
        root = ""
    if root:
        base = f"{root}/@restatedev/restate-server"
        candidates += [f"{base}/node_modules/@restatedev/restate-server-linux-x64/bin/restate-server",
                       f"{base}/node_modules/@restatedev/restate-server-linux-arm64/bin/restate-server",
                       f"{root}/@restatedev/restate-server-linux-x64/bin/restate-server"]
    return require_binary("restate", "restate-server", [*candidates, "restate-server"], SERVER_INSTALL,
                          env="ENDURE_RESTATE_SERVER")


class RestateSystem(System):
    name = "restate"
    durability = ("restate-server defaults: replicated loglet on the local log-server and partition "
                  "store in RocksDB with WAL fsync on (rocksdb-disable-wal-fsync=false), 24 partitions")

    @staticmethod
    def check() -> None:
        require_modules("restate", "restate", "hypercorn", "httpx", "h2", install=INSTALL_PY)
        server_binary()

    def start(self, concurrency: int) -> None:
        binary = server_binary()
        self.versions["restate-server"] = subprocess.run([binary, "--version"], capture_output=True, text=True,
                                                         timeout=30, check=False).stdout.strip()
        from importlib.metadata import version

        self.versions["restate-sdk"] = version("restate-sdk")
        self.ingress_port, self.admin_port, fabric, svc = (free_port() for _ in range(4))
        env = {"RESTATE_INGRESS__BIND_PORT": str(self.ingress_port),
               "RESTATE_ADMIN__BIND_PORT": str(self.admin_port),
               "RESTATE_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "RESTATE_LOG_FILTER": "warn",
               "RESTATE_WORKER__INVOKER__CONCURRENT_INVOCATIONS_LIMIT": str(max(1000, concurrency))}
        server = self.spawn("restate-server", [binary, "--no-logo", "--listen-mode", "tcp", "--bind-ip", "127.0.0.1",
                                               "--bind-port", str(fabric), "--node-name", "bench",
                                               "--base-dir", str(self.dir / "data")], env=env)
        service = self.spawn("service", [sys.executable, "-m", "endure.bench.compare.restate_app", "--port", str(svc)])
        wait_for_http(f"http://127.0.0.1:{self.admin_port}/health", server, self.log("restate-server"))
        wait_for_port(svc, service, self.log("service"))
        body = json.dumps({"uri": f"http://127.0.0.1:{svc}", "force": True}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}/deployments", data=body,
                                     headers={"content-type": "application/json"}, method="POST")
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback only
                    resp.read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        wait_for_http(f"http://127.0.0.1:{self.ingress_port}/restate/health", server, self.log("restate-server"))

    async def client(self, workload: str, concurrency: int) -> tuple[Request, Callable[[], Awaitable[None]]]:
        import os

        import httpx
        from restate.client import Client

        from endure.bench.compare import restate_app as h

        http2 = os.environ.get("ENDURE_COMPARE_HTTP2", "1") == "1"
        https = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.ingress_port}", http2=http2, timeout=60,
                                   limits=httpx.Limits(max_connections=None, max_keepalive_connections=None))
                 for _ in range(max(1, min(8, concurrency // 16)))]
        clients = [Client(c) for c in https]

        if workload == "noop":
            async def request(i: int) -> object:
                return await clients[i % len(clients)].service_call(h.noop, 1)
        elif workload == "steps3":
            async def request(i: int) -> object:
                return await clients[i % len(clients)].service_call(h.steps3, 1)
        elif workload == "counter":
            async def request(i: int) -> object:
                return await clients[i % len(clients)].object_call(h.add, f"k{i}", 1)
        else:
            raise Unavailable(f"restate: unknown workload {workload}")

        deadline = time.monotonic() + 60  # the first calls may fail while partitions come up
        while True:
            try:
                await request(0)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                import asyncio

                await asyncio.sleep(0.2)

        async def close() -> None:
            for c in https:
                await c.aclose()

        return request, close
