"""Who is calling: tenants by API key at the ingress, bearer tokens on the admin and worker APIs.

Keys and tokens are configured as sha256 digests, so the config never holds a usable secret, and
compared in constant time. With auth off (the `endure dev` default) every client is tenant
'default' and the admin and worker endpoints are open: bind them to loopback.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc

DEFAULT_TENANT = "default"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def bearer(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer ") :].strip()
    return None


class Unauthenticated(Exception):
    pass


class TenantResolver:
    def __init__(self, enabled: bool, keys_by_tenant: dict[str, list[str]]) -> None:
        self.enabled = enabled
        self._tenant_by_digest = {h: tenant for tenant, hashes in keys_by_tenant.items() for h in hashes}

    def tenant(self, metadata: Iterable[tuple[str, Any]] | None) -> str:
        if not self.enabled:
            return DEFAULT_TENANT
        key = bearer(metadata)
        if key is None:
            raise Unauthenticated("send an API key as 'authorization: Bearer <key>' metadata")
        tenant = self._tenant_by_digest.get(digest(key))
        if tenant is None:
            raise Unauthenticated("unknown API key")
        return tenant


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Requires a bearer token (by digest) for every method of the given service names; a service
    given several digests takes any of them (None: the service is open)."""

    def __init__(self, token_digest_by_service: dict[str, str | tuple[str, ...] | None]) -> None:
        self._digests = {name: (d,) if isinstance(d, str) else d for name, d in token_digest_by_service.items() if d}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        service = handler_call_details.method.rsplit("/", 2)[-2] if handler_call_details.method else ""
        expected = self._digests.get(service)
        if expected is not None:
            token = bearer(handler_call_details.invocation_metadata)
            given = digest(token) if token is not None else ""
            if not any(hmac.compare_digest(given, d) for d in expected):
                return _refuse(service)
        return await continuation(handler_call_details)


def _refuse(service: str) -> grpc.RpcMethodHandler:
    message = f"{service} needs 'authorization: Bearer <token>' metadata with the configured token"

    async def unary(request: object, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def stream(request_iterator: object, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    if service.endswith("WorkerEndpoint"):
        return grpc.stream_stream_rpc_method_handler(stream)
    return grpc.unary_unary_rpc_method_handler(unary)
