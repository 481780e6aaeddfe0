"""What every end-to-end workload shares: load generation, statistics, reports and results files.

Closed loop: C clients each send the next request when the previous one answered. Open loop: a
fixed arrival rate, whatever the latency (requests beyond `max_in_flight` count as dropped, so
the generator itself stays bounded). Each run warms up first; several runs give a median and a
spread. Load goes only to 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

Request = Callable[[int], Awaitable[object]]  # (client index) -> awaitable of one request

RESULTS_DIR = Path(os.environ.get("ENDURE_BENCH_RESULTS", "bench/results"))
console = Console(stderr=True)


@dataclass
class RunStats:
    completed: int = 0
    errors: int = 0
    dropped: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        lat = sorted(self.latencies)

        def pct(q: float) -> float:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 2) if lat else 0.0

        return {
            "throughput_per_s": round(self.completed / self.elapsed, 1) if self.elapsed else 0.0,
            "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
            "max_ms": round(lat[-1] * 1000, 2) if lat else 0.0,
            "completed": self.completed, "errors": self.errors, "dropped": self.dropped,
        }


async def _timed(request: Request, i: int, stats: RunStats, measured: bool) -> None:
    """One request; counted (latency, completion or error) only inside the measured window."""
    t0 = time.perf_counter()
    try:
        await request(i)
    except Exception:
        if measured:
            stats.errors += 1
        return
    if measured:
        stats.latencies.append(time.perf_counter() - t0)
        stats.completed += 1


async def closed_loop(request: Request, concurrency: int, seconds: float, warmup: float,
                      progress: Callable[[float], None] | None = None) -> RunStats:
    stats = RunStats()
    measuring = False
    start = time.monotonic()
    stop_at = start + warmup + seconds

    async def client(i: int) -> None:
        while time.monotonic() < stop_at:
            await _timed(request, i, stats, measuring)

    tasks = [asyncio.create_task(client(i)) for i in range(concurrency)]
    await _tick_until(start + warmup, start, progress)
    measuring = True
    t0 = time.monotonic()
    await _tick_until(stop_at, start, progress)
    await asyncio.gather(*tasks)
    stats.elapsed = time.monotonic() - t0
    return stats


async def open_loop(request: Request, rate: float, seconds: float, warmup: float, max_in_flight: int = 10_000,
                    progress: Callable[[float], None] | None = None) -> RunStats:
    stats = RunStats()
    in_flight: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    sent = 0

    async def one(i: int, measured: bool) -> None:
        await _timed(request, i, stats, measured)

    while (now := time.monotonic()) < stop_at:
        due = int((now - start) * rate)
        while sent < due:
            measured = now >= measure_from
            if len(in_flight) >= max_in_flight:
                stats.dropped += measured
            else:
                task = asyncio.create_task(one(sent, measured))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            sent += 1
        if progress:
            progress(now - start)
        await asyncio.sleep(min(0.005, max(0.0, (sent + 1) / rate - (now - start))))
    if in_flight:
        await asyncio.wait(in_flight, timeout=30)
    stats.elapsed = seconds
    return stats


async def _tick_until(deadline: float, start: float, progress: Callable[[float], None] | None) -> None:
    while (now := time.monotonic()) < deadline:
        if progress:
            progress(now - start)
        await asyncio.sleep(min(0.1, deadline - now))


def median_of_runs(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Median of each figure over the runs, with the spread (min, max) of the throughput."""
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    tput = [r["throughput_per_s"] for r in runs]
    out["throughput_spread"] = [min(tput), max(tput)]
    out["runs"] = len(runs)
    return out


def progress_bar(total_seconds: float, label: str) -> tuple[Progress, Callable[[float], None]]:
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(), console=console,
                   transient=True)
    task = bar.add_task(label, total=total_seconds)
    return bar, lambda done: bar.update(task, completed=done)


def machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": commit or "unknown",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def write_results(workload: str, result: dict[str, Any], path: Path | None = None) -> Path:
    path = path or RESULTS_DIR / f"{workload}-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"workload": workload, "machine": machine(), "result": result}, indent=2))
    return path


def compare(result: dict[str, Any], earlier_file: Path) -> dict[str, float]:
    """Ratio now / earlier of every numeric figure both results have."""
    earlier = json.loads(Path(earlier_file).read_text())
    earlier = earlier.get("result", earlier)
    return {k: round(result[k] / earlier[k], 3) for k in result
            if isinstance(result.get(k), int | float) and isinstance(earlier.get(k), int | float) and earlier[k]}


def print_table(title: str, rows: dict[str, dict[str, Any]]) -> None:
    """rows: name -> figures; one column per figure."""
    columns = list(dict.fromkeys(k for figures in rows.values() for k in figures))
    table = Table(title=title)
    table.add_column("")
    for c in columns:
        table.add_column(c, justify="right")
    for name, figures in rows.items():
        table.add_row(name, *[str(figures.get(c, "")) for c in columns])
    Console().print(table)
