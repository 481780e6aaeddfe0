"""`python -m endure.bench e2e`: closed-loop load through the gRPC client on a runtime + one worker.

Workloads: noop (return the input), steps3 (three ctx.run steps), counter (a virtual object's
exclusive handler; one key per client so keys do not serialize each other).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import psutil

from endure.bench.procs import BenchCluster, CpuMeter

WORKLOADS = {
    "noop": ("bench/noop", False),
    "steps3": ("bench/steps3", False),
    "counter": ("counter/add", True),
}


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("e2e", help="end-to-end invocations/s and latency through runtime + worker processes")
    p.add_argument("--workload", choices=sorted(WORKLOADS), default="noop")
    p.add_argument("--concurrency", type=int, default=64, help="closed-loop clients")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def drive(ingress: str, workload: str, concurrency: int, seconds: float, warmup: float) -> dict[str, Any]:
    from endure.sdk.client import Client

    target, keyed = WORKLOADS[workload]
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop_at = 0.0

    async def loop(client: Client, i: int) -> None:
        nonlocal errors
        key = f"k{i}" if keyed else None
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                await client.call(target, 1, key=key)
            except Exception:
                errors += 1
                continue
            if measuring:
                latencies.append(time.perf_counter() - t0)

    clients = [Client(ingress) for _ in range(max(1, min(8, concurrency // 16)))]
    try:
        stop_at = time.monotonic() + warmup + seconds
        tasks = [asyncio.create_task(loop(clients[i % len(clients)], i)) for i in range(concurrency)]
        await asyncio.sleep(warmup)
        measuring = True
        t0 = time.monotonic()
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - t0
    finally:
        for c in clients:
            await c.close()
    latencies.sort()
    return {
        "invocations": len(latencies),
        "invocations_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p90_ms": round(percentile(latencies, 0.90) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round((latencies[-1] if latencies else 0) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else 0.0,
        "errors": errors,
    }


def run(args: argparse.Namespace) -> int:
    with BenchCluster(partitions=args.partitions, concurrency=max(64, args.concurrency)) as cluster:
        meter = CpuMeter({**cluster.processes(), "load generator": psutil.Process()})
        result = asyncio.run(drive(cluster.ingress, args.workload, args.concurrency, args.seconds, args.warmup))
        result["processes"] = meter.stop()
    result = {"workload": args.workload, "concurrency": args.concurrency, "seconds": args.seconds, **result}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.workload} c={args.concurrency}: {result['invocations_per_s']}/s  p50 {result['p50_ms']} ms  "
              f"p99 {result['p99_ms']} ms  errors {result['errors']}")
        for name, figures in result["processes"].items():
            print(f"  {name}: cpu {figures['cpu_pct']}%  rss {figures['rss_mb']} MiB")
    return 0
