"""The stream bench at a small size: every chunk arrives, the latencies and the CPU figures it
reports add up."""

from __future__ import annotations

import asyncio

from endure.bench.procs import BenchCluster
from endure.bench.stream_bench import cpu_overhead, one_stream, paced_streams


def test_stream_bench_small() -> None:
    with BenchCluster(partitions=2, concurrency=64) as cluster:
        throughput = asyncio.run(one_stream(cluster.ingress, 500))
        assert throughput["chunks"] == 500 and throughput["chunks_per_s"] > 0
        many = asyncio.run(paced_streams(cluster.ingress, 5, 20, 5.0))
        assert many["chunks"] == 100 and 0 < many["p50_ms"] <= many["p99_ms"] <= many["max_ms"]
        overhead = cpu_overhead(cluster, 0.5)
    assert overhead["noop"]["throughput_per_s"] > 0 and overhead["noop_stream"]["throughput_per_s"] > 0
    assert set(overhead["added_cpu_us"]) == {"runtime_cpu_us", "worker1_cpu_us"}
