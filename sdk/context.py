"""What a handler sees: `Context` and its keyed / workflow variants, durable futures, promises.

Every operation that creates a journal entry takes the next journal index *when it is called*
(not when awaited), so the order of operations, not the timing of awaits, defines the journal.
"""

from __future__ import annotations

import hashlib
import random as _random
import time
import typing
import uuid as _uuid
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from endure.proto import ids, journal, records_pb2
from endure.sdk.definitions import handler_definition
from endure.sdk.errors import CancelledError, TerminalError
from endure.sdk.invocation import RESOLVED_BY
from endure.sdk.retry import RetryPolicy
from endure.sdk.serde import ANY, Serde, serde_for

if TYPE_CHECKING:
    import asyncio

    from endure.sandbox import SandboxResult  # noqa: F401
    from endure.sdk.invocation import Invocation
    from endure.sdk.streams import StreamWriter
    from endure.sdk.workspace import Scope, Workspace, WorkspaceLimits, Workspaces

T = TypeVar("T")

JournalEntry = records_pb2.JournalEntry
_LIST_STR: Serde[Any] = serde_for(list[str])


class DurableFuture(Generic[T]):
    """The result of a journaled operation. Await it, or pass it to `ctx.gather` / `ctx.select`.

    `entry_kind` is the journal entry's kind; whether the future waits for an Ack or a completion
    (`_kind`) follows from its rules (`RESOLVED_BY`), not from each call site.
    """

    __slots__ = ("_inv", "index", "_fut", "_serde", "_kind", "entry_kind")

    def __init__(
        self, inv: Invocation, index: int, fut: asyncio.Future[Any], serde: Serde[Any] | None, entry_kind: str
    ) -> None:
        self._inv = inv
        self.index = index
        self._fut = fut
        self._serde = serde
        self.entry_kind = entry_kind
        self._kind = RESOLVED_BY[entry_kind]

    def done(self) -> bool:
        return self._fut.done()

    def _decode(self, raw: Any) -> T:
        if raw is None:
            return None  # type: ignore[return-value]
        if type(raw) is bytes:
            serde = self._serde
            return raw if serde is None else serde.loads(raw)  # type: ignore[return-value]
        if isinstance(raw, records_pb2.Failure):
            if journal.is_cancellation(raw) and journal.RULES[self.entry_kind].cancelled_with_invocation:
                # The runtime fails these entries with a cancellation only when it cancels this
                # invocation: remember it even if the CancelFrame is still on its way.
                self._inv.cancel_requested = True
            raise _failure_error(raw)
        return raw  # type: ignore[no-any-return]

    def __await__(self) -> Generator[Any, None, T]:
        raw = yield from self._inv.await_future(self)
        return self._decode(raw)


class CallFuture(DurableFuture[T]):
    """A call's future; knows the callee's invocation id."""

    __slots__ = ("invocation_id",)

    def __init__(
        self, inv: Invocation, index: int, fut: asyncio.Future[Any], serde: Serde[Any], invocation_id: str
    ) -> None:
        super().__init__(inv, index, fut, serde, "call")
        self.invocation_id = invocation_id


class DurablePromise(Generic[T]):
    """A workflow's named durable promise: resolved once, awaited by any of its handlers."""

    __slots__ = ("_ctx", "name", "_serde")

    def __init__(self, ctx: Context, name: str, serde: Serde[Any]) -> None:
        self._ctx = ctx
        self.name = name
        self._serde = serde

    def get(self) -> DurableFuture[T]:
        """Wait until the promise is resolved (its value) or rejected (TerminalError)."""
        inv = self._ctx._inv
        i, rec = inv.begin("promise_get", self.name)
        if rec is None:
            inv.emit(i, JournalEntry(name=self.name, promise_get=records_pb2.PromiseGetEntry()))
        return DurableFuture(inv, i, inv.completion(i, rec), self._serde, "promise_get")

    def peek(self) -> DurableFuture[T | None]:
        """The value if resolved, None if not yet; raises TerminalError if rejected."""
        inv = self._ctx._inv
        i, rec = inv.begin("promise_peek", self.name)
        if rec is None:
            inv.emit(i, JournalEntry(name=self.name, promise_peek=records_pb2.PromisePeekEntry()))
        return DurableFuture(inv, i, inv.completion(i, rec), self._serde, "promise_peek")

    def resolve(self, value: T) -> DurableFuture[None]:
        """Resolve; raises TerminalError(409) if the promise was already completed."""
        data = _dumps(self._serde, value, f"promise {self.name!r}")
        return self._complete(records_pb2.PromiseCompleteEntry(value=data))

    def reject(self, message: str, code: int = 500) -> DurableFuture[None]:
        """Reject: whoever awaits `get()` gets TerminalError(message, code)."""
        failure = records_pb2.Failure(code=code, message=message)
        return self._complete(records_pb2.PromiseCompleteEntry(failure=failure))

    def _complete(self, body: records_pb2.PromiseCompleteEntry) -> DurableFuture[None]:
        inv = self._ctx._inv
        i, rec = inv.begin("promise_complete", self.name)
        if rec is None:
            inv.emit(i, JournalEntry(name=self.name, promise_complete=body))
        return DurableFuture(inv, i, inv.completion(i, rec), None, "promise_complete")


def _failure_error(failure: records_pb2.Failure) -> TerminalError:
    """The exception a handler sees for a failed entry: CancelledError for a cancellation (typed by
    its cause), TerminalError for anything else, whatever its text. (Journals written before
    failures had a cause get it from the data format 3 migration, endure.runtime.data_format.)"""
    if journal.is_cancellation(failure):
        return CancelledError(failure.message or "cancelled")
    return TerminalError(failure.message, failure.code or 500)


def _journal_cancelled_run(inv: Invocation, index: int, name: str, serde: Serde[Any]) -> DurableFuture[Any]:
    """A step reached after a cancellation: journal the cancellation as its failure instead of
    running it, so a replay raises at the same step (ctx.run, sandbox runs and tools)."""
    inv.cancel_pending = False
    failure = journal.cancelled_failure()
    entry = JournalEntry(name=name, run=records_pb2.RunEntry(), failure=failure)
    return DurableFuture(inv, index, inv.emit_and_ack(index, entry, failure), serde, "run")


def _dumps(serde: Serde[Any], value: Any, what: str) -> bytes:
    try:
        return serde.dumps(value)
    except Exception as exc:
        raise TerminalError(f"{what}: {exc}", 500) from exc


_return_serdes: dict[Any, Serde[Any]] = {}


def _return_serde(fn: Callable[..., Any]) -> Serde[Any]:
    """The Serde of a step function's return annotation, cached per code object (a lambda made
    per call shares its code, so the cache neither misses nor grows)."""
    key: Any = getattr(fn, "__code__", None) or fn
    try:
        found = _return_serdes.get(key)
    except TypeError:
        return ANY
    if found is None:
        hint: Any = Any
        if getattr(fn, "__annotations__", None):
            try:
                hint = typing.get_type_hints(fn).get("return", Any)
            except Exception:
                hint = Any
        found = serde_for(hint)
        if len(_return_serdes) < 10_000:
            _return_serdes[key] = found
    return found


MAX_CHANGE_ID = 128


def _check_change_id(change_id: object) -> None:
    """A change id is journaled as the marker's name: a non-empty string of at most 128 chars."""
    if not isinstance(change_id, str):
        raise TypeError(f"a patch change id is a str, not {type(change_id).__name__}")
    if not change_id:
        raise ValueError("a patch change id must not be empty")
    if len(change_id) > MAX_CHANGE_ID:
        raise ValueError(f"a patch change id is at most {MAX_CHANGE_ID} characters, not {len(change_id)}")


def _is_marker(entry: records_pb2.JournalEntry, change_id: str) -> bool:
    return entry.WhichOneof("kind") == "patch" and entry.name == change_id


def _ms(delta: timedelta | float) -> int:
    if isinstance(delta, timedelta):
        return int(delta.total_seconds() * 1000)
    return int(delta * 1000)


class Context:
    """The context of a Service handler (and the base of all others)."""

    __slots__ = ("_inv", "_random", "_sandbox")

    def __init__(self, inv: Invocation) -> None:
        self._inv = inv
        self._random: _random.Random | None = None
        self._sandbox: Any = None

    # ------------------------------------------------------------------ identity

    @property
    def invocation_id(self) -> str:
        return self._inv.id

    @property
    def attempt(self) -> int:
        return self._inv.attempt

    @property
    def headers(self) -> dict[str, str]:
        """Headers of the invocation (trace context and the like)."""
        return self._inv.headers

    @property
    def tenant(self) -> str:
        return self._inv.tenant

    # ------------------------------------------------------------------ streams

    def stream(self, name: str = "default") -> StreamWriter:
        """A named stream of this invocation that clients follow live (`Client.stream`,
        `Client.subscribe`): `await ctx.stream().write("token")`; the same writer for the same name.

        Handler-level writes are made durable once (a replay does not send them again); writes in a
        ctx.run step are provisional until the step's result is journaled, and are voided (a reset
        event) if that execution of the step does not produce it."""
        return self._inv.stream_writer(name)

    # ------------------------------------------------------------------ steps

    def run(
        self,
        name: str,
        fn: Callable[..., T] | Callable[..., Awaitable[T]],
        *args: Any,
        retry: RetryPolicy | None = None,
        type_hint: Any = None,
    ) -> DurableFuture[T]:
        """A journaled side effect. fn (sync: in a thread; async: on the loop) runs once; its
        result (or TerminalError) is durable before the await returns, and replays never rerun it.

        Without `retry`, an exception fails the attempt (the runtime retries the invocation);
        with it, fn is retried in-process and, once exhausted, the failure is journaled as terminal.
        """
        inv = self._inv
        serde = serde_for(type_hint) if type_hint is not None else _return_serde(fn)
        i, rec = inv.begin("run", name)
        if rec is not None:
            return DurableFuture(inv, i, inv.completion(i, rec), serde, "run")
        if inv.cancel_pending:
            return _journal_cancelled_run(inv, i, name, serde)
        return DurableFuture(inv, i, inv.start_run(i, name, fn, args, retry, serde), serde, "run")

    def sleep(self, duration: timedelta | float, name: str = "") -> DurableFuture[None]:
        """A durable timer (seconds or timedelta); survives worker restarts and suspension."""
        inv = self._inv
        i, rec = inv.begin("sleep", name)
        if rec is None:
            wake = int(time.time() * 1000) + _ms(duration)
            inv.emit(i, JournalEntry(name=name, sleep=records_pb2.SleepEntry(wake_at_ms=wake)))
        return DurableFuture(inv, i, inv.completion(i, rec), None, "sleep")

    # ------------------------------------------------------------------ calls

    @overload
    def call(
        self, target: Callable[..., Awaitable[T]], arg: Any = None, /, *, key: str | None = None
    ) -> CallFuture[T]: ...

    @overload
    def call(
        self, target: str, handler: str, arg: Any = None, /, *, key: str | None = None, type_hint: Any = None
    ) -> CallFuture[Any]: ...

    def call(self, target: Any, *args: Any, key: str | None = None, type_hint: Any = None) -> CallFuture[Any]:
        """Call another handler and await its result: `ctx.call(add, Pair(...))` (typed) or
        `ctx.call("tools", "add", {...}, key=None)`. The callee's terminal failure raises here."""
        inv = self._inv
        i, rec, callee, entry, out = self._invoke_entry("call", target, args, key, type_hint)
        if entry is not None:
            inv.emit(i, entry)
        return CallFuture(inv, i, inv.completion(i, rec), out, callee)

    def send(
        self,
        target: Any,
        *args: Any,
        key: str | None = None,
        delay: timedelta | float | None = None,
    ) -> str:
        """Start another handler without waiting (optionally after `delay`); returns its
        invocation id."""
        i, _, callee, entry, _ = self._invoke_entry("send", target, args, key, None)
        if entry is not None:
            if delay:
                entry.send.execute_at_ms = int(time.time() * 1000) + _ms(delay)
            self._inv.emit(i, entry)
        return callee

    def _invoke_entry(
        self, kind: str, target: Any, args: tuple[Any, ...], key: str | None, type_hint: Any
    ) -> tuple[int, records_pb2.JournalEntry | None, str, records_pb2.JournalEntry | None, Serde[Any]]:
        """Begin a call or send: its index, the recorded entry (replay), the callee's id, and a new
        entry with its target and input filled in (None on replay), and the result's serde."""
        service, handler, data, out = self._target(target, args, key, type_hint)
        inv = self._inv
        name = f"{service}/{handler}"
        i, rec = inv.begin(kind, name)
        callee = ids.call_invocation_id(inv.id, i, key or "")
        if rec is not None:
            return i, rec, callee, None, out
        entry = JournalEntry(name=name)
        body = getattr(entry, kind)
        body.target.service = service
        body.target.handler = handler
        if key:
            body.target.key = key
        body.input = data
        body.invocation_id = callee
        return i, rec, callee, entry, out

    def _target(
        self, target: Any, args: tuple[Any, ...], key: str | None, type_hint: Any
    ) -> tuple[str, str, bytes, Serde[Any]]:
        defn = handler_definition(target) if callable(target) else None
        if defn is not None:
            if len(args) > 1:
                raise TypeError("typed call takes (handler_fn, arg)")
            arg = args[0] if args else None
            if defn.keyed and not key:
                raise TypeError(f"{defn.service}/{defn.name} is keyed: pass key=...")
            in_serde = defn.input_serde if defn.has_input else ANY
            out = serde_for(type_hint) if type_hint is not None else defn.output_serde
            data = _dumps(in_serde, arg, f"input of {defn.service}/{defn.name}") if defn.has_input else b""
            return defn.service, defn.name, data, out
        if not isinstance(target, str) or not args or not isinstance(args[0], str):
            raise TypeError("call/send take (handler_fn, arg) or (service, handler, arg)")
        if len(args) > 2:
            raise TypeError("call/send take (service, handler, arg)")
        arg = args[1] if len(args) == 2 else None
        out = serde_for(type_hint) if type_hint is not None else ANY
        return target, args[0], _dumps(ANY, arg, f"input of {target}/{args[0]}"), out

    # ------------------------------------------------------------------ external completion

    def awakeable(self, type_hint: Any = None) -> tuple[str, DurableFuture[Any]]:
        """An id to hand to the outside world and a future it completes (human in the loop)."""
        inv = self._inv
        i, rec = inv.begin("awakeable", "")
        if rec is None:
            inv.emit(i, JournalEntry(awakeable=records_pb2.AwakeableEntry()))
        serde = serde_for(type_hint) if type_hint is not None else ANY
        return ids.awakeable_id(inv.id, i), DurableFuture(inv, i, inv.completion(i, rec), serde, "awakeable")

    # ------------------------------------------------------------------ combinators

    async def gather(self, *futures: DurableFuture[Any]) -> list[Any]:
        """Wait for all; journal the completion order; return the values in argument order
        (the first failure, in completion order, raises)."""
        inv = self._inv
        i, rec = inv.begin("combinator", "gather")
        if rec is not None:
            if rec.WhichOneof("result") == "failure":
                raise _failure_error(rec.failure)
            by_index = {f.index: f for f in futures}
            order = [by_index[x] for x in rec.combinator.completed if x in by_index]
            await _Wait(inv, futures, False)
        else:
            try:
                order = await _Wait(inv, futures, False)
            except CancelledError:
                await self._journal_cancelled(i, "gather")
                raise
            entry = JournalEntry(name="gather")
            entry.combinator.completed.extend(f.index for f in order)
            await DurableFuture(inv, i, inv.emit_and_ack(i, entry, None), None, "combinator")
        for f in order:
            if isinstance(f._fut.result(), records_pb2.Failure):
                f._decode(f._fut.result())
        return [f._decode(f._fut.result()) for f in futures]

    @overload
    async def select(self, *futures: DurableFuture[Any]) -> tuple[int, Any]: ...

    @overload
    async def select(self, **futures: DurableFuture[Any]) -> tuple[str, Any]: ...

    async def select(self, *futures: DurableFuture[Any], **named: DurableFuture[Any]) -> tuple[Any, Any]:
        """Wait for the first to complete; journal which; return (its position or name, its
        value), raising its failure."""
        if futures and named:
            raise TypeError("select takes positional or named futures, not both")
        keys: list[Any] = list(named) if named else list(range(len(futures)))
        futs: list[DurableFuture[Any]] = list(named.values()) if named else list(futures)
        if not futs:
            raise TypeError("select needs at least one future")
        inv = self._inv
        i, rec = inv.begin("combinator", "select")
        if rec is not None:
            if rec.WhichOneof("result") == "failure":
                raise _failure_error(rec.failure)
            winner_index = rec.combinator.completed[0] if rec.combinator.completed else futs[0].index
            pos = next((p for p, f in enumerate(futs) if f.index == winner_index), 0)
            winner = futs[pos]
            await _Wait(inv, (winner,), True)
        else:
            try:
                order = await _Wait(inv, futs, True)
            except CancelledError:
                await self._journal_cancelled(i, "select")
                raise
            winner = order[0]
            pos = next(p for p, f in enumerate(futs) if f is winner)
            entry = JournalEntry(name="select")
            entry.combinator.completed.append(winner.index)
            await DurableFuture(inv, i, inv.emit_and_ack(i, entry, None), None, "combinator")
        return keys[pos], winner._decode(winner._fut.result())

    async def _journal_cancelled(self, index: int, name: str) -> None:
        """Journal a combinator interrupted by cancellation as failed, so replays raise there too."""
        inv = self._inv
        entry = JournalEntry(name=name, combinator=records_pb2.CombinatorEntry(),
                             failure=journal.cancelled_failure())
        await DurableFuture(inv, index, inv.emit_and_ack(index, entry, None), None, "combinator")

    # ------------------------------------------------------------------ determinism

    def now(self) -> datetime:
        """The current time, journaled (as a run named 'now') so replays see the same instant."""
        inv = self._inv
        i, rec = inv.begin("run", "now")
        if rec is not None and rec.WhichOneof("result") == "value":
            ms = int(rec.value)
        else:
            ms = int(time.time() * 1000)
            if rec is None:
                inv.emit(i, JournalEntry(name="now", run=records_pb2.RunEntry(), value=str(ms).encode()))
        return datetime.fromtimestamp(ms / 1000, tz=UTC)

    def random(self) -> _random.Random:
        """A PRNG seeded from the invocation id: the same sequence on every replay."""
        if self._random is None:
            seed = int.from_bytes(hashlib.blake2b(self._inv.id.encode(), digest_size=8).digest(), "big")
            self._random = _random.Random(seed)
        return self._random

    def uuid(self) -> _uuid.UUID:
        """A UUID4 drawn from `random()`: deterministic across replays."""
        return _uuid.UUID(int=self.random().getrandbits(128), version=4)

    # ------------------------------------------------------------------ versioning

    def patched(self, change_id: str) -> bool:
        """Whether to take the new path of an in-place code change named `change_id`.

        Positional on the journal, so invocations started before the change keep replaying the
        old path: past the recorded journal it records a patch marker and returns True; replaying,
        it returns True if the next recorded entry is that marker (and consumes it), else False
        (a journal written before the change) and consumes nothing.

        The flow of a change: (1) `if ctx.patched("x"): new else: old`; (2) once no invocation
        from before (1) is in flight, `ctx.deprecate_patch("x")` then `new`; (3) once none from
        before (2) is in flight, drop the call. A marker the code does not ask about is a replay
        divergence like any other.
        """
        _check_change_id(change_id)
        inv = self._inv
        recorded = inv.peek()
        if recorded is not None and not _is_marker(recorded, change_id):
            return False
        i, rec = inv.begin("patch", change_id)
        if rec is None:
            inv.emit(i, JournalEntry(name=change_id, patch=records_pb2.PatchEntry()))
        return True

    def deprecate_patch(self, change_id: str) -> None:
        """Step 2 of a change (see `patched`): consume the marker of `change_id` if the journal has
        it next, so journals written with or without it both replay; never records one."""
        _check_change_id(change_id)
        inv = self._inv
        recorded = inv.peek()
        if recorded is not None and _is_marker(recorded, change_id):
            inv.begin("patch", change_id)

    # ------------------------------------------------------------------ metering & tools

    def meter(self, name: str, amount: float) -> None:
        """Record usage (LLM tokens, ...) for this invocation and its tenant; fire-and-forget."""
        inv = self._inv
        i, rec = inv.begin("meter", name)
        if rec is None:
            entry = JournalEntry(name=name)
            entry.meter.counters[name] = float(amount)
            inv.emit(i, entry)

    @property
    def sandbox(self) -> SandboxOps:
        """Sandboxed code execution, journaled like a step: `await ctx.sandbox.run_python(code)`."""
        if self._sandbox is None:
            self._sandbox = SandboxOps(self)
        return self._sandbox  # type: ignore[no-any-return]

    @overload
    def run_tool(
        self, name: str, input: Any = None, *, step_name: str | None = None, workspace: None = None
    ) -> DurableFuture[Any]: ...

    @overload
    def run_tool(
        self, name: str, input: Any = None, *, step_name: str | None = None, workspace: Workspace | str
    ) -> Coroutine[Any, Any, Any]: ...

    def run_tool(
        self, name: str, input: Any = None, *, step_name: str | None = None, workspace: Workspace | str | None = None
    ) -> DurableFuture[Any] | Coroutine[Any, Any, Any]:
        """Run a tool of the App's ToolRegistry in the sandbox as a journaled step (value = the
        tool's output model, usage = sandbox metering); a failing tool raises TerminalError(422).
        With `workspace=`, the tool runs on the workspace's files (see `SandboxOps`)."""
        from endure.sdk import tools

        return tools.run_tool(self, name, input, step_name or f"tool:{name}", workspace)


def _with_tenant_grant(network: Any, grant: tuple[str, ...]) -> Any:
    """A run's network policy with the tenant's grant added to its allow-list (the grant alone when
    the run asked for none)."""
    if not grant:
        return network
    if network is None:
        return {"allow": list(grant)}
    if isinstance(network, dict):
        return {**network, "allow": [*network.get("allow", []), *grant]}
    return network.model_copy(update={"allow": [*network.allow, *grant]})


class SandboxOps:
    """`ctx.sandbox`: each call runs in the worker's Sandbox and is journaled as a run entry whose
    value is the SandboxResult and whose usage is its metering; replays never rerun the guest.

    With `workspace=` (a Workspace or a name), the run sees the workspace's files and what it leaves
    is the workspace's next state (endure.sdk.workspace); the call is then a coroutine that takes
    its journal position when awaited."""

    __slots__ = ("_ctx", "_ws")

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._ws: Workspaces | None = None

    @property
    def _workspaces(self) -> Workspaces:
        if self._ws is None:
            from endure.sdk.workspace import Workspaces

            self._ws = Workspaces(self._ctx)
        return self._ws

    def workspace(
        self, name: str = "default", *, scope: Scope = "invocation", limits: WorkspaceLimits | None = None
    ) -> Workspace:
        """Files kept from run to run: for this invocation (default), or with scope="object" for the
        virtual object's key across its invocations (in its state: exclusive handlers change it,
        shared ones read it)."""
        return self._workspaces.open(name, scope, limits)

    @overload
    def run_python(
        self, code: str, files: Mapping[str, bytes] | None = None, limits: Any = None, *,
        name: str = "sandbox.python", workspace: None = None, **kw: Any,
    ) -> DurableFuture[SandboxResult]: ...

    @overload
    def run_python(
        self, code: str, files: Mapping[str, bytes] | None = None, limits: Any = None, *,
        name: str = "sandbox.python", workspace: Workspace | str, **kw: Any,
    ) -> Coroutine[Any, Any, SandboxResult]: ...

    def run_python(
        self,
        code: str,
        files: Mapping[str, bytes] | None = None,
        limits: Any = None,
        *,
        name: str = "sandbox.python",
        workspace: Workspace | str | None = None,
        requirements: list[str] | None = None,
        network: Any = None,
        **kw: Any,
    ) -> DurableFuture[SandboxResult] | Coroutine[Any, Any, SandboxResult]:
        """`requirements`: pure-Python packages for the guest; `network`: a NetworkPolicy (or its
        dict) granting HTTP to an allow-list. The step's result, HTTP log included, is journaled."""
        from endure.sdk import tools

        if requirements is not None:
            kw["requirements"] = requirements
        network = _with_tenant_grant(network, self._ctx._inv.sandbox_network)
        if network is not None:
            kw["network"] = network
        return tools.run_sandbox(self._ctx, name, "run_python", code, files=files, limits=limits,
                                 workspace=workspace, **kw)

    @overload
    def run_javascript(
        self, code: str, files: Mapping[str, bytes] | None = None, limits: Any = None, *,
        name: str = "sandbox.javascript", workspace: None = None, **kw: Any,
    ) -> DurableFuture[SandboxResult]: ...

    @overload
    def run_javascript(
        self, code: str, files: Mapping[str, bytes] | None = None, limits: Any = None, *,
        name: str = "sandbox.javascript", workspace: Workspace | str, **kw: Any,
    ) -> Coroutine[Any, Any, SandboxResult]: ...

    def run_javascript(
        self,
        code: str,
        files: Mapping[str, bytes] | None = None,
        limits: Any = None,
        *,
        name: str = "sandbox.javascript",
        workspace: Workspace | str | None = None,
        **kw: Any,
    ) -> DurableFuture[SandboxResult] | Coroutine[Any, Any, SandboxResult]:
        from endure.sdk import tools

        return tools.run_sandbox(self._ctx, name, "run_javascript", code, files=files, limits=limits,
                                 workspace=workspace, **kw)

    @overload
    def run_wasm(
        self, module: bytes | str, args: list[str] | None = None, *, name: str = "sandbox.wasm",
        workspace: None = None, **kw: Any,
    ) -> DurableFuture[SandboxResult]: ...

    @overload
    def run_wasm(
        self, module: bytes | str, args: list[str] | None = None, *, name: str = "sandbox.wasm",
        workspace: Workspace | str, **kw: Any,
    ) -> Coroutine[Any, Any, SandboxResult]: ...

    def run_wasm(
        self,
        module: bytes | str,
        args: list[str] | None = None,
        *,
        name: str = "sandbox.wasm",
        workspace: Workspace | str | None = None,
        **kw: Any,
    ) -> DurableFuture[SandboxResult] | Coroutine[Any, Any, SandboxResult]:
        from endure.sdk import tools

        return tools.run_sandbox(self._ctx, name, "run_wasm", module, args=args, workspace=workspace, **kw)


class _Wait:
    """Awaitable adapter over Invocation.wait_for (no task per combinator)."""

    __slots__ = ("_gen",)

    def __init__(self, inv: Invocation, futs: Any, any_: bool) -> None:
        self._gen = inv.wait_for(tuple(futs), any_=any_)

    def __await__(self) -> Generator[Any, None, list[DurableFuture[Any]]]:
        return (yield from self._gen)


class ObjectSharedContext(Context):
    """A virtual object's shared handler: reads the key's state, runs concurrently."""

    __slots__ = ()

    @property
    def key(self) -> str:
        return self._inv.key

    def get(self, name: str, type_hint: Any = None) -> DurableFuture[Any]:
        """The state value under `name` (None when absent)."""
        inv = self._inv
        i, rec = inv.begin("get_state", name)
        serde = serde_for(type_hint) if type_hint is not None else ANY
        if rec is not None:
            return DurableFuture(inv, i, inv.completion(i, rec), serde, "get_state")
        state = inv.state
        if inv.state_complete or name in state:
            value = state.get(name)
            entry = JournalEntry(name=name, get_state=records_pb2.GetStateEntry())
            if value is None:
                entry.void.SetInParent()
            else:
                entry.value = value
            inv.emit(i, entry)
            return DurableFuture(inv, i, inv.resolved(value), serde, "get_state")
        inv.emit(i, JournalEntry(name=name, get_state=records_pb2.GetStateEntry()))
        return DurableFuture(inv, i, inv.completion(i, None), serde, "get_state")

    def state_keys(self) -> DurableFuture[list[str]]:
        """The names of all state entries of this key, sorted."""
        inv = self._inv
        i, rec = inv.begin("get_state_keys", "")
        if rec is not None:
            return DurableFuture(inv, i, inv.completion(i, rec), _LIST_STR, "get_state_keys")
        if inv.state_complete:
            data = _LIST_STR.dumps(sorted(k for k, v in inv.state.items() if v is not None))
            inv.emit(i, JournalEntry(get_state_keys=records_pb2.GetStateKeysEntry(), value=data))
            return DurableFuture(inv, i, inv.resolved(data), _LIST_STR, "get_state_keys")
        inv.emit(i, JournalEntry(get_state_keys=records_pb2.GetStateKeysEntry()))
        return DurableFuture(inv, i, inv.completion(i, None), _LIST_STR, "get_state_keys")


class ObjectContext(ObjectSharedContext):
    """A virtual object's exclusive handler: reads and writes the key's state."""

    __slots__ = ()

    def set(self, name: str, value: Any) -> None:
        """Write state; no round trip, applied in journal order."""
        inv = self._inv
        data = _dumps(ANY, value, f"state {name!r}")
        i, rec = inv.begin("set_state", name)
        if rec is not None:
            inv.state[name] = rec.set_state.value
            return
        inv.state[name] = data
        inv.emit(i, JournalEntry(name=name, set_state=records_pb2.SetStateEntry(value=data)))

    def clear(self, name: str) -> None:
        inv = self._inv
        i, rec = inv.begin("clear_state", name)
        inv.state[name] = None
        if rec is None:
            inv.emit(i, JournalEntry(name=name, clear_state=records_pb2.ClearStateEntry()))

    def clear_all(self) -> None:
        inv = self._inv
        i, rec = inv.begin("clear_all_state", "")
        inv.state.clear()
        inv.state_complete = True
        if rec is None:
            inv.emit(i, JournalEntry(clear_all_state=records_pb2.ClearAllStateEntry()))


class WorkflowSharedContext(ObjectSharedContext):
    """A workflow's shared handler (signal / query): reads state, completes promises."""

    __slots__ = ()

    def promise(self, name: str, type_hint: Any = None) -> DurablePromise[Any]:
        return DurablePromise(self, name, serde_for(type_hint) if type_hint is not None else ANY)


class WorkflowContext(WorkflowSharedContext, ObjectContext):
    """A workflow's main handler: runs once per key; reads and writes state, uses promises."""

    __slots__ = ()


_BY_KIND: dict[int, type[Context]] = {
    records_pb2.SERVICE: Context,
    records_pb2.EXCLUSIVE: ObjectContext,
    records_pb2.SHARED: ObjectSharedContext,
    records_pb2.WORKFLOW_RUN: WorkflowContext,
    records_pb2.WORKFLOW_SHARED: WorkflowSharedContext,
}


def context_for(kind: int, inv: Invocation) -> Context:
    return _BY_KIND.get(kind, Context)(inv)
