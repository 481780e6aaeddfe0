"""Crash safety: SIGKILL a process that appends (and reconfigures, and trims) at random
moments, reopen, and check every acknowledged record is there with the same bytes and LSN,
with contiguous LSNs. Many rounds on the same data directory, so recovery is exercised
from the states earlier kills left behind (including kills during recovery itself)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from endure.runtime.log import NodeLog

CHILD = Path(__file__).with_name("crash_child.py")
ROUNDS = int(os.environ.get("ENDURE_LOG_CRASH_ROUNDS", "32"))
PARTITIONS = 3


class Acks:
    """What the child reported as durable before it died."""

    def __init__(self) -> None:
        self.records: dict[tuple[int, int], str] = {}
        self.trims: dict[int, int] = {}

    def feed(self, line: str) -> None:
        parts = line.split()
        if parts[0] == "A":
            key = (int(parts[1]), int(parts[2]))
            prev = self.records.get(key)
            assert prev is None or prev == parts[3], f"LSN {key} acknowledged twice with different bytes"
            self.records[key] = parts[3]
        elif parts[0] == "T":
            p = int(parts[1])
            self.trims[p] = max(self.trims.get(p, 0), int(parts[2]))


def run_child(data_dir: Path, seed: int, round_no: int, rng: random.Random, acks: Acks, stderr: Path) -> None:
    """Start the child, kill -9 it at a random moment, record every line it completed."""
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(data_dir), str(PARTITIONS), str(seed), str(round_no)],
            stdout=subprocess.PIPE,
            stderr=err,
        )
    assert proc.stdout is not None
    try:
        mode = rng.random()
        if mode < 0.15:
            # Kill at a random time, possibly while it is still opening/recovering the log.
            time.sleep(rng.uniform(0, 0.4))
        else:
            # Kill after a random number of acknowledgements (mid-append, mid-batch).
            want = rng.randrange(1, 1500)
            seen = 0
            while seen < want:
                line = proc.stdout.readline()
                if not line:
                    raise AssertionError(f"child exited early: {stderr.read_text()[-3000:]}")
                if line != b"READY\n":
                    acks.feed(line.decode())
                seen += 1
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read()  # lines flushed before the kill were acknowledged too
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
    for line in rest.decode(errors="replace").split("\n")[:-1]:  # the last piece may be partial
        if line and line != "READY":
            acks.feed(line)


async def verify(data_dir: Path, acks: Acks) -> int:
    node = await NodeLog.open(data_dir, PARTITIONS)
    try:
        total = 0
        for p in range(PARTITIONS):
            log = node.log(p)
            tp, tail = log.trim_point(), log.tail()
            assert tp >= acks.trims.get(p, 0), f"partition {p}: acknowledged trim lost"
            got: dict[int, str] = {}
            lsn = tp + 1
            while lsn < tail:
                batch = await log.read(lsn, tail, limit=5000)
                for rec in batch:
                    assert rec.lsn == lsn, f"partition {p}: LSN gap, expected {lsn}, got {rec.lsn}"
                    got[lsn] = hashlib.sha256(rec.payload).hexdigest()
                    lsn += 1
            for (pp, alsn), h in acks.records.items():
                if pp != p or alsn <= tp:
                    continue
                assert alsn < tail, f"partition {p}: acknowledged LSN {alsn} is beyond the recovered tail {tail}"
                assert got[alsn] == h, f"partition {p}: LSN {alsn} has other bytes than acknowledged"
                total += 1
            # The log still works after recovery and continues the LSN sequence.
            assert await log.append([b"probe"]) == range(tail, tail + 1)
            acks.records[(p, tail)] = hashlib.sha256(b"probe").hexdigest()
        return total
    finally:
        await node.close()


def test_acknowledged_records_survive_sigkill(tmp_path: Path) -> None:
    seed = int(os.environ.get("ENDURE_LOG_CRASH_SEED", str(random.randrange(1 << 30))))
    print(f"crash test seed: ENDURE_LOG_CRASH_SEED={seed}")
    rng = random.Random(seed)
    data_dir = tmp_path / "node"
    acks = Acks()
    checked = 0
    for round_no in range(ROUNDS):
        run_child(data_dir, rng.randrange(1 << 30), round_no, rng, acks, tmp_path / "child.err")
        checked += asyncio.run(verify(data_dir, acks))
    assert len(acks.records) > ROUNDS * 50, "the children acknowledged suspiciously little"
    assert checked > 0
