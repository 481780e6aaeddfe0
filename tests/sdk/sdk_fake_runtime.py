"""A scripted runtime side of WorkerEndpoint.Connect over real loopback gRPC, for SDK unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc
import grpc.aio

from endure.proto import ids, records_pb2, worker_pb2, worker_pb2_grpc

TIMEOUT = 5.0


class Session:
    """One worker stream as the runtime sees it."""

    def __init__(self, register: worker_pb2.Register) -> None:
        self.register = register
        self.frames: asyncio.Queue[worker_pb2.WorkerFrame] = asyncio.Queue()
        self.messages: list[worker_pb2.WorkerMessage] = []
        self.outbox: asyncio.Queue[worker_pb2.RuntimeMessage | None] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.auto_ack = False
        # Drain control is answered like the real runtime does and kept out of `frames`.
        self.drains = 0
        self.releases: list[worker_pb2.ReleaseFrame] = []

    # ---------------------------------------------------------------- runtime -> worker

    def send(self, *frames: worker_pb2.RuntimeFrame) -> None:
        self.outbox.put_nowait(worker_pb2.RuntimeMessage(frames=list(frames)))

    def start(
        self,
        service: str,
        handler: str,
        input: bytes = b"",
        *,
        key: str = "",
        invocation_id: str | None = None,
        attempt: int = 1,
        journal: Iterable[records_pb2.JournalEntry] = (),
        state: dict[str, bytes] | None = None,
        state_complete: bool = True,
        cancelled: bool = False,
        handler_kind: int = records_pb2.SERVICE,
        sandbox_network: Iterable[str] = (),
    ) -> str:
        inv = invocation_id or ids.new_invocation_id()
        self.send(
            worker_pb2.RuntimeFrame(
                start=worker_pb2.StartFrame(
                    invocation_id=inv,
                    attempt=attempt,
                    target=records_pb2.Target(service=service, handler=handler, key=key),
                    handler_kind=handler_kind,  # type: ignore[arg-type]
                    input=input,
                    journal=list(journal),
                    state=[worker_pb2.StateEntry(key=k, value=v) for k, v in (state or {}).items()],
                    state_complete=state_complete,
                    cancelled=cancelled,
                    sandbox_network=list(sandbox_network),
                )
            )
        )
        return inv

    def ack(self, inv: str, index: int, attempt: int = 1) -> None:
        self.send(
            worker_pb2.RuntimeFrame(ack=worker_pb2.AckFrame(invocation_id=inv, attempt=attempt, index=index))
        )

    def complete(
        self,
        inv: str,
        index: int,
        *,
        value: bytes | None = None,
        failure: records_pb2.Failure | None = None,
        attempt: int = 1,
    ) -> None:
        c = worker_pb2.CompleteFrame(invocation_id=inv, attempt=attempt, index=index)
        if value is not None:
            c.value = value
        elif failure is not None:
            c.failure.CopyFrom(failure)
        else:
            c.void.SetInParent()
        self.send(worker_pb2.RuntimeFrame(complete=c))

    def cancel(self, inv: str, attempt: int = 1) -> None:
        self.send(worker_pb2.RuntimeFrame(cancel=worker_pb2.CancelFrame(invocation_id=inv, attempt=attempt)))

    def abort(self, inv: str, attempt: int = 1) -> None:
        self.send(worker_pb2.RuntimeFrame(abort=worker_pb2.AbortFrame(invocation_id=inv, attempt=attempt)))

    def close(self) -> None:
        self.outbox.put_nowait(None)

    # ---------------------------------------------------------------- worker -> runtime

    async def next(self, timeout: float = TIMEOUT) -> worker_pb2.WorkerFrame:
        return await asyncio.wait_for(self.frames.get(), timeout)

    async def expect(self, kind: str, timeout: float = TIMEOUT) -> Any:
        frame = await self.next(timeout)
        which = frame.WhichOneof("frame")
        assert which == kind, f"expected {kind}, got {frame}"
        return getattr(frame, kind)

    async def expect_entry(self, kind: str, index: int | None = None, *, ack: bool = False) -> Any:
        ef = await self.expect("entry")
        assert ef.entry.WhichOneof("kind") == kind, f"expected {kind} entry, got {ef}"
        if index is not None:
            assert ef.index == index, f"expected index {index}, got {ef}"
        if ack:
            self.ack(ef.invocation_id, ef.index, ef.attempt)
        return ef

    async def expect_output(self, index: int) -> records_pb2.OutputEntry:
        """The OutputEntry at `index` followed by the EndFrame."""
        ef = await self.expect_entry("output", index)
        end = await self.expect("end")
        assert (end.invocation_id, end.attempt) == (ef.invocation_id, ef.attempt)
        return ef.entry.output

    async def until_done(self, timeout: float = TIMEOUT) -> tuple[list[worker_pb2.EntryFrame], Any]:
        """Ack every entry until End / Fail / Suspend; returns (entries, final frame)."""
        entries: list[worker_pb2.EntryFrame] = []
        while True:
            frame = await self.next(timeout)
            which = frame.WhichOneof("frame")
            if which == "entry":
                entries.append(frame.entry)
                self.ack(frame.entry.invocation_id, frame.entry.index, frame.entry.attempt)
            else:
                return entries, frame

    async def no_frame(self, within: float = 0.2) -> None:
        try:
            frame = await asyncio.wait_for(self.frames.get(), within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame {frame}")


class FakeRuntime(worker_pb2_grpc.WorkerEndpointServicer):
    """Accepts worker streams; each registered stream becomes a Session in `sessions`."""

    def __init__(self) -> None:
        self.sessions: asyncio.Queue[Session] = asyncio.Queue()
        self.reject: tuple[grpc.StatusCode, str] | None = None
        self.peers: list[str] = []  # the other nodes' endpoints, told to each worker that registers
        self.server: grpc.aio.Server | None = None
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        self.server = grpc.aio.server()
        worker_pb2_grpc.add_WorkerEndpointServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(grace=None)
            self.server = None

    async def session(self, timeout: float = TIMEOUT) -> Session:
        return await asyncio.wait_for(self.sessions.get(), timeout)

    async def Connect(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[worker_pb2.WorkerMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[worker_pb2.RuntimeMessage]:
        first = await request_iterator.__anext__()
        assert first.frames[0].WhichOneof("frame") == "register", first
        if self.reject is not None:
            await context.abort(self.reject[0], self.reject[1])
        session = Session(first.frames[0].register)

        async def pump() -> None:
            try:
                async for msg in request_iterator:
                    session.messages.append(msg)
                    for f in msg.frames:
                        if f.HasField("drain"):
                            session.drains += 1
                            session.send(worker_pb2.RuntimeFrame(drained=worker_pb2.DrainedFrame()))
                        elif f.HasField("release"):
                            session.releases.append(f.release)
                        else:
                            session.frames.put_nowait(f)
            except (grpc.aio.AioRpcError, asyncio.CancelledError):
                pass
            finally:
                session.closed.set()

        task = asyncio.create_task(pump())
        self.sessions.put_nowait(session)
        try:
            yield worker_pb2.RuntimeMessage(
                frames=[worker_pb2.RuntimeFrame(
                    registered=worker_pb2.RegisteredFrame(worker_id="w-1", peers=self.peers))]
            )
            while True:
                get = asyncio.create_task(session.outbox.get())
                closed = asyncio.create_task(session.closed.wait())
                done, _ = await asyncio.wait({get, closed}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    return
                closed.cancel()
                msg = get.result()
                if msg is None:
                    return
                yield msg
        finally:
            task.cancel()


def entry(kind: str, name: str = "", **result: Any) -> records_pb2.JournalEntry:
    """A recorded journal entry: entry("run", "fetch", value=b"1"), entry("sleep"), ..."""
    e = records_pb2.JournalEntry(name=name)
    getattr(e, kind).SetInParent()
    if "value" in result:
        e.value = result["value"]
    elif "failure" in result:
        e.failure.CopyFrom(result["failure"])
    elif result.get("void"):
        e.void.SetInParent()
    return e
