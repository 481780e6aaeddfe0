"""`python -m endure.bench cluster-log`: virtual-log appends/s on JetStream R3 against the RocksDB
loglet, in one run, on this machine.

Two phases, one after the other, same load: `--appenders` asyncio tasks (uvloop), spread
round-robin over `--partitions` virtual logs, each appending one `--record-size`-byte record per
call and waiting for it to be durable, for `--seconds`:

1. rocksdb: the embedded default, a NodeLog (one RocksDB, group commit, fsync per batch);
2. jetstream: a local cluster of `--servers` nats-server processes on loopback (`sync_interval:
   always`, so every server fsyncs before it acknowledges), streams of `--replicas` copies, the
   JetStream loglet (atomic-batch group commit, acknowledged on a quorum) and the metadata in an
   R3 key-value bucket. The servers run on the same cores as the benchmark: their CPU is shown.

Both logs are checked after the run: every acknowledged record is in the log.
`run_log_comparison()` is the reusable piece (a later `cluster` workload adds end-to-end and
failover phases around it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from endure.runtime.log import NodeLog, VirtualLog

__all__ = ["add_parser", "measure_appends", "run_log_comparison"]


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "cluster-log",
        help="log appends/s on JetStream R3 vs the RocksDB loglet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seconds", type=float, default=5.0, help="duration of each phase (default 5)")
    p.add_argument("--appenders", type=int, default=64, help="concurrent appenders (default 64)")
    p.add_argument("--partitions", type=int, default=1, help="virtual logs the appenders share (default 1)")
    p.add_argument("--record-size", type=int, default=100, help="payload bytes (default 100)")
    p.add_argument("--servers", type=int, default=3, help="nats-server processes (default 3)")
    p.add_argument("--replicas", type=int, default=3, help="stream and bucket replicas (default 3)")
    p.add_argument("--dir", type=Path, default=None, help="where to make the temp dir (default: system tmp)")
    p.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


async def measure_appends(logs: list[VirtualLog], appenders: int, seconds: float, record_size: int) -> dict[str, Any]:
    """`appenders` tasks append one record per call to `logs` round-robin for `seconds`; the
    records/s, latency quantiles and the client's CPU. Every acknowledged record is checked."""
    payload = os.urandom(record_size)
    latencies: list[float] = []
    counts = [0] * appenders
    tails = [log.tail() for log in logs]
    stop = False

    async def appender(i: int) -> None:
        append = logs[i % len(logs)].append
        clock = time.perf_counter
        lat = latencies.append
        while not stop:
            t0 = clock()
            await append([payload])
            lat(clock() - t0)
            counts[i] += 1

    start, cpu0 = time.perf_counter(), time.process_time()
    tasks = [asyncio.ensure_future(appender(i)) for i in range(appenders)]
    try:
        await asyncio.sleep(seconds)
        stop = True
        await asyncio.gather(*tasks)  # appends in flight finish and count
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    total = sum(counts)
    grown = sum(log.tail() - t for log, t in zip(logs, tails, strict=True))
    if grown != total:
        raise RuntimeError(f"acknowledged {total} records but the logs grew by {grown}")
    latencies.sort()
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {
        "records": total,
        "seconds": round(elapsed, 3),
        "records_per_s": round(total / elapsed),
        "append_p50_ms": round(q[49] * 1000, 3),
        "append_p99_ms": round(q[98] * 1000, 3),
        "append_max_ms": round(latencies[-1] * 1000, 3),
        "client_cpu_percent": round(100 * cpu / elapsed, 1),
    }


async def _rocksdb_phase(root: Path, appenders: int, seconds: float, record_size: int, partitions: int) -> dict[str, Any]:
    node = await NodeLog.open(root / "rocksdb", partitions)
    try:
        logs = [node.log(p) for p in range(partitions)]
        await asyncio.gather(*(log.append([b"warmup"]) for log in logs))
        batches0 = node.store.batches_written
        res = await measure_appends(logs, appenders, seconds, record_size)
        batches = node.store.batches_written - batches0
    finally:
        await node.close()
    res["write_batches"] = batches
    res["avg_batch_records"] = round(res["records"] / batches, 1) if batches else 0.0
    return res


def _servers_cpu(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


async def _jetstream_phase(urls: list[str], pids: list[int], appenders: int, seconds: float, record_size: int,
                           partitions: int, replicas: int) -> dict[str, Any]:
    from endure.runtime.log.jetstream import (
        JetStreamConnection,
        JetStreamLogletProvider,
        JetStreamMetadataStore,
    )

    conn = await JetStreamConnection.connect(urls)
    try:
        metadata = await JetStreamMetadataStore.open(conn, "bench-metadata", replicas=replicas)
        provider = JetStreamLogletProvider(conn, replicas=replicas, namespace="bench")
        try:
            logs = [await VirtualLog.open(p, metadata, {"jetstream": provider}, default_kind="jetstream")
                    for p in range(partitions)]
            await asyncio.gather(*(log.append([b"warmup"]) for log in logs))  # creates the streams
            batches0, trips0, srv0 = provider.batches_written, conn.round_trips, _servers_cpu(pids)
            res = await measure_appends(logs, appenders, seconds, record_size)
            batches = provider.batches_written - batches0
            res["servers_cpu_percent"] = round(100 * (_servers_cpu(pids) - srv0) / res["seconds"], 1)
            res["round_trips"] = conn.round_trips - trips0
            res["atomic_batches"] = batches
            res["avg_batch_records"] = round(res["records"] / batches, 1) if batches else 0.0
            res["conflicts"], res["resends"] = provider.conflicts, provider.resends
        finally:
            await provider.close()
            await metadata.close()
    finally:
        await conn.close()
    return res


def run_log_comparison(
    *,
    seconds: float = 5.0,
    appenders: int = 64,
    record_size: int = 100,
    partitions: int = 1,
    servers: int = 3,
    replicas: int = 3,
    root: Path | None = None,
    use_uvloop: bool = True,
) -> dict[str, Any]:
    """Both phases (RocksDB, then JetStream on a fresh local cluster); one dict of figures."""
    from endure.runtime.log.jetstream.local_cluster import LocalNatsCluster

    if replicas > servers:
        raise ValueError(f"{replicas} replicas need at least as many servers, got {servers}")
    tmp = Path(tempfile.mkdtemp(prefix="endure-cluster-bench-", dir=root))

    def run_async(coro: Any) -> Any:
        if use_uvloop:
            import uvloop

            return uvloop.run(coro)
        return asyncio.run(coro)

    try:
        rocks = run_async(_rocksdb_phase(tmp, appenders, seconds, record_size, partitions))
        with LocalNatsCluster(tmp / "nats", servers) as cluster:
            pids = [c.pid for c in cluster._children if c is not None]
            js = run_async(_jetstream_phase(cluster.urls, pids, appenders, seconds, record_size, partitions, replicas))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "workload": "cluster-log",
        "rocksdb": rocks,
        "jetstream": js,
        "jetstream_to_rocksdb": round(js["records_per_s"] / rocks["records_per_s"], 3),
        "appenders": appenders,
        "partitions": partitions,
        "record_size": record_size,
        "servers": servers,
        "replicas": replicas,
        "sync": "always",
        "seconds": seconds,
        "loop": "uvloop" if use_uvloop else "asyncio",
        "cpus": os.cpu_count(),
    }


def run(args: argparse.Namespace) -> int:
    for name in ("seconds", "appenders", "partitions", "record_size", "servers", "replicas"):
        if getattr(args, name) <= 0:
            raise SystemExit(f"--{name.replace('_', '-')} must be > 0")
    out = run_log_comparison(seconds=args.seconds, appenders=args.appenders, record_size=args.record_size,
                             partitions=args.partitions, servers=args.servers, replicas=args.replicas,
                             root=args.dir, use_uvloop=not args.no_uvloop)
    if args.json:
        print(json.dumps(out))
        return 0
    r, j = out["rocksdb"], out["jetstream"]
    print(f"{args.appenders} appenders x 1 record of {args.record_size} B, {args.partitions} log(s), "
          f"{args.seconds:g} s each, {out['loop']}, {out['cpus']} CPUs")
    print(f"rocksdb loglet:      {r['records_per_s']:>8,} appends/s  p50 {r['append_p50_ms']} ms, "
          f"p99 {r['append_p99_ms']} ms; {r['write_batches']:,} synced batches of {r['avg_batch_records']}; "
          f"CPU {r['client_cpu_percent']}%")
    print(f"jetstream R{args.replicas}/{args.servers}:     {j['records_per_s']:>8,} appends/s  p50 {j['append_p50_ms']} ms, "
          f"p99 {j['append_p99_ms']} ms; {j['atomic_batches']:,} atomic batches of {j['avg_batch_records']}; "
          f"client CPU {j['client_cpu_percent']}%, servers CPU {j['servers_cpu_percent']}%")
    print(f"jetstream / rocksdb: {out['jetstream_to_rocksdb']}")
    return 0
