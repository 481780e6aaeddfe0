"""`python -m endure.bench apply`: partition-processor apply throughput through the real store.

The records are those of many 3-step handlers (invoke, three run entries, output, end), made up
front and interleaved like concurrent invocations. Two phases:

1. apply: batches of `--batch` records go through the processor's own batch path
   (`PartitionProcessor._apply_batch`: parse, state machine, one RocksDB write batch with the
   applied LSN per batch) for `--seconds` -> `records_per_s`.
2. replay: the records applied in phase 1 are written to a real NodeLog; a fresh store at
   applied LSN 0 then reads them back with the log's reader and applies them through the same
   path, as a processor does after a restart -> `replay_records_per_s`.

`--profile` prints the top of a cProfile of phase 1 to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from endure.proto import ids
from endure.proto import records_pb2 as pb
from endure.runtime.log import LogRecord, NodeLog
from endure.runtime.partition.api import LocalPartition
from endure.runtime.partition.effects import Effect
from endure.runtime.partition.processor import PartitionProcessor
from endure.runtime.partition.state_machine import StateMachine, StateMachineConfig
from endure.runtime.partition.store import PartitionStore

RECORDS_PER_INVOCATION = 6  # invoke, 3 x run, output, end


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "apply",
        help="partition state machine apply and replay throughput through the real store",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _arguments(p)
    p.set_defaults(func=run)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=5.0, help="duration of the apply phase (default 5)")
    p.add_argument("--batch", type=int, default=128, help="records per store transaction (default 128)")
    p.add_argument("--concurrent", type=int, default=64, help="invocations interleaved in the stream (default 64)")
    p.add_argument("--step-bytes", type=int, default=100, help="bytes of each run entry's result (default 100)")
    p.add_argument("--dir", type=Path, default=None, help="where to make the temp dir (default: system tmp)")
    p.add_argument("--profile", action="store_true", help="cProfile the apply phase; top 25 to stderr")
    p.add_argument("--json", action="store_true", help="print one JSON object")


class _NoLog:
    """Phase 1 applies without a log; the processor only needs one to exist."""

    def tail(self) -> int:
        return 1


class _NoSink:
    def on_effects(self, partition: int, effects: Sequence[Effect]) -> None:
        pass

    def on_leadership(self, partition: int, leading: bool) -> None:
        pass


def make_records(first_invocation: int, invocations: int, concurrent: int, step_bytes: int) -> list[bytes]:
    """Records of `invocations` 3-step handlers, `concurrent` of them interleaved at a time."""
    out: list[bytes] = []
    ts = 1_700_000_000_000
    step = os.urandom(step_bytes)
    for group in range(first_invocation, first_invocation + invocations, concurrent):
        n = min(concurrent, first_invocation + invocations - group)
        group_ids = [ids.derived_invocation_id(None, "apply-bench", str(group + i)) for i in range(n)]
        for phase in range(RECORDS_PER_INVOCATION):
            for i, inv in enumerate(group_ids):
                ts += 1
                env = pb.Envelope(header=pb.Header(timestamp_ms=ts))
                if phase == 0:
                    env.invoke.invocation_id = inv
                    env.invoke.target.service = "agent"
                    env.invoke.target.handler = "run"
                    env.invoke.handler_kind = pb.SERVICE
                    env.invoke.input = b'{"task": %d}' % (group + i)
                    env.invoke.tenant = "bench"
                elif phase <= 3:
                    env.append_entry.invocation_id = inv
                    env.append_entry.index = phase - 1
                    env.append_entry.entry.name = f"step{phase}"
                    env.append_entry.entry.run.SetInParent()
                    env.append_entry.entry.value = step
                elif phase == 4:
                    env.append_entry.invocation_id = inv
                    env.append_entry.index = 3
                    env.append_entry.entry.output.value = b'{"ok": true}'
                else:
                    env.end.invocation_id = inv
                out.append(env.SerializeToString())
    return out


def _processor(path: Path, virtual_log: Any) -> PartitionProcessor:
    store = PartitionStore(path)
    sm = StateMachine(StateMachineConfig(partition=0, partitions=1))
    partitions: dict[int, LocalPartition] = {}  # the shuffle's targets (it never leads here: none used)
    proc = PartitionProcessor(0, virtual_log, store, sm, _NoSink(), partitions.__getitem__)
    partitions[0] = LocalPartition(proc)
    return proc


def apply_phase(args: argparse.Namespace, path: Path) -> tuple[list[bytes], float, int]:
    """Apply fresh records in batches for args.seconds; return (records applied, seconds, rejected)."""
    proc = _processor(path, _NoLog())
    applied: list[bytes] = []
    chunk_invocations = max(args.concurrent, (20_000 // RECORDS_PER_INVOCATION) // args.concurrent * args.concurrent)
    profiler = cProfile.Profile() if args.profile else None
    elapsed = 0.0
    made = 0
    lsn = 0
    while elapsed < args.seconds:
        chunk = make_records(made, chunk_invocations, args.concurrent, args.step_bytes)  # not timed
        made += chunk_invocations
        batches = []
        for i in range(0, len(chunk), args.batch):
            batches.append([LogRecord(lsn + 1 + j, payload) for j, payload in enumerate(chunk[i:i + args.batch])])
            lsn += len(batches[-1])
        t0 = time.perf_counter()
        if profiler:
            profiler.enable()
        for batch in batches:
            proc._apply_batch(batch)
            if time.perf_counter() - t0 + elapsed >= args.seconds:
                break
        if profiler:
            profiler.disable()
        elapsed += time.perf_counter() - t0
        applied.extend(chunk[: proc.applied_lsn - len(applied)])
    rejected = proc.state_machine.rejected
    proc.store.close()
    if profiler:
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(25)
        print(buf.getvalue(), file=sys.stderr)
    return applied, elapsed, rejected


async def replay_phase(records: list[bytes], root: Path) -> tuple[float, float]:
    """Write records to a NodeLog, then read + apply them from LSN 1 into a fresh store."""
    node = await NodeLog.open(root / "log", 1)
    try:
        vlog = node.log(0)
        t0 = time.perf_counter()
        for i in range(0, len(records), 5000):
            await vlog.append(records[i:i + 5000])
        write_s = time.perf_counter() - t0
        proc = _processor(root / "replay-store", vlog)
        assert proc.applied_lsn == 0
        target = len(records)
        t0 = time.perf_counter()
        async for batch in vlog.reader(proc.applied_lsn + 1):  # what PartitionProcessor._run does
            proc._apply_batch(batch)
            if proc.applied_lsn >= target:
                break
        replay_s = time.perf_counter() - t0
        proc.store.close()
        return replay_s, write_s
    finally:
        await node.close()


def run(args: argparse.Namespace) -> int:
    for name in ("seconds", "batch", "concurrent", "step_bytes"):
        if getattr(args, name) <= 0:
            raise SystemExit(f"--{name.replace('_', '-')} must be > 0")
    tmp = Path(tempfile.mkdtemp(prefix="endure-apply-bench-", dir=args.dir))
    try:
        records, apply_s, rejected = apply_phase(args, tmp / "apply-store")
        replay_s, write_s = asyncio.run(replay_phase(records, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = len(records)
    out = {
        "workload": "apply",
        "records_per_s": round(n / apply_s),
        "replay_records_per_s": round(n / replay_s),
        "invocations_per_s": round(n / RECORDS_PER_INVOCATION / apply_s),
        "records": n,
        "rejected": rejected,
        "apply_seconds": round(apply_s, 3),
        "replay_seconds": round(replay_s, 3),
        "log_write_seconds": round(write_s, 3),
        "batch": args.batch,
        "concurrent": args.concurrent,
        "step_bytes": args.step_bytes,
        "replay_batch": 1000,
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"apply:  {out['records_per_s']:>9,} records/s  ({out['invocations_per_s']:,} 3-step invocations/s, "
              f"{args.batch} records per transaction, {n:,} records)")
        print(f"replay: {out['replay_records_per_s']:>9,} records/s  (NodeLog reader + apply from LSN 1)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m endure.bench.apply_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
