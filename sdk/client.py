"""Client: invoke handlers through the ingress, wait for results, complete awakeables and promises.

`Client` is async; `SyncClient` wraps it for scripts. Handlers are named by strings or, typed, by
the decorated function itself, so the input and output are (de)serialized with its types. Errors
are exceptions: `InvocationError` for a handler's terminal failure (`InvocationCancelled` and
`InvocationKilled` when the failure's cause says so, never its text), `RequestError` (with the
gRPC status code) for a request the ingress refused.

Routing. A runtime of several nodes (`endure serve --processes N`) serves every request on any
node's ingress, but a keyed request that reaches a node that does not own its partition is
forwarded to the owner, which costs CPU on both. So the client asks the ingress for its routes
once (GetRoutes, at the first request it routes) and sends each keyed request (an object or workflow
key, an idempotency key, an invocation or awakeable id, a promise) straight to the owner node's own
ingress address, over one channel per node. Unkeyed new invocations are spread over the nodes in
turn (the node that takes one starts it on a partition of its own, so one client's load is not
pinned to the node its connection reached). A runtime without GetRoutes, or one node, means
no routing. If a node's channel fails before the request left (gRPC could not connect), that one
request is sent again to the address given, and the routes are read again; a request that may
have been delivered is never sent twice. `routing=False` sends everything to the address given.

Streams. `client.stream(...)` starts an invocation and yields its stream events as they are made
durable, then its result (`StreamResult`); `client.subscribe(invocation_id, ...)` follows one that
exists, from an offset. The events are typed (endure.sdk.stream_events). If the connection is lost
(UNAVAILABLE: a runtime restart), the iterator subscribes again from the next offset of every
stream it has seen, with backoff, for up to `reconnect_timeout` seconds without progress: it never
yields an offset twice and never skips one.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping
from contextlib import aclosing
from datetime import timedelta
from typing import Any, TypeVar

import grpc

from endure.proto import ingress_pb2 as ipb
from endure.proto import ingress_pb2_grpc as ipb_grpc
from endure.proto import journal, routing
from endure.proto import records_pb2 as pb
from endure.sdk.backoff import Backoff, Jitter
from endure.sdk.definitions import HandlerDefinition, handler_definition
from endure.sdk.stream_events import (
    ResumeCursor,
    StreamChunk,
    StreamClosed,
    StreamItem,
    StreamReset,
    StreamResult,
    StreamView,
    decode_event,
)

__all__ = [
    "Client",
    "InvocationCancelled",
    "InvocationError",
    "InvocationKilled",
    "RequestError",
    "ResumeCursor",
    "StreamChunk",
    "StreamClosed",
    "StreamItem",
    "StreamReset",
    "StreamResult",
    "StreamView",
    "SyncClient",
]

T = TypeVar("T")

_PRIORITIES = {"high": pb.HIGH, "normal": pb.NORMAL, "low": pb.LOW}
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
]
_ROUTES_TIMEOUT_S = 5.0  # a GetRoutes that takes longer: no routing for now
_ROUTES_RETRY_S = 5.0  # after a GetRoutes that failed, the next try at the earliest
_ROUTES_REFRESH_S = 1.0  # after a node's channel failed, read the routes again at most this often
# What gRPC answers when it found no connection for a call: the request never left this process.
_NOT_SENT = ("failed to connect to all addresses", "DNS resolution failed")
_WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")
# Between reconnects of a followed stream: from 50 ms, doubling, at most 2 s, spread +-20%.
_RECONNECT = Backoff(0.05, 2.0, 2.0, jitter=Jitter.symmetric(0.2))


class RequestError(Exception):
    """The ingress refused the request; `code` is the gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class InvocationError(Exception):
    """The handler ended with a terminal failure; `cause` is the failure's typed cause."""

    cause: pb.FailureCause.ValueType = pb.FAILURE_ERROR
    _ended = "failed"  # how str() says it ended: from the cause, never from the message

    def __init__(self, invocation_id: str, code: int, message: str) -> None:
        super().__init__(f"invocation {invocation_id} {self._ended} ({code}): {message}")
        self.invocation_id = invocation_id
        self.code = code
        self.message = message

    @staticmethod
    def from_failure(invocation_id: str, failure: pb.Failure) -> InvocationError:
        """The exception for an output's failure, by its cause (a handler's own
        TerminalError("cancelled", 409) stays a plain InvocationError)."""
        if journal.is_cancellation(failure):
            return InvocationCancelled(invocation_id, failure.code, failure.message)
        if journal.is_kill(failure):
            return InvocationKilled(invocation_id, failure.code, failure.message)
        return InvocationError(invocation_id, failure.code, failure.message)


class InvocationCancelled(InvocationError):
    """The invocation was cancelled (by an operator or its caller) and ended after its compensations."""

    cause = pb.FAILURE_CANCELLED
    _ended = "was cancelled"


class InvocationKilled(InvocationError):
    """The invocation was killed: it stopped at once, without compensations."""

    cause = pb.FAILURE_KILLED
    _ended = "was killed"


def _target(handler: Any, key: str | None) -> tuple[pb.Target, HandlerDefinition | None]:
    if isinstance(handler, str):
        service, sep, name = handler.partition("/")
        if not sep:
            raise ValueError(f"name a handler as 'service/handler', got {handler!r}")
        return pb.Target(service=service, handler=name, key=key or ""), None
    definition = handler_definition(handler)
    if definition is None:
        raise TypeError(f"{handler!r} is not an Endure handler (decorate it with @service.handler())")
    return pb.Target(service=definition.service, handler=definition.name, key=key or ""), definition


def _encode(definition: HandlerDefinition | None, arg: Any) -> bytes:
    if definition is not None:
        return definition.input_serde.dumps(arg) if definition.has_input else b""
    return b"" if arg is None else json.dumps(arg).encode()


def _decode(definition: HandlerDefinition | None, output: ipb.Output) -> Any:
    if output.WhichOneof("result") == "failure":
        raise InvocationError.from_failure(output.invocation_id, output.failure)
    if definition is not None:
        return definition.output_serde.loads(output.value)
    return json.loads(output.value) if output.value else None


class _Follower:
    """What a stream's messages mean, one after another: the new events (a reconnect's overlap
    dropped), the invocation id once the server names it, and the end (a result, a failure, or the
    one followed stream closed)."""

    def __init__(self, definition: HandlerDefinition | None, cursor: ResumeCursor,
                 invocation_id: str | None = None) -> None:
        self.definition = definition
        self.cursor = cursor
        self.invocation_id = invocation_id
        self.finished = False

    def on_message(self, msg: ipb.StreamMessage) -> tuple[list[StreamItem], InvocationError | None]:
        """The items to yield for one message, and the failure to raise after them."""
        if msg.invocation_id and not self.invocation_id:
            self.invocation_id = msg.invocation_id
        items: list[StreamItem] = [decode_event(e) for e in msg.events if self.cursor.accept(e)]
        if msg.HasField("output"):
            self.finished = True
            inv = msg.output.invocation_id or self.invocation_id or ""
            try:
                value = _decode(self.definition, msg.output)
            except InvocationError as exc:
                return items, exc
            items.append(StreamResult(inv, value))
        elif msg.closed:
            self.finished = True
        return items, None


def _not_delivered(exc: grpc.aio.AioRpcError) -> bool:
    """UNAVAILABLE because gRPC had no connection to send the call on (nothing was answered): the
    server never saw it, so sending it elsewhere cannot run it twice."""
    return (
        exc.code() == grpc.StatusCode.UNAVAILABLE
        and (exc.details() or "").startswith(_NOT_SENT)
        and not exc.initial_metadata()
    )


def _dialable(address: str, given: str) -> str:
    """A node's published ingress address, with a wildcard host (it listens on every interface)
    replaced by the host of the address the client was given."""
    host, sep, port = address.rpartition(":")
    if sep and host in _WILDCARD_HOSTS:
        return f"{given.rpartition(':')[0] or '127.0.0.1'}:{port}"
    return address


class _Node:
    """One node's own ingress: a channel opened at its first request, and the requests on it (a
    channel the routes no longer name is closed once they have ended)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.channel = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
        self.stub = ipb_grpc.IngressStub(self.channel)
        self.calls = 0
        self.retired = False


class _RouteTable:
    """From GetRoutes: the partition count, and by partition the own ingress address of its
    owner (None: the address the client was given)."""

    def __init__(self, partitions: int, by_partition: tuple[str | None, ...]) -> None:
        self.partitions = partitions
        self.by_partition = by_partition
        self.nodes = tuple(dict.fromkeys(by_partition))  # each node once, in partition order
        self._turn = itertools.count()

    def next_node(self) -> str | None:
        """Nodes in turn, for work that may start on any of them."""
        return self.nodes[next(self._turn) % len(self.nodes)]


class Client:
    def __init__(
        self, address: str = "127.0.0.1:7070", *, api_key: str | None = None, routing: bool = True
    ) -> None:
        self.address = address
        self.routing = routing  # False: every request to `address` (keyed ones may be forwarded there)
        self._channel = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
        self._stub = ipb_grpc.IngressStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        self._routes: _RouteTable | None = None
        self._routes_unsupported = False  # the runtime has no GetRoutes (UNIMPLEMENTED)
        self._routes_stale = False
        self._first_routes: asyncio.Future[None] | None = None
        self._refresh: asyncio.Future[None] | None = None
        self._next_refresh = 0.0
        self._nodes: dict[str, _Node] = {}
        self._closing: set[asyncio.Future[None]] = set()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for task in (self._first_routes, self._refresh):
            if task is not None and not task.done():
                task.cancel()
        nodes, self._nodes = list(self._nodes.values()), {}
        for node in nodes:
            await node.channel.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        await self._channel.close()

    # ------------------------------------------------------------------ routing

    async def _load_routes(self) -> None:
        """Ask the ingress for its routes; keep the table from before when that fails."""
        try:
            routes = await self._stub.GetRoutes(
                ipb.RoutesRequest(), timeout=_ROUTES_TIMEOUT_S, metadata=self._metadata
            )
        except Exception as exc:  # no routes is no routing, not an error: requests go to the address given
            if isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                self._routes_unsupported = True  # a runtime from before routing: never ask again
            self._next_refresh = time.monotonic() + _ROUTES_RETRY_S
            return
        finally:
            self._refresh = None
        self._set_routes(routes)
        # A node of several without an address is not serving yet (it is restarting): its
        # partitions go to the address given until a later read (at most every _ROUTES_REFRESH_S,
        # at a keyed request) finds its new one.
        self._routes_stale = len(routes.nodes) > 1 and any(not n.address for n in routes.nodes)
        self._next_refresh = time.monotonic() + _ROUTES_REFRESH_S

    def _set_routes(self, routes: ipb.Routes) -> None:
        addresses = {n.id: _dialable(n.address, self.address) for n in routes.nodes if n.address}
        if routes.partitions == 0 or len(routes.owners) != routes.partitions:
            self._routes = None  # not a table this client understands: no routing
            return
        by_partition = tuple(
            None if (a := addresses.get(owner)) is None or a == self.address else a for owner in routes.owners
        )
        self._routes = _RouteTable(routes.partitions, by_partition)
        for address in set(self._nodes) - set(by_partition):  # a node that moved (restarted)
            node = self._nodes.pop(address)
            node.retired = True
            self._release(node)

    def _release(self, node: _Node) -> None:
        if node.retired and node.calls == 0:
            task = asyncio.ensure_future(node.channel.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _table(self) -> _RouteTable | None:
        """The routes: read at the first routed request (which waits for them), later again in the
        background when a node's channel failed."""
        if self._routes_unsupported:
            return None
        if self._first_routes is None:
            self._first_routes = asyncio.ensure_future(self._load_routes())
        if not self._first_routes.done():
            await asyncio.shield(self._first_routes)
        elif self._routes is None or self._routes_stale:
            self._start_refresh()
        return self._routes

    def _start_refresh(self) -> None:
        """Read the routes again in the background, unless a read runs or the last was too recent
        (then the next keyed request starts it)."""
        if (
            self._refresh is None
            and not self._routes_unsupported
            and self._first_routes is not None
            and self._first_routes.done()
            and time.monotonic() >= self._next_refresh
        ):
            self._refresh = asyncio.ensure_future(self._load_routes())

    async def _node_for(self, request: Any) -> _Node | None:
        """The owner node of the request's partition, or None: the address given."""
        if not self.routing:
            return None
        pkey = routing.request_partition_key(request)
        spread = pkey is None and isinstance(request, (ipb.CallRequest, ipb.SendRequest))
        if pkey is None and not spread:
            return None
        table = await self._table()
        if table is None:
            return None
        address = table.next_node() if pkey is None else table.by_partition[pkey % table.partitions]
        if address is None:
            return None
        node = self._nodes.get(address)
        if node is None:
            node = self._nodes[address] = _Node(address)
        return node

    async def _rpc(self, method: str, request: Any, timeout: float | None = None) -> Any:
        """Send the request to its partition's owner when the routes know it, else (and if that
        node could not be reached at all) to the address given."""
        node = await self._node_for(request)
        if node is not None:
            deadline = None if timeout is None else time.monotonic() + timeout
            node.calls += 1
            try:
                return await getattr(node.stub, method)(request, timeout=timeout, metadata=self._metadata)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    self._routes_stale = True  # the node may have moved: read the routes again
                    self._start_refresh()
                if not _not_delivered(exc):
                    raise RequestError(exc.code(), exc.details() or "") from None
                if deadline is not None:
                    timeout = max(0.0, deadline - time.monotonic())
            finally:
                node.calls -= 1
                self._release(node)
        try:
            return await getattr(self._stub, method)(request, timeout=timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise RequestError(exc.code(), exc.details() or "") from None

    # ------------------------------------------------------------------ requests

    @staticmethod
    def _request(
        handler: Any,
        arg: Any,
        key: str | None,
        idempotency_key: str | None,
        priority: str,
        headers: dict[str, str] | None,
    ) -> tuple[ipb.CallRequest, HandlerDefinition | None]:
        target, definition = _target(handler, key)
        request = ipb.CallRequest(
            target=target,
            input=_encode(definition, arg),
            idempotency_key=idempotency_key or "",
            priority=_PRIORITIES[priority],
        )
        request.headers.update(headers or {})
        return request, definition

    async def call(
        self,
        handler: Any,
        arg: Any = None,
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        priority: str = "normal",
        timeout: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Invoke and wait for the result. A timeout ends the wait; the invocation keeps running."""
        request, definition = self._request(handler, arg, key, idempotency_key, priority, headers)
        return _decode(definition, await self._rpc("Call", request, timeout))

    async def send(
        self,
        handler: Any,
        arg: Any = None,
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        delay: timedelta | None = None,
        priority: str = "normal",
        headers: dict[str, str] | None = None,
    ) -> str:
        """Invoke without waiting; returns the invocation id once the invocation is durable."""
        request, _ = self._request(handler, arg, key, idempotency_key, priority, headers)
        delay_ms = int(delay.total_seconds() * 1000) if delay else 0
        response = await self._rpc("Send", ipb.SendRequest(call=request, delay_ms=delay_ms))
        return str(response.invocation_id)

    async def submit(self, workflow_main: Any, arg: Any = None, *, key: str) -> str:
        """Start a workflow's main handler for key (once per key); returns its invocation id."""
        request, _ = self._request(workflow_main, arg, key, None, "normal", None)
        return str((await self._rpc("Submit", request)).invocation_id)

    def _attach_request(
        self, invocation_id: str | None, handler: Any, key: str | None, idempotency_key: str | None
    ) -> tuple[ipb.AttachRequest, HandlerDefinition | None]:
        if invocation_id:
            definition = (
                handler_definition(handler) if handler is not None and not isinstance(handler, str) else None
            )
            return ipb.AttachRequest(invocation_id=invocation_id), definition
        if handler is None:
            raise ValueError(
                "attach needs an invocation id, or a handler with an idempotency key or workflow key"
            )
        target, definition = _target(handler, key)
        ref = ipb.IdempotencyRef(target=target, idempotency_key=idempotency_key or "")
        return ipb.AttachRequest(idempotency=ref), definition

    async def attach(
        self,
        invocation_id: str | None = None,
        *,
        handler: Any = None,
        key: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Wait for an existing invocation's result (by id, idempotency key, or workflow key)."""
        request, definition = self._attach_request(invocation_id, handler, key, idempotency_key)
        return _decode(definition, await self._rpc("Attach", request, timeout))

    async def get_output(
        self,
        invocation_id: str | None = None,
        *,
        handler: Any = None,
        key: str | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[bool, Any]:
        """(ready, result) without waiting; raises InvocationError if it failed."""
        request, definition = self._attach_request(invocation_id, handler, key, idempotency_key)
        response = await self._rpc("GetOutput", request)
        if not response.ready:
            return False, None
        return True, _decode(definition, response.output)

    async def resolve_awakeable(self, awakeable_id: str, value: Any = None) -> None:
        await self._rpc(
            "ResolveAwakeable",
            ipb.ResolveAwakeableRequest(awakeable_id=awakeable_id, value=json.dumps(value).encode()),
        )

    async def reject_awakeable(self, awakeable_id: str, reason: str, code: int = 500) -> None:
        await self._rpc(
            "RejectAwakeable",
            ipb.RejectAwakeableRequest(awakeable_id=awakeable_id, reason=reason, code=code),
        )

    async def resolve_promise(self, workflow: str, key: str, name: str, value: Any = None) -> None:
        await self._rpc(
            "ResolvePromise",
            ipb.ResolvePromiseRequest(
                workflow=workflow, key=key, name=name, value=json.dumps(value).encode()
            ),
        )

    async def reject_promise(self, workflow: str, key: str, name: str, reason: str, code: int = 500) -> None:
        await self._rpc(
            "ResolvePromise",
            ipb.ResolvePromiseRequest(
                workflow=workflow, key=key, name=name, failure=pb.Failure(code=code, message=reason)
            ),
        )

    # ------------------------------------------------------------------ streams

    async def stream(
        self,
        handler: Any,
        arg: Any = None,
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
        priority: str = "normal",
        reconnect_timeout: float = 60.0,
    ) -> AsyncGenerator[StreamItem, None]:
        """Invoke and follow: the invocation's stream events as they are made durable, then its
        StreamResult (a terminal failure raises InvocationError at the end instead).

        A lost connection resumes by invocation id (the server names it in its first message); with
        an idempotency key a call lost before that is sent again (the ingress dedups it), without
        one it raises RequestError."""
        request, definition = self._request(handler, arg, key, idempotency_key, priority, headers)
        follower = _Follower(definition, ResumeCursor())
        async with aclosing(self._follow("CallStream", request, follower, reconnect_timeout,
                                         resend=bool(idempotency_key))) as items:
            async for item in items:
                yield item

    async def subscribe(
        self,
        invocation_id: str,
        stream: str | None = None,
        from_offset: int = 0,
        from_offsets: Mapping[str, int] | None = None,
        *,
        handler: Any = None,
        reconnect_timeout: float = 60.0,
    ) -> AsyncGenerator[StreamItem, None]:
        """Follow an invocation (running or finished): the events of `stream` from `from_offset`,
        or of every stream from `from_offsets` (missing: 0), then its StreamResult. Following one
        stream ends at its StreamClosed if it closes before the invocation finishes. `handler` (the
        decorated function) decodes the result with its output type."""
        if stream is None and from_offset:
            raise ValueError("from_offset is an offset of one stream: name it, or give from_offsets")
        if stream is not None and from_offsets:
            raise ValueError("from_offsets is for following every stream: give from_offset with a stream")
        definition = handler_definition(handler) if handler is not None and not isinstance(handler, str) else None
        cursor = ResumeCursor(stream, from_offset, from_offsets)
        follower = _Follower(definition, cursor, invocation_id)
        async with aclosing(self._follow("Subscribe", cursor.request(invocation_id), follower,
                                         reconnect_timeout, resend=True)) as items:
            async for item in items:
                yield item

    async def _follow(
        self, method: str, request: Any, follower: _Follower, reconnect_timeout: float, *, resend: bool
    ) -> AsyncGenerator[StreamItem, None]:
        """Read messages into items until the end, subscribing again after a lost connection."""
        delays = _RECONNECT.iter()
        deadline: float | None = None  # set at a loss; cleared by progress
        while True:
            try:
                async with aclosing(self._stream_rpc(method, request)) as messages:
                    async for msg in messages:
                        items, failure = follower.on_message(msg)
                        if items or follower.finished:
                            deadline = None
                            delays.reset()
                        for item in items:
                            yield item
                        if failure is not None:
                            raise failure
                        if follower.finished:
                            return
                lost = "the stream ended before the invocation's result"
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise RequestError(exc.code(), exc.details() or "") from None
                lost = exc.details() or "unavailable"
            if follower.invocation_id:
                method, request = "Subscribe", follower.cursor.request(follower.invocation_id)
            elif not resend:
                raise RequestError(grpc.StatusCode.UNAVAILABLE,
                                   f"{method} lost before the invocation id was known: {lost}")
            now = time.monotonic()
            if deadline is None:
                deadline = now + reconnect_timeout
            if now >= deadline:
                raise RequestError(grpc.StatusCode.UNAVAILABLE,
                                   f"could not follow the stream again within {reconnect_timeout:g}s: {lost}")
            await asyncio.sleep(min(next(delays), deadline - now))

    async def _stream_rpc(self, method: str, request: Any) -> AsyncGenerator[ipb.StreamMessage, None]:
        """A server-streaming call routed like `_rpc`: to the owner of the request's partition, or
        to the address given when that node could not be reached at all (nothing was sent)."""
        node = await self._node_for(request)
        if node is not None:
            node.calls += 1
            call = getattr(node.stub, method)(request, metadata=self._metadata)
            received = False
            try:
                async for msg in call:
                    received = True
                    yield msg
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    self._routes_stale = True  # the node may have moved: read the routes again
                    self._start_refresh()
                if received or not _not_delivered(exc):
                    raise
            finally:
                call.cancel()
                node.calls -= 1
                self._release(node)
        call = getattr(self._stub, method)(request, metadata=self._metadata)
        try:
            async for msg in call:
                yield msg
        finally:
            call.cancel()

    async def cancel(self, invocation_id: str) -> None:
        await self._rpc("Cancel", ipb.InvocationRequest(invocation_id=invocation_id))

    async def kill(self, invocation_id: str) -> None:
        await self._rpc("Kill", ipb.InvocationRequest(invocation_id=invocation_id))


class SyncClient:
    """A blocking wrapper of Client for scripts and notebooks: same methods, no await."""

    def __init__(
        self, address: str = "127.0.0.1:7070", *, api_key: str | None = None, routing: bool = True
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = self._run(self._make(address, api_key, routing))

    @staticmethod
    async def _make(address: str, api_key: str | None, routing: bool) -> Client:
        return Client(address, api_key=api_key, routing=routing)

    def _run(self, coro: Awaitable[T]) -> T:
        return self._loop.run_until_complete(coro)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)
        return lambda *args, **kwargs: self._run(method(*args, **kwargs))

    def stream(self, handler: Any, arg: Any = None, **kwargs: Any) -> Iterator[StreamItem]:
        """`Client.stream` as a generator."""
        return self._iterate(self._client.stream(handler, arg, **kwargs))

    def subscribe(self, invocation_id: str, stream: str | None = None, from_offset: int = 0,
                  from_offsets: Mapping[str, int] | None = None, **kwargs: Any) -> Iterator[StreamItem]:
        """`Client.subscribe` as a generator."""
        return self._iterate(self._client.subscribe(invocation_id, stream, from_offset, from_offsets, **kwargs))

    def _iterate(self, items: AsyncGenerator[StreamItem, None]) -> Iterator[StreamItem]:
        try:
            while True:
                try:
                    item = self._run(items.__anext__())
                except StopAsyncIteration:
                    return
                yield item
        finally:  # the caller stopped early: end the call
            if not self._loop.is_closed():
                self._run(items.aclose())

    def close(self) -> None:
        self._run(self._client.close())
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
