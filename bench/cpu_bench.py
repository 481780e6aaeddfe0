"""`python -m endure.bench cpu`: where the CPU of one invocation goes, in microseconds per part.

Runs an e2e workload (closed loop) with the runtime under cProfile (`ENDURE_PROFILE`) and the
worker under cProfile (`ENDURE_WORKER_PROFILE`), stops both cleanly so they write their stats, and
attributes each function's own time (`tottime`) to a part by where it is defined: the ingress,
the log, apply (state machine and store), the partition's processor / shuffle / timers, the invoker
and worker protocol, gRPC, protobuf, RocksDB, the event loop, and the SDK on the worker side.
Divided by the invocations completed, that is µs per invocation per part.

The profile is of each process's main (event loop) thread in CPU time; the event loop's own time
includes the C code it runs (libuv, gRPC's core). Other threads (the log's writer, gRPC pollers)
are the process CPU minus the profiled total. cProfile slows Python code down (roughly 1.5-2x), so read the parts as shares of one another, and
compare runs only side by side; the process CPU per invocation (psutil, while profiled) is printed too; `python -m endure.bench e2e` gives it without the profiler.
The profile spans the processes' whole life, start-up included: keep --seconds at 5 or more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pstats
import shutil
from pathlib import Path
from typing import Any

import psutil

from endure.bench import harness
from endure.bench.e2e_bench import WORKLOADS, _measure
from endure.bench.procs import BenchCluster, CpuMeter

# (substring of the defining file's path, part); the first match wins.
_RUNTIME_PARTS = (
    ("runtime/ingress/", "ingress"),
    ("runtime/log/", "log"),
    ("runtime/partition/state_machine/", "apply"),
    ("runtime/partition/store.py", "apply"),
    ("runtime/partition/keys.py", "apply"),
    ("runtime/partition/", "partition (processor, shuffle, timers)"),
    ("runtime/invoker/", "invoker + worker protocol"),
    ("runtime/", "runtime (other)"),
)
_WORKER_PARTS = (
    ("sdk/worker.py", "worker protocol"),
    ("sdk/", "SDK (replay, context, serde)"),
    ("endure/bench/apps.py", "handler code"),
    ("bench/apps.py", "handler code"),
)
_COMMON_PARTS = (
    ("/grpc/", "gRPC (Python)"),
    ("/google/protobuf/", "protobuf (Python)"),
    ("/asyncio/", "event loop"),
    ("uvloop", "event loop"),
)
# C functions (no file) by what their name says.
_BUILTIN_PARTS = (
    (("SerializeToString", "ParseFromString", "FromString", "CopyFrom", "MergeFrom", "WhichOneof", "HasField",
      "ByteSize", "google._upb", "Message"), "protobuf (C)"),
    (("rocksdict", "Rdict", "WriteBatch", "ReadOptions", "Options"), "RocksDB"),
    (("cygrpc", "grpc"), "gRPC (C)"),
    (("select", "epoll", "poll", "run_once", "uvloop", "Loop"), "event loop"),
)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("cpu", help="µs of CPU per invocation in each part of the runtime and the worker (cProfile)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", choices=sorted(WORKLOADS), default="noop")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--top", type=int, default=0, help="also print the N functions with the most own time per process")
    p.add_argument("--save-profiles", type=Path, default=None, metavar="DIR",
                   help="keep the raw cProfile files (runtime.prof, worker.prof) in DIR, for pstats")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run, rate=0.0, runs=1)


def part_of(filename: str, function: str, parts: tuple[tuple[str, str], ...]) -> str:
    """The part a profiled function belongs to, from the file that defines it (or a C function's name)."""
    if filename == "~" or filename.startswith("<"):
        for needles, part in _BUILTIN_PARTS:
            if any(n in function for n in needles):
                return part
        return "other (C builtins)"
    path = filename.replace("\\", "/")
    for needle, part in (*parts, *_COMMON_PARTS):
        if needle in path:
            return part
    return "other (Python)"


def attribute(stats_path: Path, parts: tuple[tuple[str, str], ...], invocations: int,
              top: int = 0) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """µs per invocation by part (own time), and the top functions, from one cProfile dump."""
    stats = pstats.Stats(str(stats_path))
    totals: dict[str, float] = {}
    funcs: list[tuple[str, float]] = []
    for (filename, line, name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        part = part_of(filename, name, parts)
        us = tottime / invocations * 1e6
        totals[part] = totals.get(part, 0.0) + us
        if top:
            funcs.append((f"{Path(filename).name}:{line} {name}", us))
    ordered = dict(sorted(((k, round(v, 1)) for k, v in totals.items()), key=lambda kv: -kv[1]))
    ordered["total (profiled)"] = round(sum(totals.values()), 1)
    funcs.sort(key=lambda kv: -kv[1])
    return ordered, [(n, round(us, 1)) for n, us in funcs[:top]]


def run(args: argparse.Namespace) -> int:
    cluster = BenchCluster(partitions=args.partitions, concurrency=max(64, args.concurrency))
    runtime_prof, worker_prof = cluster.dir / "runtime.prof", cluster.dir / "worker.prof"
    cluster.launcher.env.update(ENDURE_PROFILE=str(runtime_prof), ENDURE_WORKER_PROFILE=str(worker_prof))
    try:
        cluster.start()
        meter = CpuMeter({**cluster.processes(), "load generator": psutil.Process()})
        runs = asyncio.run(_measure(cluster.ingress, args))
        processes = meter.stop()
        cluster.launcher.stop(grace=60.0)  # SIGTERM: both write their profiles as they exit
        completed = int(runs[0]["completed"]) or 1
        # The profiles also hold the warm-up: count its invocations too (the rate was the same).
        profiled = int(completed * (args.seconds + args.warmup) / args.seconds)
        runtime_parts, runtime_top = attribute(runtime_prof, _RUNTIME_PARTS, profiled, args.top)
        worker_parts, worker_top = attribute(worker_prof, _WORKER_PARTS, profiled, args.top)
        if args.save_profiles:
            args.save_profiles.mkdir(parents=True, exist_ok=True)
            for prof in (runtime_prof, worker_prof):
                shutil.copy(prof, args.save_profiles / prof.name)
    finally:
        cluster.close()
    cpu_us = {name: round(p["cpu_s"] / completed * 1e6, 1) for name, p in processes.items()}
    result: dict[str, Any] = {
        "workload": args.workload, "concurrency": args.concurrency, "seconds": args.seconds,
        "throughput_per_s": runs[0]["throughput_per_s"], "completed": completed,
        "process_cpu_us_per_invocation": cpu_us,
        "runtime_us_per_invocation": runtime_parts, "worker_us_per_invocation": worker_parts,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    harness.print_table(f"{args.workload} at {result['throughput_per_s']}/s: process CPU per invocation, µs "
                        "(psutil, while profiled)", _column(cpu_us))
    harness.print_table("runtime: own time per invocation by part, µs (cProfile)", _column(runtime_parts))
    harness.print_table("worker: own time per invocation by part, µs (cProfile)", _column(worker_parts))
    for title, rows in (("runtime", runtime_top), ("worker", worker_top)):
        if rows:
            harness.print_table(f"{title}: top functions by own time, µs per invocation", _column(dict(rows)))
    return 0


def _column(figures: dict[str, float]) -> dict[str, dict[str, float]]:
    return {name: {"µs": value} for name, value in figures.items()}
