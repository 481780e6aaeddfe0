"""Prometheus metrics of a worker process (`--metrics HOST:PORT`); free when not enabled.

Until `enable()` is called every hook is a no-op, so handlers pay nothing for metrics nobody
scrapes.
"""

from __future__ import annotations

from typing import Any


class _Off:
    def finished(self, service: str, handler: str, outcome: str) -> None:
        pass

    def step(self, seconds: float) -> None:
        pass

    def sandbox_run(self, kind: str, limit_hit: str | None) -> None:
        pass


class _On(_Off):
    def __init__(self, address: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

        self.registry = CollectorRegistry()
        self._finished = Counter("endure_worker_attempts", "Attempts that ended on this worker",
                                 ["service", "handler", "outcome"], registry=self.registry)
        self._step = Histogram("endure_worker_step_seconds", "ctx.run steps: start to durable ack",
                               buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300),
                               registry=self.registry)
        self._sandbox = Counter("endure_worker_sandbox_runs", "Sandboxed runs by guest and limit hit",
                                ["guest", "limit_hit"], registry=self.registry)
        host, _, port = address.rpartition(":")
        self.server, _thread = start_http_server(int(port), addr=host, registry=self.registry)
        self.port = int(self.server.server_port)

    def finished(self, service: str, handler: str, outcome: str) -> None:
        self._finished.labels(service, handler, outcome).inc()

    def step(self, seconds: float) -> None:
        self._step.observe(seconds)

    def sandbox_run(self, kind: str, limit_hit: str | None) -> None:
        self._sandbox.labels(kind, limit_hit or "none").inc()


METRICS: Any = _Off()


def enable(address: str) -> int:
    """Serve /metrics on address; returns the bound port."""
    global METRICS
    METRICS = _On(address)
    return int(METRICS.port)
