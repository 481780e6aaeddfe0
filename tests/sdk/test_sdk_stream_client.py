"""The client's side of live streams: decoding events, StreamView, the resume offsets (pure logic),
and following a stream across a lost connection against a fake ingress on loopback."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from endure.proto import ids, routing
from endure.proto import ingress_pb2 as ipb
from endure.proto import ingress_pb2_grpc as ipb_grpc
from endure.proto import records_pb2 as pb
from endure.sdk import StreamChunk, StreamClosed, StreamReset, StreamResult, StreamView
from endure.sdk.client import (
    Client,
    InvocationCancelled,
    InvocationError,
    RequestError,
    SyncClient,
    _Follower,
)
from endure.sdk.stream_events import ResumeCursor, decode_data, decode_event


def chunk(stream: str, offset: int, data: bytes, encoding: int = pb.CHUNK_TEXT, *, step: int = 0,
          provisional: bool = False) -> pb.StreamEvent:
    return pb.StreamEvent(stream=stream, offset=offset, data=data, encoding=encoding,  # type: ignore[arg-type]
                          step=step, provisional=provisional)


def reset(stream: str, offset: int, offsets: list[int], step: int) -> pb.StreamEvent:
    ev = pb.StreamEvent(stream=stream, offset=offset, step=step)
    ev.reset.offsets.extend(offsets)
    return ev


def close(stream: str, offset: int) -> pb.StreamEvent:
    ev = pb.StreamEvent(stream=stream, offset=offset)
    ev.close.SetInParent()
    return ev


# ---------------------------------------------------------------------- decoding


def test_events_decode_by_kind_and_encoding() -> None:
    assert decode_event(chunk("default", 0, "héllo".encode())) == StreamChunk("default", 0, "héllo", False, 0)
    assert decode_event(chunk("b", 3, b"\xff\x00", pb.CHUNK_BYTES)) == StreamChunk("b", 3, b"\xff\x00")
    got = decode_event(chunk("j", 1, b'{"a":[1,2]}', pb.CHUNK_JSON, step=4, provisional=True))
    assert got == StreamChunk("j", 1, {"a": [1, 2]}, True, 4, is_json=True)
    assert decode_event(chunk("j", 2, b'"text"', pb.CHUNK_JSON)) == StreamChunk("j", 2, "text", is_json=True)
    assert decode_event(reset("s", 7, [2, 4], 3)) == StreamReset("s", (2, 4), 3, 7)
    assert decode_event(close("s", 8)) == StreamClosed("s", 8)
    assert decode_event(chunk("e", 0, b"")) == StreamChunk("e", 0, "")  # empty data is still a chunk
    assert decode_data(b"\xe2\x82", pb.CHUNK_TEXT) == "\ufffd"  # broken text does not stop the client


# ---------------------------------------------------------------------- resume offsets


def test_the_cursor_drops_what_was_delivered_and_resumes_after_it() -> None:
    cursor = ResumeCursor()
    assert cursor.request("inv_1") == ipb.SubscribeRequest(invocation_id="inv_1")
    assert [cursor.accept(e) for e in (chunk("a", 0, b"x"), chunk("b", 0, b"y"), chunk("a", 1, b"z"))] == [
        True, True, True]
    assert cursor.request("inv_1").from_offsets == {"a": 2, "b": 1}
    # a reconnect's overlap is not new; what follows it is
    assert [cursor.accept(e) for e in (chunk("a", 0, b"x"), chunk("a", 1, b"z"), reset("a", 2, [1], 1))] == [
        False, False, True]
    assert cursor.request("inv_1").from_offsets == {"a": 3, "b": 1}


def test_the_cursor_starts_from_the_offsets_asked_for() -> None:
    cursor = ResumeCursor(from_offsets={"a": 5})
    assert not cursor.accept(chunk("a", 4, b""))
    assert cursor.accept(chunk("a", 5, b""))
    assert cursor.accept(chunk("new", 0, b""))
    assert cursor.request("i").from_offsets == {"a": 6, "new": 1}
    one = ResumeCursor("a", 10)
    assert one.request("i") == ipb.SubscribeRequest(invocation_id="i", stream="a", from_offset=10)
    assert not one.accept(chunk("b", 10, b""))  # not the stream followed
    assert one.accept(chunk("a", 10, b""))
    assert one.request("i") == ipb.SubscribeRequest(invocation_id="i", stream="a", from_offset=11)


def test_the_follower_yields_events_then_the_result_or_raises_the_failure() -> None:
    follower = _Follower(None, ResumeCursor())
    items, failure = follower.on_message(ipb.StreamMessage(invocation_id="inv_9", events=[chunk("a", 0, b"x")]))
    assert (items, failure, follower.invocation_id, follower.finished) == (
        [StreamChunk("a", 0, "x")], None, "inv_9", False)
    items, failure = follower.on_message(ipb.StreamMessage(
        events=[chunk("a", 0, b"x"), chunk("a", 1, b"y")], output=ipb.Output(invocation_id="inv_9", value=b"[1]")))
    assert items == [StreamChunk("a", 1, "y"), StreamResult("inv_9", [1])] and failure is None
    assert follower.finished

    failed = _Follower(None, ResumeCursor(), "inv_8")
    output = ipb.Output(invocation_id="inv_8", failure=pb.Failure(code=422, message="no"))
    items, failure = failed.on_message(ipb.StreamMessage(events=[chunk("a", 0, b"x")], output=output))
    assert items == [StreamChunk("a", 0, "x")]
    assert isinstance(failure, InvocationError) and failure.code == 422 and failed.finished

    one = _Follower(None, ResumeCursor("a"), "inv_7")
    items, failure = one.on_message(ipb.StreamMessage(events=[close("a", 0)], closed=True))
    assert items == [StreamClosed("a", 0)] and failure is None and one.finished


# ---------------------------------------------------------------------- StreamView


def test_the_view_takes_voided_chunks_out() -> None:
    view = StreamView()
    view.apply_all([
        StreamChunk("default", 0, "Hello "),
        StreamChunk("default", 1, "wrld", provisional=True, step=2),
        StreamChunk("default", 2, "?", provisional=True, step=2),
        StreamChunk("other", 0, {"progress": 0.5}, is_json=True),
    ])
    assert view.text() == "Hello wrld?"
    view.apply(StreamReset("default", (1, 2), 2, 3))  # the step ran again
    view.apply(StreamChunk("default", 4, "world", provisional=True, step=2))
    assert view.text() == "Hello world"
    assert [c.offset for c in view.chunks()] == [0, 4]
    assert view.text("other") == ""  # JSON is not text
    assert [c.data for c in view.chunks("other")] == [{"progress": 0.5}]
    assert view.next_offsets == {"default": 5, "other": 1}
    assert view.streams == ["default", "other"]
    assert not view.done and view.result is None
    view.apply(StreamClosed("default", 5))
    view.apply(StreamResult("inv_1", {"ok": True}))
    assert view.closed == {"default"} and view.done and view.result == {"ok": True}
    assert view.next_offsets["default"] == 6


def test_the_view_joins_bytes_split_inside_a_character() -> None:
    euro = "€".encode()
    view = StreamView().apply_all([StreamChunk("b", 0, b"1" + euro[:1]), StreamChunk("b", 1, euro[1:]),
                                   StreamChunk("b", 2, " and text")])
    assert view.text("b") == "1€ and text"


# ---------------------------------------------------------------------- against a fake ingress


Script = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[ipb.StreamMessage]]


class StreamingIngress(ipb_grpc.IngressServicer):
    """CallStream and Subscribe answered by scripts; each request is kept."""

    def __init__(self) -> None:
        self.call_script: Script | None = None
        self.subscribe_script: Script | None = None
        self.requests: list[tuple[str, Any]] = []
        self.routes: ipb.Routes | None = None
        self.server: grpc.aio.Server | None = None
        self.address = ""

    async def start(self) -> None:
        self.server = grpc.aio.server()
        ipb_grpc.add_IngressServicer_to_server(self, self.server)
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        await self.server.start()

    async def GetRoutes(self, request: ipb.RoutesRequest, context: grpc.aio.ServicerContext) -> ipb.Routes:  # noqa: N802
        if self.routes is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no routes")
        assert self.routes is not None
        return self.routes

    async def CallStream(self, request: ipb.CallRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[ipb.StreamMessage]:  # noqa: N802
        self.requests.append(("CallStream", request))
        assert self.call_script is not None
        async for msg in self.call_script(request, context):
            yield msg

    async def Subscribe(self, request: ipb.SubscribeRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[ipb.StreamMessage]:  # noqa: N802
        self.requests.append(("Subscribe", request))
        assert self.subscribe_script is not None
        async for msg in self.subscribe_script(request, context):
            yield msg


@pytest.fixture
async def ingress() -> AsyncIterator[StreamingIngress]:
    server = StreamingIngress()
    await server.start()
    yield server
    assert server.server is not None
    await server.server.stop(grace=None)


INV = ids.new_invocation_id()


def restarting(fail_after: int, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> Script:
    """A CallStream that names the invocation, sends `fail_after` chunks of 'a', then fails."""

    async def script(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[ipb.StreamMessage]:
        yield ipb.StreamMessage(invocation_id=INV)
        for i in range(fail_after):
            yield ipb.StreamMessage(invocation_id=INV, events=[chunk("a", i, f"a{i}".encode())])
        await context.abort(code, "node restarting")

    return script


async def resumed(request: ipb.SubscribeRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[ipb.StreamMessage]:
    """A Subscribe that replays everything from offset 0 (overlap), then b, then the result."""
    events = [chunk("a", i, f"a{i}".encode()) for i in range(4)] + [chunk("b", 0, b"b0"), close("a", 4)]
    yield ipb.StreamMessage(invocation_id=INV, events=events[:3])
    yield ipb.StreamMessage(invocation_id=INV, events=events[3:], output=ipb.Output(invocation_id=INV, value=b'"ok"'))


async def test_a_lost_stream_resumes_from_the_next_offsets(ingress: StreamingIngress) -> None:
    ingress.call_script = restarting(2)
    ingress.subscribe_script = resumed
    async with Client(ingress.address) as client:
        got = [e async for e in client.stream("svc/run", {"n": 1})]
    assert got == [StreamChunk("a", 0, "a0"), StreamChunk("a", 1, "a1"), StreamChunk("a", 2, "a2"),
                   StreamChunk("a", 3, "a3"), StreamChunk("b", 0, "b0"), StreamClosed("a", 4),
                   StreamResult(INV, "ok")]
    (_, call), (_, sub) = ingress.requests
    assert call.target.service == "svc" and call.input == b'{"n": 1}'
    assert (sub.invocation_id, dict(sub.from_offsets)) == (INV, {"a": 2})


async def test_a_failed_invocation_raises_after_its_events(ingress: StreamingIngress) -> None:
    async def cancelled(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[ipb.StreamMessage]:
        yield ipb.StreamMessage(invocation_id=INV, events=[chunk("default", 0, b"partial")],
                                output=ipb.Output(invocation_id=INV, failure=pb.Failure(
                                    code=409, message="cancelled", cause=pb.FAILURE_CANCELLED)))

    ingress.call_script = cancelled
    got: list[Any] = []
    async with Client(ingress.address) as client:
        with pytest.raises(InvocationCancelled):
            async for e in client.stream("svc/run"):
                got.append(e)
    assert got == [StreamChunk("default", 0, "partial")]


async def test_other_errors_and_unknown_ids_are_not_retried(ingress: StreamingIngress) -> None:
    ingress.call_script = restarting(1, grpc.StatusCode.NOT_FOUND)
    async with Client(ingress.address) as client:
        with pytest.raises(RequestError) as err:
            _ = [e async for e in client.stream("svc/run")]
        assert err.value.code == grpc.StatusCode.NOT_FOUND

        async def no_id(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[ipb.StreamMessage]:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "going down")
            yield ipb.StreamMessage()  # pragma: no cover

        ingress.call_script = no_id
        with pytest.raises(RequestError, match="before the invocation id was known"):
            _ = [e async for e in client.stream("svc/run")]
        assert [m for m, _ in ingress.requests] == ["CallStream", "CallStream"]  # not sent again
        ingress.requests.clear()
        # with an idempotency key it may be sent again (the ingress dedups it), until the deadline
        with pytest.raises(RequestError, match="within 0.3s"):
            _ = [e async for e in client.stream("svc/run", idempotency_key="k1", reconnect_timeout=0.3)]
        assert len(ingress.requests) >= 2 and {m for m, _ in ingress.requests} == {"CallStream"}


async def test_subscribe_one_stream_from_an_offset_ends_at_its_close(ingress: StreamingIngress) -> None:
    calls = [0]

    async def one(request: ipb.SubscribeRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[ipb.StreamMessage]:
        calls[0] += 1
        if calls[0] == 1:
            yield ipb.StreamMessage(invocation_id=INV, events=[chunk("log", 5, b"five")])
            await context.abort(grpc.StatusCode.UNAVAILABLE, "restart")
        yield ipb.StreamMessage(invocation_id=INV, events=[chunk("log", 6, b"six"), close("log", 7)], closed=True)

    ingress.subscribe_script = one
    async with Client(ingress.address) as client:
        got = [e async for e in client.subscribe(INV, stream="log", from_offset=5)]
    assert got == [StreamChunk("log", 5, "five"), StreamChunk("log", 6, "six"), StreamClosed("log", 7)]
    assert [r for _, r in ingress.requests] == [
        ipb.SubscribeRequest(invocation_id=INV, stream="log", from_offset=5),
        ipb.SubscribeRequest(invocation_id=INV, stream="log", from_offset=6)]
    async with Client(ingress.address) as client:
        with pytest.raises(ValueError, match="one stream"):
            _ = [e async for e in client.subscribe(INV, from_offset=3)]
        with pytest.raises(ValueError, match="every stream"):
            _ = [e async for e in client.subscribe(INV, "log", from_offsets={"log": 1})]


async def test_the_sync_client_yields_as_a_generator(ingress: StreamingIngress) -> None:
    ingress.call_script = restarting(1)
    ended = threading.Event()

    async def endless(request: ipb.SubscribeRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[ipb.StreamMessage]:
        if request.from_offsets.get("a") != 2:
            async for msg in resumed(request, context):
                yield msg
            return
        yield ipb.StreamMessage(invocation_id=INV, events=[chunk("a", 2, b"a2")])
        try:
            await asyncio.sleep(30)
        finally:
            ended.set()

    ingress.subscribe_script = endless

    def follow() -> tuple[list[Any], list[Any], bool]:
        with SyncClient(ingress.address) as client:
            everything = list(client.stream("svc/run"))
            first = []
            for e in client.subscribe(INV, from_offsets={"a": 2}):
                first.append(e)
                break  # stopping early ends the call (before the client is closed)
            # ended by the generator's close, not by the client's loop finalizing it later
            return everything, first, ended.wait(5)

    everything, first, call_ended = await asyncio.to_thread(follow)
    view = StreamView().apply_all(everything)
    assert view.text("a") == "a0a1a2a3" and view.result == "ok"
    assert first == [StreamChunk("a", 2, "a2")]
    assert ingress.requests[-1][1].from_offsets == {"a": 2}
    assert call_ended


def test_subscribe_is_routed_by_its_invocation_id() -> None:
    assert routing.request_partition_key(ipb.SubscribeRequest(invocation_id=INV)) == ids.partition_key_of(INV)
    assert routing.request_partition_key(ipb.SubscribeRequest(invocation_id="inv_nothex")) is None


async def test_streams_go_to_the_owner_node(ingress: StreamingIngress) -> None:
    other = StreamingIngress()
    await other.start()
    try:
        routes = ipb.Routes(partitions=2, owners=[0, 1], nodes=[ipb.IngressNode(id=0, address=ingress.address),
                                                             ipb.IngressNode(id=1, address=other.address)])
        ingress.routes = other.routes = routes
        on_other = next(i for i in (ids.new_invocation_id() for _ in range(100)) if ids.partition_key_of(i) % 2 == 1)
        key = next(k for k in (f"k{i}" for i in range(100)) if ids.stable_hash64(k) % 2 == 1)

        async def done(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[ipb.StreamMessage]:
            yield ipb.StreamMessage(invocation_id=on_other, output=ipb.Output(invocation_id=on_other, value=b"1"))

        for server in (ingress, other):
            server.call_script = server.subscribe_script = done
        async with Client(ingress.address) as client:
            assert [e async for e in client.subscribe(on_other)] == [StreamResult(on_other, 1)]
            assert [e async for e in client.stream("obj/run", key=key)] == [StreamResult(on_other, 1)]
        assert [m for m, _ in other.requests] == ["Subscribe", "CallStream"]
        assert ingress.requests == []
    finally:
        assert other.server is not None
        await other.server.stop(grace=None)


# ---------------------------------------------------------------------- the command line


async def test_call_follow_and_tail_print_the_streams_then_the_result(ingress: StreamingIngress) -> None:
    from typer.testing import CliRunner

    from endure.runtime.cli import app

    async def story(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[ipb.StreamMessage]:
        yield ipb.StreamMessage(invocation_id=INV, events=[chunk("default", 0, b"Hel"), chunk("default", 1, b"lo")])
        yield ipb.StreamMessage(invocation_id=INV, events=[
            chunk("progress", 0, b'{"p":1}', pb.CHUNK_JSON), chunk("default", 2, b"raw\xff", pb.CHUNK_BYTES),
            reset("default", 3, [2], 1), close("default", 4)],
            output=ipb.Output(invocation_id=INV, value=b'{"answer":42}'))

    ingress.call_script = ingress.subscribe_script = story
    runner = CliRunner()

    def cli(*args: str) -> Any:
        return runner.invoke(app, [*args, "--ingress", ingress.address])

    followed = await asyncio.to_thread(cli, "call", "agent/run", "--data", '{"q": 1}', "--follow")
    assert followed.exit_code == 0, followed.output
    assert followed.stdout_bytes == b'Hello\n{"p": 1}\nraw\xff\n{\n  "answer": 42\n}\n'
    assert "[stream 'default': step 1 runs again; what it wrote at offsets 2 is void]" in followed.stderr
    assert ingress.requests[0][1].input == b'{"q": 1}'

    tailed = await asyncio.to_thread(cli, "invocations", "tail", INV, "--json")
    assert tailed.exit_code == 0, tailed.output
    lines = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert [e["event"] for e in lines] == ["chunk", "chunk", "chunk", "chunk", "reset", "closed", "result"]
    assert lines[2] == {"event": "chunk", "stream": "progress", "offset": 0, "data": {"p": 1}, "encoding": "json"}
    assert lines[3]["data_base64"] == "cmF3/w=="
    assert lines[-1] == {"event": "result", "invocation_id": INV, "value": {"answer": 42}}
    assert ingress.requests[-1] == ("Subscribe", ipb.SubscribeRequest(invocation_id=INV))

    one = await asyncio.to_thread(cli, "invocations", "tail", INV, "--stream", "default", "--from", "1")
    assert one.exit_code == 0, one.output
    assert ingress.requests[-1][1] == ipb.SubscribeRequest(invocation_id=INV, stream="default", from_offset=1)
    assert one.stdout_bytes.startswith(b"loraw\xff\n")  # offset 0 is before --from; other streams are not followed

    refused = await asyncio.to_thread(cli, "invocations", "tail", INV, "--from", "3")
    assert refused.exit_code == 2 and "--stream" in refused.output
