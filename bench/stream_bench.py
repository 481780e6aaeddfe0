"""`python -m endure.bench stream`: live streams through a runtime and a worker process.

In one run: chunks/s from one invocation to one client (10-byte chunks); the latency from `write`
in the handler to the client receiving the chunk (p50, p99), for one stream and for 100 concurrent
streaming invocations each with its subscriber; and what a stream adds to an invocation's CPU
(noop against noop plus ten chunks, closed loop, CPU of runtime and worker per invocation).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import psutil

from endure.bench import harness
from endure.bench.procs import BenchCluster, CpuMeter


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("stream", help="live streams: chunks/s, write-to-client latency, 100 streams, CPU overhead")
    p.add_argument("--chunks", type=int, default=50_000, help="chunks of the one-stream throughput run")
    p.add_argument("--streams", type=int, default=100, help="concurrent streaming invocations")
    p.add_argument("--per-stream", type=int, default=200, help="chunks each of them writes")
    p.add_argument("--gap-ms", type=float, default=10.0, help="pause between a paced stream's chunks")
    p.add_argument("--seconds", type=float, default=5.0, help="each CPU-overhead run")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    ordered = sorted(values)
    return {"p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
            "max_ms": round(ordered[-1], 2)}


async def one_stream(ingress: str, chunks: int) -> dict[str, Any]:
    """One invocation writing `chunks` 10-byte chunks; one client reading them as they come."""
    from endure.sdk.client import Client, StreamChunk, StreamResult

    async with Client(ingress) as client:
        start = time.perf_counter()
        first = last = 0.0
        got = 0
        async for event in client.stream("bench/stream_tokens", chunks):
            if isinstance(event, StreamChunk):
                got += 1
                last = time.perf_counter()
                first = first or last
            elif isinstance(event, StreamResult):
                assert event.value == chunks
    elapsed = last - start
    return {"chunks": got, "seconds": round(elapsed, 3), "chunks_per_s": round(got / elapsed) if elapsed else 0,
            "first_chunk_ms": round((first - start) * 1000, 1)}


async def paced_streams(ingress: str, streams: int, per_stream: int, gap_ms: float) -> dict[str, Any]:
    """`streams` invocations at once, each writing timestamped chunks `gap_ms` apart and followed
    by its own client: latency from write to receipt (same machine, same clock)."""
    from endure.sdk.client import Client, StreamChunk

    latencies: list[float] = []
    clients = [Client(ingress) for _ in range(max(1, min(8, streams // 16)))]

    async def follow(i: int) -> int:
        n = 0
        async for event in clients[i % len(clients)].stream("bench/stream_paced", {"n": per_stream, "gap_ms": gap_ms}):
            if isinstance(event, StreamChunk):
                latencies.append((time.time() - float(event.data)) * 1000)
                n += 1
        return n

    try:
        start = time.perf_counter()
        counts = await asyncio.gather(*(follow(i) for i in range(streams)))
        elapsed = time.perf_counter() - start
    finally:
        for c in clients:
            await c.close()
    return {"streams": streams, "chunks": sum(counts), "chunks_per_s": round(sum(counts) / elapsed),
            **_quantiles(latencies)}


async def _closed_loop(ingress: str, target: str, seconds: float) -> dict[str, float]:
    from endure.sdk.client import Client

    async with Client(ingress) as client:
        async def request(i: int) -> object:
            return await client.call(target, 1)

        stats = await harness.closed_loop(request, 32, seconds, 0.0)  # no warmup: the CPU window is the run
    return stats.summary()


def cpu_overhead(cluster: BenchCluster, seconds: float) -> dict[str, Any]:
    """CPU µs per invocation of the runtime and the worker: noop against noop plus ten chunks,
    alternated twice so both see the same machine."""
    out: dict[str, list[dict[str, float]]] = {"noop": [], "noop_stream": []}
    for _ in range(2):
        for name in out:
            meter = CpuMeter(cluster.processes())
            summary = asyncio.run(_closed_loop(cluster.ingress, f"bench/{name}", seconds))
            cpu = meter.stop()
            done = summary["throughput_per_s"] * seconds
            per = {proc: round(v["cpu_s"] / done * 1e6, 1) for proc, v in cpu.items()} if done else {}
            out[name].append({"throughput_per_s": summary["throughput_per_s"], **{f"{k}_cpu_us": v for k, v in per.items()}})
    result: dict[str, Any] = {}
    for name, runs in out.items():
        result[name] = {k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]}
    base, streamed = result["noop"], result["noop_stream"]
    result["added_cpu_us"] = {k: round(streamed[k] - base[k], 1) for k in base if k.endswith("_cpu_us") and k in streamed}
    return result


def run(args: argparse.Namespace) -> int:
    with BenchCluster(partitions=4, concurrency=max(256, args.streams * 2)) as cluster:
        load = psutil.Process()
        meter = CpuMeter({**cluster.processes(), "load generator": load})
        throughput = asyncio.run(one_stream(cluster.ingress, args.chunks))
        single = asyncio.run(paced_streams(cluster.ingress, 1, args.per_stream, args.gap_ms))
        many = asyncio.run(paced_streams(cluster.ingress, args.streams, args.per_stream, args.gap_ms))
        processes = meter.stop()
        overhead = cpu_overhead(cluster, args.seconds)
    result = {"one_stream": throughput, "latency_one_stream": single, "latency_concurrent": many,
              "cpu_overhead": overhead, "processes": processes}
    path = harness.write_results("stream", result)
    if args.json:
        print(json.dumps(result))
        return 0
    harness.print_table("one stream, 10-byte chunks", {"figures": throughput})
    harness.print_table(f"write → client latency ({args.per_stream} chunks {args.gap_ms:g} ms apart per stream)",
                        {"1 stream": single, f"{args.streams} streams": many})
    harness.print_table("CPU per invocation (closed loop, 32 clients)",
                        {"noop": overhead["noop"], "noop + 10 chunks": overhead["noop_stream"]})
    print(f"added CPU µs per invocation: {overhead['added_cpu_us']}")
    print(f"results: {path}")
    return 0
