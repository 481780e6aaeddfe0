"""Prometheus metrics of a runtime node, served over HTTP (`metrics` setting, /metrics).

Most figures are read from the node's parts when Prometheus scrapes (no cost on the hot path);
only latencies and batch sizes are observed as they happen.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from endure.proto import records_pb2 as pb

if TYPE_CHECKING:
    from endure.runtime.node import Node

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.finished = Counter("endure_invocations_finished", "Invocations that reached a final status",
                                ["status", "outcome"], registry=self.registry)
        self.duration = Histogram("endure_invocation_duration_seconds", "Accepted to finished, end to end",
                                  buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.log_append = Histogram("endure_log_batch_sync_seconds", "Group-committed log batch: hand-off to fsynced",
                                    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1),
                                    registry=self.registry)
        self.log_batch = Histogram("endure_log_batch_records", "Records per group-committed log batch",
                                   buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
                                   registry=self.registry)
        self._server: Any = None
        self._finished_children: dict[tuple[int, str], Any] = {}

    def observe_finished(self, status: pb.InvocationStatus) -> None:
        outcome = "ok" if status.WhichOneof("result") == "value" else "failed"
        child = self._finished_children.get((status.status, outcome))
        if child is None:
            child = self._finished_children[(status.status, outcome)] = self.finished.labels(
                pb.Status.Name(status.status).lower(), outcome)
        child.inc()
        if status.completed_at_ms and status.created_at_ms:
            self.duration.observe(max(0.0, (status.completed_at_ms - status.created_at_ms) / 1000))

    def observe_log_batch(self, records: int, seconds: float) -> None:
        self.log_batch.observe(records)
        self.log_append.observe(seconds)

    def attach(self, node: Node) -> None:
        self.registry.register(_NodeCollector(node))

    def serve(self, address: str) -> int:
        host, _, port = address.rpartition(":")
        self._server, _thread = start_http_server(int(port), addr=host, registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class _NodeCollector(Collector):
    """Reads the node's state at scrape time."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[Any]:
        node = self.node
        applied = GaugeMetricFamily("endure_partition_applied_lsn", "Last LSN applied to the store", labels=["partition"])
        tail = GaugeMetricFamily("endure_partition_log_tail", "Next LSN of the partition's log", labels=["partition"])
        lag = GaugeMetricFamily("endure_partition_apply_lag_records", "Records appended but not applied yet",
                                labels=["partition"])
        leader = GaugeMetricFamily("endure_partition_leader", "1 if this node leads the partition", labels=["partition"])
        timers = GaugeMetricFamily("endure_partition_timers_in_memory", "Timers loaded in memory", labels=["partition"])
        for p, partition in sorted(node.partitions.items()):
            info = partition.info()  # one in-process read per scrape, through the partition's interface
            label = [str(p)]
            applied.add_metric(label, info.applied_lsn)
            tail.add_metric(label, info.log_tail)
            lag.add_metric(label, info.apply_lag)
            leader.add_metric(label, 1 if info.leader else 0)
            timers.add_metric(label, info.timers_in_memory)
        yield from (applied, tail, lag, leader, timers)

        invoker = node.invoker
        if invoker is not None:
            queued = GaugeMetricFamily("endure_invoker_queued", "Runnable invocations waiting per tenant",
                                       labels=["tenant"])
            for tenant, depth in sorted(invoker.backlog_by_tenant().items()):
                queued.add_metric([tenant], depth)
            yield queued
            yield GaugeMetricFamily("endure_invoker_running", "Attempts running on workers", value=invoker.running())
            attempts = CounterMetricFamily("endure_invoker_attempts", "Attempt events", labels=["event"])
            for event, n in sorted(invoker.stats.items()):
                attempts.add_metric([event], n)
            yield attempts
            running = GaugeMetricFamily("endure_limits_running", "Running attempts per limit scope", labels=["scope"])
            for scope, n in sorted(invoker.limits.running.items()):
                running.add_metric([scope], n)
            yield running
            workers = GaugeMetricFamily("endure_workers", "Connected workers", value=len(invoker.sessions))
            yield workers
            active = GaugeMetricFamily("endure_worker_active", "Attempts running per worker", labels=["worker"])
            capacity = GaugeMetricFamily("endure_worker_concurrency", "Declared concurrency per worker",
                                         labels=["worker"])
            for session in invoker.sessions.values():
                active.add_metric([session.name], session.active)
                capacity.add_metric([session.name], session.concurrency)
            yield from (active, capacity)
            waiting = GaugeMetricFamily("endure_invocations_waiting_for_deployment",
                                        "Invocations queued for a deployment version no connected worker serves",
                                        labels=["deployment"])
            for deployment, n in sorted(invoker.waiting_for_deployment().items()):
                waiting.add_metric([deployment], n)
            yield waiting
            per_version = GaugeMetricFamily("endure_deployment_workers", "Connected workers per deployment version",
                                            labels=["deployment"])
            versions: dict[str, int] = {}
            for session in invoker.sessions.values():
                versions[session.deployment] = versions.get(session.deployment, 0) + 1
            for deployment, n in sorted(versions.items()):
                per_version.add_metric([deployment], n)
            yield per_version

        if node.ingress is not None:
            yield GaugeMetricFamily("endure_ingress_waiting_calls", "Clients waiting for a result",
                                    value=len(node.waiters) if node.waiters is not None else 0)
            yield CounterMetricFamily("endure_ingress_rejected", "Requests refused for overload (RESOURCE_EXHAUSTED)",
                                      value=node.ingress.rejected)
            forwarded = CounterMetricFamily("endure_ingress_forwarded",
                                            "Requests this ingress took for a partition another node owns "
                                            "(forwarded there), by RPC", labels=["rpc"])
            for rpc, n in sorted(node.ingress.forwarded.items()):
                forwarded.add_metric([rpc], n)
            yield forwarded
        if node.log is not None:
            store = node.log.store
            yield CounterMetricFamily("endure_log_records_written", "Records fsynced to the log",
                                      value=store.records_written)
            yield CounterMetricFamily("endure_log_batches_written", "Synced log write batches",
                                      value=store.batches_written)
