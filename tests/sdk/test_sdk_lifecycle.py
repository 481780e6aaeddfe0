"""Attempt lifecycle: suspension, cancellation, abort, failures, step retries, ordering, batching."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

from sdk_fake_runtime import FakeRuntime, entry

from endure.proto import journal
from endure.sdk import App, CancelledError, Context, RetryPolicy, Service, TerminalError

events: list[str] = []
svc = Service("life", inactivity_timeout=timedelta(milliseconds=150))


@svc.handler()
async def waits(ctx: Context) -> str:
    await ctx.run("before", lambda: 1)
    _, awk = ctx.awakeable()
    slp = ctx.sleep(timedelta(hours=1))
    key, _ = await ctx.select(a=awk, s=slp)
    return key


@svc.handler(inactivity_timeout=timedelta(seconds=30))
async def saga(ctx: Context) -> str:
    await ctx.run("book", lambda: events.append("book"))
    try:
        await ctx.sleep(timedelta(hours=1))
    except CancelledError as exc:
        await ctx.run("unbook", lambda: events.append("unbook"))
        raise TerminalError(f"compensated after {exc.code}", 409) from exc
    return "done"


@svc.handler()
async def steps_then_done(ctx: Context) -> str:
    await ctx.run("one", lambda: events.append("one"))
    await ctx.run("two", lambda: events.append("two"))
    return "ok"


@svc.handler()
async def takes_int(ctx: Context, n: int) -> int:
    return n


@svc.handler()
async def bad_output(ctx: Context) -> int:
    return object()  # type: ignore[return-value]


@svc.handler()
async def crashes(ctx: Context) -> int:
    raise ValueError("kaput")


attempts: list[int] = []


def flaky() -> str:
    attempts.append(1)
    if len(attempts) < 3:
        raise ConnectionError("flaky network")
    return "ok"


def always_fails() -> str:
    attempts.append(1)
    raise ConnectionError("down")


@svc.handler()
async def retried(ctx: Context) -> str:
    return await ctx.run("flaky", flaky, retry=RetryPolicy(initial_interval=timedelta(milliseconds=1)))


@svc.handler()
async def exhausted(ctx: Context) -> str:
    try:
        await ctx.run(
            "down",
            always_fails,
            retry=RetryPolicy(initial_interval=timedelta(milliseconds=1), max_attempts=3),
        )
    except TerminalError as exc:
        return exc.message
    return "no"


@svc.handler()
async def unretried(ctx: Context) -> str:
    try:
        await ctx.run("down", always_fails)
    except ConnectionError:
        pass  # the attempt is already failed; catching does not help
    await ctx.run("after", lambda: events.append("after"))
    return "no"


threads: list[int] = []


def sync_step() -> int:
    threads.append(threading.get_ident())
    return 1


async def async_step(x: int) -> int:
    await asyncio.sleep(0.05)
    return x


@svc.handler()
async def concurrent_runs(ctx: Context) -> list[int]:
    slow = ctx.run("slow", async_step, 7)  # index 0, finishes last
    fast = ctx.run("fast", sync_step)  # index 1
    ctx.run("forgotten", lambda: 3)  # index 2, never awaited
    return [await fast, await slow]


@svc.handler()
async def cancelled_start(ctx: Context) -> str:
    try:
        await ctx.run("first", lambda: events.append("first"))
    except CancelledError:
        await ctx.run("cleanup", lambda: events.append("cleanup"))
        return "cleaned"
    return "not cancelled"


@svc.handler()
async def many_sets(ctx: Context) -> None:
    for i in range(50):
        ctx.meter("tokens", i)


async def test_suspends_after_inactivity_with_waiting_on(runtime: FakeRuntime, start_worker) -> None:
    w = await start_worker(app)
    s = await runtime.session()
    inv = s.start("life", "waits")
    await s.expect_entry("run", 0, ack=True)
    await s.expect_entry("awakeable", 1, ack=True)
    await s.expect_entry("sleep", 2, ack=True)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    sus = await s.expect("suspend")
    assert loop.time() - t0 >= 0.12
    assert sus.invocation_id == inv and list(sus.waiting_on) == [1, 2]
    assert w.active == 0
    # Resumed by a new attempt with the completion in the journal.
    journal = [entry("run", "before", value=b"1"), entry("awakeable", value=b'"x"'), entry("sleep")]
    s.start("life", "waits", invocation_id=inv, attempt=2, journal=journal)
    comb = await s.expect_entry("combinator", 3, ack=True)
    assert list(comb.entry.combinator.completed) == [1]
    out = await s.expect_output(4)
    assert out.value == b'"a"'


async def test_no_suspension_while_a_step_is_unacked(runtime: FakeRuntime, start_worker) -> None:
    await start_worker(app)
    s = await runtime.session()
    s.start("life", "steps_then_done")
    await s.expect_entry("run", 0)  # never acked: the worker waits, it does not suspend
    await s.no_frame(0.4)


async def test_cancel_raises_at_await_and_compensation_runs(runtime: FakeRuntime, start_worker) -> None:
    events.clear()
    await start_worker(app)
    s = await runtime.session()
    inv = s.start("life", "saga")
    await s.expect_entry("run", 0, ack=True)
    await s.expect_entry("sleep", 1, ack=True)
    s.cancel(inv)
    comp = await s.expect_entry("run", 2, ack=True)
    assert comp.entry.name == "unbook"
    out = await s.expect_output(3)
    assert out.failure.code == 409 and out.failure.message == "compensated after 409"
    assert events == ["book", "unbook"]


async def test_cancelled_start_raises_at_first_new_step(runtime: FakeRuntime, start_worker) -> None:
    events.clear()
    await start_worker(app)
    s = await runtime.session()
    inv = s.start("life", "cancelled_start", cancelled=True)
    first = await s.expect_entry("run", 0, ack=True)
    assert first.entry.failure.code == 409  # journaled, so a replay raises at the same step
    await s.expect_entry("run", 1, ack=True)
    out = await s.expect_output(2)
    assert out.value == b'"cleaned"'
    assert events == ["cleanup"]
    # replay of the same journal, still cancelled: same outcome, nothing re-runs
    journal = [first.entry, entry("run", "cleanup", value=b"null")]
    s.start("life", "cancelled_start", invocation_id=inv, attempt=2, journal=journal, cancelled=True)
    out = await s.expect_output(2)
    assert out.value == b'"cleaned"' and events == ["cleanup"]


async def test_abort_drops_silently(runtime: FakeRuntime, start_worker) -> None:
    w = await start_worker(app)
    s = await runtime.session()
    inv = s.start("life", "saga")
    await s.expect_entry("run", 0, ack=True)
    await s.expect_entry("sleep", 1, ack=True)
    s.abort(inv)
    await s.no_frame(0.3)
    assert w.active == 0


async def test_bad_input_is_terminal_400(runtime: FakeRuntime, start_worker) -> None:
    await start_worker(app)
    s = await runtime.session()
    s.start("life", "takes_int", b'"not a number"')
    out = await s.expect_output(0)
    assert out.failure.code == 400
    assert out.failure.message.startswith("invalid input for life/takes_int: invalid JSON for int")


async def test_unserializable_output_is_terminal_500(runtime: FakeRuntime, start_worker) -> None:
    await start_worker(app)
    s = await runtime.session()
    s.start("life", "bad_output")
    out = await s.expect_output(0)
    assert out.failure.code == 500
    assert out.failure.message.startswith(
        "output of life/bad_output: cannot serialize object as JSON for int"
    )


async def test_exception_is_retryable_fail_frame(runtime: FakeRuntime, start_worker) -> None:
    await start_worker(app)
    s = await runtime.session()
    s.start("life", "crashes")
    fail = await s.expect("fail")
    assert not fail.journal_mismatch
    assert fail.failure.code == 500 and fail.failure.message == "ValueError: kaput"


async def test_unknown_handler_fails_404(runtime: FakeRuntime, start_worker) -> None:
    await start_worker(app)
    s = await runtime.session()
    s.start("life", "nope")
    out = await s.expect_output(0)
    assert out.failure.code == 404


async def test_step_retry_policy_in_process(runtime: FakeRuntime, start_worker) -> None:
    attempts.clear()
    await start_worker(app)
    s = await runtime.session()
    s.start("life", "retried")
    run = await s.expect_entry("run", 0, ack=True)
    assert run.entry.value == b'"ok"' and len(attempts) == 3
    await s.expect_output(1)

    attempts.clear()
    s.start("life", "exhausted")
    run = await s.expect_entry("run", 0, ack=True)
    assert len(attempts) == 3
    assert run.entry.failure.code == 500
    assert run.entry.failure.message == "run 'down' failed after 3 attempts: ConnectionError: down"
    out = await s.expect_output(1)
    assert out.value == b"\"run 'down' failed after 3 attempts: ConnectionError: down\""


async def test_step_without_policy_fails_the_attempt(runtime: FakeRuntime, start_worker) -> None:
    attempts.clear()
    events.clear()
    await start_worker(app)
    s = await runtime.session()
    s.start("life", "unretried")
    fail = await s.expect("fail")
    assert fail.failure.message == "run 'down' failed: ConnectionError: down"
    await s.no_frame(0.2)
    assert events == []


async def test_entries_sent_in_index_order_and_forgotten_steps_complete(
    runtime: FakeRuntime, start_worker
) -> None:
    threads.clear()
    await start_worker(app)
    s = await runtime.session()
    s.start("life", "concurrent_runs")
    entries, end = await s.until_done()
    assert [(e.index, e.entry.name or e.entry.WhichOneof("kind")) for e in entries] == [
        (0, "slow"),
        (1, "fast"),
        (2, "forgotten"),
        (3, "output"),
    ]
    assert entries[3].entry.output.value == b"[1,7]"
    assert end.WhichOneof("frame") == "end"
    assert threads and threads[0] != threading.get_ident()  # sync steps run off the loop


async def test_frames_of_one_tick_are_batched(runtime: FakeRuntime, start_worker) -> None:
    await start_worker(app)
    s = await runtime.session()
    s.start("life", "many_sets")
    entries, end = await s.until_done()
    assert len(entries) == 51 and end.WhichOneof("frame") == "end"
    assert len(s.messages) <= 3, [len(m.frames) for m in s.messages]
    assert entries[5].entry.meter.counters["tokens"] == 5.0


async def test_graceful_stop_suspends_waiting_handlers(runtime: FakeRuntime, start_worker) -> None:
    w = await start_worker(app)
    s = await runtime.session()
    inv = s.start("life", "saga")
    await s.expect_entry("run", 0, ack=True)
    await s.expect_entry("sleep", 1, ack=True)
    w.stop()  # inactivity timeout is 30 s; stop suspends at once
    sus = await s.expect("suspend", timeout=2)
    assert sus.invocation_id == inv and list(sus.waiting_on) == [1]
    s.start("life", "saga")  # no more work is taken
    await asyncio.wait_for(s.closed.wait(), 5)
    assert w.active == 0


async def test_records_failure_from_journal_replays_for_calls(runtime: FakeRuntime, start_worker) -> None:
    await start_worker(app)
    s = await runtime.session()
    s.start(
        "life",
        "saga",
        journal=[
            entry("run", "book", value=b"null"),
            entry("sleep", failure=journal.cancelled_failure()),  # what the runtime journals on cancel
        ],
    )
    comp = await s.expect_entry("run", 2, ack=True)
    assert comp.entry.name == "unbook"
    out = await s.expect_output(3)
    assert out.failure.message == "compensated after 409"


@svc.handler(inactivity_timeout=timedelta(seconds=30))
async def gathers(ctx: Context) -> str:
    a = ctx.sleep(timedelta(hours=1))
    _, b = ctx.awakeable()
    try:
        await ctx.gather(a, b)
    except CancelledError:
        return "cancelled in gather"
    return "no"


gate: asyncio.Event | None = None
step_started: asyncio.Event | None = None


async def wait_gate() -> int:
    assert gate is not None and step_started is not None
    step_started.set()
    await gate.wait()
    return 1


@svc.handler(inactivity_timeout=timedelta(seconds=30))
async def busy_then_sleep(ctx: Context) -> str:
    await ctx.run("busy", wait_gate)
    try:
        await ctx.sleep(timedelta(hours=1))  # cancel arrived during the step: raised here
    except CancelledError:
        return "cancelled at next await"
    return "no"


app = App([svc])


async def test_cancel_during_gather_is_journaled(runtime: FakeRuntime, start_worker) -> None:
    await start_worker(app)
    s = await runtime.session()
    inv = s.start("life", "gathers")
    await s.expect_entry("sleep", 0, ack=True)
    await s.expect_entry("awakeable", 1, ack=True)
    s.cancel(inv)
    comb = await s.expect_entry("combinator", 2, ack=True)
    assert comb.entry.name == "gather" and comb.entry.failure.code == 409
    out = await s.expect_output(3)
    assert out.value == b'"cancelled in gather"'
    # replay raises at the same place from the journal alone
    journal = [entry("sleep"), entry("awakeable"), comb.entry]
    s.start("life", "gathers", invocation_id=inv, attempt=2, journal=journal)
    out = await s.expect_output(3)
    assert out.value == b'"cancelled in gather"'


async def test_cancel_during_step_raises_at_next_await(runtime: FakeRuntime, start_worker) -> None:
    global gate, step_started
    gate, step_started = asyncio.Event(), asyncio.Event()
    w = await start_worker(app)
    s = await runtime.session()
    inv = s.start("life", "busy_then_sleep")
    await asyncio.wait_for(step_started.wait(), 5)  # the step is running (in-process worker)
    attempt = w._active[inv]
    took_cancel = asyncio.Event()
    original = attempt.cancel

    def observed_cancel() -> None:
        original()
        took_cancel.set()

    attempt.cancel = observed_cancel  # type: ignore[method-assign]
    s.cancel(inv)
    await asyncio.wait_for(took_cancel.wait(), 5)  # the worker has taken the CancelFrame
    assert attempt.cancel_pending
    gate.set()
    run = await s.expect_entry("run", 0, ack=True)
    assert run.entry.value == b"1"  # the step in flight completed normally
    await s.expect_entry("sleep", 1, ack=True)
    out = await s.expect_output(2)
    assert out.value == b'"cancelled at next await"'


async def test_concurrency_limit_queues_starts(runtime: FakeRuntime, start_worker) -> None:
    w = await start_worker(app, concurrency=2)
    s = await runtime.session()
    invs = [s.start("life", "saga") for _ in range(3)]
    seen = set()
    for _ in range(4):
        ef = await s.expect("entry")
        seen.add(ef.invocation_id)
        s.ack(ef.invocation_id, ef.index)
    assert seen == set(invs[:2]) and w.active == 2
    await s.no_frame(0.1)
    s.abort(invs[0])  # frees a slot: the queued start runs
    ef = await s.expect_entry("run", 0)
    assert ef.invocation_id == invs[2]
