"""`python -m endure.bench e2e`: load through the gRPC client on a runtime + worker processes.

Workloads (--workload):
  noop               return the input
  steps3             three ctx.run steps
  counter            a virtual object's exclusive handler, one key per client
  sleep              a durable 100 ms sleep, then return
  fanout             call 10 noop handlers and gather them
  object-contention  many clients on 4 keys of a virtual object (exclusive handlers queue per key)
  tool               one sandboxed Python step (print(1) in Wasmtime)
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import psutil

from endure.bench import harness
from endure.bench.procs import BenchCluster, CpuMeter

# name -> (target, keys: 0 = unkeyed, -1 = one per client, n = n shared keys)
WORKLOADS: dict[str, tuple[str, int]] = {
    "noop": ("bench/noop", 0),
    "steps3": ("bench/steps3", 0),
    "counter": ("counter/add", -1),
    "sleep": ("bench/sleep100", 0),
    "fanout": ("bench/fanout10", 0),
    "object-contention": ("counter/add", 4),
    "tool": ("bench/tool", 0),
}


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("e2e", help="end-to-end invocations/s and latency through runtime + worker processes",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_load_options(p, default_workload="noop")
    p.set_defaults(func=run)
    for name in ("sleep", "fanout", "object-contention", "tool"):
        q = sub.add_parser(name, help=f"the e2e {name} workload (same options as e2e)")
        add_load_options(q, default_workload=name)
        q.set_defaults(func=run)


def add_load_options(p: argparse.ArgumentParser, default_workload: str) -> None:
    p.add_argument("--workload", choices=sorted(WORKLOADS), default=default_workload)
    p.add_argument("--concurrency", type=int, default=64, help="closed-loop clients (default 64)")
    p.add_argument("--rate", type=float, default=0.0, help="open loop: requests per second (0 = closed loop)")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--runs", type=int, default=1, help="runs on the same cluster; reports the median and spread")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--processes", type=int, default=1, help="node processes of the runtime (endure serve --processes)")
    p.add_argument("--no-routing", dest="routing", action="store_false",
                   help="the clients send every request to the shared ingress port (keyed ones are then "
                        "forwarded when another node owns their partition); default: routed to the owner")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--results", type=Path, default=None, help="write the results file here (default bench/results/)")
    p.add_argument("--compare", type=Path, default=None, help="print ratios to an earlier results file")


async def _measure(ingress: str, args: argparse.Namespace) -> list[dict[str, float]]:
    from endure.sdk.client import Client

    target, keys = WORKLOADS[args.workload]
    routing = getattr(args, "routing", True)
    clients = [Client(ingress, routing=routing) for _ in range(max(1, min(8, args.concurrency // 16)))]

    async def request(i: int) -> object:
        key = None if keys == 0 else f"k{i}" if keys < 0 else f"k{i % keys}"
        return await clients[i % len(clients)].call(target, 1, key=key)

    runs = []
    try:
        for n in range(args.runs):
            total = args.warmup + args.seconds
            bar, progress = harness.progress_bar(total, f"{args.workload} run {n + 1}/{args.runs}")
            with bar:
                if args.rate:
                    stats = await harness.open_loop(request, args.rate, args.seconds, args.warmup, progress=progress)
                else:
                    stats = await harness.closed_loop(request, args.concurrency, args.seconds, args.warmup,
                                                      progress=progress)
            runs.append(stats.summary())
    finally:
        for c in clients:
            await c.close()
    return runs


def run(args: argparse.Namespace) -> int:
    with BenchCluster(partitions=args.partitions, concurrency=max(64, args.concurrency),
                      nodes=args.processes) as cluster:
        meter = CpuMeter({**cluster.processes(), "load generator": psutil.Process()})
        runs = asyncio.run(_measure(cluster.ingress, args))
        processes = meter.stop()
    result: dict[str, Any] = {"workload": args.workload, "mode": "open" if args.rate else "closed",
                              "concurrency": args.concurrency, "rate": args.rate, "seconds": args.seconds,
                              "node_processes": args.processes, "routing": "on" if args.routing else "off",
                              **harness.median_of_runs(runs), "processes": processes}
    path = harness.write_results(f"e2e-{args.workload}", result, args.results)
    ratios = harness.compare(result, args.compare) if args.compare else None
    if args.json:
        print(json.dumps({**result, **({"compare": ratios} if ratios else {})}))
        return 0
    figures = {k: result[k] for k in ("throughput_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "errors")}
    routed = "" if args.processes == 1 else ", routed" if args.routing else ", not routed"
    harness.print_table(f"{args.workload} ({result['mode']} loop, c={args.concurrency}, runs={args.runs}{routed})",
                        {"median": figures, **({"ratio to earlier": ratios} if ratios else {})})
    harness.print_table("processes", processes)
    print(f"results: {path}")
    return 0
