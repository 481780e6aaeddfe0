"""Offline replay: check a recorded journal against an app's code before deploying it.

`Replayer(app).replay(target, handler_kind, input, journal)` runs the handler in-process the way a
worker resumes it, but with the recorded journal as the only source of results: `ctx.run` returns
what was journaled and never calls its function, nothing is sent anywhere, and the handler is
stopped at its first operation past the end of the journal (or where it would wait on an entry the
journal has not completed). Each operation is compared with the recorded entry exactly as a worker
does (`JournalMismatchError`), so a divergence found here is one a worker would hit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from endure.proto import ids, records_pb2, worker_pb2
from endure.proto.records_pb2 import JournalEntry
from endure.sdk import tools
from endure.sdk.definitions import App
from endure.sdk.errors import SerdeError
from endure.sdk.invocation import Invocation, describe

DEFAULT_TIMEOUT = 60.0  # seconds a replay may take (a handler awaiting something outside the journal)


class ReplayInLoopError(RuntimeError):
    """`Replayer.replay()` was called where an event loop is running: await `replay_async` there."""


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where the code stopped following the journal: entry `index` records `recorded`, the code
    did `actual`."""

    index: int
    recorded: str
    actual: str
    message: str


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What replaying one journal against the code found.

    `ok`: every recorded entry replayed (no divergence, no error). `complete`: the journal ends with
    the output and the code reached it. `next_operation`: what the code does first past the end of
    a journal that stops mid-way. `waiting_on`: the entries the code waits on where the journal
    stops (not completed in it). `message` says it in words.
    """

    ok: bool
    matched: int
    journal_length: int
    complete: bool = False
    divergence: Divergence | None = None
    next_operation: str | None = None
    waiting_on: tuple[int, ...] = ()
    error: str | None = None
    message: str = ""


class _Capture:
    """The sink of a replayed attempt: frames are kept here, never sent."""

    def __init__(self) -> None:
        self.frames: list[worker_pb2.WorkerFrame] = []

    def send(self, frame: worker_pb2.WorkerFrame) -> None:
        self.frames.append(frame)

    def release(self, inv: Invocation) -> None:
        pass


def _attempt_id(invocation_id: str) -> str:
    """The id the handler sees: the given one if it is an invocation id (so ctx.random and awakeable
    ids are the recorded ones), else a well-formed id derived from it."""
    try:
        ids.partition_key_of(invocation_id)
    except ids.InvalidId:
        return ids.derived_invocation_id(None, "endure-replay", invocation_id)
    return invocation_id


def _entry_text(entry: JournalEntry) -> str:
    return describe(entry.WhichOneof("kind"), entry.name)


def _error(length: int, matched: int, error: str) -> ReplayResult:
    return ReplayResult(ok=False, matched=matched, journal_length=length, error=error,
                        message=f"cannot replay: {error}")


def _kind_name(kind: int) -> str:
    try:
        return records_pb2.HandlerKind.Name(kind)  # type: ignore[arg-type]
    except ValueError:
        return str(kind)


class Replayer:
    """Replays recorded journals against `app`'s handlers, in-process and without side effects."""

    def __init__(self, app: App) -> None:
        self.app = app

    def replay(
        self,
        target: records_pb2.Target,
        handler_kind: int,
        input: bytes,
        journal: Sequence[JournalEntry],
        *,
        headers: Mapping[str, str] | None = None,
        invocation_id: str = "replay",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> ReplayResult:
        """`replay_async` on a fresh event loop, for code that has none (a CLI, a script, a test)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.replay_async(target, handler_kind, input, journal, headers=headers,
                                                 invocation_id=invocation_id, timeout=timeout))
        raise ReplayInLoopError("Replayer.replay() blocks: from async code, await Replayer.replay_async()")

    async def replay_async(
        self,
        target: records_pb2.Target,
        handler_kind: int,
        input: bytes,
        journal: Sequence[JournalEntry],
        *,
        headers: Mapping[str, str] | None = None,
        invocation_id: str = "replay",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> ReplayResult:
        """Replay `journal` (the entries of one invocation, in index order) on the running loop.

        `handler_kind` is the kind the journal was written by (0: not known, not compared); pass the
        invocation's real id as `invocation_id` when the handler uses ctx.random/uuid or awakeables.
        Never raises for what the code or the journal does: the result says it.
        """
        entries = list(journal)
        n = len(entries)
        name = f"{target.service}/{target.handler}"
        defn = self.app.lookup(target.service, target.handler)
        if defn is None:
            return _error(n, 0, f"no handler {name} in this app")
        if handler_kind and handler_kind != defn.kind:
            return _error(n, 0, f"the journal was written by a {_kind_name(handler_kind)} handler; "
                                f"{name} is {_kind_name(defn.kind)} in this app")
        for i, e in enumerate(entries):
            if e.WhichOneof("kind") is None:
                return _error(n, 0, f"journal entry {i} has no kind this SDK knows")
        if defn.has_input:
            try:
                defn.input_serde.loads(input)
            except SerdeError as exc:
                return _error(n, 0, f"the input does not decode for {name}: {exc}")
        if tools._registry is None and self.app.tools is not None:
            tools.configure(self.app.tools)  # ctx.run_tool needs the tool's output model to decode

        start = worker_pb2.StartFrame(
            invocation_id=_attempt_id(invocation_id),
            attempt=1,
            target=target,
            handler_kind=defn.kind,  # type: ignore[arg-type]
            headers=dict(headers or {}),
            input=input,
            journal=entries,
            state_complete=False,
        )
        sink = _Capture()
        inv = Invocation(sink, start, defn, asyncio.get_running_loop(), replay_only=True)
        inv.start()
        task = inv.task
        assert task is not None
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            inv.abort()
            await asyncio.wait({task}, timeout=5.0)
            taken = min(inv.next_index, n)
            return _error(n, taken, f"the handler did not finish replaying within {timeout:g}s after entry "
                                    f"{taken}: it awaits something that is not in the journal")
        return _outcome(inv, sink, entries)


def _outcome(inv: Invocation, sink: _Capture, entries: list[JournalEntry]) -> ReplayResult:
    """Read what the replayed attempt did into a result."""
    n = len(entries)
    taken = min(inv.next_index, n)
    if inv.mismatch is not None:
        m = inv.mismatch
        text = f"diverges at entry {m.index}: the journal has {m.recorded}, the code did {m.actual}"
        return ReplayResult(ok=False, matched=m.index, journal_length=n,
                            divergence=Divergence(m.index, m.recorded, m.actual, text), message=text)
    if inv.past_end is not None:
        kind, op_name = inv.past_end
        op = describe(kind, op_name)
        then = ("the code finishes next (its output is not in the journal)" if kind == "output"
                else f"the code goes on to {op}")
        return ReplayResult(ok=True, matched=n, journal_length=n, next_operation=op,
                            message=f"replays cleanly ({n} entries); the journal ends there and {then}")
    if inv.blocked_on is not None:
        waits = ", ".join(f"entry {i} ({_entry_text(entries[i])})" for i in inv.blocked_on)
        if taken < n:
            recorded = _entry_text(entries[taken])
            actual = f"wait on {waits}"
            text = (f"diverges at entry {taken}: the journal has {recorded}, the code waits on {waits}, "
                    "which the journal has not completed")
            return ReplayResult(ok=False, matched=taken, journal_length=n, waiting_on=tuple(inv.blocked_on),
                                divergence=Divergence(taken, recorded, actual, text), message=text)
        return ReplayResult(ok=True, matched=n, journal_length=n, waiting_on=tuple(inv.blocked_on),
                            message=f"replays cleanly ({n} entries); the code then waits on {waits}, "
                                    "which the journal has not completed")
    for frame in sink.frames:
        if frame.WhichOneof("frame") == "fail":
            error = f"the handler raised {frame.fail.failure.message} after replaying {taken} of {n} entries"
            return ReplayResult(ok=False, matched=taken, journal_length=n, error=error, message=error)
    if any(f.WhichOneof("frame") == "end" for f in sink.frames):
        if taken < n:
            recorded = _entry_text(entries[taken])
            text = f"diverges at entry {taken}: the journal has {recorded}, the code had already finished"
            return ReplayResult(ok=False, matched=taken, journal_length=n,
                                divergence=Divergence(taken, recorded, "finish", text), message=text)
        return ReplayResult(ok=True, matched=n, journal_length=n, complete=True,
                            message=f"replays cleanly ({n} entries)")
    error = f"the replay ended without an outcome after {taken} of {n} entries"
    return ReplayResult(ok=False, matched=taken, journal_length=n, error=error, message=error)


def format_divergence(result: ReplayResult, recorded_on: str | None, replayed_on: str | None) -> str:
    """The result's message with the deployment versions it concerns, e.g. "journal written by
    shop:app@v1, replayed against shop:app@v2: diverges at entry 3: ..." (for the CLI)."""
    parts = []
    if recorded_on:
        parts.append(f"journal written by {recorded_on}")
    if replayed_on:
        parts.append(f"replayed against {replayed_on}")
    return f"{', '.join(parts)}: {result.message}" if parts else result.message
