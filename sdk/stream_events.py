"""What a client reads from an invocation's live streams, as typed events, and how it resumes.

`Client.stream` and `Client.subscribe` (endure.sdk.client) yield these; the logic here needs no
server: decoding the runtime's StreamEvents, `StreamView` (the streams as a user wants them, with
voided chunks taken out), and `ResumeCursor` (which offsets were seen, so a reconnect asks for the
next one of every stream: no offset is yielded twice, none is skipped).

An offset means one event of one stream forever. A chunk written by a ctx.run step is
`provisional` until the step's result is journaled; if that execution of the step does not produce
it (it failed and ran again, or the worker died), a `StreamReset` names the offsets that are void.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from endure.proto import ingress_pb2 as ipb
from endure.proto import records_pb2 as pb

log = logging.getLogger("endure.sdk.client")

DEFAULT_STREAM = "default"


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One write: `data` is a str (text), bytes (bytes) or the JSON value (`is_json`) written."""

    stream: str
    offset: int
    data: Any
    provisional: bool = False  # a step's write whose result is not journaled yet: a reset may void it
    step: int = 0  # the step's journal index + 1 (0: written by the handler itself)
    is_json: bool = False


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The provisional chunks of `step` at `offsets` are void (the step runs again and writes anew)."""

    stream: str
    offsets: tuple[int, ...]
    step: int
    offset: int = -1  # the reset's own offset in its stream


@dataclass(frozen=True, slots=True)
class StreamClosed:
    """The handler closed the stream: nothing follows in it."""

    stream: str
    offset: int


@dataclass(frozen=True, slots=True)
class StreamResult:
    """The invocation's result, after all its stream events (a failure raises InvocationError)."""

    invocation_id: str
    value: Any


StreamItem: TypeAlias = StreamChunk | StreamReset | StreamClosed | StreamResult


def decode_data(data: bytes, encoding: pb.ChunkEncoding.ValueType) -> Any:
    """A chunk's data by its encoding: str for text, bytes for bytes, the value for JSON."""
    if encoding == pb.CHUNK_TEXT:
        return data.decode("utf-8", errors="replace")
    if encoding == pb.CHUNK_JSON:
        return json.loads(data)
    return bytes(data)


def decode_event(event: pb.StreamEvent) -> StreamChunk | StreamReset | StreamClosed:
    """The typed event of a runtime StreamEvent."""
    which = event.WhichOneof("event")
    if which == "reset":
        return StreamReset(event.stream, tuple(event.reset.offsets), event.step, event.offset)
    if which == "close":
        return StreamClosed(event.stream, event.offset)
    return StreamChunk(event.stream, event.offset, decode_data(event.data, event.encoding), event.provisional,
                       event.step, event.encoding == pb.CHUNK_JSON)


class ResumeCursor:
    """The next offset of each stream a follower asked for or has seen: which events are new, and
    what a Subscribe that resumes asks for.

    `stream` set: one stream, from `from_offset`. Else every stream, each from its `from_offsets`
    entry (missing: 0).
    """

    def __init__(self, stream: str | None = None, from_offset: int = 0,
                 from_offsets: Mapping[str, int] | None = None) -> None:
        self.stream = stream or None
        self.next: dict[str, int] = {stream: from_offset} if stream else dict(from_offsets or {})

    def accept(self, event: pb.StreamEvent) -> bool:
        """True for an event not seen yet (and move past it); False for one already delivered (a
        reconnect's overlap) or of another stream than the one followed."""
        if self.stream is not None and event.stream != self.stream:
            return False
        expected = self.next.get(event.stream, 0)
        if event.offset < expected:
            return False
        if event.offset > expected:
            log.warning("stream %r jumped from offset %d to %d", event.stream, expected, event.offset)
        self.next[event.stream] = event.offset + 1
        return True

    def request(self, invocation_id: str) -> ipb.SubscribeRequest:
        """The Subscribe that continues right after what was delivered."""
        if self.stream is not None:
            return ipb.SubscribeRequest(invocation_id=invocation_id, stream=self.stream,
                                        from_offset=self.next.get(self.stream, 0))
        return ipb.SubscribeRequest(invocation_id=invocation_id, from_offsets=self.next)


class StreamView:
    """The streams of one invocation as events arrive: `apply` each event, then read `text()`,
    `chunks()`, `result`. A reset takes the chunks it voids out, so what is shown is what stands."""

    def __init__(self) -> None:
        self._chunks: dict[str, dict[int, StreamChunk]] = {}
        self._next: dict[str, int] = {}
        self.closed: set[str] = set()
        self.done = False  # a StreamResult was applied
        self._result: StreamResult | None = None

    def apply(self, event: StreamItem) -> None:
        if isinstance(event, StreamResult):
            self._result = event
            self.done = True
            return
        self._seen(event.stream, event.offset)
        if isinstance(event, StreamChunk):
            self._chunks.setdefault(event.stream, {})[event.offset] = event
        elif isinstance(event, StreamReset):
            live = self._chunks.get(event.stream)
            if live:
                for offset in event.offsets:
                    live.pop(offset, None)
        else:
            self.closed.add(event.stream)

    def apply_all(self, events: Iterable[StreamItem]) -> StreamView:
        for event in events:
            self.apply(event)
        return self

    def _seen(self, stream: str, offset: int) -> None:
        if offset >= 0:
            self._next[stream] = max(self._next.get(stream, 0), offset + 1)
        else:
            self._next.setdefault(stream, 0)

    @property
    def streams(self) -> list[str]:
        """The streams seen so far, in order of their first event."""
        return list(self._next)

    @property
    def result(self) -> Any:
        """The invocation's result value (None until `done`)."""
        return self._result.value if self._result is not None else None

    @property
    def next_offsets(self) -> dict[str, int]:
        """Per stream, the offset after the last event applied: a `subscribe(from_offsets=...)`
        from here sees nothing twice."""
        return dict(self._next)

    def chunks(self, stream: str = DEFAULT_STREAM) -> list[StreamChunk]:
        """The chunks of `stream` no reset voided, in offset order."""
        live = self._chunks.get(stream, {})
        return [live[o] for o in sorted(live)]

    def text(self, stream: str = DEFAULT_STREAM) -> str:
        """The text of `stream`: its text chunks, and its bytes chunks as UTF-8 (a character may
        span chunks), in order; JSON chunks are not text."""
        parts: list[str] = []
        pending = bytearray()
        for chunk in self.chunks(stream):
            if chunk.is_json:
                continue
            if isinstance(chunk.data, bytes | bytearray):
                pending += chunk.data
                continue
            if pending:
                parts.append(pending.decode("utf-8", errors="replace"))
                pending.clear()
            parts.append(str(chunk.data))
        if pending:
            parts.append(pending.decode("utf-8", errors="replace"))
        return "".join(parts)


__all__ = [
    "ResumeCursor",
    "StreamChunk",
    "StreamClosed",
    "StreamItem",
    "StreamReset",
    "StreamResult",
    "StreamView",
    "decode_data",
    "decode_event",
]
