"""Issue 7, the example agents end to end on real processes: the research workflow (fan-out,
gather, durable sleep, saga compensation, a worker killed during its sleep), the coding agent
(sandboxed retries, approval through an awakeable, conversation in state) and `endure demo`.

One runtime serves the module: a worker per example app (a worker serves one App). The scripted
model stands in for the LLM (ENDURE_LLM_URL is cleared), so every answer is deterministic.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cluster import Cluster, wait_until

from endure.examples import coding_agent as ca
from endure.examples import research as rs
from endure.proto import records_pb2 as pb
from endure.sdk.client import Client, InvocationError

RESEARCH_APP = "endure.examples.research:app"
CODING_APP = "endure.examples.coding_agent:app"
ANGLES = ["background", "state of the art", "open problems"]
SAGA = ["reserve budget", "publish report", "notify subscribers"]
T = TypeVar("T")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("examples")


@pytest.fixture(scope="module")
def cluster(root: Path) -> Iterator[Cluster]:
    env = {"ENDURE_TEST_DIR": str(root), "ENDURE_DEMO_DIR": str(root), "ENDURE_LLM_URL": ""}
    c = Cluster(root, env=env)
    try:
        c.start_runtime()
        c.start_worker(RESEARCH_APP, name="research-1")
        c.start_worker(CODING_APP, name="coding-1")
        yield c
    finally:
        c.stop()


def ledger(root: Path, research_id: str) -> list[dict[str, Any]]:
    """The side effects the research steps really executed (written by the worker processes)."""
    path = root / "research-ledger.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [row for row in rows if row["research"] == research_id]


def actions(root: Path, research_id: str) -> list[str]:
    return [row["action"] for row in ledger(root, research_id)]


def entries(cluster: Cluster, inv: str) -> list[tuple[str, str]]:
    return [(e.WhichOneof("kind") or "", e.name) for e in cluster.describe(inv).journal]


def entry(cluster: Cluster, inv: str, kind: str, name: str) -> pb.JournalEntry:
    return next(e for e in cluster.describe(inv).journal if e.WhichOneof("kind") == kind and e.name == name)


async def eventually(probe: Callable[[], Awaitable[T]], what: str, timeout: float = 30.0) -> T:
    """Poll another process's observable state (through the client) until truthy, with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def expected_journal(angles: list[str]) -> list[tuple[str, str]]:
    """The research workflow's journal up to (and including) its publishing phase."""
    return [("set_state", "phase"), *[("call", "researcher/investigate")] * len(angles), ("combinator", "gather"),
            ("set_state", "phase"), ("sleep", "cool-down"), ("set_state", "phase")]


# ---------------------------------------------------------------------- research workflow


async def test_research_fans_out_gathers_sleeps_and_publishes(cluster: Cluster, root: Path) -> None:
    question = rs.Question(question="Is durable execution worth it?", cooldown_s=0.5)
    async with Client(cluster.ingress) as client:
        inv = await client.submit(rs.run, question, key="ok")
        report: rs.Report = await client.attach(inv, handler=rs.run, timeout=60)
        status: rs.Status = await client.call(rs.status, key="ok", timeout=30)
        awaited: rs.Report = await client.call(rs.report, key="ok", timeout=30)

    # every sub-agent's answer, in argument order, from the (labelled) scripted model
    assert [f.angle for f in report.findings] == ANGLES
    for finding in report.findings:
        assert finding.answer.startswith("[scripted note, not an LLM]") and finding.angle in finding.answer
        assert finding.tokens > 0 and "not an LLM" in finding.model
    assert (report.published_as, report.notified) == ("publish report:ok", 1)
    assert status == rs.Status(phase="done", report=report) and awaited == report

    # the side effects: one model call per angle (in parallel: any order), then the saga in order
    done = actions(root, "ok")
    assert sorted(done[:3]) == ["ask model"] * 3 and done[3:] == SAGA
    assert sorted(row["angle"] for row in ledger(root, "ok")[:3]) == sorted(ANGLES)

    # the journal: fan-out, gather, durable sleep, the three steps, the promise, the output
    assert entries(cluster, inv) == [*expected_journal(ANGLES), *[("run", s) for s in SAGA],
                                     ("promise_complete", "report"), ("set_state", "phase"), ("output", "")]
    sleep = entry(cluster, inv, "sleep", "cool-down")
    created = cluster.describe(inv).status.created_at_ms
    assert sleep.sleep.wake_at_ms >= created + 500
    assert entry(cluster, inv, "run", "reserve budget").appended_at_ms >= sleep.sleep.wake_at_ms  # sleep honoured

    # each sub-agent metered its tokens in its own journal
    calls = [e for e in cluster.describe(inv).journal if e.WhichOneof("kind") == "call"]
    for call, finding in zip(calls, report.findings, strict=True):
        sub = cluster.describe(call.call.invocation_id).journal
        metered = sum(e.meter.counters[e.name] for e in sub if e.WhichOneof("kind") == "meter")
        assert [e.name for e in sub if e.WhichOneof("kind") == "meter"] == ["llm.tokens.input", "llm.tokens.output"]
        assert metered == finding.tokens


@pytest.mark.parametrize(("fail_at", "undone"), [
    ("notify subscribers", ["unpublish report", "release budget"]),
    ("reserve budget", []),
])
async def test_research_terminal_failure_runs_compensations_in_reverse(
    cluster: Cluster, root: Path, fail_at: str, undone: list[str]
) -> None:
    key = f"fail-{fail_at.split()[0]}"
    question = rs.Question(question="What breaks?", cooldown_s=0.1, fail_at=fail_at)
    async with Client(cluster.ingress) as client:
        inv = await client.submit(rs.run, question, key=key)
        with pytest.raises(InvocationError) as failed:
            await client.attach(inv, handler=rs.run, timeout=60)
        status: rs.Status = await client.call(rs.status, key=key, timeout=30)
        with pytest.raises(InvocationError) as waiter:
            await client.call(rs.report, key=key, timeout=30)

    reason = f"{fail_at} refused (injected failure); undid {', '.join(undone) or 'nothing'}"
    assert (failed.value.code, failed.value.message) == (503, reason)
    assert (waiter.value.code, waiter.value.message) == (503, reason)  # the promise was rejected too
    assert status == rs.Status(phase="failed")

    # compensations ran exactly once each, in reverse order; the failed step changed nothing
    completed = SAGA[:SAGA.index(fail_at)]
    assert actions(root, key)[3:] == [*completed, *undone]

    # the journal shows the failed step and each compensation as a step of its own
    ran = [e for e in cluster.describe(inv).journal if e.WhichOneof("kind") == "run"]
    assert [e.name for e in ran] == [*completed, fail_at, *undone]
    assert (ran[len(completed)].failure.code, ran[len(completed)].failure.message) == (
        503, f"{fail_at} refused (injected failure)")
    assert all(e.WhichOneof("result") == "value" for e in ran if e.name != fail_at)
    assert entries(cluster, inv)[-3:] == [("set_state", "phase"), ("promise_complete", "report"), ("output", "")]
    final = cluster.describe(inv)
    assert final.journal[-1].output.failure.code == 503
    assert pb.Status.Name(final.status.status) == "COMPLETED"


async def test_worker_killed_during_research_sleep_finishes_on_new_worker(cluster: Cluster, root: Path) -> None:
    cooldown = 3.0
    async with Client(cluster.ingress) as client:
        inv = await client.submit(rs.run, rs.Question(question="Does it survive?", cooldown_s=cooldown), key="crash")

        def sleeping() -> bool:
            return ("sleep", "cool-down") in entries(cluster, inv)

        wait_until(sleeping, 30, "the durable cool-down sleep")
        status: rs.Status = await client.call(rs.status, key="crash", timeout=30)
        assert status.phase == "cooling down"
        first = next(w for w in cluster.workers if w.alive() and "research" in " ".join(w.popen.args))
        first.kill9()
        killed_at_ms = time.time() * 1000
        assert killed_at_ms < entry(cluster, inv, "sleep", "cool-down").sleep.wake_at_ms  # killed mid-sleep
        replacement = cluster.start_worker(RESEARCH_APP, name="research-2")
        report: rs.Report = await client.attach(inv, handler=rs.run, timeout=60)

    assert [f.angle for f in report.findings] == ANGLES
    rows = ledger(root, "crash")
    model_calls = [row for row in rows if row["action"] == "ask model"]
    assert sorted(row["angle"] for row in model_calls) == sorted(ANGLES)  # no sub-agent step ran twice
    assert {row["pid"] for row in model_calls} == {first.pid}
    assert [row["action"] for row in rows[3:]] == SAGA
    assert {row["pid"] for row in rows[3:]} == {replacement.pid}  # the new worker finished it
    assert entries(cluster, inv)[:len(expected_journal(ANGLES))] == expected_journal(ANGLES)


# ---------------------------------------------------------------------- coding agent


async def test_coding_agent_retries_in_the_sandbox_and_waits_for_approval(cluster: Cluster, root: Path) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send(ca.solve, ca.Task(prompt="sort [3, 1, 2] and print it"), key="session-1")

        async def approval_id() -> str | None:
            found: str | None = await client.call(ca.pending_approval, key="session-1", timeout=30)
            return found

        awakeable = await eventually(approval_id, "the agent to ask for approval", timeout=60)
        ready, _ = await client.get_output(inv, handler=ca.solve)
        assert not ready  # it really waits for the human
        await client.resolve_awakeable(awakeable, True)
        solution: ca.Solution = await client.attach(inv, handler=ca.solve, timeout=60)
        history: list[dict[str, str]] = await client.call(ca.history, key="session-1", timeout=30)
        assert await client.call(ca.pending_approval, key="session-1", timeout=30) is None

    assert (solution.attempts, solution.approved, solution.output) == (2, True, "[1, 2, 3]\n")
    assert "print(sorted(numbers))" in solution.code and "not an LLM" in solution.model
    # the conversation: the buggy program, its traceback fed back, the fix
    assert [m["role"] for m in history] == ["system", "user", "assistant", "user", "assistant"]
    assert "sorted(number))" in history[2]["content"] and "Traceback" in history[3]["content"]
    assert "NameError" in history[3]["content"] and "sorted(numbers))" in history[4]["content"]

    journal = cluster.describe(inv).journal
    sandbox = {e.name: json.loads(e.value) for e in journal if e.name.startswith("sandbox#")}
    assert (sandbox["sandbox#1"]["exit_code"], sandbox["sandbox#2"]["exit_code"]) == (1, 0)
    assert any(e.WhichOneof("kind") == "awakeable" and e.value == b"true" for e in journal)
    executed = (root / "executed.txt").read_text().split("\n")
    steps = [line.split("\t")[0] for line in executed if line]
    assert sorted(steps) == ["model#1", "model#2", "notify reviewer"]  # each step ran once


# ---------------------------------------------------------------------- endure demo


def test_endure_demo_shows_no_step_ran_again(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENDURE_LLM", "ENDURE_DEMO"))}
    env["TMPDIR"] = str(tmp_path)  # the demo's runtime data and logs stay in this test's folder
    # Its own process group: if it hangs, killing the group also ends its runtime and workers.
    demo = subprocess.Popen([sys.executable, "-m", "endure.runtime.cli", "demo"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        stdout, stderr = demo.communicate(timeout=600)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.communicate()
    done = subprocess.CompletedProcess(demo.args, demo.returncode, stdout, stderr)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no finished step ran again" in done.stdout, done.stdout
    assert "approved': True" in done.stdout
