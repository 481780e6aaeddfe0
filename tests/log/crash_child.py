"""Child process of the crash test: appends concurrently and reports every acknowledgement.

Usage: python crash_child.py DATA_DIR PARTITIONS SEED ROUND

Prints to stdout (flushed, one line per fact, only after the fact is durable):
    READY                          the log is open (recovery done)
    A <partition> <lsn> <sha256>   an acknowledged record
    T <partition> <lsn>            an acknowledged trim (records <= lsn may be gone)
The parent kills this process with SIGKILL at a random moment.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sys
from pathlib import Path

from endure.runtime.log import NodeLog


def payload(rng: random.Random, round_no: int, appender: int, k: int, i: int) -> bytes:
    head = f"{round_no}:{appender}:{k}:{i}:".encode()
    return head + rng.randbytes(rng.choice((0, 1, 50, 200, 1000, 5000)))


async def main(data_dir: Path, partitions: int, seed: int, round_no: int) -> None:
    node = await NodeLog.open(data_dir, partitions, max_pending_records=256)
    out = sys.stdout
    out.write("READY\n")
    out.flush()
    acked_tail = [node.log(p).tail() for p in range(partitions)]

    async def appender(a: int) -> None:
        my = random.Random(seed * 1000 + a)
        k = 0
        while True:
            p = my.randrange(partitions)
            batch = [payload(my, round_no, a, k, i) for i in range(my.choice((1, 1, 1, 2, 5)))]
            lsns = await node.log(p).append(batch)
            out.write("".join(f"A {p} {lsn} {hashlib.sha256(b).hexdigest()}\n" for lsn, b in zip(lsns, batch, strict=True)))
            out.flush()
            acked_tail[p] = max(acked_tail[p], lsns.stop)
            k += 1

    async def chaos() -> None:
        my = random.Random(seed * 7 + 1)
        while True:
            await asyncio.sleep(my.uniform(0, 0.02))
            p = my.randrange(partitions)
            log = node.log(p)
            if my.random() < 0.6:
                await log.reconfigure()
            else:
                up_to = min(acked_tail[p], log.tail()) - 1 - my.randrange(200)
                if up_to > log.trim_point():
                    await log.trim(up_to)
                    out.write(f"T {p} {up_to}\n")
                    out.flush()

    await asyncio.gather(*(appender(a) for a in range(16)), chaos())


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
