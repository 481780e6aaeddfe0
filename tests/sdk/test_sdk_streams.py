"""Live streams in the SDK: handlers' writes as the frames of one attempt (Invocation with a sink
that plays the runtime), their order with the journal, numbering, replay, steps, batching, limits."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from sdk_journal_recorder import RecordingSink

from endure.proto import ids, records_pb2, worker_pb2
from endure.proto.streams import InvalidStreamName, StreamLimits
from endure.sdk import (
    App,
    Context,
    ObjectContext,
    Replayer,
    RetryPolicy,
    Service,
    StreamClosedError,
    StreamError,
    StreamLimitError,
    StreamWriter,
    TerminalError,
    VirtualObject,
)
from endure.sdk.invocation import Invocation
from endure.sdk.streams import RateLimit, check_limits, encode
from endure.sdk.worker import StreamFlushError, Worker, check_stream_flush, parse_options

FAR = 60_000.0  # a flush timer that never fires within a test: only frames and size flush


class TimedSink(RecordingSink):
    """RecordingSink that also notes when each frame was sent (loop time)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop, {})
        self.times: list[float] = []

    def send(self, frame: worker_pb2.WorkerFrame) -> None:
        self.times.append(self.loop.time())
        super().send(frame)

    def kinds(self) -> list[str]:
        """Each frame as 'stream', 'entry:<kind>', 'end', ..."""
        out = []
        for f in self.frames:
            which = f.WhichOneof("frame")
            out.append(f"entry:{f.entry.entry.WhichOneof('kind')}" if which == "entry" else str(which))
        return out

    def chunks(self) -> list[records_pb2.StreamChunk]:
        return [c for f in self.frames if f.WhichOneof("frame") == "stream" for c in f.stream.chunks]

    def entries(self, kind: str) -> list[worker_pb2.EntryFrame]:
        return [f.entry for f in self.frames
                if f.WhichOneof("frame") == "entry" and f.entry.entry.WhichOneof("kind") == kind]


@dataclass
class Attempt:
    sink: TimedSink
    inv: Invocation

    def output(self) -> Any:
        out = self.sink.entries("output")
        assert out, self.sink.frames
        o = out[-1].entry.output
        if o.WhichOneof("result") == "failure":
            return ("failure", o.failure.code, o.failure.message)
        return json.loads(o.value)


SINK: list[TimedSink] = []  # the sink of the attempt running now (handlers look at what was sent)


async def run(
    app: App,
    service: str,
    handler: str,
    arg: Any = None,
    *,
    key: str = "",
    journal: tuple[records_pb2.JournalEntry, ...] | list[records_pb2.JournalEntry] = (),
    stream_writes: Mapping[str, int] | None = None,
    limits: StreamLimits | None = None,
    stream_bytes: int = 0,
    stream_events: int = 0,
    flush_ms: float = FAR,
    flush_bytes: int = 1 << 20,
    end: bool = True,
) -> Attempt:
    """One attempt of service/handler through Invocation; acks every acked entry."""
    loop = asyncio.get_running_loop()
    defn = app.lookup(service, handler)
    assert defn is not None
    start = worker_pb2.StartFrame(
        invocation_id=ids.new_invocation_id(), attempt=2 if journal else 1,
        target=records_pb2.Target(service=service, handler=handler, key=key),
        handler_kind=defn.kind,  # type: ignore[arg-type]
        input=b"" if arg is None else json.dumps(arg).encode(), journal=list(journal), state_complete=True,
        stream_writes=dict(stream_writes or {}), stream_bytes=stream_bytes, stream_events=stream_events,
    )
    if limits is not None:
        start.stream_limits.CopyFrom(limits.to_proto())
    sink = TimedSink(loop)
    sink.journal.extend(journal)
    inv = Invocation(sink, start, defn, loop, stream_flush_ms=flush_ms, stream_flush_bytes=flush_bytes)
    sink.inv = inv
    SINK[:] = [sink]
    inv.start()
    if end:
        await asyncio.wait_for(sink.ended.wait(), 5)
        assert inv.task is not None
        await asyncio.wait({inv.task}, timeout=5)
    return Attempt(sink, inv)


def frames_sent() -> int:
    return len(SINK[0].frames)


# ---------------------------------------------------------------------- handlers

svc = Service("streamer")
tries: dict[str, int] = {}


@svc.handler()
async def talk(ctx: Context) -> str:
    out = ctx.stream()
    await out.write("hel")
    await out.write("lo")
    got = await ctx.run("think", lambda: 7)
    await out.write({"thought": got, "ok": True})
    await ctx.stream("log").write(b"\x00\x01")
    return "done"


@svc.handler()
async def same_writer(ctx: Context) -> list[bool]:
    a = ctx.stream("x")
    return [a is ctx.stream("x"), a is not ctx.stream("y"), ctx.stream() is ctx.stream("default"),
            isinstance(a, StreamWriter)]


@svc.handler()
async def bad_name(ctx: Context) -> str:
    try:
        ctx.stream("no spaces")
    except InvalidStreamName as exc:
        return f"invalid: {exc}"
    return "accepted"


@svc.handler()
async def unserializable(ctx: Context) -> list[str]:
    out = []
    for value in (object(), float("nan")):
        try:
            await ctx.stream().write(value)
        except (TypeError, ValueError) as exc:
            out.append(type(exc).__name__)
    await ctx.stream().write("after")
    return out


@svc.handler()
async def counted(ctx: Context, n: int) -> int:
    out = ctx.stream()
    for i in range(n):
        await out.write(f"w{i}")
    await ctx.run("mid", lambda: 1)
    await out.write("last")
    return n


@svc.handler()
async def in_steps(ctx: Context) -> str:
    out = ctx.stream()

    async def async_step() -> int:
        await out.write("async-step")
        return 1

    def sync_step() -> int:
        assert threading.current_thread() is not threading.main_thread()
        out.write_nowait("sync-step")
        ctx.stream("side").write_nowait({"from": "thread"})
        return 2

    await out.write("before")
    await ctx.run("a", async_step)
    await ctx.run("s", sync_step)
    await out.write("after")
    return "ok"


@svc.handler()
async def retried_step(ctx: Context) -> int:
    out = ctx.stream()

    def flaky() -> int:
        n = tries["flaky"] = tries.get("flaky", 0) + 1
        out.write_nowait(f"try {n}")
        if n < 3:
            raise RuntimeError("not yet")
        return n

    policy = RetryPolicy(initial_interval=__import__("datetime").timedelta(milliseconds=1), max_attempts=5)
    return await ctx.run("flaky", flaky, retry=policy)


@svc.handler()
async def by_size(ctx: Context) -> list[int]:
    out = ctx.stream()
    seen = []
    for _ in range(3):
        await out.write("abcd")  # 4 bytes each: the third reaches 10
        seen.append(frames_sent())
    return seen


@svc.handler()
async def by_time(ctx: Context) -> int:
    await ctx.stream().write("tick")
    sent = frames_sent()
    await asyncio.sleep(0.3)  # not a journaled wait: only the timer can flush meanwhile
    return sent


@svc.handler()
async def over_limit(ctx: Context, which: str) -> list[Any]:
    out = ctx.stream()
    if which == "chunk":
        await out.write("x" * 11)
    elif which == "bytes":
        await out.write("x" * 8)
        await out.write("x" * 8)
    elif which == "events":
        for _ in range(5):
            await out.write("e")
    elif which == "rate":
        for _ in range(5):
            await out.write("r")
    return ["no error"]


@svc.handler()
async def caught_limit(ctx: Context) -> list[Any]:
    out = ctx.stream()
    await out.write("ok")
    try:
        await out.write("x" * 100)
    except StreamLimitError as exc:
        caught = [exc.code, exc.limit, exc.value, exc.maximum, exc.message]
    await out.write("still")
    return caught


@svc.handler()
async def closing(ctx: Context) -> list[str]:
    out = ctx.stream()
    await out.write("one")
    out.close()
    out.close()  # twice is one close
    got = []
    try:
        await out.write("two")
    except StreamClosedError as exc:
        got.append(f"closed {exc.code}")

    def close_in_step() -> str:
        try:
            ctx.stream("other").close()
        except StreamError as exc:
            return f"step {exc.code}"
        return "closed in a step"

    got.append(await ctx.run("c", close_in_step))
    await ctx.stream("other").write("open")
    return got


@svc.handler()
async def dropped(ctx: Context) -> str:
    await ctx.stream().write("lost")
    await ctx.sleep(10)  # never completed: the test aborts the attempt here
    return "woke"


obj = VirtualObject("counter")


@obj.handler()
async def bump(ctx: ObjectContext) -> int:
    n = (await ctx.get("n", type_hint=int)) or 0
    await ctx.stream().write(f"n={n + 1}")
    ctx.set("n", n + 1)
    return n + 1


APP = App([svc, obj])


# ---------------------------------------------------------------------- order and encodings


async def test_chunks_are_flushed_before_the_next_frame_and_numbered_per_stream() -> None:
    a = await run(APP, "streamer", "talk")
    assert a.output() == "done"
    assert a.sink.kinds() == ["stream", "entry:run", "stream", "entry:output", "end"]
    first, second = (f.stream for f in a.sink.frames if f.WhichOneof("frame") == "stream")
    assert (first.invocation_id, first.attempt) == (a.inv.id, a.inv.attempt)
    assert [(c.stream, c.data, c.encoding, c.seq, c.step) for c in first.chunks] == [
        ("default", b"hel", records_pb2.CHUNK_TEXT, 0, 0), ("default", b"lo", records_pb2.CHUNK_TEXT, 1, 0)]
    assert [(c.stream, c.data, c.encoding, c.seq, c.step) for c in second.chunks] == [
        ("default", b'{"thought":7,"ok":true}', records_pb2.CHUNK_JSON, 2, 0),
        ("log", b"\x00\x01", records_pb2.CHUNK_BYTES, 0, 0)]


async def test_one_writer_per_name_and_names_are_checked() -> None:
    assert (await run(APP, "streamer", "same_writer")).output() == [True, True, True, True]
    assert (await run(APP, "streamer", "bad_name")).output().startswith("invalid: a stream name is")


def test_encode_by_type() -> None:
    assert encode("é") == ("é".encode(), records_pb2.CHUNK_TEXT)
    assert encode(b"\xff") == (b"\xff", records_pb2.CHUNK_BYTES)
    assert encode(bytearray(b"ab")) == (b"ab", records_pb2.CHUNK_BYTES)
    assert encode({"a": [1, None], "é": 2.5}) == ('{"a":[1,null],"é":2.5}'.encode(), records_pb2.CHUNK_JSON)
    assert encode(3) == (b"3", records_pb2.CHUNK_JSON)
    with pytest.raises(TypeError):
        encode({1, 2})
    with pytest.raises(ValueError):
        encode(float("inf"))


async def test_a_value_json_cannot_hold_raises_and_takes_no_number() -> None:
    a = await run(APP, "streamer", "unserializable")
    assert a.output() == ["TypeError", "ValueError"]
    assert [(c.data, c.seq) for c in a.sink.chunks()] == [(b"after", 0)]


async def test_objects_stream_too() -> None:
    a = await run(APP, "counter", "bump", key="k")
    assert a.output() == 1
    assert [c.data for c in a.sink.chunks()] == [b"n=1"]
    assert a.sink.kinds().index("stream") < a.sink.kinds().index("entry:set_state")


# ---------------------------------------------------------------------- replay


async def test_a_replay_skips_the_handler_writes_the_runtime_has() -> None:
    first = await run(APP, "streamer", "counted", 3)
    assert [(c.data, c.seq) for c in first.sink.chunks()] == [(b"w0", 0), (b"w1", 1), (b"w2", 2), (b"last", 3)]
    # Attempt 2 replays the run entry; the runtime has the first two writes only (a lost batch).
    journal = first.sink.journal[:1]
    again = await run(APP, "streamer", "counted", 3, journal=journal, stream_writes={"default": 2},
                      stream_bytes=4, stream_events=2)
    assert again.output() == 3
    assert [(c.data, c.seq) for c in again.sink.chunks()] == [(b"w2", 2), (b"last", 3)]
    # Everything durable: nothing is sent again, and the skipped writes count nothing (the limit
    # leaves room for just the two events already there).
    tight = StreamLimits(max_events=4)
    done = await run(APP, "streamer", "counted", 3, journal=journal, stream_writes={"default": 4},
                     stream_events=4, limits=tight)
    assert done.output() == 3
    assert done.sink.chunks() == []


async def test_the_offline_replayer_runs_handlers_that_stream_and_sends_nothing() -> None:
    first = await run(APP, "streamer", "talk")
    result = await Replayer(APP).replay_async(records_pb2.Target(service="streamer", handler="talk"),
                                              records_pb2.SERVICE, b"", first.sink.journal)
    assert result.ok and result.complete, result
    inv_frames: list[worker_pb2.WorkerFrame] = []
    # The replay's own attempt: nothing of its streams went anywhere either.
    loop = asyncio.get_running_loop()
    start = worker_pb2.StartFrame(invocation_id=ids.new_invocation_id(), attempt=1,
                                  target=records_pb2.Target(service="streamer", handler="talk"),
                                  journal=first.sink.journal)

    class Capture:
        def send(self, frame: worker_pb2.WorkerFrame) -> None:
            inv_frames.append(frame)

        def release(self, inv: Invocation) -> None:
            pass

    defn = APP.lookup("streamer", "talk")
    inv = Invocation(Capture(), start, defn, loop, replay_only=True, stream_flush_ms=0)
    inv.start()
    assert inv.task is not None
    await asyncio.wait_for(inv.task, 5)
    assert [f.WhichOneof("frame") for f in inv_frames] == ["end"]


# ---------------------------------------------------------------------- steps


async def test_step_writes_carry_the_step_and_the_try_token_of_its_run_entry() -> None:
    a = await run(APP, "streamer", "in_steps")
    assert a.output() == "ok"
    chunks = a.sink.chunks()
    assert [(c.stream, c.data, c.step, c.seq) for c in chunks] == [
        ("default", b"before", 0, 0), ("default", b"async-step", 1, 0), ("default", b"sync-step", 2, 0),
        ("side", b'{"from":"thread"}', 2, 0), ("default", b"after", 0, 1)]
    assert chunks[0].try_token == "" and chunks[-1].try_token == ""
    runs = a.sink.entries("run")
    assert [r.index for r in runs] == [0, 1]
    assert runs[0].step_try_token == chunks[1].try_token != ""
    assert runs[1].step_try_token == chunks[2].try_token == chunks[3].try_token != ""
    assert runs[0].step_try_token != runs[1].step_try_token
    # each step's chunks went out before its run entry (with the handler's chunks before it)
    assert a.sink.kinds() == ["stream", "entry:run", "stream", "entry:run", "stream", "entry:output", "end"]
    batches = [[c.data for c in f.stream.chunks] for f in a.sink.frames if f.WhichOneof("frame") == "stream"]
    assert batches == [[b"before", b"async-step"], [b"sync-step", b'{"from":"thread"}'], [b"after"]]


async def test_every_execution_of_a_retried_step_has_its_own_token() -> None:
    tries.clear()
    a = await run(APP, "streamer", "retried_step")
    assert a.output() == 3
    chunks = a.sink.chunks()
    assert [c.data for c in chunks] == [b"try 1", b"try 2", b"try 3"]
    tokens = [c.try_token for c in chunks]
    assert len(set(tokens)) == 3 and all(tokens)
    assert all(c.step == 1 for c in chunks)
    (entry,) = a.sink.entries("run")
    assert entry.step_try_token == tokens[-1]


async def test_a_retried_step_counts_the_resets_of_the_executions_it_voids() -> None:
    tries.clear()
    # 3 chunks + 2 resets (tries 1 and 2 each wrote to one stream) = 5 events: a limit of 4 breaks
    a = await run(APP, "streamer", "retried_step", limits=StreamLimits(max_events=4))
    code, message = a.output()[1:]
    assert code == 413 and "max_events" in message
    assert [c.data for c in a.sink.chunks()] == [b"try 1", b"try 2"]


# ---------------------------------------------------------------------- batching


async def test_a_full_buffer_is_flushed_at_once() -> None:
    a = await run(APP, "streamer", "by_size", flush_bytes=10)
    assert a.output() == [0, 0, 1]  # frames sent after each write
    assert [len(f.stream.chunks) for f in a.sink.frames if f.WhichOneof("frame") == "stream"] == [3]


async def test_the_flush_timer_sends_what_waits() -> None:
    loop = asyncio.get_running_loop()
    before = loop.time()
    a = await run(APP, "streamer", "by_time", flush_ms=50)
    assert a.output() == 0  # not sent at the write
    assert a.sink.kinds() == ["stream", "entry:output", "end"]
    sent_at = a.sink.times[0] - before
    assert 0.05 <= sent_at < 0.29, sent_at  # by the timer, long before the output


async def test_an_aborted_attempt_discards_its_buffer() -> None:
    a = await run(APP, "streamer", "dropped", flush_ms=50, end=False)
    for _ in range(100):
        if a.sink.entries("sleep"):
            break
        await asyncio.sleep(0.001)
    kinds = a.sink.kinds()
    assert kinds == ["stream", "entry:sleep"]  # flushed before the entry
    a2 = await run(APP, "streamer", "by_time", flush_ms=100, end=False)
    await asyncio.sleep(0.02)
    a2.inv.abort()
    await asyncio.sleep(0.15)
    assert a2.sink.chunks() == []
    a.inv.abort()


# ---------------------------------------------------------------------- limits


@pytest.mark.parametrize(("which", "limits", "before", "limit"), [
    ("chunk", StreamLimits(max_chunk_bytes=10), {}, "max_chunk_bytes"),
    ("bytes", StreamLimits(max_bytes=1030), {"stream_bytes": 1020}, "max_bytes"),
    ("events", StreamLimits(max_events=13), {"stream_events": 10}, "max_events"),
    ("rate", StreamLimits(max_chunks_per_s=3), {}, "max_chunks_per_s"),
])
async def test_a_write_over_a_limit_fails_the_handler_and_is_not_sent(
    which: str, limits: StreamLimits, before: dict[str, int], limit: str
) -> None:
    a = await run(APP, "streamer", "over_limit", which, limits=limits, **before)
    kind, code, message = a.output()
    assert (kind, code) == ("failure", 413)
    assert limit in message
    sent = len(a.sink.chunks())
    assert sent == {"chunk": 0, "bytes": 1, "events": 3, "rate": 3}[which]


async def test_a_caught_limit_error_names_the_numbers() -> None:
    a = await run(APP, "streamer", "caught_limit", limits=StreamLimits(max_chunk_bytes=16))
    assert a.output() == [413, "max_chunk_bytes", 100, 16,
                          "stream 'default': a chunk of 100 bytes is over max_chunk_bytes (16)"]
    assert [(c.data, c.seq) for c in a.sink.chunks()] == [(b"ok", 0), (b"still", 1)]


def test_check_limits_and_rate() -> None:
    limits = StreamLimits(max_chunk_bytes=10, max_bytes=100, max_events=5, max_chunks_per_s=2)
    check_limits(limits, "s", 10, 90, 4)
    with pytest.raises(StreamLimitError, match="max_bytes"):
        check_limits(limits, "s", 10, 91, 0)
    with pytest.raises(StreamLimitError, match="max_events"):
        check_limits(limits, "s", 0, 0, 5)
    now = [0.0]
    rate = RateLimit(2, lambda: now[0])
    rate.take("s")
    rate.take("s")
    with pytest.raises(StreamLimitError, match="max_chunks_per_s"):
        rate.take("s")
    now[0] = 0.5  # half a second: one more
    rate.take("s")
    with pytest.raises(StreamLimitError):
        rate.take("s")
    now[0] = 10.0  # a burst of at most per_s again
    rate.take("s")
    rate.take("s")
    with pytest.raises(StreamLimitError):
        rate.take("s")


def test_the_limit_error_is_terminal() -> None:
    exc = StreamLimitError("max_events", 6, 5, "too many")
    assert isinstance(exc, TerminalError) and exc.code == 413


# ---------------------------------------------------------------------- close


async def test_close_is_a_numbered_chunk_and_ends_the_writes() -> None:
    a = await run(APP, "streamer", "closing")
    assert a.output() == ["closed 400", "step 400"]
    assert [(c.stream, c.data, c.close, c.seq) for c in a.sink.chunks()] == [
        ("default", b"one", False, 0), ("default", b"", True, 1), ("other", b"open", False, 0)]


async def test_a_replayed_close_still_closes() -> None:
    first = await run(APP, "streamer", "closing")
    again = await run(APP, "streamer", "closing", journal=first.sink.journal[:1],
                      stream_writes={"default": 2})
    assert again.output() == ["closed 400", "step 400"]
    assert [(c.stream, c.data) for c in again.sink.chunks()] == [("other", b"open")]


# ---------------------------------------------------------------------- worker options


def test_flush_policy_is_checked() -> None:
    check_stream_flush(0, 1)
    for ms, size in ((-1, 10), (float("nan"), 10), (5, 0)):
        with pytest.raises(StreamFlushError):
            check_stream_flush(ms, size)
    with pytest.raises(StreamFlushError):
        Worker(APP, "127.0.0.1:1", stream_flush_bytes=0)


def test_worker_command_line_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    opts = parse_options(["m:app", "--runtime", "h:1"])
    assert (opts.stream_flush_ms, opts.stream_flush_bytes) == (25.0, 4096)
    monkeypatch.setenv("ENDURE_STREAM_FLUSH_MS", "5")
    monkeypatch.setenv("ENDURE_STREAM_FLUSH_BYTES", "100")
    opts = parse_options(["m:app", "--runtime", "h:1"])
    assert (opts.stream_flush_ms, opts.stream_flush_bytes) == (5.0, 100)
    opts = parse_options(["m:app", "--runtime", "h:1", "--stream-flush-ms", "0", "--stream-flush-bytes", "7"])
    assert (opts.stream_flush_ms, opts.stream_flush_bytes) == (0.0, 7)


async def test_a_worker_sends_stream_frames_on_its_stream(runtime: Any, start_worker: Any) -> None:
    await start_worker(APP, stream_flush_ms=FAR, stream_flush_bytes=1 << 20)
    session = await runtime.session()
    inv = session.start("streamer", "talk")
    stream = await session.expect("stream")
    assert (stream.invocation_id, [c.data for c in stream.chunks]) == (inv, [b"hel", b"lo"])
    run_entry = await session.expect_entry("run", 0, ack=True)
    assert run_entry.step_try_token == ""  # a step that wrote nothing names no execution
    stream = await session.expect("stream")
    assert [c.stream for c in stream.chunks] == ["default", "log"]
    await session.expect_output(1)
