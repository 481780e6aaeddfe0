"""The gRPC service workers connect to: one bidirectional stream per worker process.

A runtime of several nodes has one endpoint per node. The registration answer lists the other
nodes' endpoints (`peers`), and the worker opens one stream to each, so a worker pointed at one
address serves the partitions of every node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence

import grpc

from endure.proto import worker_pb2 as wpb
from endure.proto import worker_pb2_grpc as wpb_grpc
from endure.runtime.invoker.invoker import Invoker
from endure.runtime.invoker.registry import RegistrationError, ServiceRegistry
from endure.runtime.invoker.session import WorkerSession

log = logging.getLogger("endure.invoker")


def no_peers() -> Sequence[str]:
    """The peer list of a runtime of one node."""
    return ()


class WorkerEndpoint(wpb_grpc.WorkerEndpointServicer):
    """`peers` gives, at each registration, the host:port worker endpoints of the other nodes."""

    def __init__(self, invoker: Invoker, registry: ServiceRegistry,
                 peers: Callable[[], Sequence[str]] = no_peers) -> None:
        self._invoker = invoker
        self._registry = registry
        self._peers = peers

    async def Connect(self, request_iterator: AsyncIterator[wpb.WorkerMessage],  # noqa: N802 (gRPC name)
                      context: grpc.aio.ServicerContext) -> None:
        try:
            first = await request_iterator.__anext__()
        except StopAsyncIteration:
            return
        if not first.frames or first.frames[0].WhichOneof("frame") != "register":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "the first message on a worker stream must start with a Register frame")
        register = first.frames[0].register
        try:
            await self._registry.register(register)
        except RegistrationError as exc:
            code = grpc.StatusCode.INVALID_ARGUMENT if exc.invalid else grpc.StatusCode.FAILED_PRECONDITION
            await context.abort(code, str(exc))
        session = WorkerSession(register)
        session.send(wpb.RuntimeFrame(registered=wpb.RegisteredFrame(worker_id=session.id, peers=list(self._peers()))))
        self._invoker.add_session(session)
        if len(first.frames) > 1:
            self._invoker.on_frames(session, first.frames[1:])

        async def read() -> None:
            try:
                async for message in request_iterator:
                    self._invoker.on_frames(session, message.frames)
            except (asyncio.CancelledError, grpc.RpcError):
                pass
            finally:
                session.close()

        reader = asyncio.create_task(read())
        try:
            while True:
                message = await session.next_message()
                if message is None:
                    break
                await context.write(message)
        finally:
            reader.cancel()
            self._invoker.remove_session(session)
