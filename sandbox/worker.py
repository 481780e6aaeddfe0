"""A pool process: reads run requests from its stdin, answers on its stdout, one run at a time.

Frames are a 4-byte big-endian length and a JSON body. The process holds one Runner (engine,
module cache, the pre-initialized Python component or else a parked CPython 3.12 interpreter).
If a guest or wasmtime takes the process down, only this process dies; the pool notices EOF and
replaces it.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import traceback
from typing import Any, BinaryIO


def _read_exactly(f: BinaryIO, n: int) -> bytes | None:
    """n bytes, or None at EOF; an unbuffered pipe returns at most 64 KiB per read."""
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_frame(f: BinaryIO) -> dict[str, Any] | None:
    hdr = _read_exactly(f, 4)
    if hdr is None:
        return None
    (n,) = struct.unpack(">I", hdr)
    body = _read_exactly(f, n)
    if body is None:
        return None
    return json.loads(body)


def write_frame(f: BinaryIO, body: bytes) -> None:
    f.write(struct.pack(">I", len(body)) + body)
    f.flush()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="endure.sandbox.worker")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--no-prestart", action="store_true")
    opts = ap.parse_args(argv)
    # Our protocol owns the real stdout; anything else printing to fd 1 goes to stderr.
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)

    from endure.sandbox.component_runner import attach_extras, warm_runner
    from endure.sandbox.runner import Runner, decode_request

    runner = Runner(cache_dir=opts.cache_dir, prestart=not opts.no_prestart)
    runner.on_start = lambda: write_frame(proto_out, b'{"event":"started"}')
    try:
        while True:
            msg = read_frame(proto_in)
            if msg is None:
                break
            rid = msg.get("id")
            op = msg.get("op")
            try:
                if op == "warm":
                    # Loads the guests; the first process of a fresh cache also builds and compiles
                    # the Python component here, so that no user run pays for it.
                    python = warm_runner(runner)
                    reply = {"id": rid, "ok": True, "cache": runner.cache.stats, "python": python}
                    write_frame(proto_out, json.dumps(reply).encode())
                elif op == "run":
                    req = attach_extras(decode_request(msg), msg)
                    res = runner.run(req)
                    body = b'{"id":%s,"ok":true,"result":%s}' % (
                        json.dumps(rid).encode(),
                        res.model_dump_json().encode(),
                    )
                    write_frame(proto_out, body)
                elif op == "crash":  # test hook: simulate wasmtime taking the process down
                    os.abort()
                else:
                    write_frame(
                        proto_out,
                        json.dumps({"id": rid, "ok": False, "error": f"unknown op {op!r}"}).encode(),
                    )
            except Exception as e:
                err = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}"
                write_frame(proto_out, json.dumps({"id": rid, "ok": False, "error": err}).encode())
    finally:
        runner.close()
        sys.stderr.flush()
        os._exit(0)  # skip interpreter teardown while wasmtime threads may still run


if __name__ == "__main__":
    main()
