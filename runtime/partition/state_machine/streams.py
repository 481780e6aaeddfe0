"""Streams: an invocation's named streams of chunks, made durable in batches and read by subscribers.

Every event gets, on apply, an offset in its stream (one event forever) and a position `seq` among
all the invocation's events (what a subscriber resumes from). Handler-level writes are numbered by
the worker per stream (`seq` of the chunk): a replay re-sends the ones it cannot know were durable,
and those already here are skipped, so none is stored twice. A step's writes are provisional until
the step's entry is journaled: if another execution of the step produced that entry, or a new
execution starts writing, or the invocation ends without it, a reset event voids them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from endure.proto import records_pb2 as pb
from endure.proto.streams import InvalidStreamName, StreamLimits, check_name
from endure.runtime.partition import keys
from endure.runtime.partition.effects import Effect, StreamAppended
from endure.runtime.partition.state_machine.deployments import pin_first
from endure.runtime.partition.state_machine.shared import Rejected, load_status, save_status
from endure.runtime.partition.store import Transaction

if TYPE_CHECKING:
    from endure.runtime.partition.state_machine.machine import StateMachine


class _Streams:
    """The stream rows of one invocation, loaded as touched, written back once."""

    def __init__(self, tx: Transaction, status: pb.InvocationStatus) -> None:
        self.tx = tx
        self.status = status
        self.inv = status.invocation_id
        self.totals = tx.get_proto(keys.stream_totals(self.inv), pb.StreamTotals) or pb.StreamTotals()
        self.states: dict[str, pb.StreamState] = {}
        self.appended = 0

    def state(self, name: str) -> pb.StreamState:
        found = self.states.get(name)
        if found is None:
            found = self.tx.get_proto(keys.stream_state(self.inv, name), pb.StreamState) or pb.StreamState()
            self.states[name] = found
        return found

    def append(self, name: str, event: pb.StreamEvent) -> None:
        st = self.state(name)
        self.totals.last_seq += 1
        self.totals.events += 1
        self.totals.bytes += len(event.data)
        event.stream = name
        event.offset = st.next_offset
        event.seq = self.totals.last_seq
        st.next_offset += 1
        self.tx.put_proto(keys.stream_event(self.inv, event.seq), event)
        self.appended += 1

    def reset(self, name: str, open_step: pb.OpenStep) -> None:
        """Void one execution's provisional chunks of a step (an event of its own)."""
        event = pb.StreamEvent(step=open_step.step)
        event.reset.offsets.extend(open_step.offsets)
        self.append(name, event)

    def save(self, effects: list[Effect]) -> None:
        for name, st in self.states.items():
            self.tx.put_proto(keys.stream_state(self.inv, name), st)
        self.tx.put_proto(keys.stream_totals(self.inv), self.totals)
        if self.appended:
            effects.append(StreamAppended(self.inv, self.totals.last_seq))


def on_stream_write(sm: StateMachine, tx: Transaction, rec: pb.StreamWrite, now: int,
                    effects: list[Effect]) -> None:
    status = load_status(tx, rec.invocation_id)
    if status.status != pb.RUNNING:
        raise Rejected(f"{rec.invocation_id} is {pb.Status.Name(status.status)}, not running: its stream "
                       "writes come too late")
    pinned = pin_first(tx, status, rec.pin)
    limits = sm.config.stream_limits
    streams = _Streams(tx, status)
    written = 0
    for chunk in rec.chunks:
        try:
            name = check_name(chunk.stream)
        except InvalidStreamName as exc:
            raise Rejected(f"{rec.invocation_id}: {exc}") from exc
        st = streams.state(name)
        if chunk.step == 0 and chunk.seq < st.handler_writes:
            continue  # durable already: a replay sent it again
        if st.closed:
            raise Rejected(f"{rec.invocation_id}: stream {name!r} is closed")
        _check_limits(rec.invocation_id, limits, streams.totals, chunk)
        if chunk.step == 0:
            st.handler_writes = chunk.seq + 1
            event = pb.StreamEvent(encoding=chunk.encoding)
            if chunk.close:
                st.closed = True
                event.close.SetInParent()
            else:
                event.data = chunk.data
        else:
            open_step = _open(streams, name, st, chunk)
            event = pb.StreamEvent(data=chunk.data, encoding=chunk.encoding, provisional=True, step=chunk.step)
            open_step.offsets.append(st.next_offset)
        streams.append(name, event)
        written += len(chunk.data)
    if written:
        sm.metering.meter(status, now, {"stream.bytes": float(written)})  # (kept in the status's usage)
    if written or pinned or not status.has_streams:
        status.has_streams = True
        save_status(tx, status, now)
    streams.save(effects)


def _open(streams: _Streams, name: str, st: pb.StreamState, chunk: pb.StreamChunk) -> pb.OpenStep:
    """The open step a provisional chunk belongs to; another execution of that step resets it first."""
    for i, open_step in enumerate(st.open):
        if open_step.step == chunk.step:
            if open_step.try_token == chunk.try_token:
                return open_step
            streams.reset(name, open_step)
            del st.open[i]
            break
    return st.open.add(step=chunk.step, try_token=chunk.try_token)


def _check_limits(inv: str, limits: StreamLimits, totals: pb.StreamTotals, chunk: pb.StreamChunk) -> None:
    if len(chunk.data) > limits.max_chunk_bytes:
        raise Rejected(f"{inv}: a stream chunk of {len(chunk.data)} bytes is over the limit of "
                       f"{limits.max_chunk_bytes}")
    if totals.events + 1 > limits.max_events or totals.bytes + len(chunk.data) > limits.max_bytes:
        raise Rejected(f"{inv}: its streams are over their limits ({limits.max_events} events, "
                       f"{limits.max_bytes} bytes)")


def step_journaled(tx: Transaction, status: pb.InvocationStatus, step: int, try_token: str,
                   effects: list[Effect]) -> None:
    """A step's entry was journaled: its provisional chunks from that execution stand; those of any
    other execution of it are void."""
    _close_open(tx, status, effects, lambda o: o.step == step, lambda o: o.try_token != try_token)


def invocation_ended(tx: Transaction, status: pb.InvocationStatus, effects: list[Effect]) -> None:
    """The invocation is final: the provisional chunks of steps that never completed are void."""
    _close_open(tx, status, effects, lambda o: True, lambda o: True)


def _close_open(tx: Transaction, status: pb.InvocationStatus, effects: list[Effect],
                which: Callable[[pb.OpenStep], bool], void: Callable[[pb.OpenStep], bool]) -> None:
    if not status.has_streams:
        return
    streams = _Streams(tx, status)
    prefix = keys.stream_state_prefix(status.invocation_id)
    for raw_key in tx.scan_keys(prefix):
        name = keys.state_name(raw_key, prefix)
        st = streams.state(name)
        keep = []
        for open_step in st.open:
            if not which(open_step):
                keep.append(open_step)
            elif void(open_step):
                streams.reset(name, open_step)
        if len(keep) != len(st.open):
            del st.open[:]
            st.open.extend(keep)
        else:
            del streams.states[name]  # unchanged: not written back
    if streams.states:
        streams.save(effects)


def purge_streams(tx: Transaction, status: pb.InvocationStatus) -> None:
    if not status.has_streams:
        return
    inv = status.invocation_id
    for prefix in (keys.stream_state_prefix(inv), keys.stream_events_prefix(inv)):
        for raw_key in tx.scan_keys(prefix):
            tx.delete(raw_key)
    tx.delete(keys.stream_totals(inv))
