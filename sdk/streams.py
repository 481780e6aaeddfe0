"""A handler's live streams: `ctx.stream(name)` writers, their numbering, limits and batching.

Chunks reach the client while the handler runs, so they cannot wait for the journal; they are
buffered per attempt and sent as one StreamFrame every `flush_ms` or `flush_bytes`, and always just
before the attempt's next other frame (entry, suspend, end, fail), so the runtime sees them in
order with the journal. The runtime makes them durable (endure.runtime.partition.state_machine.streams):

- A handler-level write (outside any ctx.run step) is as deterministic as the handler, so it is
  numbered per stream (`seq`); a replay does not send again the ones the runtime already has
  (StartFrame.stream_writes), and write number k of any attempt is the same write.
- A write inside a step cannot be numbered (a step may run again, and writes differently): it
  carries the step (its journal index + 1) and a token of this execution of the step function.
  It is provisional until the step's run entry, which names the token of the execution that
  produced it (EntryFrame.step_try_token), is journaled; the runtime voids the others (a reset).

The step a write belongs to is a ContextVar set around the step function (copied into the
executor thread of a sync step), so `writer.write_nowait` works from a step's thread.

Limits are checked here, before anything is sent, so a handler learns of them as a
StreamLimitError at the write; the runtime checks them again and would reject the whole batch.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from endure.proto import records_pb2 as pb
from endure.proto import worker_pb2 as wpb
from endure.proto.streams import StreamLimits
from endure.sdk.errors import AttemptDropped, StreamClosedError, StreamError, StreamLimitError

DEFAULT_FLUSH_MS = 25.0
DEFAULT_FLUSH_BYTES = 4096
DEFAULT_STREAM = "default"


@dataclass(slots=True)
class StepScope:
    """One execution of a ctx.run step function: what its stream writes carry.

    The token is drawn at the execution's first write: one that writes nothing names no execution
    (its run entry's step_try_token stays empty, which voids every other execution's chunks just
    the same), so steps of handlers that do not stream cost no random draw."""

    owner: object  # the attempt (Invocation) it belongs to
    step: int  # the step's journal index + 1
    token: str = ""  # this execution (a retry in the step is a new one); "" until it writes
    written: set[str] = field(default_factory=set)  # the streams it wrote to (each gets a reset if voided)


CURRENT_STEP: ContextVar[StepScope | None] = ContextVar("endure_stream_step", default=None)


def encode(chunk: object) -> tuple[bytes, pb.ChunkEncoding.ValueType]:
    """A chunk's bytes and encoding: str as UTF-8 text, bytes as they are, anything else as compact
    JSON (a TypeError or ValueError for what JSON cannot hold)."""
    if isinstance(chunk, str):
        return chunk.encode(), pb.CHUNK_TEXT
    if isinstance(chunk, bytes | bytearray | memoryview):
        return bytes(chunk), pb.CHUNK_BYTES
    text = json.dumps(chunk, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode(), pb.CHUNK_JSON


def check_limits(limits: StreamLimits, stream: str, size: int, total_bytes: int, total_events: int) -> None:
    """Raise StreamLimitError if one more chunk of `size` bytes breaks a limit of the invocation
    (the totals are what it wrote so far, in every stream)."""
    if size > limits.max_chunk_bytes:
        raise StreamLimitError("max_chunk_bytes", size, limits.max_chunk_bytes,
                               f"stream {stream!r}: a chunk of {size} bytes is over max_chunk_bytes "
                               f"({limits.max_chunk_bytes})")
    if total_bytes + size > limits.max_bytes:
        raise StreamLimitError("max_bytes", total_bytes + size, limits.max_bytes,
                               f"stream {stream!r}: {total_bytes} + {size} bytes would be over the "
                               f"invocation's max_bytes ({limits.max_bytes})")
    if total_events + 1 > limits.max_events:
        raise StreamLimitError("max_events", total_events + 1, limits.max_events,
                               f"stream {stream!r}: event {total_events + 1} would be over the "
                               f"invocation's max_events ({limits.max_events})")


class RateLimit:
    """At most `per_s` chunks in any one second, as a token bucket (burst `per_s`, refilled at
    `per_s` a second): constant memory whatever the limit."""

    __slots__ = ("per_s", "_tokens", "_at", "_clock")

    def __init__(self, per_s: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_s = per_s
        self._tokens = float(per_s)
        self._clock = clock
        self._at = clock()

    def take(self, stream: str) -> None:
        now = self._clock()
        tokens = min(float(self.per_s), self._tokens + (now - self._at) * self.per_s)
        self._at = now
        if tokens < 1.0:
            self._tokens = tokens
            raise StreamLimitError("max_chunks_per_s", self.per_s + 1, self.per_s,
                                   f"stream {stream!r}: more than max_chunks_per_s ({self.per_s}) chunks "
                                   "in one second")
        self._tokens = tokens - 1.0


class StreamBuffer:
    """One attempt's stream writes not sent yet, its limits and what it has counted against them.

    `put` may be called from any thread (a sync step's); sending (`flush`) happens on the loop's
    thread only, where the attempt sends its other frames.
    """

    def __init__(
        self,
        owner: object,
        send: Callable[[wpb.WorkerFrame], None],
        start: wpb.StartFrame,
        loop: asyncio.AbstractEventLoop,
        *,
        flush_ms: float = DEFAULT_FLUSH_MS,
        flush_bytes: int = DEFAULT_FLUSH_BYTES,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.owner = owner
        self._send = send
        self.invocation_id = start.invocation_id
        self.attempt = start.attempt
        self.loop = loop
        self.flush_s = max(0.0, flush_ms) / 1000.0
        self.flush_bytes = max(1, flush_bytes)
        self.enabled = enabled  # False: an offline replay, which sends nothing
        self.limits = StreamLimits.of(start.stream_limits)
        self.durable: dict[str, int] = dict(start.stream_writes)  # handler-level writes the runtime has
        self.total_bytes = start.stream_bytes
        self.total_events = start.stream_events
        self.rate = RateLimit(self.limits.max_chunks_per_s, clock)
        self.lock = threading.Lock()
        self.dropped = False  # the attempt is over: writes go nowhere
        self._chunks: list[pb.StreamChunk] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._loop_thread = threading.get_ident()
        self.flushes = 0  # frames sent so far

    def step_voided(self, scope: StepScope) -> None:
        """A step execution that wrote is retried: the runtime will add a reset event to each stream
        it wrote to, which counts against max_events."""
        with self.lock:
            self.total_events += len(scope.written)

    def put_locked(self, chunk: pb.StreamChunk) -> bool:
        """Check the limits and buffer one chunk (the caller holds `lock`); True when a flush (or
        its timer) must be scheduled. Raises StreamLimitError: nothing was counted or buffered."""
        size = len(chunk.data)
        if not self.enabled:  # a replay cannot know the totals; the chunk alone it can check
            check_limits(self.limits, chunk.stream, size, 0, 0)
            return False
        check_limits(self.limits, chunk.stream, size, self.total_bytes, self.total_events)
        self.rate.take(chunk.stream)
        self.total_bytes += size
        self.total_events += 1
        self._chunks.append(chunk)
        self._size += size
        return self._size >= self.flush_bytes or len(self._chunks) == 1

    def schedule(self) -> None:
        """After a put that asked for it: flush now if the buffer is full, else arm the timer of
        its first chunk (from another thread, through the loop)."""
        if threading.get_ident() == self._loop_thread:
            self._schedule()
            return
        try:
            self.loop.call_soon_threadsafe(self._schedule)
        except RuntimeError:  # the loop is closed: the attempt is long over
            pass

    def _schedule(self) -> None:
        if self.dropped or not self._chunks:
            return
        if self._size >= self.flush_bytes or self.flush_s == 0.0:
            self.flush()
        elif self._timer is None:
            self._timer = self.loop.call_later(self.flush_s, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        """Send what is buffered as one StreamFrame (on the loop's thread)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.dropped or not self._chunks:
            return
        with self.lock:
            chunks, self._chunks, self._size = self._chunks, [], 0
        self.flushes += 1
        self._send(wpb.WorkerFrame(stream=wpb.StreamFrame(
            invocation_id=self.invocation_id, attempt=self.attempt, chunks=chunks)))

    def discard(self) -> None:
        """The attempt is over without sending them (aborted, dropped)."""
        self.dropped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        with self.lock:
            self._chunks, self._size = [], 0


class StreamWriter:
    """`ctx.stream(name)`: writes chunks to one named stream of the invocation.

    `await write(chunk)` from the handler or an async step; `write_nowait(chunk)` from anywhere,
    including the thread of a sync step. str is sent as text, bytes as bytes, anything else as
    JSON. `close()` ends the stream (handler level only); a write after it raises StreamClosedError.
    """

    __slots__ = ("name", "_buffer", "_durable", "_next_seq", "_closed")

    def __init__(self, buffer: StreamBuffer, name: str) -> None:
        self.name = name
        self._buffer = buffer
        self._durable = buffer.durable.get(name, 0)
        self._next_seq = 0  # the next handler-level write's number (writes and the close)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def write(self, chunk: object) -> None:
        """Write one chunk (sent within flush_ms, or sooner); raises StreamLimitError beyond the
        invocation's limits, StreamClosedError after close().

        When this write filled a frame, it yields to the loop once, so a handler writing in a tight
        loop lets the worker send its frames as it goes instead of after the loop."""
        flushes = self._buffer.flushes
        self.write_nowait(chunk)
        if self._buffer.flushes != flushes:
            await asyncio.sleep(0)

    def write_nowait(self, chunk: object) -> None:
        """`write` without awaiting: thread-safe, for sync step functions."""
        data, encoding = encode(chunk)
        self._put(pb.StreamChunk(stream=self.name, data=data, encoding=encoding), None)

    def close(self) -> None:
        """Close the stream: subscribers following it alone are done. Handler level only (a step
        may run again, a close cannot be taken back); closing twice is one close."""
        if self._closed:
            return
        self._put(pb.StreamChunk(stream=self.name, close=True), True)

    def _scope(self) -> StepScope | None:
        scope = CURRENT_STEP.get()
        return scope if scope is not None and scope.owner is self._buffer.owner else None

    def _put(self, chunk: pb.StreamChunk, close: bool | None) -> None:
        buffer = self._buffer
        scope = self._scope()
        if close and scope is not None:
            raise StreamError(f"stream {self.name!r}: close it outside ctx.run steps (a step may run again)",
                              400)
        if buffer.dropped:
            if scope is not None:
                return  # a step of an attempt that is over: its result is not journaled either
            raise AttemptDropped()
        with buffer.lock:
            if self._closed:
                raise StreamClosedError(self.name)
            if scope is None:
                chunk.seq = seq = self._next_seq
                if seq < self._durable:  # a replay: the runtime has this write already
                    self._next_seq = seq + 1
                    self._closed = bool(close)
                    return
                due = buffer.put_locked(chunk)
                self._next_seq = seq + 1
                self._closed = bool(close)
            else:
                if not scope.token:
                    scope.token = secrets.token_hex(8)
                chunk.step = scope.step
                chunk.try_token = scope.token
                due = buffer.put_locked(chunk)
                scope.written.add(self.name)
        if due:
            buffer.schedule()
