"""`python -m endure.bench sandbox [--json]`: sandbox start-up, latency, throughput and fuel figures.

Measures: cold compile of the guests (empty cache), cached start (deserialize, and a whole pool
ready), end-to-end p50/p99 of `print(1)` in Python (pre-started single-use interpreters, paced
and back-to-back, and the plain fresh-instance path) and JavaScript, runs/s with the pool busy,
and fuel per simple operation. Also runnable as `python -m endure.bench.sandbox_bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sandbox", help="wasm sandbox: compile/start time, print(1) latency, runs/s, fuel"
    )
    _add_args(p)
    p.set_defaults(func=run)


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("-n", type=int, default=200, help="runs per latency series")
    p.add_argument("--pool-size", type=int, default=2)
    p.add_argument("--throughput-runs", type=int, default=300)
    p.add_argument("--cache-dir", default=None, help="warm cache to use (default: a fresh temp dir)")


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


async def _throughput(call: Callable[[], Awaitable[Any]], n: int) -> float:
    t = time.perf_counter()
    results = await asyncio.gather(*(call() for _ in range(n)))
    dt = time.perf_counter() - t
    assert all(r.ok for r in results)
    return round(n / dt, 1)


def _compile_figures(cache_dir: Path) -> dict[str, float]:
    """Cold compile into an empty cache, then a cached load, in this process."""
    from endure.sandbox.engine import get_engine
    from endure.sandbox.guests import js_guest, python_guest
    from endure.sandbox.module_cache import ModuleCache

    out: dict[str, float] = {}
    for label, guest in (("python", python_guest()), ("javascript", js_guest())):
        c = ModuleCache(get_engine(), cache_dir)
        t = time.perf_counter()
        c.load(path=guest.path, sha256=guest.sha256)
        out[f"{label}_cold_compile_s"] = round(time.perf_counter() - t, 3)
        c2 = ModuleCache(get_engine(), cache_dir)
        t = time.perf_counter()
        c2.load(path=guest.path, sha256=guest.sha256)
        out[f"{label}_cached_load_ms"] = round((time.perf_counter() - t) * 1000, 1)
    return out


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
    from endure.sandbox import Sandbox

    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    with tempfile.TemporaryDirectory(prefix="endure-bench-") as tmp:
        if args.cache_dir:
            cache = Path(args.cache_dir)
        else:
            cache = Path(tmp) / "cache"
            report["compile"] = await asyncio.to_thread(_compile_figures, cache)
        t = time.perf_counter()
        sb = Sandbox(pool_size=args.pool_size, cache_dir=cache)
        await sb.start()
        report["first_pool_start_s"] = round(time.perf_counter() - t, 3)  # modules from the disk cache
        await sb.close()
        t = time.perf_counter()
        sb = Sandbox(pool_size=args.pool_size, cache_dir=cache)
        await sb.start()
        report["cached_start_s"] = round(time.perf_counter() - t, 3)
        try:
            py = lambda: sb.run_python("print(1)")  # noqa: E731
            jsr = lambda: sb.run_javascript("console.log(1)")  # noqa: E731
            await _series(py, 10, 0.05)  # warm-up
            lat: dict[str, Any] = {}
            lat["python_print1_paced"] = _summary(await _series(py, args.n, 0.06))
            lat["python_print1_back_to_back"] = _summary(await _series(py, args.n, 0.0))
            lat["javascript_print1"] = _summary(await _series(jsr, args.n, 0.0))
            report["latency_end_to_end"] = lat
            report["runs_per_s"] = {
                "python_print1": await _throughput(py, args.throughput_runs),
                "javascript_print1": await _throughput(jsr, args.throughput_runs),
            }
            report["fuel_per_op"] = await _fuel_per_op(sb)
            one = await sb.run_python("print(1)")
            report["python_print1_result"] = {
                "fuel_used": one.fuel_used,
                "guest_wall_ms": one.wall_ms,
                "peak_memory_bytes": one.peak_memory_bytes,
            }
        finally:
            await sb.close()
        # The plain path: every run boots a fresh interpreter on demand (no pre-start).
        cold = Sandbox(pool_size=args.pool_size, cache_dir=cache, prestart=False)
        await cold.start()
        try:
            pyc = lambda: cold.run_python("print(1)")  # noqa: E731
            await _series(pyc, 5, 0.0)
            report["latency_end_to_end"]["python_print1_fresh_boot"] = _summary(
                await _series(pyc, max(20, args.n // 4), 0.0)
            )
            report["runs_per_s"]["python_print1_fresh_boot"] = await _throughput(
                pyc, max(50, args.throughput_runs // 3)
            )
        finally:
            await cold.close()
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
