"""`python -m endure.bench console`: the web console's invocations page on a store of 100,000
invocations: the first page's latency through the JSON API and as HTML (target: under 300 ms).

Fill (timed, reported, not the figure): a node is started in this process on a temporary data dir
(no worker, no servers a client uses) and `--invocations` Invoke records are appended straight to
its partitions' logs through the `Partition` interface (`append`, 1,000 per call: the ingress's own
path without gRPC), spread over the partitions, services, handlers, tenants and keys; one in five
is then killed and one in ten cancelled (Kill / Cancel records), so statuses differ. The node is
stopped once every partition applied its log.

Measure: `endure serve` is started on that data dir as a separate process with the console on a
free port, and each URL is fetched `--requests` times (after `--warmup`) one at a time over one
kept-alive HTTP connection: the first page of `/api/invocations` and of `/invocations` (50 per
page, what the page shows by default), a first page filtered by status (matches are common), a
filter that matches nothing (every status is read: the worst case of a server-side scan) and one
invocation's page.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from endure.proto import ids
from endure.proto import records_pb2 as pb
from endure.runtime.config import NodeConfig
from endure.runtime.launcher import Launcher, serve_argv

TARGET_MS = 300.0
_BATCH = 1000


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "console",
        help="the web console's invocations page on 100,000 invocations: first-page latency, API and HTML",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--invocations", type=int, default=100_000, help="invocations in the store (default 100000)")
    p.add_argument("--partitions", type=int, default=4, help="partitions (default 4)")
    p.add_argument("--requests", type=int, default=30, help="timed requests per URL (default 30)")
    p.add_argument("--warmup", type=int, default=3, help="untimed requests per URL first (default 3)")
    p.add_argument("--dir", type=Path, default=None, help="where to make the temp dir (default: system tmp)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _invoke(i: int, now_ms: int) -> pb.Envelope:
    service, handler, key, kind = [("shop", "checkout", "", pb.SERVICE), ("shop", "refund", "", pb.SERVICE),
                                   ("agent", "chat", f"user-{i % 997}", pb.EXCLUSIVE)][i % 3]
    pkey = ids.stable_hash64(key) if key else i  # keyed ones by their key's hash, as the ingress places them
    inv = ids.new_invocation_id(pkey)
    body = pb.Invoke(invocation_id=inv, target=pb.Target(service=service, handler=handler, key=key),
                     handler_kind=kind, input=json.dumps({"order": i, "item": "tea"}).encode(),
                     tenant=("acme", "globex", "initech")[i % 3])
    return pb.Envelope(header=pb.Header(timestamp_ms=now_ms - (i % 86_400) * 1000), invoke=body)


async def fill(data_dir: Path, count: int, partitions: int) -> dict[str, float]:
    """Append `count` invocations through a node's partitions (see the module docstring)."""
    from endure.runtime.node import Node

    cfg = NodeConfig(data_dir=data_dir, partitions=partitions, ingress="127.0.0.1:0", admin="127.0.0.1:0",
                     metrics=None, console=None, max_queued=count + 1)
    node = Node(cfg)
    await node.start()
    t0 = time.perf_counter()
    try:
        now = int(time.time() * 1000)
        pending: dict[int, list[pb.Envelope]] = {p: [] for p in range(partitions)}
        ends: dict[int, list[pb.Envelope]] = {p: [] for p in range(partitions)}
        last: dict[int, int] = {}
        for i in range(count):
            env = _invoke(i, now)
            p = ids.partition_of(env.invoke.invocation_id, partitions)
            pending[p].append(env)
            inv = env.invoke.invocation_id
            if i % 5 == 1:
                ends[p].append(pb.Envelope(header=pb.Header(timestamp_ms=now), kill=pb.Kill(invocation_id=inv)))
            elif i % 10 == 2:
                ends[p].append(pb.Envelope(header=pb.Header(timestamp_ms=now), cancel=pb.Cancel(invocation_id=inv)))
        for records in (pending, ends):
            for p, envs in records.items():
                for start in range(0, len(envs), _BATCH):
                    last[p] = (await node.partitions[p].append(envs[start:start + _BATCH]))[-1]
        for p, lsn in last.items():
            await node.partitions[p].wait_applied(lsn)
        seconds = time.perf_counter() - t0
    finally:
        await node.stop()
    return {"fill_s": round(seconds, 2), "fill_per_s": round(count / seconds)}


def _timed(conn: http.client.HTTPConnection, path: str, requests: int, warmup: int) -> dict[str, Any]:
    times = []
    size = 0
    for n in range(warmup + requests):
        t0 = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - t0) * 1000
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
        size = len(body)
        if n >= warmup:
            times.append(elapsed)
    times.sort()
    return {"path": path, "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 1),
            "max_ms": round(times[-1], 1), "bytes": size}


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="endure-console-bench-", dir=args.dir) as tmp:
        data = Path(tmp) / "data"
        filled = asyncio.run(fill(data, args.invocations, args.partitions))
        if not args.json:
            print(f"filled {args.invocations} invocations in {filled['fill_s']} s ({filled['fill_per_s']}/s)")
        with Launcher(log_dir=Path(tmp)) as launcher:
            runtime = launcher.start_runtime(serve_argv(data, metrics="off", console="127.0.0.1:0", processes=1,
                                                        partitions=args.partitions, log_level="WARNING"),
                                             ready_timeout=120)
            host, _, port = runtime.ready.console.rpartition(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
            try:
                conn.request("GET", "/api/invocations?limit=1")
                one = json.loads(conn.getresponse().read())["invocations"][0]["id"]
                cases = {
                    "api first page": "/api/invocations",
                    "html first page": "/invocations",
                    "api status=killed": "/api/invocations?status=killed",
                    "html status=killed": "/invocations?status=killed",
                    "api no match (full scan)": "/api/invocations?service=nothing",
                    "html invocation page": f"/invocations/{one}",
                }
                results = {name: _timed(conn, path, args.requests, args.warmup) for name, path in cases.items()}
            finally:
                conn.close()
    first = max(results["api first page"]["p50_ms"], results["html first page"]["p50_ms"])
    out = {"invocations": args.invocations, "partitions": args.partitions, **filled, "results": results,
           "target_ms": TARGET_MS, "first_page_within_target": first < TARGET_MS}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{'request':28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'bytes':>9}")
        for name, r in results.items():
            print(f"{name:28} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['max_ms']:8.1f} {r['bytes']:9d}")
        verdict = "within" if out["first_page_within_target"] else "OVER"
        print(f"first page (API and HTML, p50): {first:.1f} ms, {verdict} the {TARGET_MS:.0f} ms target")
    return 0 if out["first_page_within_target"] else 1


if __name__ == "__main__":
    sys.exit(run(argparse.ArgumentParser().parse_args()))
