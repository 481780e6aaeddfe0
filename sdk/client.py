"""Client: invoke handlers through the ingress, wait for results, complete awakeables and promises.

`Client` is async; `SyncClient` wraps it for scripts. Handlers are named by strings or, typed, by
the decorated function itself, so the input and output are (de)serialized with its types. Errors
are exceptions: `InvocationError` for a handler's terminal failure (`InvocationCancelled` and
`InvocationKilled` when the failure's cause says so, never its text), `RequestError` (with the
gRPC status code) for a request the ingress refused.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

import grpc

from endure.proto import ingress_pb2 as ipb
from endure.proto import ingress_pb2_grpc as ipb_grpc
from endure.proto import journal
from endure.proto import records_pb2 as pb
from endure.sdk.definitions import HandlerDefinition, handler_definition

T = TypeVar("T")

_PRIORITIES = {"high": pb.HIGH, "normal": pb.NORMAL, "low": pb.LOW}


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


class Client:
    def __init__(self, address: str = "127.0.0.1:7070", *, api_key: str | None = None) -> None:
        self.address = address
        self._channel = grpc.aio.insecure_channel(
            address,
            options=[
                ("grpc.max_receive_message_length", 64 << 20),
                ("grpc.max_send_message_length", 64 << 20),
            ],
        )
        self._stub = ipb_grpc.IngressStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _rpc(self, method: Callable[..., Any], request: Any, timeout: float | None = None) -> Any:
        try:
            return await method(request, timeout=timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise RequestError(exc.code(), exc.details() or "") from None

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
        return _decode(definition, await self._rpc(self._stub.Call, request, timeout))

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
        response = await self._rpc(self._stub.Send, ipb.SendRequest(call=request, delay_ms=delay_ms))
        return str(response.invocation_id)

    async def submit(self, workflow_main: Any, arg: Any = None, *, key: str) -> str:
        """Start a workflow's main handler for key (once per key); returns its invocation id."""
        request, _ = self._request(workflow_main, arg, key, None, "normal", None)
        return str((await self._rpc(self._stub.Submit, request)).invocation_id)

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
        return _decode(definition, await self._rpc(self._stub.Attach, request, timeout))

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
        response = await self._rpc(self._stub.GetOutput, request)
        if not response.ready:
            return False, None
        return True, _decode(definition, response.output)

    async def resolve_awakeable(self, awakeable_id: str, value: Any = None) -> None:
        await self._rpc(
            self._stub.ResolveAwakeable,
            ipb.ResolveAwakeableRequest(awakeable_id=awakeable_id, value=json.dumps(value).encode()),
        )

    async def reject_awakeable(self, awakeable_id: str, reason: str, code: int = 500) -> None:
        await self._rpc(
            self._stub.RejectAwakeable,
            ipb.RejectAwakeableRequest(awakeable_id=awakeable_id, reason=reason, code=code),
        )

    async def resolve_promise(self, workflow: str, key: str, name: str, value: Any = None) -> None:
        await self._rpc(
            self._stub.ResolvePromise,
            ipb.ResolvePromiseRequest(
                workflow=workflow, key=key, name=name, value=json.dumps(value).encode()
            ),
        )

    async def reject_promise(self, workflow: str, key: str, name: str, reason: str, code: int = 500) -> None:
        await self._rpc(
            self._stub.ResolvePromise,
            ipb.ResolvePromiseRequest(
                workflow=workflow, key=key, name=name, failure=pb.Failure(code=code, message=reason)
            ),
        )

    async def cancel(self, invocation_id: str) -> None:
        await self._rpc(self._stub.Cancel, ipb.InvocationRequest(invocation_id=invocation_id))

    async def kill(self, invocation_id: str) -> None:
        await self._rpc(self._stub.Kill, ipb.InvocationRequest(invocation_id=invocation_id))


class SyncClient:
    """A blocking wrapper of Client for scripts and notebooks: same methods, no await."""

    def __init__(self, address: str = "127.0.0.1:7070", *, api_key: str | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = self._run(self._make(address, api_key))

    @staticmethod
    async def _make(address: str, api_key: str | None) -> Client:
        return Client(address, api_key=api_key)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coro)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)
        return lambda *args, **kwargs: self._run(method(*args, **kwargs))

    def close(self) -> None:
        self._run(self._client.close())
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
