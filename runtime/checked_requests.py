"""Register gRPC servicers so that a request that does not parse is answered INVALID_ARGUMENT.

gRPC's own handling of a deserializer that raises is `UNKNOWN` "Unexpected <class DecodeError>"
(and a logged traceback): to the client that looks like a server bug, not a bad request. Here the
deserializer of every method of a servicer returns an `Undecodable` marker instead of raising, and
the method's behaviour answers a marker with INVALID_ARGUMENT naming the expected message type
before the servicer sees it. One wrapper for every method, added at registration, so a new method
is covered without code of its own.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

__all__ = ["Undecodable", "add_checked", "checked_handler"]

Deserializer = Callable[[bytes], object]


@dataclass(frozen=True)
class Undecodable:
    """What a checked deserializer returns for bytes that are not a valid message of its type."""

    type_name: str
    error: str

    @property
    def message(self) -> str:
        return f"request is not a valid {self.type_name}: {self.error}"


def _type_name(deserializer: Deserializer) -> str:
    """The protobuf full name of the type a generated deserializer (`Message.FromString`) builds."""
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    name = getattr(descriptor, "full_name", None)
    if isinstance(name, str):
        return name
    return getattr(owner, "__qualname__", None) or getattr(deserializer, "__qualname__", repr(deserializer))


def _checked_deserializer(deserializer: Deserializer) -> Deserializer:
    type_name = _type_name(deserializer)

    def deserialize(raw: bytes) -> object:
        try:
            return deserializer(raw)
        except DecodeError as exc:
            return Undecodable(type_name, str(exc) or "it does not parse")

    return deserialize


async def _refuse(request: Undecodable, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)


def _checked_requests(requests: AsyncIterator[object],
                      context: grpc.aio.ServicerContext) -> AsyncIterator[object]:
    """The stream of requests, ending the call INVALID_ARGUMENT at the first that did not parse."""

    async def checked() -> AsyncIterator[object]:
        async for request in requests:
            if isinstance(request, Undecodable):
                await _refuse(request, context)
            yield request

    return checked()


def _wrap_unary_request(behavior: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behavior):
        async def unary_stream(request: object, context: grpc.aio.ServicerContext) -> AsyncIterator[object]:
            if isinstance(request, Undecodable):
                await _refuse(request, context)
            async for response in behavior(request, context):
                yield response

        return unary_stream

    async def unary(request: object, context: grpc.aio.ServicerContext) -> object:
        if isinstance(request, Undecodable):
            await _refuse(request, context)
        return await behavior(request, context)

    return unary


def _wrap_stream_request(behavior: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behavior):
        async def stream_stream(requests: AsyncIterator[object],
                                context: grpc.aio.ServicerContext) -> AsyncIterator[object]:
            async for response in behavior(_checked_requests(requests, context), context):
                yield response

        return stream_stream

    async def stream(requests: AsyncIterator[object], context: grpc.aio.ServicerContext) -> object:
        return await behavior(_checked_requests(requests, context), context)

    return stream


class UncheckableHandler(TypeError):
    """A method handler whose behaviour is not async: the wrapper would block the event loop."""


def checked_handler(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """The same method handler, answering requests that do not parse with INVALID_ARGUMENT."""
    if handler.request_deserializer is None:
        return handler
    field = {(False, False): "unary_unary", (False, True): "unary_stream",
             (True, False): "stream_unary", (True, True): "stream_stream"}[
        (bool(handler.request_streaming), bool(handler.response_streaming))]
    behavior = getattr(handler, field)
    if not (inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)):
        raise UncheckableHandler(f"{field} behaviour {behavior!r} is not async")
    wrap = _wrap_stream_request if handler.request_streaming else _wrap_unary_request
    return handler._replace(request_deserializer=_checked_deserializer(handler.request_deserializer),  # type: ignore[attr-defined]
                            **{field: wrap(behavior)})


class _CheckedGenericHandler(grpc.GenericRpcHandler):
    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self._inner = inner

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = self._inner.service(handler_call_details)
        return None if handler is None else checked_handler(handler)


class _Registrar:
    """Stands for the server while a generated `add_*Servicer_to_server` registers its methods."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(tuple(_CheckedGenericHandler(h) for h in handlers))

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self._server.add_registered_method_handlers(service, {m: checked_handler(h) for m, h in handlers.items()})


def add_checked(add_to_server: Callable[[Any, Any], None], servicer: object, server: grpc.aio.Server) -> None:
    """`add_to_server(servicer, server)` (a generated registration function), every method checked."""
    add_to_server(servicer, _Registrar(server))
