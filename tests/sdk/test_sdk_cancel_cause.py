"""Cancellation is typed by the failure's cause, never recognised by its text.

The SDK raises CancelledError for a cancellation (cause FAILURE_CANCELLED), journals its own
cancellations with that cause, and ends an invocation with cause FAILURE_CANCELLED only when the
runtime cancelled it: a handler's own TerminalError("cancelled", 409) or CancelledError() is an
ordinary failure.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sdk_fake_runtime import FakeRuntime, entry

from endure.proto import journal
from endure.proto import records_pb2 as pb
from endure.sdk import App, CancelledError, Context, Service, TerminalError
from endure.sdk.context import _failure_error

svc = Service("cause", inactivity_timeout=timedelta(seconds=30))


@svc.handler()
async def raises_conflict(ctx: Context) -> str:
    raise TerminalError("cancelled", 409)


@svc.handler()
async def raises_cancelled(ctx: Context) -> str:
    raise CancelledError()


@svc.handler()
async def sleeps(ctx: Context) -> str:
    await ctx.sleep(timedelta(hours=1))  # a cancellation escapes at once, no compensation
    return "woke"


@svc.handler()
async def calls(ctx: Context) -> str:
    try:
        await ctx.call("other", "h", None)
    except CancelledError:
        return "callee cancelled"
    except TerminalError as exc:
        return f"callee failed ({exc.code}): {exc.message}"
    return "ok"


@svc.handler()
async def cancelled_at_run(ctx: Context) -> str:
    await ctx.run("first", lambda: 1)
    return "ran"


@svc.handler()
async def gathers(ctx: Context) -> str:
    try:
        await ctx.gather(ctx.sleep(timedelta(hours=1)), ctx.awakeable()[1])
    except CancelledError:
        return "cancelled in gather"
    return "no"


app = App([svc])


# ---------------------------------------------------------------------- _failure_error


def test_typed_cancellation_raises_cancelled_error_whatever_the_text() -> None:
    err = _failure_error(journal.cancelled_failure("stopped by the operator"))
    assert isinstance(err, CancelledError) and err.code == 409
    assert err.message == "stopped by the operator"


def test_conflict_named_cancelled_is_a_plain_terminal_error() -> None:
    """A handler's (or a step's) own TerminalError("cancelled", 409) is not a cancellation."""
    err = _failure_error(pb.Failure(code=409, message="cancelled"))
    assert type(err) is TerminalError and err.code == 409 and err.message == "cancelled"


def test_kill_is_not_a_cancellation() -> None:
    err = _failure_error(journal.killed_failure())
    assert type(err) is TerminalError and err.code == 409 and err.message == "killed"


def test_untyped_conflict_of_a_wait_is_not_a_cancellation() -> None:
    """Only the cause makes a cancellation, for every kind: journals written before failures had
    a cause are typed by the data format migration, not recognised here by their text."""
    assert type(_failure_error(pb.Failure(code=409, message="cancelled"))) is TerminalError


# ---------------------------------------------------------------------- journaled causes and outputs


async def test_own_terminal_error_named_cancelled_is_a_plain_failure(
    runtime: FakeRuntime, start_worker
) -> None:
    await start_worker(app)
    s = await runtime.session()
    s.start("cause", "raises_conflict")
    out = await s.expect_output(0)
    assert out.failure.code == 409 and out.failure.message == "cancelled"
    assert out.failure.cause == pb.FAILURE_ERROR


async def test_own_cancelled_error_without_a_cancel_is_a_plain_failure(
    runtime: FakeRuntime, start_worker
) -> None:
    await start_worker(app)
    s = await runtime.session()
    s.start("cause", "raises_cancelled")
    out = await s.expect_output(0)
    assert out.failure.code == 409 and out.failure.cause == pb.FAILURE_ERROR


async def test_cancel_frame_ends_the_invocation_as_cancelled(runtime: FakeRuntime, start_worker) -> None:
    await start_worker(app)
    s = await runtime.session()
    inv = s.start("cause", "sleeps")
    await s.expect_entry("sleep", 0, ack=True)
    s.cancel(inv)
    out = await s.expect_output(1)
    assert out.failure.code == 409 and journal.is_cancellation(out.failure)


async def test_cancellation_completing_the_sleep_ends_the_invocation_as_cancelled(
    runtime: FakeRuntime, start_worker
) -> None:
    """The runtime completes the waits before its CancelFrame arrives: that is enough."""
    await start_worker(app)
    s = await runtime.session()
    inv = s.start("cause", "sleeps")
    await s.expect_entry("sleep", 0, ack=True)
    s.complete(inv, 0, failure=journal.cancelled_failure())
    out = await s.expect_output(1)
    assert journal.is_cancellation(out.failure)


async def test_replayed_cancellation_of_a_cancelled_invocation_keeps_its_cause(
    runtime: FakeRuntime, start_worker
) -> None:
    await start_worker(app)
    s = await runtime.session()
    s.start("cause", "sleeps", journal=[entry("sleep", failure=journal.cancelled_failure())], cancelled=True)
    out = await s.expect_output(1)
    assert journal.is_cancellation(out.failure)


@pytest.mark.parametrize(
    ("failure", "caught"),
    [
        pytest.param(
            pb.Failure(code=409, message="cancelled"), b'"callee failed (409): cancelled"',
            id="failure-named-cancelled-is-not-a-cancellation",
        ),
        pytest.param(journal.cancelled_failure(), b'"callee cancelled"', id="cancelled-raises-cancelled-error"),
    ],
)
async def test_callee_failure_is_raised_by_its_cause(
    runtime: FakeRuntime, start_worker, failure: pb.Failure, caught: bytes
) -> None:
    await start_worker(app)
    s = await runtime.session()
    inv = s.start("cause", "calls")
    await s.expect_entry("call", 0, ack=True)
    s.complete(inv, 0, failure=failure)
    out = await s.expect_output(1)
    assert out.value == caught


async def test_journaled_cancellation_of_a_step_has_the_cancelled_cause(
    runtime: FakeRuntime, start_worker
) -> None:
    await start_worker(app)
    s = await runtime.session()
    s.start("cause", "cancelled_at_run", cancelled=True)
    first = await s.expect_entry("run", 0, ack=True)
    assert first.entry.failure.code == 409 and journal.is_cancellation(first.entry.failure)
    out = await s.expect_output(1)
    assert journal.is_cancellation(out.failure)


async def test_journaled_cancellation_of_a_combinator_has_the_cancelled_cause(
    runtime: FakeRuntime, start_worker
) -> None:
    await start_worker(app)
    s = await runtime.session()
    inv = s.start("cause", "gathers")
    await s.expect_entry("sleep", 0, ack=True)
    await s.expect_entry("awakeable", 1, ack=True)
    s.cancel(inv)
    comb = await s.expect_entry("combinator", 2, ack=True)
    assert comb.entry.failure.code == 409 and journal.is_cancellation(comb.entry.failure)
    assert (await s.expect_output(3)).value == b'"cancelled in gather"'
