"""Issue 4, end to end: every Context operation through a real runtime and real worker processes.

One cluster (runtime + worker serving apps/e2eapp.py) is shared by the whole module; tests that
kill a worker start a replacement before they finish.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cluster import (
    Cluster,
    Proc,
    admin_call,
    list_services,
    read_markers,
    running_cluster,
    wait_entry,
    wait_until,
)

from endure.proto import ids
from endure.proto import records_pb2 as pb
from endure.sdk.client import Client, InvocationError, RequestError

APP = "e2eapp:app"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, processes: int) -> Path:
    return tmp_path_factory.mktemp(f"e2e-context-p{processes}")


@pytest.fixture(scope="module")
def cluster(root: Path, processes: int) -> Iterator[Cluster]:
    with running_cluster(root, APP, processes) as c:
        yield c


def _known(cluster: Cluster, inv: str) -> bool:
    try:
        cluster.describe(inv)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return False
        raise
    return True


def status_name(cluster: Cluster, inv: str) -> str:
    return pb.Status.Name(cluster.describe(inv).status.status)


def wait_status(cluster: Cluster, inv: str, status: str, timeout: float = 60.0) -> pb.InvocationStatus:
    wait_until(lambda: status_name(cluster, inv) == status, timeout, f"{inv} to be {status}")
    return cluster.describe(inv).status


def count(root: Path, marker: str) -> int:
    return read_markers(root).count(marker)


def replace_worker(cluster: Cluster, name: str) -> None:
    """kill -9 every live worker and start a fresh one."""
    for w in cluster.workers:
        if w.alive():
            w.kill9()
    cluster.start_worker(APP, name=name)


# ---------------------------------------------------------------------- ctx.run


async def test_run_sync_and_async_steps(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("e2e/runs", 5)
        assert await client.attach(inv, timeout=30) == [10, 15]
    journal = cluster.describe(inv).journal
    assert [(e.WhichOneof("kind"), e.name) for e in journal] == [("run", "double"), ("run", "triple"), ("output", "")]
    assert [journal[0].value, journal[1].value] == [b"10", b"15"]


async def test_run_terminal_failure_is_journaled_and_reraised(cluster: Cluster, root: Path) -> None:
    async with Client(cluster.ingress) as client:
        caught = await client.send("e2e/run_terminal", "rt1")
        assert await client.attach(caught, timeout=30) == "caught 418 step refused after"
        uncaught = await client.send("e2e/run_terminal_uncaught", "rt2")
        with pytest.raises(InvocationError) as err:
            await client.attach(uncaught, timeout=30)
    assert (err.value.code, err.value.message) == (418, "step refused")
    first = cluster.describe(caught).journal[0]
    assert (first.name, first.failure.code, first.failure.message) == ("refuse", 418, "step refused")
    status = cluster.describe(uncaught).status
    assert (pb.Status.Name(status.status), status.attempts) == ("COMPLETED", 1)  # attempts = attempts started
    assert count(root, "rt1:refuse") == 1 and count(root, "rt2:refuse") == 1


# ---------------------------------------------------------------------- sleep, call, send


async def test_sleep(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("e2e/sleeper", 300)
        assert await client.attach(inv, timeout=30) == "slept 300"
    d = cluster.describe(inv)
    assert d.journal[0].WhichOneof("kind") == "sleep" and d.journal[0].WhichOneof("result") == "void"
    assert d.status.completed_at_ms - d.status.created_at_ms >= 300


async def test_call_by_name_and_typed(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        assert await client.call("e2e/caller", 4, timeout=30) == {"by_name": {"n": 4}, "typed": 5}


async def test_send_now_and_delayed(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        parent = await client.send("e2e/sender", 1000)
        ids_ = await client.attach(parent, timeout=30)
        # A send reaches its callee's partition through the outbox, which may deliver it after
        # the sender ended: the ids become known there shortly, not necessarily at once.
        for child in ids_.values():
            wait_until(lambda c=child: _known(cluster, c), timeout=30, what=f"send {child} delivered")
        assert await client.attach(ids_["now"], timeout=30) == "now"
        assert await client.attach(ids_["later"], timeout=30) == "later"
    send_entry = cluster.describe(parent).journal[1]
    later = cluster.describe(ids_["later"]).status
    now = cluster.describe(ids_["now"]).status
    assert later.execute_at_ms >= send_entry.appended_at_ms + 900  # the writer's clock, +/- skew
    assert later.completed_at_ms >= later.execute_at_ms
    assert now.completed_at_ms < later.execute_at_ms


# ---------------------------------------------------------------------- state


async def test_object_state_get_set_clear_keys(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        assert await client.call("e2eobj/put", {"a": 1, "b": "x"}, key="s1", timeout=30) == ["a", "b"]
        assert await client.call("e2eobj/put", {"z": [1]}, key="s2", timeout=30) == ["z"]
        assert await client.call("e2eobj/dump", key="s1", timeout=30) == {"key": "s1", "state": {"a": 1, "b": "x"}}
        assert await client.call("e2eobj/clear", "a", key="s1", timeout=30) == ["b"]
        assert await client.call("e2eobj/put", {"c": None}, key="s1", timeout=30) == ["b", "c"]
        assert await client.call("e2eobj/clear_all", key="s1", timeout=30) == []
        assert await client.call("e2eobj/dump", key="s1", timeout=30) == {"key": "s1", "state": {}}
        assert await client.call("e2eobj/dump", key="s2", timeout=30) == {"key": "s2", "state": {"z": [1]}}


# ---------------------------------------------------------------------- awakeables and promises


async def test_awakeable_resolved_and_rejected_from_outside(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        yes = await client.send("e2e/human")
        no = await client.send("e2e/human")
        yes_awk = ids.awakeable_id(yes, wait_entry(cluster, yes, "awakeable"))
        no_awk = ids.awakeable_id(no, wait_entry(cluster, no, "awakeable"))
        await client.resolve_awakeable(yes_awk, {"by": "alice"})
        await client.reject_awakeable(no_awk, "not today", 403)
        assert await client.attach(yes, timeout=30) == "approved {'by': 'alice'}"
        assert await client.attach(no, timeout=30) == "rejected 403: not today"
        with pytest.raises(RequestError) as err:  # the waiter is gone: a precise refusal
            await client.resolve_awakeable(yes_awk, 1)
    assert err.value.code.name == "FAILED_PRECONDITION"


async def test_workflow_promises_signalled_by_handler_and_client(cluster: Cluster, root: Path) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.submit("e2eflow/run", "a@example.com", key="wf1")
        wait_entry(cluster, inv, "promise_get", "approval")
        assert await client.call("e2eflow/peek", key="wf1", timeout=30) is None
        assert await client.call("e2eflow/approve", "alice", key="wf1", timeout=30) == "approved by alice"
        wait_entry(cluster, inv, "promise_get", "confirmed")
        await client.resolve_promise("e2eflow", "wf1", "confirmed", True)
        result = await client.attach(inv, timeout=30)
        assert result == {"before": None, "approved": "alice", "confirmed": True, "after": "alice", "key": "wf1"}
        assert await client.call("e2eflow/peek", key="wf1", timeout=30) == "alice"
        # run-once: a second submit of the same key returns the same invocation and runs nothing
        assert await client.submit("e2eflow/run", "other@example.com", key="wf1") == inv
        assert await client.attach(handler="e2eflow/run", key="wf1", timeout=30) == result
        # a promise resolved twice is refused inside the handler (TerminalError 409 → handler failure)
        with pytest.raises(InvocationError):
            await client.call("e2eflow/approve", "bob", key="wf1", timeout=30)
    assert count(root, "wf1:run") == 1


async def test_workflow_promise_rejected_by_client(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.submit("e2eflow/run", "b@example.com", key="wf2")
        wait_entry(cluster, inv, "promise_get", "approval")
        await client.reject_promise("e2eflow", "wf2", "approval", "denied", 403)
        assert await client.attach(inv, timeout=30) == {"before": None, "rejected": "denied"}


# ---------------------------------------------------------------------- combinators


async def test_select_and_gather_outcomes_are_journaled(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("e2e/race")
        assert await client.attach(inv, timeout=30) == {"winner": "fast", "value": "fast", "both": [1, 2]}
    journal = cluster.describe(inv).journal
    kinds = [(e.WhichOneof("kind"), e.name) for e in journal]
    assert kinds[:3] == [("sleep", ""), ("call", "e2e/echo"), ("combinator", "select")]
    assert list(journal[2].combinator.completed) == [1]
    gather = journal[5]
    assert gather.name == "gather" and sorted(gather.combinator.completed) == [3, 4]


async def test_fan_out_of_100_calls_gathered(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("e2e/fanout", 100)
        assert await client.attach(inv, timeout=120) == [2 * i for i in range(100)]
    journal = cluster.describe(inv).journal
    assert sum(e.WhichOneof("kind") == "call" for e in journal) == 100
    assert journal[100].name == "gather" and len(journal[100].combinator.completed) == 100


# ---------------------------------------------------------------------- identity


async def test_invocation_id_and_key(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("e2e/identity")
        assert await client.attach(inv, timeout=30) == {"invocation_id": inv}
        assert (await client.call("e2eobj/dump", key="who-1", timeout=30))["key"] == "who-1"


# ---------------------------------------------------------------------- virtual-object concurrency


async def test_exclusive_handlers_run_in_arrival_order_per_key(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        sent = []
        for i in range(40):  # each send is durable before the next: arrival order = i
            sent.append(await client.send("e2eobj/append", f"i{i}", key="order"))
            if i % 4 == 0:  # other keys interleave and must not disturb "order"
                await client.send("e2eobj/append", f"o{i}", key=f"other-{i}")
        results = await asyncio.gather(*(client.attach(inv, timeout=120) for inv in sent))
        expected = [f"i{i}" for i in range(40)]
        assert await client.call("e2eobj/items", key="order", timeout=30) == expected
        assert [r[-1] for r in results] == expected  # each saw exactly its predecessors
        assert all(results[i] == expected[: i + 1] for i in range(40))


async def test_shared_handler_reads_while_exclusive_one_holds_the_key(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        await client.call("e2eobj/append", "first", key="held", timeout=30)
        holder = await client.send("e2eobj/hold", key="held")
        awk = ids.awakeable_id(holder, wait_entry(cluster, holder, "awakeable"))
        queued = await client.send("e2eobj/append", "second", key="held")
        # the shared handler is not queued behind the exclusive one
        assert await client.call("e2eobj/items", key="held", timeout=20) == ["first"]
        assert status_name(cluster, queued) == "INBOXED"
        await client.resolve_awakeable(awk, 7)
        assert await client.attach(holder, timeout=30) == "released 7"
        assert await client.attach(queued, timeout=30) == ["first", "second"]


# ---------------------------------------------------------------------- retries


async def test_retry_plain_exception_then_success(cluster: Cluster, root: Path) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("e2e/flaky", "fl1")
        assert await client.attach(inv, timeout=30) == 3
    status = cluster.describe(inv).status
    assert status.attempts == 3  # attempts started: two failed, the third succeeded
    assert "transient failure 2" in status.last_failure.message
    assert count(root, "fl1:attempt") == 3


async def test_terminal_error_fails_without_retry(cluster: Cluster, root: Path) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("e2e/terminal", "te1")
        with pytest.raises(InvocationError) as err:
            await client.attach(inv, timeout=30)
    assert (err.value.code, err.value.message) == (400, "bad request: no retry")
    assert cluster.describe(inv).status.attempts == 1  # one attempt, no retry
    assert count(root, "te1:attempt") == 1


async def test_retry_policy_exhausted_fails(cluster: Cluster, root: Path) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("e2e/exhaust_fail", "ex1")
        with pytest.raises(InvocationError) as err:
            await client.attach(inv, timeout=30)
    assert "always broken" in err.value.message
    status = cluster.describe(inv).status
    assert (pb.Status.Name(status.status), status.attempts) == ("COMPLETED", 3)
    assert count(root, "ex1:attempt") == 3


async def test_retry_policy_exhausted_pauses_then_resumes(cluster: Cluster, root: Path) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("e2e/exhaust_pause", "ep1")
        status = wait_status(cluster, inv, "PAUSED")
        assert status.attempts == 2 and "broken until fixed" in status.last_failure.message
        assert count(root, "ep1:attempt") == 2
        ready, _ = await client.get_output(inv)
        assert not ready
        (root / "mode-ep1").write_text("fixed")
        admin_call(cluster, "ResumeInvocation", inv)
        assert await client.attach(inv, timeout=30) == "fixed"


# ---------------------------------------------------------------------- replay divergence


async def test_changed_handler_pauses_on_journal_mismatch_and_resumes_after_fix(cluster: Cluster, root: Path) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("e2e/evolving", "ev1")
        # (attempts started: two failed ones and the retry after them)
        wait_until(lambda: cluster.describe(inv).status.attempts >= 3, 30, "step a journaled and step b retried")
        assert cluster.describe(inv).journal[0].name == "a"
        (root / "mode-ev1").write_text("v2")  # the deployed code changed: replay diverges at entry 0
        status = wait_status(cluster, inv, "PAUSED")
        message = status.last_failure.message
        assert "entry 0" in message and "run 'a'" in message and "run 'x'" in message, message
        assert [e.name for e in cluster.describe(inv).journal] == ["a"]  # nothing of v2 was appended
        # fix the code: restart the worker with the fixed behaviour, then resume
        (root / "mode-ev1").write_text("fixed")
        replace_worker(cluster, "w-fixed")
        admin_call(cluster, "ResumeInvocation", inv)
        assert await client.attach(inv, timeout=30) == "ab"


# ---------------------------------------------------------------------- bad input


async def test_unknown_service_or_handler_is_not_found(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        with pytest.raises(RequestError) as svc:
            await client.call("nosuch/handler", 1, timeout=10)
        with pytest.raises(RequestError) as handler:
            await client.call("e2e/nosuch", 1, timeout=10)
    assert svc.value.code.name == "NOT_FOUND" and "nosuch" in svc.value.message
    assert handler.value.code.name == "NOT_FOUND" and "nosuch" in handler.value.message


async def test_input_failing_schema_is_invalid_argument_naming_the_field(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        with pytest.raises(RequestError) as err:
            await client.call("e2e/add", {"a": 1, "b": "two"}, timeout=10)
        assert err.value.code.name == "INVALID_ARGUMENT"
        assert "b" in err.value.message and "integer" in err.value.message, err.value.message
        with pytest.raises(RequestError) as missing:
            await client.call("e2e/add", {"a": 1}, timeout=10)
        assert missing.value.code.name == "INVALID_ARGUMENT" and "'b'" in missing.value.message


async def test_unserializable_output_fails_with_a_precise_message(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        with pytest.raises(InvocationError) as err:
            await client.call("e2e/bad_output", timeout=30)
    assert "e2e/bad_output" in err.value.message and "Opaque" in err.value.message, err.value.message


def test_conflicting_deployment_registration_is_refused_whole(cluster: Cluster, root: Path) -> None:
    first = Proc([sys.executable, "-m", "conflictapp", "first", cluster.admin], root / "conflict-first.log",
                 cluster.env)
    cluster.workers.append(first)
    wait_until(lambda: "conflict-first" in cluster.connected_workers(), 60, "the first deployment")
    before = {s.definition.name: [h.name for h in s.definition.handlers] for s in list_services(cluster).services}
    second = Proc([sys.executable, "-m", "conflictapp", "second", cluster.admin], root / "conflict-second.log",
                  cluster.env)
    cluster.workers.append(second)
    code = second.popen.wait(timeout=60)
    assert code != 0
    log = second.tail()
    assert "FAILED_PRECONDITION" in log and "conflict-dep" in log, log
    after = {s.definition.name: [h.name for h in s.definition.handlers] for s in list_services(cluster).services}
    assert after == before
    assert after["e2econf"] == ["h1"] and "e2econf_extra" not in after
    first.terminate()


# ---------------------------------------------------------------------- cancellation


async def test_cancel_during_sleep_runs_compensation(cluster: Cluster, root: Path) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("e2e/cancellable", "c1")
        wait_entry(cluster, inv, "sleep", "long")
        await client.cancel(inv)
        with pytest.raises(InvocationError) as err:
            await client.attach(inv, timeout=30)
    assert err.value.code == 409
    d = cluster.describe(inv)
    assert pb.Status.Name(d.status.status) == "CANCELLED"
    assert [(e.WhichOneof("kind"), e.name) for e in d.journal][:2] == [("sleep", "long"), ("run", "compensate")]
    assert count(root, "c1:compensated") == 1


async def test_cancel_propagates_to_child_call(cluster: Cluster, root: Path) -> None:
    async with Client(cluster.ingress) as client:
        parent = await client.send("e2e/cancel_parent", "c2")
        wait_entry(cluster, parent, "call")
        child = cluster.describe(parent).journal[0].call.invocation_id
        wait_entry(cluster, child, "sleep", "long")
        await client.cancel(parent)
        with pytest.raises(InvocationError) as err:
            await client.attach(parent, timeout=30)
        assert err.value.code == 409
        with pytest.raises(InvocationError):
            await client.attach(child, timeout=30)
    assert status_name(cluster, child) == "CANCELLED"
    assert status_name(cluster, parent) == "CANCELLED"
    assert count(root, "c2-child:compensated") == 1 and count(root, "c2:compensated") == 1


async def test_kill_ends_at_once_without_compensation(cluster: Cluster, root: Path) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("e2e/cancellable", "k1")
        wait_entry(cluster, inv, "sleep", "long")
        await client.kill(inv)
        with pytest.raises(InvocationError):
            await client.attach(inv, timeout=10)
    d = cluster.describe(inv)
    assert pb.Status.Name(d.status.status) == "KILLED"
    assert [e.name for e in d.journal] == ["long"]
    assert count(root, "k1:compensated") == 0


# ---------------------------------------------------------------------- worker crashes (last: they replace the worker)


async def test_now_random_uuid_are_the_same_after_a_worker_kill(cluster: Cluster, root: Path) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("e2e/deterministic", "d1")
        wait_until(lambda: count(root, "d1:gated:start") == 1, 30, "the gated step")
        wait_entry(cluster, inv, "run", "now")
        replace_worker(cluster, "w-det")
        wait_until(lambda: count(root, "d1:gated:start") == 2, 30, "the replayed gated step")
        (root / "gate-d1").touch()
        result = await client.attach(inv, timeout=30)
    seen = [m for m in read_markers(root) if m.startswith("d1:det:")]
    assert len(seen) == 2 and seen[0] == seen[1], seen
    assert seen[0] == f"d1:det:{result['now']}|{result['random']}|{result['uuid']}|{inv}"


async def test_sleep_outlives_a_killed_worker(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("e2e/sleeper", 1500)
        wait_entry(cluster, inv, "sleep")
        replace_worker(cluster, "w-after-sleep")
        assert await client.attach(inv, timeout=30) == "slept 1500"
    d = cluster.describe(inv)
    assert d.status.completed_at_ms >= d.journal[0].sleep.wake_at_ms
