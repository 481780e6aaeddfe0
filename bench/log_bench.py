"""`python -m endure.bench log`: virtual-log append throughput against plain RocksDB.

Two workloads, same process, same disk, same RocksDB options, alternating in short slices
(`--slice`) so that both see the same disk and CPU weather on a shared machine:

1. raw: plain rocksdict, one thread, WriteBatch of `--raw-batch` records, sync=True. This is
   the ceiling for synced writes of this record size on this machine.
2. log: `--appenders` concurrent asyncio tasks (uvloop), spread round-robin over
   `--partitions` virtual logs of one NodeLog; each task appends `--records-per-append`
   records per call (default 1: the honest case, every record is its own append call that
   waits for its fsync) and measures each call's latency.

`ratio_to_raw` = log records/s / raw records/s. The log's only way to reach the raw figure
is group commit: the appenders' records share one synced WriteBatch.
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

from rocksdict import Rdict, WriteBatch, WriteOptions

from endure.runtime.log import NodeLog
from endure.runtime.log.local_loglet import log_db_options


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "log",
        help="virtual log append throughput vs raw RocksDB",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seconds", type=float, default=5.0, help="duration of each phase (default 5)")
    p.add_argument("--appenders", type=int, default=64, help="concurrent appenders (default 64)")
    p.add_argument("--partitions", type=int, default=8, help="partitions / virtual logs (default 8)")
    p.add_argument("--record-size", type=int, default=200, help="payload bytes (default 200)")
    p.add_argument("--records-per-append", type=int, default=1, help="records per append call (default 1)")
    p.add_argument("--raw-batch", type=int, default=100, help="records per raw WriteBatch (default 100)")
    p.add_argument("--slice", type=float, default=0.25, help="raw and log alternate in slices this long (default 0.25 s)")
    p.add_argument("--dir", type=Path, default=None, help="where to make the temp dir (default: system tmp)")
    p.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


class RawRocksDB:
    """Synced WriteBatches of `batch` records straight into rocksdict (no Python log layer)."""

    def __init__(self, path: Path, batch: int, record_size: int) -> None:
        self.db = Rdict(str(path), log_db_options())
        self.sync = WriteOptions()
        self.sync.sync = True
        self.batch = batch
        self.payload = os.urandom(record_size)
        self.records = 0
        self.seconds = 0.0

    def run_for(self, seconds: float) -> None:
        db, sync, payload, batch = self.db, self.sync, self.payload, self.batch
        prefix = b"R" + bytes(8)
        n = self.records
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            wb = WriteBatch(raw_mode=True)
            for lsn in range(n, n + batch):
                wb.put(prefix + lsn.to_bytes(8, "big"), payload)
            db.write(wb, sync)
            n += batch
        self.seconds += time.perf_counter() - start
        self.records = n

    def close(self) -> None:
        self.db.close()


async def measure(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, Any], RawRocksDB]:
    """Alternate raw and log slices so both see the same disk (the machine is shared)."""
    partitions, per_append = args.partitions, args.records_per_append
    raw = RawRocksDB(tmp / "raw", args.raw_batch, args.record_size)
    node = await NodeLog.open(tmp / "node", partitions)
    payloads = [os.urandom(args.record_size) for _ in range(per_append)]
    latencies: list[float] = []
    counts = [0] * args.appenders
    loop = asyncio.get_running_loop()
    running = False
    go = asyncio.Event()
    parked = 0
    all_parked: asyncio.Future[None] = loop.create_future()

    async def appender(i: int) -> None:
        nonlocal parked, all_parked
        append = node.log(i % partitions).append
        clock = time.perf_counter
        lat = latencies.append
        while True:
            if not running:
                parked += 1
                if parked == args.appenders and not all_parked.done():
                    all_parked.set_result(None)
                await go.wait()
                parked -= 1
                continue
            t0 = clock()
            await append(payloads)
            lat(clock() - t0)
            counts[i] += per_append

    tasks = [asyncio.ensure_future(appender(i)) for i in range(args.appenders)]
    try:
        # Warm up (writer thread, memtables, first fsyncs) outside the measurement.
        await asyncio.gather(*(node.log(p).append([b"warmup"]) for p in range(partitions)))
        raw.run_for(min(0.2, args.seconds))
        raw.records, raw.seconds = 0, 0.0
        await all_parked
        log_seconds = 0.0
        batches0, cpu = node.store.batches_written, 0.0
        rounds = max(1, round(args.seconds / args.slice))
        for _ in range(rounds):
            raw.run_for(args.seconds / rounds)
            all_parked = loop.create_future()
            start, cpu0 = time.perf_counter(), time.process_time()
            running = True
            go.set()
            go.clear()
            await asyncio.sleep(args.seconds / rounds)
            running = False
            await all_parked  # appends in flight finish and count
            log_seconds += time.perf_counter() - start
            cpu += time.process_time() - cpu0
        batches = node.store.batches_written - batches0
        total = sum(counts)
        tails = sum(node.log(p).tail() - 2 for p in range(partitions))
        if tails != total:  # every acknowledged record is in the log
            raise RuntimeError(f"acknowledged {total} records but the logs hold {tails}")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await node.close()
        raw.close()
    latencies.sort()
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {
        "records": total,
        "seconds": log_seconds,
        "records_per_s": total / log_seconds,
        "append_p50_ms": q[49] * 1000,
        "append_p99_ms": q[98] * 1000,
        "append_max_ms": latencies[-1] * 1000,
        "write_batches": batches,
        "avg_batch_records": total / batches if batches else 0.0,
        "fsyncs_per_s": batches / log_seconds,
        "cpu_percent": 100 * cpu / log_seconds,
    }, raw


def run(args: argparse.Namespace) -> int:
    for name in ("seconds", "appenders", "partitions", "record_size", "records_per_append", "raw_batch"):
        if getattr(args, name) <= 0:
            raise SystemExit(f"--{name.replace('_', '-')} must be > 0")
    tmp = Path(tempfile.mkdtemp(prefix="endure-log-bench-", dir=args.dir))
    try:
        coro = measure(args, tmp)
        if args.no_uvloop:
            res, raw = asyncio.run(coro)
            loop_name = "asyncio"
        else:
            import uvloop

            res, raw = uvloop.run(coro)
            loop_name = "uvloop"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = {
        "workload": "log",
        "records_per_s": round(res["records_per_s"]),
        "append_p50_ms": round(res["append_p50_ms"], 3),
        "append_p99_ms": round(res["append_p99_ms"], 3),
        "append_max_ms": round(res["append_max_ms"], 3),
        "raw_rocksdb_records_per_s": round(raw.records / raw.seconds),
        "ratio_to_raw": round(res["records_per_s"] / (raw.records / raw.seconds), 3),
        "records": res["records"],
        "write_batches": res["write_batches"],
        "avg_batch_records": round(res["avg_batch_records"], 1),
        "fsyncs_per_s": round(res["fsyncs_per_s"]),
        "cpu_percent": round(res["cpu_percent"], 1),
        "appenders": args.appenders,
        "partitions": args.partitions,
        "record_size": args.record_size,
        "records_per_append": args.records_per_append,
        "raw_batch": args.raw_batch,
        "seconds": args.seconds,
        "loop": loop_name,
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"virtual log: {out['records_per_s']:>9,} records/s  "
              f"({args.appenders} appenders x {args.records_per_append} record(s) of {args.record_size} B, "
              f"{args.partitions} partitions, {loop_name})")
        print(f"  append latency p50 {out['append_p50_ms']} ms, p99 {out['append_p99_ms']} ms, "
              f"max {out['append_max_ms']} ms")
        print(f"  {out['write_batches']:,} synced batches, {out['avg_batch_records']} records each, "
              f"{out['fsyncs_per_s']:,} fsyncs/s, process CPU {out['cpu_percent']}%")
        print(f"raw rocksdb: {out['raw_rocksdb_records_per_s']:>9,} records/s  "
              f"(WriteBatch of {args.raw_batch}, sync on)")
        print(f"ratio to raw: {out['ratio_to_raw']}")
    return 0
