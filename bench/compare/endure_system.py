"""Endure: a runtime process + one worker process (bench/apps.py), driven through the gRPC client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from endure.bench.compare.common import Request, System, Unavailable
from endure.bench.procs import BenchCluster

TARGETS = {"noop": ("bench/noop", False), "steps3": ("bench/steps3", False), "counter": ("counter/add", True)}


class EndureSystem(System):
    name = "endure"
    durability = "log appends in RocksDB WriteBatches with sync=True (fsync before a step's ack), 4 partitions"

    def start(self, concurrency: int) -> None:
        from importlib.metadata import version

        from endure.runtime.supervisor import resolve_processes

        self.versions["endure"] = version("endure")
        # What `endure serve` does by default: one node per core (at most one per partition).
        nodes = resolve_processes("auto", 4)
        self.versions["endure nodes"] = str(nodes)
        self.cluster = BenchCluster(partitions=4, concurrency=max(64, concurrency), nodes=nodes).start()

    def processes(self) -> dict:  # type: ignore[type-arg]
        return self.cluster.processes()

    async def client(self, workload: str, concurrency: int) -> tuple[Request, Callable[[], Awaitable[None]]]:
        from endure.sdk.client import Client

        if workload not in TARGETS:
            raise Unavailable(f"endure: unknown workload {workload}")
        target, keyed = TARGETS[workload]
        clients = [Client(self.cluster.ingress) for _ in range(max(1, min(8, concurrency // 16)))]

        async def request(i: int) -> object:
            return await clients[i % len(clients)].call(target, 1, key=f"k{i}" if keyed else None)

        async def close() -> None:
            for c in clients:
                await c.close()

        return request, close

    def close(self) -> None:
        cluster = getattr(self, "cluster", None)
        if cluster is not None:
            cluster.close()
        super().close()
