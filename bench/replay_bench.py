"""`python -m endure.bench replay`: how fast new code is checked against recorded journals.

Two parts, in one run:
  offline  `Replayer(app).replay(...)` on journals recorded once by really running
           `bench/steps3` (3 run entries + output) and `bench/steps50` (50 + output) through the
           SDK's Invocation, with a sink that acks every step as the runtime would. Each case
           replays its journal back to back for `--seconds`, `--runs` times; the median run gives
           replays/s and µs per journal entry. Every replay must come out clean and complete.
  check    a runtime and one worker (real processes, free loopback ports) serving
           endure.bench.apps:app; `--invocations` calls of `bench/steps_then_wait` are started
           and waited for until each has journaled its 3 steps and its awakeable (it then waits on
           it); then `python -m endure.runtime.cli deployments check endure.bench.apps:app
           --admin ADDR --json` runs as a subprocess, timed from spawn to exit (so its interpreter
           start and imports count). It must exit 0 and report every invocation checked, none
           diverging. The same command run first, with nothing in flight, gives that start cost.

Nothing is written outside a temporary folder, which is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from endure.proto import admin_pb2 as apb
from endure.proto import journal as journal_rules
from endure.proto import records_pb2, worker_pb2
from endure.proto.records_pb2 import JournalEntry
from endure.sdk import App
from endure.sdk.invocation import Invocation
from endure.sdk.replay import Replayer, ReplayResult

APP_REF = "endure.bench.apps:app"
OFFLINE_CASES = {"steps3": 3, "steps50": 50}  # handler of bench/ -> its ctx.run steps
WAIT_HANDLER = "steps_then_wait"
CHECK_TIMEOUT = 300.0  # seconds the check subprocess may take before the bench gives up


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("replay", help="offline Replayer speed, and `endure deployments check` end to end",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=3.0, help="seconds of replays per offline case and run (default 3)")
    p.add_argument("--runs", type=int, default=3, help="runs per offline case; the median is reported (default 3)")
    p.add_argument("--invocations", type=int, default=200,
                   help="in-flight invocations `deployments check` replays (default 200)")
    p.add_argument("--parts", choices=["offline", "check", "both"], default="both")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


# ---------------------------------------------------------------------- recording a real journal


class _RecordingSink:
    """Stands in for the runtime of one attempt: keeps each entry as the journal would hold it and
    acks the acked ones (runs), so the handler runs to its end."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.inv: Invocation | None = None
        self.journal: list[JournalEntry] = []
        self.outcome: str | None = None
        self.ended = asyncio.Event()

    def send(self, frame: worker_pb2.WorkerFrame) -> None:
        which = frame.WhichOneof("frame")
        if which in ("end", "fail", "suspend"):
            self.outcome = self.outcome or which
            self.ended.set()
        if which != "entry":
            return
        assert self.inv is not None
        entry = JournalEntry()
        entry.CopyFrom(frame.entry.entry)
        kind = entry.WhichOneof("kind")
        assert kind is not None and frame.entry.index == len(self.journal)
        if journal_rules.RULES[kind].acked:
            self.loop.call_soon(self.inv.on_ack, frame.entry.index)
        elif journal_rules.RULES[kind].takes_completion:
            raise AssertionError(f"the recorder completes no {kind} entry; record handlers of runs only")
        self.journal.append(entry)

    def release(self, inv: Invocation) -> None:
        self.ended.set()


async def record_journal(app: App, service: str, handler: str, input: bytes, timeout: float = 10.0) -> list[JournalEntry]:
    """The journal one real attempt of service/handler writes (its steps really run), to its end."""
    loop = asyncio.get_running_loop()
    defn = app.lookup(service, handler)
    assert defn is not None, f"no {service}/{handler} in the app"
    start = worker_pb2.StartFrame(invocation_id="record", attempt=1,
                                  target=records_pb2.Target(service=service, handler=handler),
                                  handler_kind=defn.kind, input=input, state_complete=True)  # type: ignore[arg-type]
    sink = _RecordingSink(loop)
    inv = Invocation(sink, start, defn, loop)
    sink.inv = inv
    inv.start()
    await asyncio.wait_for(sink.ended.wait(), timeout)
    assert inv.task is not None
    await asyncio.wait({inv.task}, timeout=timeout)
    if sink.outcome != "end":
        raise RuntimeError(f"recording {service}/{handler} ended with {sink.outcome}, not its output")
    return sink.journal


# ---------------------------------------------------------------------- offline replay


def _check(result: ReplayResult, journal: Sequence[JournalEntry]) -> None:
    """Every timed replay must be clean and reach the output, or the figure would time something
    other than a full replay."""
    if not (result.ok and result.complete and result.matched == len(journal)):
        raise AssertionError(f"a replay did not come out clean: {result.message}")


def _replay_for(replayer: Replayer, target: records_pb2.Target, kind: int, input: bytes,
                journal: Sequence[JournalEntry], seconds: float) -> tuple[int, float]:
    """`replay()` back to back for `seconds` (at least once), each on its own event loop as the CLI
    does it per invocation: (replays, elapsed seconds)."""
    count = 0
    t0 = time.perf_counter()
    while True:
        _check(replayer.replay(target, kind, input, journal), journal)
        count += 1
        if (now := time.perf_counter()) - t0 >= seconds:
            return count, now - t0


async def _replay_async_for(replayer: Replayer, target: records_pb2.Target, kind: int, input: bytes,
                            journal: Sequence[JournalEntry], seconds: float) -> tuple[int, float]:
    """`replay_async()` back to back on one running loop: what a replay costs without making a loop."""
    count = 0
    t0 = time.perf_counter()
    while True:
        _check(await replayer.replay_async(target, kind, input, journal), journal)
        count += 1
        if (now := time.perf_counter()) - t0 >= seconds:
            return count, now - t0


def _figures(rates: list[float], replays: int, entries: int) -> dict[str, Any]:
    rate = statistics.median(rates)
    return {"replays": replays, "replays_per_s": round(rate, 1), "us_per_replay": round(1e6 / rate, 1),
            "us_per_entry": round(1e6 / rate / entries, 2),
            "spread_per_s": [round(min(rates), 1), round(max(rates), 1)]}


def offline_replay(seconds: float = 3.0, runs: int = 3) -> dict[str, dict[str, Any]]:
    """handler -> its journal's size and, per mode ("replay": the sync call, a new event loop each,
    as `deployments check` does; "replay_async": on one loop), replays/s and µs per journal entry
    (median of `runs` runs of `seconds` each)."""
    from endure.bench.apps import app

    replayer = Replayer(app)
    out: dict[str, dict[str, Any]] = {}
    for handler, steps in OFFLINE_CASES.items():
        input = b"1"
        journal = asyncio.run(record_journal(app, "bench", handler, input))
        kinds = [e.WhichOneof("kind") for e in journal]
        assert kinds == ["run"] * steps + ["output"], kinds
        defn = app.lookup("bench", handler)
        assert defn is not None
        target = records_pb2.Target(service="bench", handler=handler)
        case: dict[str, Any] = {"steps": steps, "journal_entries": len(journal)}
        _replay_for(replayer, target, defn.kind, input, journal, 0.0)  # warm: imports, first-call caches
        done = [_replay_for(replayer, target, defn.kind, input, journal, seconds) for _ in range(runs)]
        case["replay"] = _figures([n / t for n, t in done], sum(n for n, _ in done), len(journal))
        done = [asyncio.run(_replay_async_for(replayer, target, defn.kind, input, journal, seconds))
                for _ in range(runs)]
        case["replay_async"] = _figures([n / t for n, t in done], sum(n for n, _ in done), len(journal))
        out[handler] = case
    # What one more entry costs and what a replay costs whatever its length, from the two lengths.
    short_, long_ = out["steps3"], out["steps50"]
    extra = long_["journal_entries"] - short_["journal_entries"]
    for mode in ("replay", "replay_async"):
        per_entry = (long_[mode]["us_per_replay"] - short_[mode]["us_per_replay"]) / extra
        out.setdefault("marginal", {})[mode] = {
            "us_per_extra_entry": round(per_entry, 2),
            "us_fixed_per_replay": round(short_[mode]["us_per_replay"] - per_entry * short_["journal_entries"], 1)}
    return out


# ---------------------------------------------------------------------- deployments check end to end


def _parked(admin: str, want: int, timeout: float) -> int:
    """Until `want` in-flight invocations of bench/steps_then_wait have journaled their 3 steps and
    their awakeable (polling ListInvocations); returns how many there are."""
    import grpc

    from endure.proto import admin_pb2_grpc as apb_grpc

    channel = grpc.insecure_channel(admin)
    stub = apb_grpc.AdminStub(channel)
    deadline = time.monotonic() + timeout
    parked = 0
    try:
        while time.monotonic() < deadline:
            parked, token = 0, ""
            while True:
                page = stub.ListInvocations(apb.ListInvocationsRequest(
                    service="bench", in_flight=True, page_size=1000, page_token=token), timeout=10)
                # 3 run entries then the awakeable: it waits on the worker (suspended only after
                # the handler's inactivity timeout, so waiting_on is not waited for)
                parked += sum(1 for s in page.invocations
                              if s.status.target.handler == WAIT_HANDLER and s.status.journal_length >= 4)
                token = page.next_page_token
                if not token:
                    break
            if parked >= want:
                return parked
            time.sleep(0.05)  # polling the runtime's state
    finally:
        channel.close()
    raise TimeoutError(f"only {parked} of {want} invocations reached their awakeable in {timeout:g} s")


async def _start(ingress: str, n: int) -> list[str]:
    from endure.sdk.client import Client

    async with Client(ingress) as client:
        ids: list[str] = []
        for i in range(0, n, 50):  # bounded concurrency on the ingress
            ids += await asyncio.gather(*(client.send(f"bench/{WAIT_HANDLER}", j) for j in range(i, min(n, i + 50))))
    return ids


def _run_check(admin: str, cwd: Path, timeout: float) -> tuple[dict[str, Any], float]:
    """`deployments check` of the bench app as a subprocess: (its --json report, seconds from spawn
    to exit). It must exit 0 (every invocation replays cleanly)."""
    argv = [sys.executable, "-m", "endure.runtime.cli", "deployments", "check", APP_REF, "--admin", admin, "--json"]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise AssertionError(f"deployments check exited {proc.returncode}: {(proc.stderr or proc.stdout)[-2000:]}")
    return json.loads(proc.stdout), seconds


def deployments_check(invocations: int = 200, timeout: float = CHECK_TIMEOUT) -> dict[str, Any]:
    """Park `invocations` invocations on a real runtime + worker, then time the check CLI on them
    (and, first, on none: what its interpreter start, imports and admin calls cost by themselves)."""
    from endure.bench.procs import BenchCluster

    with BenchCluster(partitions=4, workers=1, concurrency=max(64, invocations)) as cluster:
        empty, empty_s = _run_check(cluster.admin, cluster.dir, timeout)
        t0 = time.perf_counter()
        ids = asyncio.run(_start(cluster.ingress, invocations))
        parked = _parked(cluster.admin, invocations, timeout)
        setup_s = time.perf_counter() - t0
        report, check_s = _run_check(cluster.admin, cluster.dir, timeout)
    checked, diverging = report["checked"], report["diverging"]
    if empty["checked"] != 0 or checked != invocations or diverging != 0 or parked != invocations:
        raise AssertionError(f"deployments check: {empty['checked']} checked before any invocation; then "
                             f"{checked} checked, {diverging} diverging, {parked} parked; "
                             f"expected 0, {invocations}, 0, {invocations}")
    lengths = sorted({r["journal_length"] for r in report["invocations"]})
    return {"invocations": len(ids), "checked": checked, "diverging": diverging, "journal_lengths": lengths,
            "deployment": report["deployment"], "setup_seconds": round(setup_s, 2),
            "check_seconds": round(check_s, 3), "checked_per_s": round(checked / check_s, 1),
            "ms_per_invocation": round(1000 * check_s / checked, 2),
            "empty_check_seconds": round(empty_s, 3),
            "ms_per_invocation_after_start": round(1000 * max(0.0, check_s - empty_s) / checked, 2)}


# ---------------------------------------------------------------------- entry point


def run(args: argparse.Namespace) -> int:
    if args.seconds <= 0 or args.runs <= 0 or args.invocations <= 0:
        raise SystemExit("--seconds, --runs and --invocations must be > 0")
    result: dict[str, Any] = {"workload": "replay", "cpus": os.cpu_count()}
    if args.parts in ("offline", "both"):
        result["offline"] = offline_replay(args.seconds, args.runs)
        result["offline_seconds"], result["offline_runs"] = args.seconds, args.runs
    if args.parts in ("check", "both"):
        result["check"] = deployments_check(args.invocations)
    if args.json:
        print(json.dumps(result))
        return 0
    from endure.bench import harness

    if "offline" in result:
        off = result["offline"]
        rows = {f"{name}, {off[name]['journal_entries']} entries, {mode}": {k: off[name][mode][k] for k in
                ("replays_per_s", "us_per_replay", "us_per_entry", "replays")}
                for name in OFFLINE_CASES for mode in ("replay", "replay_async")}
        harness.print_table(f"offline Replayer (median of {args.runs} x {args.seconds:g} s)", rows)
        harness.print_table("from the two lengths", off["marginal"])
    if "check" in result:
        c = result["check"]
        keys = ("checked", "diverging", "check_seconds", "checked_per_s", "ms_per_invocation",
                "empty_check_seconds", "ms_per_invocation_after_start")
        harness.print_table(f"endure deployments check, {c['invocations']} in flight (subprocess, spawn to exit)",
                            {k: {"value": c[k]} for k in keys})
    return 0
