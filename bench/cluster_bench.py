"""`python -m endure.bench cluster-log` and `python -m endure.bench cluster`: Endure on a NATS
JetStream cluster, on this machine.

`cluster-log`: virtual-log appends/s on JetStream R3 against the RocksDB loglet, in one run.
Two phases, one after the other, same load: `--appenders` asyncio tasks (uvloop), spread
round-robin over `--partitions` virtual logs, each appending one `--record-size`-byte record per
call and waiting for it to be durable, for `--seconds`:

1. rocksdb: the embedded default, a NodeLog (one RocksDB, group commit, fsync per batch);
2. jetstream: a local cluster of `--servers` nats-server processes on loopback (`sync_interval:
   always`, so every server fsyncs before it acknowledges), streams of `--replicas` copies, the
   JetStream loglet (atomic-batch group commit, acknowledged on a quorum) and the metadata in an
   R3 key-value bucket. The servers run on the same cores as the benchmark: their CPU is shown.

Both logs are checked after the run: every acknowledged record is in the log.
`run_log_comparison()` is the reusable piece.

`cluster`: everything in one run (`run_cluster_bench()`; see its subcommand's --help):
end-to-end noop throughput on 3 cluster nodes against 1, and the embedded default; the
`cluster-log` figure; failover time after kill -9 of a node; catch-up from a snapshot (not
measured while snapshots are not wired).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from endure.runtime.log import NodeLog, VirtualLog

__all__ = ["add_parser", "measure_appends", "measure_failover", "run_cluster_bench", "run_log_comparison"]


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
    add_cluster_parser(subparsers)


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
    _print_log(out)
    return 0


def _print_log(out: dict[str, Any]) -> None:
    r, j = out["rocksdb"], out["jetstream"]
    print(f"{out['appenders']} appenders x 1 record of {out['record_size']} B, {out['partitions']} log(s), "
          f"{out['seconds']:g} s each, {out['loop']}, {out['cpus']} CPUs")
    print(f"rocksdb loglet:      {r['records_per_s']:>8,} appends/s  p50 {r['append_p50_ms']} ms, "
          f"p99 {r['append_p99_ms']} ms; {r['write_batches']:,} synced batches of {r['avg_batch_records']}; "
          f"CPU {r['client_cpu_percent']}%")
    print(f"jetstream R{out['replicas']}/{out['servers']}:     {j['records_per_s']:>8,} appends/s  "
          f"p50 {j['append_p50_ms']} ms, p99 {j['append_p99_ms']} ms; {j['atomic_batches']:,} atomic batches of "
          f"{j['avg_batch_records']}; client CPU {j['client_cpu_percent']}%, servers CPU {j['servers_cpu_percent']}%")
    print(f"jetstream / rocksdb: {out['jetstream_to_rocksdb']}")


# ---------------------------------------------------------------------- `cluster`: everything in one run

CLUSTER_DOC = """`python -m endure.bench cluster`: Endure in cluster mode on a local 3-server NATS JetStream
cluster (R3, `sync_interval: always`), everything on this machine's cores, in one run:

1. e2e: noop invocations/s, p50/p99 and the CPU of every process (Endure nodes, the worker, the
   nats-servers, the load generator), `--concurrency` closed-loop clients through the Python
   Client (keyed requests routed to their owner, unkeyed ones spread over the nodes by GetRoutes),
   one worker (started against node 0's admin once every node leads its partitions). Three
   phases: the embedded default (`endure serve`, no cluster: `--processes auto`), 1 cluster node
   and 3 cluster nodes, the two cluster phases on the same NATS cluster with a fresh cluster
   name each (their streams are deleted after the phase);
2. log: the `cluster-log` figure (JetStream R3 appends/s against the RocksDB loglet);
3. failover, `--failover-runs` times on a fresh 3-node cluster: with `--failover-clients`
   closed-loop clients calling bench/steps3 (each on a partition of its own, by idempotency key),
   kill -9 of a node leading the most partitions (ties taken in turn: node 0 is the controller),
   then the time from the kill until (a) every partition is led again on a live node (ListPartitions
   on a surviving node every 20 ms), (b) the first invocation sent after the kill completes on a
   moved partition, and every moved partition has completed one;
4. catch-up: a new leader's time to reach the tail by full replay, and from a snapshot plus the tail
   (`python -m endure.bench snapshot`).
"""

PHASES = ("e2e", "log", "failover", "catchup")


def add_cluster_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "cluster",
        help="cluster mode on NATS JetStream: e2e 3 nodes vs 1 vs embedded, log appends, failover time",
        description=CLUSTER_DOC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds of each e2e and log phase (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="e2e warmup seconds, not measured (default 1)")
    p.add_argument("--concurrency", type=int, default=64, help="e2e closed-loop clients (default 64)")
    p.add_argument("--partitions", type=int, default=6, help="partitions of every runtime (default 6: 2 per node)")
    p.add_argument("--appenders", type=int, default=64, help="log phase: concurrent appenders (default 64)")
    p.add_argument("--failover-runs", type=int, default=3, help="kills, each on a fresh cluster (default 3)")
    p.add_argument("--failover-clients", type=int, default=12, help="closed-loop clients during a kill (default 12)")
    p.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    p.add_argument("--dir", type=Path, default=None, help="where to make the temp dirs (default: system tmp)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_cluster)


def _nats_processes(cluster: Any) -> dict[str, Any]:
    import psutil

    return {f"nats{i}": psutil.Process(c.pid) for i, c in enumerate(cluster._children) if c is not None}


async def measure_e2e(ingress: str, procs: dict[str, Any], *, concurrency: int, seconds: float, warmup: float,
                      target: str = "bench/noop") -> dict[str, Any]:
    """`concurrency` closed-loop clients call `target` through Clients of `ingress` (routing on):
    warmup, then `seconds` measured with the CPU of `procs` and of this process."""
    import psutil

    from endure.bench import harness
    from endure.bench.procs import CpuMeter
    from endure.sdk.client import Client

    clients = [Client(ingress) for _ in range(max(1, min(8, concurrency // 16)))]

    async def request(i: int) -> object:
        return await clients[i % len(clients)].call(target, 1, timeout=30)

    try:
        if warmup > 0:
            await harness.closed_loop(request, concurrency, warmup, 0.0)
        meter = CpuMeter({**procs, "load generator": psutil.Process()})
        stats = await harness.closed_loop(request, concurrency, seconds, 0.0)
        processes = meter.stop()
    finally:
        for c in clients:
            await c.close()
    out: dict[str, Any] = stats.summary()
    cpu = sum(p["cpu_s"] for p in processes.values())
    out["cpu_ms_per_invocation"] = round(1000 * cpu / stats.completed, 3) if stats.completed else 0.0
    out["processes"] = processes
    return out


async def drop_streams(urls: list[str], name: str) -> int:
    """Delete the streams and the metadata bucket of cluster `name` (a finished phase's), so the
    next phase's NATS cluster carries no idle raft groups of it; how many were deleted."""
    from endure.runtime.log.jetstream import JetStreamConnection

    conn = await JetStreamConnection.connect(urls)
    dropped = 0
    try:
        resp = await conn.api("STREAM.NAMES", {}, what="listing streams")
        for stream in resp.get("streams") or []:
            if stream.startswith(f"{name.upper()}_LOG_") or stream == f"KV_{name}-metadata":
                await conn.api(f"STREAM.DELETE.{stream}", what=f"deleting stream {stream}")
                dropped += 1
    finally:
        await conn.close()
    return dropped


def _cluster_name(tag: str) -> str:
    return f"b{os.getpid() % 100_000}{tag}{time.monotonic_ns() % 10_000}"


def _cluster_e2e(nats: Any, nodes: int, *, partitions: int, concurrency: int, seconds: float, warmup: float,
                 root: Path | None) -> dict[str, Any]:
    from endure.bench.procs import ClusterNodes

    name = _cluster_name(f"e{nodes}")
    try:
        with ClusterNodes(nats.urls, name, partitions, root) as cn:
            for i in range(nodes):
                cn.start_node(i)
            leaders = cn.wait_balanced()
            cn.start_worker(concurrency=max(256, concurrency))
            procs = {**cn.processes(), **_nats_processes(nats)}
            out = asyncio.run(measure_e2e(cn.ingress(0), procs, concurrency=concurrency, seconds=seconds,
                                          warmup=warmup))
    finally:
        asyncio.run(drop_streams(nats.urls, name))
    out["nodes"] = nodes
    out["partitions_by_node"] = {n: sorted(p for p, m in leaders.items() if m == n) for n in sorted(set(leaders.values()))}
    return out


def _embedded_e2e(*, partitions: int, concurrency: int, seconds: float, warmup: float) -> dict[str, Any]:
    from endure.bench.procs import BenchCluster
    from endure.runtime.supervisor import resolve_processes

    nodes = resolve_processes("auto", partitions)  # what `endure serve` picks for a new data dir
    with BenchCluster(partitions=partitions, concurrency=max(256, concurrency), nodes=nodes) as bc:
        out = asyncio.run(measure_e2e(bc.ingress, bc.processes(), concurrency=concurrency, seconds=seconds,
                                      warmup=warmup))
    out["nodes"] = nodes
    return out


def keys_for_partition(partition: int, partitions: int, prefix: str) -> Iterator[str]:
    """Idempotency keys (prefix-0, prefix-1, ...) whose invocations land on `partition`."""
    from endure.proto import ids

    n = 0
    while True:
        key = f"{prefix}-{n}"
        n += 1
        if ids.stable_hash64(key) % partitions == partition:
            yield key


def pick_victim(leaders: dict[int, str], nodes: list[int], turn: int) -> int:
    """Among the nodes leading the most partitions, the `turn`-th (mod their count), by id."""
    counts = {n: sum(1 for m in leaders.values() if m == f"node-{n}") for n in nodes}
    most = max(counts.values())
    tied = sorted(n for n, c in counts.items() if c == most)
    return tied[turn % len(tied)]


class _FailoverLoad:
    """Closed-loop clients, client i on partition i % partitions (by idempotency key), calling
    `target`; after `kill_at` is set, each completion of a call sent after it is recorded."""

    def __init__(self, clients: list[Any], partitions: int, count: int, target: str, tag: str) -> None:
        self.clients = clients
        self.partitions = partitions
        self.count = count
        self.target = target
        self.tag = tag
        self.kill_at: float | None = None
        self.stop = False
        self.before = 0  # completions of calls sent before the kill
        self.completions: list[tuple[float, int]] = []  # (monotonic time, partition): sent after the kill
        self.errors_after = 0
        self.moved: set[int] = set()  # set at the kill: all_moved is set once each has a completion
        self.all_moved = asyncio.Event()

    async def _client(self, i: int) -> None:
        p = i % self.partitions
        keys = keys_for_partition(p, self.partitions, f"{self.tag}-{i}")
        client = self.clients[i % len(self.clients)]
        while not self.stop:
            sent = time.monotonic()
            after = self.kill_at is not None and sent >= self.kill_at
            try:
                await client.call(self.target, 1, idempotency_key=next(keys), timeout=20)
            except Exception:  # noqa: BLE001 - the killed node's calls fail: count, back off, go on
                self.errors_after += after
                await asyncio.sleep(0.02)
                continue
            if after:
                self.completions.append((time.monotonic(), p))
                self.moved.discard(p)
                if not self.moved:
                    self.all_moved.set()
            else:
                self.before += 1

    def start(self) -> list[asyncio.Task[None]]:
        return [asyncio.ensure_future(self._client(i)) for i in range(self.count)]


async def _leaders_async(stub: Any) -> dict[int, str] | None:
    import grpc

    from endure.proto import admin_pb2 as apb

    try:
        resp = await stub.ListPartitions(apb.ListPartitionsRequest(), timeout=1.0)
    except grpc.aio.AioRpcError:
        return None
    return {p.partition: p.node for p in resp.partitions if p.leader}


async def measure_failover(cn: Any, *, partitions: int, clients: int, turn: int = 0, target: str = "bench/steps3",
                           flowing: float = 1.0, poll: float = 0.02, timeout: float = 60.0) -> dict[str, Any]:
    """On the running, balanced cluster `cn` (procs.ClusterNodes with a worker): invocations
    flowing for `flowing` s, kill -9 of a node leading the most partitions, and the seconds from
    the kill until every partition is led again on a live node (ListPartitions on a surviving node
    every `poll` s) and until calls sent after the kill complete on the moved partitions."""
    import grpc

    from endure.proto import admin_pb2_grpc as apb_grpc
    from endure.sdk.client import Client

    nodes = sorted(cn.nodes)
    leaders = cn.leaders(nodes[0])
    victim = pick_victim(leaders, nodes, turn)
    victim_name = f"node-{victim}"
    moved = sorted(p for p, n in leaders.items() if n == victim_name)
    survivor = next(n for n in nodes if n != victim)
    conns = [Client(cn.ingress(survivor)) for _ in range(max(1, min(4, clients // 4)))]
    load = _FailoverLoad(conns, partitions, clients, target, f"f{turn}-{time.monotonic_ns() % 1_000_000}")
    channel = grpc.aio.insecure_channel(cn.admin(survivor))
    stub = apb_grpc.AdminStub(channel)
    tasks = load.start()
    try:
        await asyncio.sleep(flowing)
        if load.before == 0:
            raise RuntimeError(f"no invocation completed in {flowing:g} s before the kill")
        flowed = load.before
        load.moved = set(moved)
        load.kill_at = kill_at = time.monotonic()
        cn.nodes[victim].popen.send_signal(signal.SIGKILL)  # kill -9; reaped when the cluster closes
        deadline = kill_at + timeout
        led_again: float | None = None
        polls = 0
        while time.monotonic() < deadline:  # a poll every `poll` s from the kill (or at once after a slow one)
            now = await _leaders_async(stub)
            polls += 1
            if now is not None and len(now) == partitions and victim_name not in now.values():
                led_again = time.monotonic() - kill_at
                leaders_after = now
                break
            await asyncio.sleep(max(0.0, kill_at + polls * poll - time.monotonic()))
        if led_again is None:
            raise RuntimeError(f"partitions not led again within {timeout:g} s of the kill")
        try:
            await asyncio.wait_for(load.all_moved.wait(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            pass
        first: dict[int, float] = {}
        for t, p in load.completions:
            first.setdefault(p, t - kill_at)
        if not set(moved) <= set(first):
            raise RuntimeError(f"moved partitions {sorted(set(moved) - set(first))} completed nothing in {timeout:g} s")
    finally:
        load.stop = True
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await channel.close()
        for c in conns:
            await c.close()
    unmoved_during = sum(1 for t, p in load.completions if p not in moved and t - kill_at <= led_again)
    return {
        "victim": victim,
        "victim_was_controller": victim == nodes[0],
        "moved_partitions": moved,
        "moved_to": sorted({leaders_after[p] for p in moved}),
        "led_again_s": round(led_again, 3),
        "first_moved_completion_s": round(min(first[p] for p in moved), 3),
        "all_moved_completed_s": round(max(first[p] for p in moved), 3),
        "unmoved_completions_during": unmoved_during,
        "completed_before_kill": flowed,
        "errors_after_kill": load.errors_after,
        "polls": polls,
        "mean_poll_interval_ms": round(1000 * led_again / polls, 1),
    }


def _failover_run(nats: Any, turn: int, *, partitions: int, clients: int, root: Path | None) -> dict[str, Any]:
    from endure.bench.procs import ClusterNodes

    name = _cluster_name(f"f{turn}")
    try:
        with ClusterNodes(nats.urls, name, partitions, root) as cn:
            for i in range(3):
                cn.start_node(i)
            cn.wait_balanced()
            cn.start_worker(concurrency=256)
            return asyncio.run(measure_failover(cn, partitions=partitions, clients=clients, turn=turn))
    finally:
        asyncio.run(drop_streams(nats.urls, name))


_FAILOVER_FIGURES = ("led_again_s", "first_moved_completion_s", "all_moved_completed_s")


def run_cluster_bench(
    *,
    seconds: float = 5.0,
    warmup: float = 1.0,
    concurrency: int = 64,
    partitions: int = 6,
    appenders: int = 64,
    failover_runs: int = 3,
    failover_clients: int = 12,
    phases: tuple[str, ...] = PHASES,
    root: Path | None = None,
    catch_up_records: int = 50_000,
) -> dict[str, Any]:
    """The `cluster` workload's phases (see CLUSTER_DOC); one dict of figures."""
    from endure.runtime.log.jetstream.local_cluster import LocalNatsCluster

    out: dict[str, Any] = {"workload": "cluster", "seconds": seconds, "warmup": warmup, "concurrency": concurrency,
                           "partitions": partitions, "cpus": os.cpu_count()}
    if "e2e" in phases:
        out["e2e"] = {"embedded": _embedded_e2e(partitions=partitions, concurrency=concurrency, seconds=seconds,
                                                warmup=warmup)}
    if "log" in phases:  # before the NATS cluster of the other phases starts: it starts its own
        out["log"] = run_log_comparison(seconds=seconds, appenders=appenders, root=root)
    if "e2e" in phases or "failover" in phases:
        nats_root = Path(tempfile.mkdtemp(prefix="endure-cluster-bench-nats-", dir=root))
        try:
            with LocalNatsCluster(nats_root, 3) as nats:
                if "e2e" in phases:
                    for n in (1, 3):
                        out["e2e"][f"cluster_{n}"] = _cluster_e2e(nats, n, partitions=partitions,
                                                                  concurrency=concurrency, seconds=seconds,
                                                                  warmup=warmup, root=root)
                    one, three = out["e2e"]["cluster_1"], out["e2e"]["cluster_3"]
                    out["e2e"]["cluster_3_to_1"] = (round(three["throughput_per_s"] / one["throughput_per_s"], 3)
                                                    if one["throughput_per_s"] else None)
                if "failover" in phases:
                    runs = [_failover_run(nats, i, partitions=partitions, clients=failover_clients, root=root)
                            for i in range(failover_runs)]
                    out["failover"] = {
                        "runs": runs,
                        "median": {k: round(statistics.median(r[k] for r in runs), 3) for k in _FAILOVER_FIGURES},
                        "clients": failover_clients, "target": "bench/steps3",
                        "lease_ms": 1500,
                    }
        finally:
            shutil.rmtree(nats_root, ignore_errors=True)
    if "catchup" in phases:
        from endure.bench.snapshot_bench import snapshot_catch_up

        with tempfile.TemporaryDirectory(prefix="endure-catchup-") as tmp:
            c = asyncio.run(snapshot_catch_up(catch_up_records, 5_000, root=Path(tmp)))
        out["catch_up"] = (f"catch-up of {c['records']} records: full replay {c['full_replay_seconds']} s, "
                           f"snapshot restore + tail of {c['tail_records']} {c['snapshot_catch_up_seconds']} s "
                           f"({c['full_replay_seconds'] / max(c['snapshot_catch_up_seconds'], 1e-6):.1f}x)")
    return out


def _print_cluster(out: dict[str, Any]) -> None:
    from endure.bench import harness

    e2e = out.get("e2e")
    if e2e:
        n = e2e["embedded"]["nodes"] if "embedded" in e2e else 0
        labels = {"embedded": f"embedded ({n} node{'s' if n > 1 else ''}, no NATS)",
                  "cluster_1": "cluster, 1 node", "cluster_3": "cluster, 3 nodes"}
        rows = {labels[k]: {"inv/s": e2e[k]["throughput_per_s"], "p50 ms": e2e[k]["p50_ms"],
                            "p99 ms": e2e[k]["p99_ms"], "errors": e2e[k]["errors"],
                            "CPU ms/inv": e2e[k]["cpu_ms_per_invocation"]}
                for k in labels if k in e2e}
        harness.print_table(f"noop, {out['concurrency']} closed-loop clients, {out['partitions']} partitions, "
                            f"{out['seconds']:g} s", rows)
        procs: dict[str, dict[str, Any]] = {}
        for k, label in (("embedded", "embedded"), ("cluster_1", "1 node"), ("cluster_3", "3 nodes")):
            for name, figures in e2e.get(k, {}).get("processes", {}).items():
                procs.setdefault(name, {})[label] = figures["cpu_pct"]
        def rank(name: str) -> tuple[int, str]:
            kinds = ("runtime", "node", "worker", "nats", "load generator")
            return next(i for i, k in enumerate((*kinds, "")) if name.startswith(k)), name

        harness.print_table("CPU % of one core per process", {n: procs[n] for n in sorted(procs, key=rank)})
        if e2e.get("cluster_3_to_1") is not None:
            print(f"3 nodes / 1 node: {e2e['cluster_3_to_1']}")
    if "log" in out:
        _print_log(out["log"])
    fo = out.get("failover")
    if fo:
        rows = {f"run {i + 1}": {"killed": f"node {r['victim']}" + (" (controller)" if r["victim_was_controller"] else ""),
                                 "moved": ",".join(map(str, r["moved_partitions"])),
                                 "led again s": r["led_again_s"],
                                 "1st moved done s": r["first_moved_completion_s"],
                                 "all moved done s": r["all_moved_completed_s"]}
                for i, r in enumerate(fo["runs"])}
        m = fo["median"]
        rows["median"] = {"led again s": m["led_again_s"], "1st moved done s": m["first_moved_completion_s"],
                          "all moved done s": m["all_moved_completed_s"]}
        harness.print_table(f"failover: kill -9 of a node of 3, {fo['clients']} clients on {fo['target']}, "
                            f"lease {fo['lease_ms']} ms", rows)
    if "catch_up" in out:
        print(out["catch_up"])


def run_cluster(args: argparse.Namespace) -> int:
    from endure.bench import harness

    for name in ("seconds", "concurrency", "partitions", "appenders", "failover_runs", "failover_clients"):
        if getattr(args, name) <= 0:
            raise SystemExit(f"--{name.replace('_', '-')} must be > 0")
    phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise SystemExit(f"--phases: unknown {', '.join(sorted(unknown))} (expected some of {', '.join(PHASES)})")
    out = run_cluster_bench(seconds=args.seconds, warmup=max(0.0, args.warmup), concurrency=args.concurrency,
                            partitions=args.partitions, appenders=args.appenders, failover_runs=args.failover_runs,
                            failover_clients=args.failover_clients, phases=phases, root=args.dir)
    path = harness.write_results("cluster", out)
    if args.json:
        print(json.dumps(out))
        return 0
    _print_cluster(out)
    print(f"results: {path}")
    return 0
