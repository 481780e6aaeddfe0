"""`python -m endure.bench snapshot`: how long a new leader takes to reach the tail, by full replay
and by restoring the newest snapshot then replaying only the records after it.

Setup (not timed): `--records` records of 3-step invocations (invoke, three run entries, output,
end; as `python -m endure.bench apply` makes them) are appended to a real NodeLog; a leader's store
applies all but the last `--tail` of them through the processor's batch path, and a Snapshotter
takes one snapshot of it into the snapshot store (`--store`, default a `dir:` folder in the temp
dir; `s3://bucket/prefix?endpoint=…` works too) and indexes it. The log is not trimmed, so that
(a) is possible.

Then, each into an empty folder, as a new leader would:
  (a) full replay: open a fresh store and apply the log from LSN 1 to the tail;
  (b) snapshot: `restore_latest` (download, check, put in place), open the store, apply the log
      from the snapshot's LSN + 1 to the tail.
Both stores must end with the same rows (checked after the timings).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from endure.bench.apply_bench import RECORDS_PER_INVOCATION, _processor, make_records
from endure.runtime.log import NodeLog, VirtualLog
from endure.runtime.partition.snapshots import Snapshotter, open_snapshot_store, restore_latest


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "snapshot",
        help="time to the tail for a new leader: full replay vs restoring a snapshot and replaying the tail",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _arguments(p)
    p.set_defaults(func=run)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--records", type=int, default=50_000, help="records in the log (default 50000)")
    p.add_argument("--tail", type=int, default=5_000, help="records after the snapshot (default 5000)")
    p.add_argument("--concurrent", type=int, default=64, help="invocations interleaved in the stream (default 64)")
    p.add_argument("--step-bytes", type=int, default=100, help="bytes of each run entry's result (default 100)")
    p.add_argument("--store", default=None, help="snapshot store URL (default: dir: in the temp dir)")
    p.add_argument("--dir", type=Path, default=None, help="where to make the temp dir (default: system tmp)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


async def _catch_up(path: Path, vlog: VirtualLog, target: int) -> tuple[float, int, str]:
    """Open the store at path and apply the log from its applied LSN + 1 to target, as a processor
    does after a restart: (seconds, records applied, digest of the rows)."""
    t0 = time.perf_counter()
    proc = _processor(path, vlog)
    start = proc.applied_lsn
    if start < target:
        async for batch in vlog.reader(start + 1):
            proc._apply_batch(batch)
            if proc.applied_lsn >= target:
                break
    seconds = time.perf_counter() - t0
    digest = hashlib.sha256()
    for key, value in proc.store.items():
        digest.update(len(key).to_bytes(4, "big") + key + len(value).to_bytes(4, "big") + value)
    proc.store.close()
    return seconds, proc.applied_lsn - start, digest.hexdigest()


async def snapshot_catch_up(records: int = 50_000, tail: int = 5_000, *, root: Path, store_url: str | None = None,
                            concurrent: int = 64, step_bytes: int = 100) -> dict[str, Any]:
    """Build the log and the snapshot in `root`, then time (a) full replay and (b) restore + tail replay."""
    invocations = records // RECORDS_PER_INVOCATION
    payloads = make_records(0, invocations, concurrent, step_bytes)
    n = len(payloads)
    if not 0 <= tail < n:
        raise ValueError(f"--tail must be in [0, {n}) for {n} records, got {tail}")
    url = store_url or f"dir:{root / 'snapshots'}"
    snapshots = open_snapshot_store(url)
    node = await NodeLog.open(root / "log", 1)
    try:
        vlog = node.log(0)
        for i in range(0, n, 5000):
            await vlog.append(payloads[i:i + 5000])
        target = vlog.tail() - 1
        snap_at = target - tail

        # The old leader: applied up to snap_at, snapshotted there (log kept whole: trim_floor 0).
        leader = _processor(root / "leader" / "p0", vlog)
        async for batch in vlog.reader(1, limit=1000):
            leader._apply_batch(batch[: max(0, snap_at - batch[0].lsn + 1)])
            if leader.applied_lsn >= snap_at:
                break
        snapshotter = Snapshotter(0, leader.store, vlog, node.metadata, snapshots, trim_floor=lambda: 0)
        t0 = time.perf_counter()
        ref = await snapshotter.snapshot_now()
        snapshot_s = time.perf_counter() - t0
        leader.store.close()
        assert ref is not None and ref.lsn == snap_at, (ref, snap_at)

        # (a) a new leader with no snapshot: everything from LSN 1.
        full_s, full_records, full_digest = await _catch_up(root / "full" / "p0", vlog, target)
        # (b) a new leader that restores the snapshot, then replays the tail.
        t0 = time.perf_counter()
        restored = await restore_latest(node.metadata, snapshots, 0, root / "restored" / "p0")
        restore_s = time.perf_counter() - t0
        assert restored == snap_at, (restored, snap_at)
        replay_s, tail_records, snap_digest = await _catch_up(root / "restored" / "p0", vlog, target)
        if snap_digest != full_digest:
            raise AssertionError("the restored-and-replayed store differs from the fully replayed one")
    finally:
        await node.close()
        await snapshots.close()
    return {
        "workload": "snapshot",
        "records": n,
        "snapshot_lsn": snap_at,
        "tail_records": tail_records,
        "snapshot_bytes": ref.size,
        "snapshot_store": snapshots.url,
        "take_snapshot_seconds": round(snapshot_s, 3),
        "full_replay_seconds": round(full_s, 3),
        "full_replay_records": full_records,
        "restore_seconds": round(restore_s, 3),
        "tail_replay_seconds": round(replay_s, 3),
        "snapshot_catch_up_seconds": round(restore_s + replay_s, 3),
        "speedup": round(full_s / (restore_s + replay_s), 1),
        "cpus": os.cpu_count(),
    }


def run(args: argparse.Namespace) -> int:
    for name in ("records", "concurrent", "step_bytes"):
        if getattr(args, name) <= 0:
            raise SystemExit(f"--{name.replace('_', '-')} must be > 0")
    tmp = Path(tempfile.mkdtemp(prefix="endure-snapshot-bench-", dir=args.dir))
    try:
        out = asyncio.run(snapshot_catch_up(args.records, args.tail, root=tmp, store_url=args.store,
                                            concurrent=args.concurrent, step_bytes=args.step_bytes))
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"log: {out['records']:,} records; snapshot at LSN {out['snapshot_lsn']:,} "
              f"({out['snapshot_bytes'] / 1e6:.1f} MB in {out['snapshot_store']}, taken in "
              f"{out['take_snapshot_seconds']:.3f} s)")
        print(f"(a) full replay:          {out['full_replay_seconds']:7.3f} s  ({out['full_replay_records']:,} records "
              f"from LSN 1)")
        print(f"(b) snapshot + tail:      {out['snapshot_catch_up_seconds']:7.3f} s  (restore "
              f"{out['restore_seconds']:.3f} s + replay {out['tail_replay_seconds']:.3f} s of "
              f"{out['tail_records']:,} records)  {out['speedup']}x faster")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m endure.bench.snapshot_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
