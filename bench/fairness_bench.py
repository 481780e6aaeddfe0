"""`python -m endure.bench fairness`: a flooding tenant cannot starve a quiet one.

Tenant A has a concurrency limit and offers 20x that many concurrent requests (closed loop);
tenant B sends a steady trickle (open loop). Both call the same handler (one step that waits
--work-ms, like an LLM call) on one worker. Measured: B's latency alone, then B's latency while A
floods; the target is B's p99 under the flood within 2x of B alone.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from pathlib import Path

from endure.bench import harness
from endure.bench.procs import BenchCluster


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("fairness", help="a flooding tenant vs a quiet one: the quiet one's latency",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=8, help="tenant A's max running invocations")
    p.add_argument("--flood-factor", type=int, default=20, help="A's concurrent requests = factor x limit")
    p.add_argument("--trickle-rate", type=float, default=10.0, help="tenant B's requests per second")
    p.add_argument("--work-ms", type=int, default=20)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--processes", type=int, default=1, help="node processes of the runtime (endure serve --processes)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _config(path: Path, limit: int) -> Path:
    path.write_text(f"""auth = true
[tenants.A]
api_keys_sha256 = ["{_sha('key-A')}"]
max_running = {limit}
[tenants.B]
api_keys_sha256 = ["{_sha('key-B')}"]
""")
    return path


async def _phase(ingress: str, args: argparse.Namespace, flood: bool) -> dict[str, float]:
    from endure.sdk.client import Client

    quiet = Client(ingress, api_key="key-B")
    loud = Client(ingress, api_key="key-A")

    async def trickle(_i: int) -> object:
        return await quiet.call("bench/work", args.work_ms)

    async def flood_one(_i: int) -> object:
        return await loud.call("bench/work", args.work_ms)

    try:
        flood_task = None
        if flood:
            flood_task = asyncio.create_task(harness.closed_loop(
                flood_one, args.limit * args.flood_factor, args.seconds + 1.0, args.warmup))
        stats = await harness.open_loop(trickle, args.trickle_rate, args.seconds, args.warmup)
        result = stats.summary()
        if flood_task is not None:
            flood_stats = await flood_task
            result["flood_throughput_per_s"] = flood_stats.summary()["throughput_per_s"]
        return result
    finally:
        await quiet.close()
        await loud.close()


def run(args: argparse.Namespace) -> int:
    import tempfile

    config = _config(Path(tempfile.mkdtemp(prefix="endure-fair-")) / "endure.toml", args.limit)
    with BenchCluster(partitions=4, concurrency=64, runtime_args=["--config", str(config)],
                      nodes=args.processes) as cluster:
        alone = asyncio.run(_phase(cluster.ingress, args, flood=False))
        flooded = asyncio.run(_phase(cluster.ingress, args, flood=True))
    config.unlink()
    config.parent.rmdir()
    ratio = round(flooded["p99_ms"] / alone["p99_ms"], 2) if alone["p99_ms"] else 0.0
    result = {"b_alone": alone, "b_with_flood": flooded, "p99_ratio": ratio, "target_ratio": 2.0,
              "limit": args.limit, "flood_concurrency": args.limit * args.flood_factor,
              "trickle_rate": args.trickle_rate, "work_ms": args.work_ms, "node_processes": args.processes}
    path = harness.write_results("fairness", result)
    if args.json:
        print(json.dumps(result))
    else:
        keep = ("p50_ms", "p90_ms", "p99_ms", "max_ms", "completed", "errors")
        harness.print_table("tenant B's latency (ms)", {
            "B alone": {k: alone[k] for k in keep},
            "B while A floods": {k: flooded[k] for k in keep}})
        print(f"A's flood: {args.limit * args.flood_factor} concurrent, {flooded['flood_throughput_per_s']}/s served")
        print(f"p99 ratio {ratio} (target <= 2.0); results: {path}")
    return 0
