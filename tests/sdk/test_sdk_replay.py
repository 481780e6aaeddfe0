"""Replay and new-entry behaviour of each Context operation against a scripted runtime."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from sdk_fake_runtime import FakeRuntime, entry

from endure.proto import ids, records_pb2
from endure.sdk import (
    App,
    Context,
    ObjectContext,
    Service,
    TerminalError,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
)

calls: dict[str, int] = {}


def count(name: str) -> int:
    calls[name] = calls.get(name, 0) + 1
    return calls[name]


class Pair(BaseModel):
    a: int
    b: int


svc = Service("svc")


@svc.handler()
async def add(ctx: Context, pair: Pair) -> int:
    return pair.a + pair.b


@svc.handler()
async def steps(ctx: Context, n: int) -> list[int]:
    out = []
    for i in range(n):
        out.append(await ctx.run(f"step{i}", lambda i=i: count(f"step{i}") and i * 10))
    return out


@svc.handler()
async def failing_step(ctx: Context) -> str:
    try:
        await ctx.run("boom", _boom)
    except TerminalError as exc:
        return f"caught {exc.code} {exc.message}"
    return "no"


def _boom() -> int:
    count("boom")
    raise TerminalError("nope", 422)


@svc.handler()
async def sleeper(ctx: Context) -> str:
    await ctx.sleep(timedelta(seconds=5))
    return "woke"


@svc.handler()
async def caller(ctx: Context, x: int) -> int:
    r = await ctx.call(add, Pair(a=x, b=1))
    ctx.send("svc", "steps", 0, delay=timedelta(seconds=1))
    return r


@svc.handler()
async def untyped_caller(ctx: Context) -> Any:
    try:
        return await ctx.call("svc", "add", {"a": 1, "b": 2})
    except TerminalError as exc:
        return f"failed {exc.code} {exc.message}"


@svc.handler()
async def awaker(ctx: Context) -> str:
    awk_id, fut = ctx.awakeable(type_hint=str)
    await ctx.run("publish", lambda: count("publish") and awk_id)
    return await fut


@svc.handler()
async def determinism(ctx: Context) -> list[str]:
    t = ctx.now()
    return [str(int(t.timestamp() * 1000)), str(ctx.random().random()), str(ctx.uuid())]


@svc.handler()
async def fanout(ctx: Context) -> list[int]:
    futs = [ctx.call(add, Pair(a=i, b=i)) for i in range(3)]
    return await ctx.gather(*futs)


@svc.handler()
async def racer(ctx: Context) -> str:
    _, fut = ctx.awakeable()
    key, val = await ctx.select(approved=fut, timeout=ctx.sleep(60))
    return f"{key}:{val}"


counter = VirtualObject("counter")


@counter.handler()
async def incr(ctx: ObjectContext, by: int) -> int:
    n = (await ctx.get("n", type_hint=int)) or 0
    ctx.set("n", n + by)
    again = await ctx.get("n", type_hint=int)
    keys = await ctx.state_keys()
    ctx.clear("tmp")
    return again * 100 + len(keys)


@counter.handler()
async def wipe(ctx: ObjectContext) -> list[str]:
    ctx.clear_all()
    ctx.set("x", 1)
    return await ctx.state_keys()


wf = Workflow("wf")


@wf.main()
async def run(ctx: WorkflowContext, email: str) -> str:
    code = await ctx.promise("code", type_hint=str).get()
    return f"{email}:{code}"


@wf.handler()
async def confirm(ctx: WorkflowSharedContext, code: str) -> str:
    before = await ctx.promise("code").peek()
    try:
        await ctx.promise("code").resolve(code)
    except TerminalError as exc:
        return f"already {exc.code} (peek {before})"
    return f"resolved (peek {before})"


app = App([svc, counter, wf])


async def test_run_new_entries_wait_for_ack_then_replay_without_rerun(
    runtime: FakeRuntime, start_worker
) -> None:
    calls.clear()
    await start_worker(app)
    s = await runtime.session()
    inv = s.start("svc", "steps", b"2")
    e0 = await s.expect_entry("run", 0)
    assert e0.entry.name == "step0" and e0.entry.value == b"0"
    await s.no_frame(0.2)  # step1 waits for the ack of step0
    s.ack(inv, 0)
    e1 = await s.expect_entry("run", 1, ack=True)
    assert e1.entry.value == b"10"
    out = await s.expect_output(2)
    assert out.value == b"[0,10]"
    assert calls == {"step0": 1, "step1": 1}

    # Attempt 2 with the journal: recorded runs are not re-executed.
    journal = [entry("run", "step0", value=b"0"), entry("run", "step1", value=b"10")]
    s.start("svc", "steps", b"2", invocation_id=inv, attempt=2, journal=journal)
    out = await s.expect_output(2)
    assert out.value == b"[0,10]"
    assert calls == {"step0": 1, "step1": 1}


async def test_run_failure_journaled_and_replayed_as_terminal(runtime: FakeRuntime, start_worker) -> None:
    calls.clear()
    await start_worker(app)
    s = await runtime.session()
    inv = s.start("svc", "failing_step")
    e = await s.expect_entry("run", 0, ack=True)
    assert e.entry.failure.code == 422 and e.entry.failure.message == "nope"
    out = await s.expect_output(1)
    assert out.value == b'"caught 422 nope"'
    journal = [entry("run", "boom", failure=records_pb2.Failure(code=422, message="nope"))]
    s.start("svc", "failing_step", invocation_id=inv, attempt=2, journal=journal)
    out = await s.expect_output(1)
    assert out.value == b'"caught 422 nope"'
    assert calls == {"boom": 1}


async def test_journal_mismatch_names_index_recorded_and_actual(runtime: FakeRuntime, start_worker) -> None:
    calls.clear()
    await start_worker(app)
    s = await runtime.session()
    journal = [entry("run", "step0", value=b"0"), entry("sleep", "")]
    s.start("svc", "steps", b"2", journal=journal)
    fail = await s.expect("fail")
    assert fail.journal_mismatch
    assert fail.failure.message == "journal mismatch at entry 1: recorded sleep '', handler did run 'step1'"
    await s.no_frame(0.2)
    assert calls == {}

    journal = [entry("run", "fetch", value=b"0")]
    s.start("svc", "sleeper", journal=journal)
    fail = await s.expect("fail")
    assert fail.failure.message == "journal mismatch at entry 0: recorded run 'fetch', handler did sleep ''"


async def test_sleep_new_and_replayed(runtime: FakeRuntime, start_worker) -> None:
    await start_worker(app)
    s = await runtime.session()
    inv = s.start("svc", "sleeper")
    e = await s.expect_entry("sleep", 0, ack=True)
    import time

    assert abs(e.entry.sleep.wake_at_ms - (time.time() * 1000 + 5000)) < 2000
    await s.no_frame(0.1)
    s.complete(inv, 0)
    out = await s.expect_output(1)
    assert out.value == b'"woke"'
    # replayed with its completion: no new sleep entry
    s.start("svc", "sleeper", attempt=2, invocation_id=inv, journal=[entry("sleep", "", void=True)])
    out = await s.expect_output(1)
    # replayed without completion, completion arrives before the handler reaches it
    inv2 = s.start("svc", "sleeper", attempt=3, journal=[entry("sleep", "")])
    s.complete(inv2, 0, attempt=3)
    out = await s.expect_output(1)
    assert out.value == b'"woke"'


async def test_typed_call_and_send(runtime: FakeRuntime, start_worker) -> None:
    await start_worker(app)
    s = await runtime.session()
    inv = s.start("svc", "caller", b"41")
    c = await s.expect_entry("call", 0, ack=True)
    assert c.entry.name == "svc/add"
    assert c.entry.call.target.service == "svc" and c.entry.call.target.handler == "add"
    assert json.loads(c.entry.call.input) == {"a": 41, "b": 1}
    assert c.entry.call.invocation_id == ids.call_invocation_id(inv, 0, "")
    s.complete(inv, 0, value=b"42")
    snd = await s.expect_entry("send", 1, ack=True)
    assert snd.entry.send.target.handler == "steps" and snd.entry.send.input == b"0"
    assert snd.entry.send.execute_at_ms > 0
    assert snd.entry.send.invocation_id == ids.call_invocation_id(inv, 1, "")
    out = await s.expect_output(2)
    assert out.value == b"42"
    # replay: recorded call with its result, recorded send
    journal = [entry("call", "svc/add", value=b"42"), entry("send", "svc/steps")]
    s.start("svc", "caller", b"41", invocation_id=inv, attempt=2, journal=journal)
    out = await s.expect_output(2)
    assert out.value == b"42"


async def test_call_failure_raises_terminal(runtime: FakeRuntime, start_worker) -> None:
    await start_worker(app)
    s = await runtime.session()
    inv = s.start("svc", "untyped_caller")
    await s.expect_entry("call", 0, ack=True)
    s.complete(inv, 0, failure=records_pb2.Failure(code=404, message="no such handler"))
    out = await s.expect_output(1)
    assert out.value == b'"failed 404 no such handler"'


async def test_awakeable_id_and_completion(runtime: FakeRuntime, start_worker) -> None:
    calls.clear()
    await start_worker(app)
    s = await runtime.session()
    inv = s.start("svc", "awaker")
    await s.expect_entry("awakeable", 0, ack=True)
    run = await s.expect_entry("run", 1, ack=True)
    assert json.loads(run.entry.value) == ids.awakeable_id(inv, 0)
    s.complete(inv, 0, value=b'"human says yes"')
    out = await s.expect_output(2)
    assert out.value == b'"human says yes"'
    journal = [entry("awakeable", value=b'"again"'), entry("run", "publish", value=b'"x"')]
    s.start("svc", "awaker", invocation_id=inv, attempt=2, journal=journal)
    out = await s.expect_output(2)
    assert out.value == b'"again"' and calls == {"publish": 1}


async def test_now_random_uuid_deterministic(runtime: FakeRuntime, start_worker) -> None:
    await start_worker(app)
    s = await runtime.session()
    inv = s.start("svc", "determinism")
    now = await s.expect_entry("run", 0)
    assert now.entry.name == "now"
    out = await s.expect_output(1)
    first = json.loads(out.value)
    assert first[0] == now.entry.value.decode()
    s.start("svc", "determinism", invocation_id=inv, attempt=2, journal=[now.entry])
    out = await s.expect_output(1)
    assert json.loads(out.value) == first


async def test_gather_journals_completion_order(runtime: FakeRuntime, start_worker) -> None:
    await start_worker(app)
    s = await runtime.session()
    inv = s.start("svc", "fanout")
    for i in range(3):
        await s.expect_entry("call", i, ack=True)
    s.complete(inv, 2, value=b"4")
    s.complete(inv, 0, value=b"0")
    await s.no_frame(0.1)
    s.complete(inv, 1, value=b"2")
    comb = await s.expect_entry("combinator", 3)
    assert list(comb.entry.combinator.completed) == [2, 0, 1]
    await s.no_frame(0.1)  # the output waits for the combinator's ack
    s.ack(inv, 3)
    out = await s.expect_output(4)
    assert out.value == b"[0,2,4]"
    journal = [entry("call", "svc/add", value=str(2 * i).encode()) for i in range(3)]
    journal.append(comb.entry)
    s.start("svc", "fanout", invocation_id=inv, attempt=2, journal=journal)
    out = await s.expect_output(4)
    assert out.value == b"[0,2,4]"


async def test_select_journals_winner(runtime: FakeRuntime, start_worker) -> None:
    await start_worker(app)
    s = await runtime.session()
    inv = s.start("svc", "racer")
    await s.expect_entry("awakeable", 0, ack=True)
    await s.expect_entry("sleep", 1, ack=True)
    s.complete(inv, 1)
    comb = await s.expect_entry("combinator", 2, ack=True)
    assert list(comb.entry.combinator.completed) == [1]
    out = await s.expect_output(3)
    assert out.value == b'"timeout:None"'
    # Replay: the awakeable completed too, but the journal says the timer won.
    journal = [entry("awakeable", value=b'"yes"'), entry("sleep", void=True), comb.entry]
    s.start("svc", "racer", invocation_id=inv, attempt=2, journal=journal)
    out = await s.expect_output(3)
    assert out.value == b'"timeout:None"'


async def test_state_eager_local_and_lazy(runtime: FakeRuntime, start_worker) -> None:
    await start_worker(app)
    s = await runtime.session()
    inv = s.start("counter", "incr", b"5", key="k", state={"n": b"2"}, handler_kind=records_pb2.EXCLUSIVE)
    entries, end = await s.until_done()
    assert end.WhichOneof("frame") == "end"
    kinds = [(e.entry.WhichOneof("kind"), e.entry.name, e.entry.WhichOneof("result")) for e in entries]
    assert kinds == [
        ("get_state", "n", "value"),
        ("set_state", "n", None),
        ("get_state", "n", "value"),
        ("get_state_keys", "", "value"),
        ("clear_state", "tmp", None),
        ("output", "", None),
    ]
    assert entries[0].entry.value == b"2" and entries[2].entry.value == b"7"
    assert entries[3].entry.value == b'["n"]'
    assert entries[5].entry.output.value == b"701"

    # Lazy: state not complete and key unknown -> entry without result, wait for completion.
    inv = s.start("counter", "incr", b"1", key="k2", state_complete=False, handler_kind=records_pb2.EXCLUSIVE)
    g = await s.expect_entry("get_state", 0, ack=True)
    assert g.entry.WhichOneof("result") is None
    s.complete(inv, 0)  # void: absent
    await s.expect_entry("set_state", 1, ack=True)
    g2 = await s.expect_entry("get_state", 2, ack=True)
    assert g2.entry.value == b"1"  # answered from the local cache after the write
    keys = await s.expect_entry("get_state_keys", 3, ack=True)
    assert keys.entry.WhichOneof("result") is None
    s.complete(inv, 3, value=b'["n","other"]')
    await s.expect_entry("clear_state", 4, ack=True)
    out = await s.expect_output(5)
    assert out.value == b"102"

    # clear_all makes the local state complete.
    s.start("counter", "wipe", key="k3", state_complete=False, handler_kind=records_pb2.EXCLUSIVE)
    entries, _ = await s.until_done()
    assert entries[-1].entry.output.value == b'["x"]'


async def test_workflow_promises(runtime: FakeRuntime, start_worker) -> None:
    await start_worker(app)
    s = await runtime.session()
    inv = s.start("wf", "run", b'"a@b.c"', key="a", handler_kind=records_pb2.WORKFLOW_RUN)
    pg = await s.expect_entry("promise_get", 0, ack=True)
    assert pg.entry.name == "code"
    sig = s.start("wf", "confirm", b'"1234"', key="a", handler_kind=records_pb2.WORKFLOW_SHARED)
    await s.expect_entry("promise_peek", 0, ack=True)
    s.complete(sig, 0)  # void: not resolved yet
    pc = await s.expect_entry("promise_complete", 1, ack=True)
    assert pc.entry.promise_complete.value == b'"1234"'
    s.complete(sig, 1)
    out = await s.expect_output(2)
    assert out.value == b'"resolved (peek None)"'
    s.complete(inv, 0, value=b'"1234"')
    out = await s.expect_output(1)
    assert out.value == b'"a@b.c:1234"'
    # second resolve: the runtime answers 409
    sig2 = s.start("wf", "confirm", b'"9"', key="a", handler_kind=records_pb2.WORKFLOW_SHARED)
    await s.expect_entry("promise_peek", 0, ack=True)
    s.complete(sig2, 0, value=b'"1234"')
    await s.expect_entry("promise_complete", 1, ack=True)
    s.complete(sig2, 1, failure=records_pb2.Failure(code=409, message="promise already completed"))
    out = await s.expect_output(2)
    assert out.value == b'"already 409 (peek 1234)"'


async def test_stale_and_unknown_frames_ignored(runtime: FakeRuntime, start_worker) -> None:
    await start_worker(app)
    s = await runtime.session()
    inv = s.start("svc", "sleeper")
    await s.expect_entry("sleep", 0, ack=True)
    s.complete(inv, 0, attempt=7)  # wrong attempt
    s.complete("inv_unknown", 0)
    s.ack(inv, 99)
    await s.no_frame(0.2)
    s.complete(inv, 0)
    out = await s.expect_output(1)
    assert out.value == b'"woke"'
