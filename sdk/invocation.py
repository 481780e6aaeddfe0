"""The state machine of one invocation attempt on a worker.

It replays the recorded journal (each Context operation takes the next index and must match the
recorded entry's kind and name), streams new entries to the runtime in index order, resolves
futures from acks and completions, suspends after the handler's inactivity timeout, and reports
the outcome (Output + End, Fail, Suspend). It never talks to gRPC directly: it hands frames to a
`FrameSink` (the worker), which batches them.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import threading
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeAlias

from endure.proto import journal, records_pb2, worker_pb2
from endure.proto.streams import check_name
from endure.sdk import logs, metrics, tracing
from endure.sdk.errors import (
    AttemptDropped,
    CancelledError,
    JournalMismatchError,
    SerdeError,
    TerminalError,
)
from endure.sdk.retry import RetryPolicy
from endure.sdk.serde import Serde
from endure.sdk.streams import (
    CURRENT_STEP,
    DEFAULT_FLUSH_BYTES,
    DEFAULT_FLUSH_MS,
    DEFAULT_STREAM,
    StepScope,
    StreamBuffer,
    StreamWriter,
)

if TYPE_CHECKING:
    from endure.sdk.context import DurableFuture
    from endure.sdk.definitions import HandlerDefinition

log = logging.getLogger("endure.sdk")
_STREAMS_LOCK = threading.Lock()

JournalEntry = records_pb2.JournalEntry
Failure = records_pb2.Failure
WorkerFrame = worker_pb2.WorkerFrame
EntryFrame = worker_pb2.EntryFrame

# What an entry future resolves to: JSON bytes, a Failure, or None (void).
Raw: TypeAlias = "bytes | records_pb2.Failure | None"

ACK = 0  # resolved by the entry's ack (run, combinator): the worker itself is busy
COMPLETION = 1  # resolved by a completion from the runtime: a suspension point

# How a new entry of each kind is resolved, from the journal rules: a kind whose result the worker
# journals itself (`acked`) waits for the Ack; every other kind waits for a completion (filled on
# append by the state machine, or later by a Completion record).
RESOLVED_BY: Mapping[str, int] = {k: ACK if r.acked else COMPLETION for k, r in journal.RULES.items()}


def _replay_compares_name() -> frozenset[str]:
    """Kinds whose replay compares the name as well as the kind (the kind is always compared).

    A rule that asks to compare anything else fails here, at import, instead of being ignored.
    """
    for r in journal.RULES.values():
        unknown = set(r.replay_compares) - {"kind", "name"}
        if unknown or "kind" not in r.replay_compares:
            raise RuntimeError(f"replay of {r.kind!r} entries compares {r.replay_compares}; "
                               "the SDK compares 'kind' and optionally 'name'")
    return frozenset(k for k, r in journal.RULES.items() if "name" in r.replay_compares)


_COMPARES_NAME = _replay_compares_name()

_MISSING: Any = object()


class WithUsage:
    """A step result that carries metering for its journal entry's `usage` map (sandbox fuel...)."""

    __slots__ = ("value", "usage")

    def __init__(self, value: Any, usage: dict[str, float]) -> None:
        self.value = value
        self.usage = usage


class FrameSink(Protocol):
    """Where an attempt's frames go (the worker's batched stream) and who gets its slot back."""

    def send(self, frame: worker_pb2.WorkerFrame) -> None: ...

    def release(self, inv: Invocation) -> None: ...


def raw_result(entry: Any) -> Raw | Any:
    """The result of a recorded entry or completion frame, or _MISSING when it has none."""
    which = entry.WhichOneof("result")
    if which == "value":
        return entry.value  # type: ignore[no-any-return]
    if which == "failure":
        return entry.failure
    if which == "void":
        return None
    return _MISSING


def describe(kind: str | None, name: str) -> str:
    """An operation or recorded entry as messages name it: "run 'charge'", "sleep ''"."""
    return f"{kind} '{name}'"


def _is_async_fn(fn: Callable[..., Any]) -> bool:
    code = getattr(fn, "__code__", None)  # functions and bound methods: one flag test
    if code is not None:
        return bool(code.co_flags & inspect.CO_COROUTINE)
    return inspect.iscoroutinefunction(fn)  # partials, callables


def _failure_message(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Invocation:
    """One attempt of one invocation."""

    def __init__(
        self,
        sink: FrameSink,
        start: worker_pb2.StartFrame,
        defn: HandlerDefinition | None,
        loop: asyncio.AbstractEventLoop,
        *,
        replay_only: bool = False,
        stream_flush_ms: float = DEFAULT_FLUSH_MS,
        stream_flush_bytes: int = DEFAULT_FLUSH_BYTES,
    ) -> None:
        self.sink = sink
        self.loop = loop
        self.id: str = start.invocation_id
        self.attempt: int = start.attempt
        self.target = start.target
        self.key: str = start.target.key
        self.headers: dict[str, str] = dict(start.headers)
        self.tenant: str = start.tenant
        self.sandbox_network: tuple[str, ...] = tuple(start.sandbox_network)  # the tenant's HTTP grant
        self.input: bytes = start.input
        self.defn = defn
        self.journal = start.journal
        self.replay_len = len(start.journal)
        self.next_index = 0
        self.next_send = self.replay_len
        self.state: dict[str, bytes | None] = {s.key: s.value for s in start.state}
        self.state_complete: bool = start.state_complete
        self.cancel_pending: bool = start.cancelled
        # Sticky: the runtime cancelled this invocation (the start said so, a CancelFrame came, or
        # one of its own waits was completed with a cancellation). Only then does a CancelledError
        # that escapes the handler end it with cause FAILURE_CANCELLED.
        self.cancel_requested: bool = start.cancelled
        self.done = False
        self.task: asyncio.Task[None] | None = None
        self.timeout: float = defn.inactivity_timeout.total_seconds() if defn is not None else 60.0
        self._held: dict[int, records_pb2.JournalEntry] = {}
        self._end_pending = False
        self._acks: dict[int, tuple[asyncio.Future[Any], Any]] = {}
        self._run_started: dict[int, float] = {}  # step start times, for the step latency metric
        self._completions: dict[int, asyncio.Future[Any]] = {}
        self._early: dict[int, Raw] = {}
        self._run_tasks: set[asyncio.Task[None]] = set()
        self._busy = 0  # runs in flight or waiting for their ack, combinators waiting for ack
        self._waiters: dict[asyncio.Future[None], tuple[DurableFuture[Any], ...]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._last_progress = 0.0
        # Offline replay (endure.sdk.replay): the recorded journal is all there is. The attempt stops
        # at the first operation past its end, or when the handler blocks on an entry it has not
        # completed, instead of executing or waiting; nothing new is ever emitted.
        self.replay_only = replay_only
        self.mismatch: JournalMismatchError | None = None  # the divergence begin() found
        self.past_end: tuple[str, str] | None = None  # (kind, name) of the first operation past the end
        self.blocked_on: list[int] | None = None  # the incomplete entries the handler blocked on
        # Live streams (endure.sdk.streams): chunks buffered until the next flush or other frame;
        # the buffer is made at the first ctx.stream, so attempts that do not stream pay nothing.
        self._start = start
        self._stream_flush = (stream_flush_ms, stream_flush_bytes)
        self._streams: StreamBuffer | None = None
        self._writers: dict[str, StreamWriter] = {}
        self._try_tokens: dict[int, str] = {}  # run entries not sent yet: the execution that made them

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.task = self.loop.create_task(self._main(), name=f"endure:{self.id}:{self.attempt}")

    async def _main(self) -> None:
        from endure.sdk.context import context_for

        logs.bind_invocation(invocation_id=self.id, tenant=self.tenant, service=self.target.service,
                             handler=self.target.handler, attempt=self.attempt)
        defn = self.defn
        if defn is None:
            t = self.target
            self._finish(Failure(code=404, message=f"no handler {t.service}/{t.handler} on this worker"))
            return
        ctx = context_for(defn.kind, self)
        with tracing.attempt_span(self.headers, self.target.service, self.target.handler, self.id, self.attempt):
            await self._run_handler(defn, ctx)

    async def _run_handler(self, defn: HandlerDefinition, ctx: Any) -> None:
        outcome: bytes | records_pb2.Failure
        try:
            if defn.has_input:
                try:
                    arg = defn.input_serde.loads(self.input)
                except SerdeError as exc:
                    self._finish(
                        Failure(code=400, message=f"invalid input for {defn.service}/{defn.name}: {exc}")
                    )
                    return
                result = await defn.fn(ctx, arg)
            else:
                result = await defn.fn(ctx)
        except TerminalError as exc:
            if self.done:
                return
            outcome = self._terminal_failure(exc)
        except (AttemptDropped, JournalMismatchError, asyncio.CancelledError):
            if not self.done:  # cancelled by someone else (e.g. the user): a retryable failure
                self.fail(500, "handler task was cancelled")
            return
        except Exception as exc:
            if not self.done:
                self.fail(500, _failure_message(exc))
            return
        else:
            if self.done:
                return
            try:
                outcome = defn.output_serde.dumps(result)
            except SerdeError as exc:
                outcome = Failure(code=500, message=f"output of {defn.service}/{defn.name}: {exc}")
        if self._run_tasks:  # fire-and-forget steps must take their index before the output
            await asyncio.wait(list(self._run_tasks))
            if self.done:
                return
        self._finish(outcome)

    def _terminal_failure(self, exc: TerminalError) -> records_pb2.Failure:
        """The output failure of a handler that raised exc.

        Cause FAILURE_CANCELLED only for a CancelledError while the runtime has cancelled this
        invocation: a handler that raises CancelledError or TerminalError("cancelled", 409) on its
        own (no cancel requested) fails with FAILURE_ERROR, like any terminal error.
        """
        if isinstance(exc, CancelledError) and self.cancel_requested:
            return journal.cancelled_failure(exc.message)
        return Failure(code=exc.code, message=exc.message)

    def _finish(self, outcome: bytes | records_pb2.Failure) -> None:
        if not self.replay_only:
            metrics.METRICS.finished(self.target.service, self.target.handler,
                                     "ok" if isinstance(outcome, bytes) else "failed")
        try:
            index, recorded = self.begin("output", "")
        except (JournalMismatchError, AttemptDropped):
            return
        if recorded is None:
            entry = JournalEntry()
            if isinstance(outcome, bytes):
                entry.output.value = outcome
            else:
                entry.output.failure.CopyFrom(outcome)
            self.emit(index, entry)
        if self._held:
            self._end_pending = True
        else:
            self._send_end()

    def _send(self, frame: worker_pb2.WorkerFrame) -> None:
        """Send a frame of the attempt, after its stream writes so far: they stay in order with its
        journal (a step's chunks before its run entry, every chunk before the end)."""
        if self._streams is not None:
            self._streams.flush()
        self.sink.send(frame)

    def _send_end(self) -> None:
        self._send(WorkerFrame(end=worker_pb2.EndFrame(invocation_id=self.id, attempt=self.attempt)))
        self._drop()

    def fail(self, code: int, message: str, *, mismatch: bool = False) -> None:
        """A retryable failure of this attempt (or a journal mismatch): report it and stop."""
        if self.done:
            return
        if not self.replay_only:
            metrics.METRICS.finished(self.target.service, self.target.handler,
                                     "mismatch" if mismatch else "retry")
        self._send(
            WorkerFrame(
                fail=worker_pb2.FailFrame(
                    invocation_id=self.id,
                    attempt=self.attempt,
                    failure=Failure(code=code, message=message),
                    journal_mismatch=mismatch,
                )
            )
        )
        self._drop()
        self._cancel_task()

    def abort(self) -> None:
        """Stop silently (the runtime killed, paused or superseded this attempt)."""
        if self.done:
            return
        self._drop()
        self._cancel_task()

    def _drop(self) -> None:
        self.done = True
        if self._streams is not None:
            self._streams.discard()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for t in self._run_tasks:
            t.cancel()
        self.sink.release(self)

    def _cancel_task(self) -> None:
        # From inside the handler's own task this takes effect at its next await.
        task = self.task
        if task is not None and not task.done():
            task.cancel()

    # ------------------------------------------------------------------ journal

    def begin(self, kind: str, name: str) -> tuple[int, records_pb2.JournalEntry | None]:
        """Take the next journal index for an operation; return the recorded entry when replaying."""
        if self.done:
            raise AttemptDropped()
        index = self.next_index
        if index >= self.replay_len and self.replay_only:
            self._stop_replay(past_end=(kind, name))
        self.next_index = index + 1
        if index < self.replay_len:
            entry = self.journal[index]
            recorded = entry.WhichOneof("kind")
            if recorded != kind or (kind in _COMPARES_NAME and entry.name != name):
                err = JournalMismatchError(index, describe(recorded, entry.name), describe(kind, name))
                self.mismatch = err
                self.fail(500, str(err), mismatch=True)
                raise err
            return index, entry
        return index, None

    def peek(self) -> records_pb2.JournalEntry | None:
        """The recorded entry the next operation will replay, without taking its index (None past
        the end of the recorded journal): what `ctx.patched` decides on."""
        if self.done:
            raise AttemptDropped()
        index = self.next_index
        return self.journal[index] if index < self.replay_len else None

    def _stop_replay(
        self, *, past_end: tuple[str, str] | None = None, blocked_on: list[int] | None = None
    ) -> NoReturn:
        """End an offline replay where the recorded journal gives out: raise into the handler so
        nothing past it executes (a ctx.run past the end never runs, a set_state is never sent)."""
        self.past_end = past_end
        self.blocked_on = blocked_on
        self._drop()
        if asyncio.current_task() is not self.task:  # raised in a task of the handler's own
            self._cancel_task()
        raise AttemptDropped()

    def emit(self, index: int, entry: records_pb2.JournalEntry) -> None:
        """Send a new entry; entries go out in index order (a step finishing early waits)."""
        if self.done:
            return
        if index != self.next_send:
            self._held[index] = entry
            return
        self._send_entry(index, entry)
        index += 1
        held = self._held
        while held and index in held:
            self._send_entry(index, held.pop(index))
            index += 1
        self.next_send = index
        if self._end_pending and not held:
            self._end_pending = False
            self._send_end()

    def _send_entry(self, index: int, entry: records_pb2.JournalEntry) -> None:
        token = self._try_tokens.pop(index, "") if self._try_tokens else ""
        self._send(WorkerFrame(entry=EntryFrame(invocation_id=self.id, attempt=self.attempt, index=index,
                                                entry=entry, step_try_token=token)))

    # ------------------------------------------------------------------ streams

    @property
    def streams(self) -> StreamBuffer:
        """The attempt's stream buffer (made at its first use)."""
        found = self._streams
        if found is None:
            with _STREAMS_LOCK:  # ctx.stream may first be called from a step's thread
                found = self._streams
                if found is None:
                    flush_ms, flush_bytes = self._stream_flush
                    found = self._streams = StreamBuffer(self, self.sink.send, self._start, self.loop,
                                                         flush_ms=flush_ms, flush_bytes=flush_bytes,
                                                         enabled=not self.replay_only)
        return found

    def stream_writer(self, name: str = DEFAULT_STREAM) -> StreamWriter:
        """The writer of one named stream (one per name and attempt: its writes are numbered)."""
        found = self._writers.get(name)
        if found is None:
            with self.streams.lock:  # ctx.stream may be called from a step's thread too
                found = self._writers.get(name)
                if found is None:
                    found = self._writers[check_name(name)] = StreamWriter(self.streams, name)
        return found

    # ------------------------------------------------------------------ futures

    def resolved(self, raw: Raw) -> asyncio.Future[Any]:
        fut = self.loop.create_future()
        fut.set_result(raw)
        return fut

    def completion(self, index: int, recorded: records_pb2.JournalEntry | None) -> asyncio.Future[Any]:
        """A future for an entry's result: from the journal, or from a later CompleteFrame."""
        fut = self.loop.create_future()
        if recorded is not None:
            raw = raw_result(recorded)
            if raw is not _MISSING:
                fut.set_result(raw)
                return fut
        raw = self._early.pop(index, _MISSING) if self._early else _MISSING
        if raw is not _MISSING:
            fut.set_result(raw)
        else:
            self._completions[index] = fut
        return fut

    def on_complete(self, frame: worker_pb2.CompleteFrame) -> None:
        raw = raw_result(frame)
        if raw is _MISSING:
            raw = None
        self._last_progress = self.loop.time()
        fut = self._completions.pop(frame.index, None)
        if fut is None:
            if frame.index >= self.next_index:  # the handler has not reached that entry yet
                self._early[frame.index] = raw
            return
        if not fut.done():
            fut.set_result(raw)

    def on_ack(self, index: int) -> None:
        pending = self._acks.pop(index, None)
        if pending is None:
            return
        fut, raw = pending
        self._last_progress = self.loop.time()
        started = self._run_started.pop(index, None)
        if started is not None:
            metrics.METRICS.step(self._last_progress - started)
        if not fut.done():
            fut.set_result(raw)
        self._busy -= 1
        if not self._busy and self._waiters and self._timer is None:
            self._arm()

    def emit_and_ack(self, index: int, entry: records_pb2.JournalEntry, raw: Any) -> asyncio.Future[Any]:
        """Send an entry whose future resolves (to `raw`) once the runtime acks it as durable."""
        fut = self.loop.create_future()
        self._busy += 1
        self._acks[index] = (fut, raw)
        self.emit(index, entry)
        return fut

    # ------------------------------------------------------------------ runs

    def start_run(
        self,
        index: int,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        policy: RetryPolicy | None,
        serde: Serde[Any],
    ) -> asyncio.Future[Any]:
        """Execute a new step: fn runs now (a task), its result is journaled, and the returned
        future resolves with the journaled result after the ack."""
        fut = self.loop.create_future()
        self._busy += 1
        task = self.loop.create_task(self._execute_run(index, name, fn, args, policy, serde, fut))
        self._run_tasks.add(task)
        task.add_done_callback(self._run_tasks.discard)
        return fut

    async def _execute_run(
        self,
        index: int,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        policy: RetryPolicy | None,
        serde: Serde[Any],
        fut: asyncio.Future[Any],
    ) -> None:
        loop = self.loop
        attempt = 1
        started = loop.time()
        entry = JournalEntry(name=name, run=records_pb2.RunEntry())
        raw: Raw
        scope: StepScope | None = None
        while True:
            if scope is not None and scope.written:
                self.streams.step_voided(scope)  # its chunks get a reset event
            # Each execution of fn has its own try token: its stream writes carry it, and the run
            # entry names the one that produced the result (the runtime voids the others' chunks).
            scope = StepScope(self, index + 1)
            try:
                result = await self._call_step(name, index, fn, args, scope)
                if type(result) is WithUsage:
                    entry.usage.update(result.usage)
                    result = result.value
                try:
                    raw = serde.dumps(result)
                except SerdeError as exc:
                    raw = Failure(code=500, message=f"run '{name}': {exc}")
                break
            except TerminalError as exc:
                raw = Failure(code=exc.code, message=exc.message)
                break
            except Exception as exc:
                if policy is None:
                    self.fail(500, f"run '{name}' failed: {_failure_message(exc)}")
                    return
                exhausted = policy.max_attempts is not None and attempt >= policy.max_attempts
                delay = policy.delay(attempt)
                if policy.max_duration is not None:
                    exhausted = exhausted or (
                        loop.time() - started + delay > policy.max_duration.total_seconds()
                    )
                if exhausted:
                    raw = Failure(
                        code=500,
                        message=f"run '{name}' failed after {attempt} attempts: {_failure_message(exc)}",
                    )
                    break
                log.debug("run %r attempt %d failed (%s); retrying in %.3fs", name, attempt, exc, delay)
                await asyncio.sleep(delay)
                attempt += 1
        if self.done:
            return
        if isinstance(raw, bytes):
            entry.value = raw
        else:
            entry.failure.CopyFrom(raw)
        self._acks[index] = (fut, raw)
        if scope.token:
            self._try_tokens[index] = scope.token
        self._run_started[index] = started
        self.emit(index, entry)

    async def _call_step(
        self, name: str, index: int, fn: Callable[..., Any], args: tuple[Any, ...], scope: StepScope
    ) -> Any:
        """One execution of a step function, with its stream scope set (in the executor's thread
        too: run_in_executor does not copy the context by itself)."""
        in_step = CURRENT_STEP.set(scope)
        try:
            with tracing.step_span(name, index):
                if _is_async_fn(fn):
                    return await fn(*args)
                call = functools.partial(contextvars.copy_context().run, fn, *args)
                result = await self.loop.run_in_executor(None, call)
                if inspect.isawaitable(result):
                    result = await result
                return result
        finally:
            CURRENT_STEP.reset(in_step)

    # ------------------------------------------------------------------ waiting

    def await_future(self, df: DurableFuture[Any]) -> Generator[Any, None, Any]:
        """Await one entry future: the only place a handler blocks on the runtime."""
        fut = df._fut
        if fut.done():
            return fut.result()
        if self.done:
            raise AttemptDropped()
        if df._kind == ACK:
            return (yield from fut)
        if self.cancel_pending:
            self.cancel_pending = False
            raise CancelledError()
        yield from self.wait_for((df,), any_=True)
        return fut.result()

    def wait_for(
        self, dfs: Iterable[DurableFuture[Any]], *, any_: bool
    ) -> Generator[Any, None, list[DurableFuture[Any]]]:
        """Block until any/all of dfs are done; returns them in the order they completed.

        While blocked the handler is suspendable (if no step is in flight) and cancellable."""
        order: list[DurableFuture[Any]] = [d for d in dfs if d._fut.done()]
        pending = tuple(d for d in dfs if not d._fut.done())
        if not pending or (any_ and order):
            return order
        if self.replay_only:  # no runtime will ever complete them: the replay ends here
            self._stop_replay(blocked_on=sorted({d.index for d in pending}))
        waiter: asyncio.Future[None] = self.loop.create_future()
        remaining = [len(pending)]
        callbacks = []
        for d in pending:

            def on_done(_: asyncio.Future[Any], d: DurableFuture[Any] = d) -> None:
                order.append(d)
                remaining[0] -= 1
                if (any_ or not remaining[0]) and not waiter.done():
                    waiter.set_result(None)

            d._fut.add_done_callback(on_done)
            callbacks.append(on_done)
        self._waiters[waiter] = pending
        self._last_progress = self.loop.time()
        if not self._busy and self._timer is None:
            self._arm()
        try:
            yield from waiter
        finally:
            del self._waiters[waiter]
            for d, cb in zip(pending, callbacks, strict=True):
                d._fut.remove_done_callback(cb)
        return order

    def cancel(self) -> None:
        """Cancellation requested: raise at the blocked await(s), or at the next one."""
        if self.done:
            return
        self.cancel_requested = True
        if self._waiters:
            for w in list(self._waiters):
                if not w.done():
                    w.set_exception(CancelledError())
        else:
            self.cancel_pending = True

    # ------------------------------------------------------------------ suspension

    def _arm(self) -> None:
        self._timer = self.loop.call_later(self.timeout, self._on_inactive)

    def _on_inactive(self) -> None:
        self._timer = None
        if self.done or not self._waiters or self._busy:
            return  # re-armed when the handler blocks again or its last step is acked
        idle = self.loop.time() - self._last_progress
        if idle + 1e-3 < self.timeout:
            self._timer = self.loop.call_later(self.timeout - idle, self._on_inactive)
            return
        self.suspend()

    def waiting_on(self) -> list[int]:
        indices: set[int] = set()
        for pending in self._waiters.values():
            for d in pending:
                if d._kind == COMPLETION and not d._fut.done():
                    indices.add(d.index)
        return sorted(indices)

    def suspend(self) -> None:
        """Free the slot: the runtime restarts the attempt when one of the entries completes."""
        if self.done:
            return
        metrics.METRICS.finished(self.target.service, self.target.handler, "suspended")
        self._send(
            WorkerFrame(
                suspend=worker_pb2.SuspendFrame(
                    invocation_id=self.id, attempt=self.attempt, waiting_on=self.waiting_on()
                )
            )
        )
        self._drop()
        self._cancel_task()

    def drain(self) -> None:
        """Worker shutdown: suspend as soon as the handler blocks on the runtime."""
        self.timeout = 0.0
        self._last_progress = 0.0
        if not self.done and self._waiters and not self._busy:
            self.suspend()

    def suspendable(self) -> bool:
        return bool(self._waiters) and not self._busy
