"""`python -m endure.bench recovery`: how fast in-flight invocations come back after kill -9.

N invocations are started and held mid-flight (each has finished one step and waits at a gate in
its second). Then either the runtime is killed with SIGKILL and restarted on the same data, or
one of two workers is killed while the other stays alive. Measured: the time from the kill until
every affected invocation runs again (its second step is re-entered), and until all complete
once the gate opens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from endure.bench import harness
from endure.bench.procs import BenchCluster


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("recovery", help="time to resume in-flight invocations after kill -9 of runtime / worker",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--invocations", type=int, default=50)
    p.add_argument("--target", choices=["runtime", "worker", "both"], default="both")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _waiting(folder: Path) -> dict[str, list[str]]:
    """tag -> pid of the process, for every time its step entered the wait."""
    out: dict[str, list[str]] = {}
    path = folder / "markers.txt"
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if parts and parts[0] == "waiting":
                out.setdefault(parts[1], []).append(parts[2])
    return out


def _until(predicate: object, timeout: float = 120.0) -> float:
    t0 = time.monotonic()
    while not predicate():  # type: ignore[operator]
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("recovery did not finish in time")
        time.sleep(0.005)
    return time.monotonic() - t0


async def _scenario(target: str, n: int) -> dict[str, float]:
    from endure.sdk.client import Client

    workers = 2 if target == "worker" else 1
    with BenchCluster(partitions=4, workers=workers, concurrency=max(64, n)) as cluster:
        folder = cluster.dir
        async with Client(cluster.ingress) as client:
            ids = [await client.send("bench/hold", [str(folder), f"t{i}"]) for i in range(n)]
        _until(lambda: len(_waiting(folder)) == n)
        before = _waiting(folder)
        if target == "runtime":
            victims = set(before)
            assert cluster.runtime is not None
            cluster.runtime.kill()
            cluster.runtime.wait()
            t0 = time.monotonic()
            cluster.start_runtime()
        else:
            victim = cluster.workers[0]
            victims = {tag for tag, pids in before.items() if str(victim.pid) in pids}
            victim.kill()
            victim.wait()
            t0 = time.monotonic()
        _until(lambda: all(len(_waiting(folder).get(tag, ())) >= 2 for tag in victims))
        running_again = time.monotonic() - t0
        (folder / "gate").touch()
        async with Client(cluster.ingress) as client:
            await asyncio.gather(*(client.attach(i, timeout=120) for i in ids))
        completed = time.monotonic() - t0
    return {"affected": len(victims), "running_again_s": round(running_again, 3),
            "all_completed_s": round(completed, 3)}


def run(args: argparse.Namespace) -> int:
    targets = ["runtime", "worker"] if args.target == "both" else [args.target]
    rows = {f"kill -9 {t}": asyncio.run(_scenario(t, args.invocations)) for t in targets}
    result = {"invocations": args.invocations, **{k.replace("kill -9 ", ""): v for k, v in rows.items()}}
    path = harness.write_results("recovery", result)
    if args.json:
        print(json.dumps(result))
    else:
        harness.print_table(f"recovery of {args.invocations} in-flight invocations", rows)
        print(f"results: {path}")
    return 0
