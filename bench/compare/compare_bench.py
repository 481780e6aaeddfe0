"""`python -m endure.bench compare`: the same closed-loop load on Endure, Restate, Temporal or DBOS.

  python -m endure.bench compare --system {endure,restate,temporal,dbos} --workload {noop,steps3,counter} \\
      --concurrency 64 --seconds 10 [--runs 2] [--json]

Each system is started locally on free 127.0.0.1 ports (its server + one process serving the same
three handlers written with that system's own Python SDK), loaded from this process through that
system's own client, measured (throughput, p50/p90/p99, CPU and RSS of each process tree), and
stopped (process trees killed, temp dirs removed). See bench/compare/README.md.

Workloads:
  noop     return the input
  steps3   three durable steps (value + 1 each)
  counter  per-key state: add 1 to a counter keyed by client (one key per client)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import psutil

from endure.bench import harness
from endure.bench.compare.common import System, TreeMeter, Unavailable

SYSTEMS = {
    "endure": ("endure.bench.compare.endure_system", "EndureSystem"),
    "restate": ("endure.bench.compare.restate_system", "RestateSystem"),
    "temporal": ("endure.bench.compare.temporal_system", "TemporalSystem"),
    "dbos": ("endure.bench.compare.dbos_system", "DbosSystem"),
}
WORKLOADS = ("noop", "steps3", "counter")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("compare", help="the same load on Endure, Restate, Temporal or DBOS, side by side",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--system", choices=sorted(SYSTEMS), required=True)
    p.add_argument("--workload", choices=WORKLOADS, default="noop")
    p.add_argument("--concurrency", type=int, default=64, help="closed-loop clients (default 64)")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--runs", type=int, default=1, help="runs on the same system; reports the median and spread")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--results", type=Path, default=None, help="write the results file here (default bench/results/)")
    p.set_defaults(func=run)


def system_class(name: str) -> type[System]:
    module, cls = SYSTEMS[name]
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


async def _measure(system: System, args: argparse.Namespace) -> list[dict[str, float]]:
    request, close = await system.client(args.workload, args.concurrency)
    runs = []
    try:
        for n in range(args.runs):
            bar, progress = harness.progress_bar(args.warmup + args.seconds,
                                                 f"{args.system} {args.workload} run {n + 1}/{args.runs}")
            with bar:
                stats = await harness.closed_loop(request, args.concurrency, args.seconds, args.warmup,
                                                  progress=progress)
            runs.append(stats.summary())
    finally:
        await close()
    return runs


def run(args: argparse.Namespace) -> int:
    try:
        cls = system_class(args.system)
        cls.check()
    except (Unavailable, ImportError) as e:
        print(f"compare: {e}", file=sys.stderr)
        return 2
    system = cls()
    try:
        system.start(args.concurrency)
        meter = TreeMeter({**system.processes(), "load generator": psutil.Process()})
        runs = asyncio.run(_measure(system, args))
        processes = meter.stop()
    except Unavailable as e:
        print(f"compare: {e}", file=sys.stderr)
        return 2
    finally:
        system.close()
    result: dict[str, Any] = {"system": args.system, "workload": args.workload, "mode": "closed",
                              "concurrency": args.concurrency, "seconds": args.seconds,
                              **harness.median_of_runs(runs), "processes": processes,
                              "durability": system.durability, "versions": system.versions}
    path = harness.write_results(f"compare-{args.system}-{args.workload}", result, args.results)
    if args.json:
        print(json.dumps(result))
        return 0
    figures = {k: result[k] for k in ("throughput_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "errors")}
    harness.print_table(f"{args.system} {args.workload} (closed loop, c={args.concurrency}, runs={args.runs})",
                        {"median": figures})
    harness.print_table("processes (each with its descendants)", processes)
    print(f"versions: {', '.join(f'{k} {v}' for k, v in system.versions.items())}")
    print(f"durability: {system.durability}")
    print(f"results: {path}")
    return 0
