"""`python -m endure.bench sandbox [--json]`: sandbox start-up, latency, throughput and fuel figures.

Python runs on the pre-initialized CPython 3.14 component (endure.sandbox.component). Measures:
cold start (an empty cache: the pool's first process builds the component with componentize-py
and compiles it, then the first run), warm start (a new pool on that cache, up to its first run),
`print(1)` end to end back to back (p50/p99) and runs/s at concurrency 4, the reference agent
script (endure.sandbox.reference) under the default Limits, a busy loop's fuel per second, and
the same figures for the CPython 3.12 core path (`--no-core` skips it) and JavaScript. Also
runnable as `python -m endure.bench.sandbox_bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sandbox", help="wasm sandbox: cold/warm start, print(1) latency, runs/s, reference script, fuel"
    )
    _add_args(p)
    p.set_defaults(func=run)


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("-n", type=int, default=100, help="runs per latency series")
    p.add_argument("--pool-size", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--throughput-runs", type=int, default=200)
    p.add_argument("--cache-dir", default=None, help="warm cache to use (default: a fresh temp dir, so cold start is measured)")
    p.add_argument("--no-core", action="store_true", help="skip the CPython 3.12 core-path figures")


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(q * len(s)))], 2)


def _summary(xs: list[float]) -> dict[str, float]:
    return {
        "p50_ms": _pct(xs, 0.5),
        "p99_ms": _pct(xs, 0.99),
        "mean_ms": round(statistics.fmean(xs), 2),
        "n": len(xs),
    }


async def _series(call: Callable[[], Awaitable[Any]], n: int, gap_s: float) -> list[float]:
    out: list[float] = []
    for _ in range(n):
        t = time.perf_counter()
        res = await call()
        out.append((time.perf_counter() - t) * 1000)
        if not res.ok:
            raise RuntimeError(f"benchmark run failed: {res}")
        if gap_s:
            await asyncio.sleep(gap_s)
    return out


async def _throughput(call: Callable[[], Awaitable[Any]], n: int, concurrency: int) -> float:
    """Runs/s with `concurrency` callers each sending its next run as soon as one returns."""
    left = n

    async def caller() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            res = await call()
            if not res.ok:
                raise RuntimeError(f"benchmark run failed: {res}")

    t = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return round(n / (time.perf_counter() - t), 1)


@contextlib.contextmanager
def _python_engine(name: str) -> Iterator[None]:
    """Pool processes started inside pick this Python engine (they inherit the variable)."""
    from endure.sandbox.component_runner import ENGINE_ENV

    old = os.environ.get(ENGINE_ENV)
    os.environ[ENGINE_ENV] = name
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENGINE_ENV, None)
        else:
            os.environ[ENGINE_ENV] = old


async def _start_and_first_run(cache: Path, pool_size: int) -> tuple[Any, dict[str, float]]:
    from endure.sandbox import Sandbox

    t = time.perf_counter()
    sb = Sandbox(pool_size=pool_size, cache_dir=cache)
    await sb.start()
    started = time.perf_counter() - t
    res = await sb.run_python("print(1)")
    if not res.ok:
        raise RuntimeError(f"first run failed: {res}")
    return sb, {"pool_ready_s": round(started, 3), "first_run_s": round(time.perf_counter() - t, 3)}


async def _reference(sb: Any) -> dict[str, Any]:
    from endure.sandbox import Limits
    from endure.sandbox.reference import AGENT_SCRIPT, agent_files

    files = agent_files()
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        r = await sb.run_python(AGENT_SCRIPT, files=files)
        runs.append(((time.perf_counter() - t) * 1000, r))
        if not r.ok:
            raise RuntimeError(f"reference script failed: {r}")
    ms = sorted(x for x, _ in runs)
    last = runs[-1][1]
    return {
        "end_to_end_ms_p50": round(ms[len(ms) // 2], 1),
        "guest_wall_ms": last.wall_ms,
        "fuel_used": last.fuel_used,
        "fuel_share_of_default": round(last.fuel_used / Limits().fuel, 4),
        "peak_memory_bytes": last.peak_memory_bytes,
    }


async def _fuel_per_s(sb: Any) -> float:
    """A pure-Python busy loop under a fuel limit: how much fuel one second of work burns."""
    from endure.sandbox import Limits

    fuel = 5_000_000_000
    r = await sb.run_python("while True: pass", limits=Limits(fuel=fuel, wall_time_ms=60_000))
    return round(fuel / (r.wall_ms / 1000) / 1e9, 2) if r.wall_ms else 0.0


async def _python_figures(sb: Any, args: argparse.Namespace) -> dict[str, Any]:
    py = lambda: sb.run_python("print(1)")  # noqa: E731
    await _series(py, 10, 0.0)  # warm-up
    one = await sb.run_python("print(1)")
    return {
        "engine": sb.pool.python_info.get("engine"),
        "print1_back_to_back": _summary(await _series(py, args.n, 0.0)),
        f"print1_runs_per_s_concurrency_{args.concurrency}": await _throughput(
            py, args.throughput_runs, args.concurrency
        ),
        "print1_result": {
            "fuel_used": one.fuel_used,
            "guest_wall_ms": one.wall_ms,
            "peak_memory_bytes": one.peak_memory_bytes,
        },
        "reference_agent_script": await _reference(sb),
        "busy_loop_gfuel_per_s": await _fuel_per_s(sb),
    }


async def _fuel_per_op(sb: Any) -> dict[str, float]:
    import wasmtime

    n = 100_000

    async def py(body: str, k: int) -> int:
        r = await sb.run_python(f"x = 0\nfor i in range({k}):\n    {body}")
        assert r.ok, r.stderr
        return int(r.fuel_used)

    async def js(body: str, k: int) -> int:
        r = await sb.run_javascript(f"let x = 0; for (let i = 0; i < {k}; i++) {{ {body} }}")
        assert r.ok, r.stderr
        return int(r.fuel_used)

    loop_wat = """(module (func (export "_start") (local i32)
      (loop (local.set 0 (i32.add (local.get 0) (i32.const 1)))
            (br_if 0 (i32.lt_u (local.get 0) (i32.const %d))))))"""
    w_small = await sb.run_wasm(wasmtime.wat2wasm(loop_wat % 1))
    w_big = await sb.run_wasm(wasmtime.wat2wasm(loop_wat % n))
    return {
        "python_loop_iteration": round((await py("pass", n) - await py("pass", 0)) / n, 1),
        "python_add_statement": round((await py("x = x + 1", n) - await py("pass", n)) / n, 1),
        "javascript_loop_iteration": round((await js("", n) - await js("", 0)) / n, 1),
        "javascript_add_statement": round((await js("x = x + 1;", n) - await js("", n)) / n, 1),
        "wasm_loop_iteration_5_instructions": round((w_big.fuel_used - w_small.fuel_used) / (n - 1), 2),
    }


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "pool_size": args.pool_size,
    }
    with tempfile.TemporaryDirectory(prefix="endure-bench-") as tmp:
        cache = Path(args.cache_dir) if args.cache_dir else Path(tmp) / "cache"
        with _python_engine("component"):
            sb, cold = await _start_and_first_run(cache, args.pool_size)
            cold["build"] = sb.pool.python_build  # None when the cache already had it
            report["cold_start" if not args.cache_dir else "start_with_given_cache"] = cold
            await sb.close()
            sb, report["warm_start"] = await _start_and_first_run(cache, args.pool_size)
            try:
                if sb.pool.python_info.get("engine") != "component":
                    report["component_unavailable"] = sb.pool.python_info.get("fallback")
                report["python"] = await _python_figures(sb, args)
                jsr = lambda: sb.run_javascript("console.log(1)")  # noqa: E731
                await _series(jsr, 5, 0.0)
                report["javascript_print1_back_to_back"] = _summary(await _series(jsr, args.n, 0.0))
                report["fuel_per_op"] = await _fuel_per_op(sb)
            finally:
                await sb.close()
        if not args.no_core:
            with _python_engine("core"):
                sb, report["core_warm_start"] = await _start_and_first_run(cache, args.pool_size)
                try:
                    report["python_core_cpython312"] = await _python_figures(sb, args)
                finally:
                    await sb.close()
    return report


def run(args: argparse.Namespace) -> int:
    report = asyncio.run(_bench(args))
    if args.json:
        print(json.dumps(report))
    else:
        print(json.dumps(report, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m endure.bench.sandbox_bench", description=__doc__)
    _add_args(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
