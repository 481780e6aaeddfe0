"""Which partition a client request belongs to: one definition for the ingress and the client.

Every partition is a 64-bit partition key modulo the partition count: an object or workflow key's
hash, an idempotency key's hash (for an invocation without object key), or the key an invocation
id embeds (awakeable ids embed their invocation's id). The ingress places invocations with these
functions and the Python client routes with them (`request_partition_key`), so both always agree.

`None` means the request is free to go anywhere: a new invocation with neither key nor
idempotency key starts on a partition of the node whose ingress took it.
"""

from __future__ import annotations

from endure.proto import ids
from endure.proto import ingress_pb2 as ipb

__all__ = ["attach_partition_key", "invocation_partition_key", "promise_partition_key", "request_partition_key"]


def invocation_partition_key(key: str, idempotency_key: str) -> int | None:
    """A new invocation's partition key: its object/workflow key's, else its idempotency key's,
    else None (free: the ingress that takes it picks one of its own node's partitions).

    The handler's kind does not change it: a keyed handler needs a key and a service handler must
    not have one (the ingress refuses either mistake, on whichever node it reaches)."""
    if key:
        return ids.stable_hash64(key)
    if idempotency_key:
        return ids.stable_hash64(idempotency_key)
    return None


def attach_partition_key(key: str, idempotency_key: str) -> int:
    """The partition key of the invocation an attach by (target key, idempotency key) refers to."""
    return ids.stable_hash64(key) if key else ids.stable_hash64(idempotency_key)


def promise_partition_key(workflow_key: str) -> int:
    """A workflow's promises live with the workflow: its key's partition."""
    return ids.stable_hash64(workflow_key)


def _of_id(invocation_id: str) -> int | None:
    try:
        return ids.partition_key_of(invocation_id)
    except ids.InvalidId:
        return None  # the ingress answers INVALID_ARGUMENT wherever it is sent


def _of_awakeable(awakeable_id: str) -> int | None:
    try:
        return ids.partition_key_of(ids.parse_awakeable_id(awakeable_id)[0])
    except ids.InvalidId:
        return None


def request_partition_key(request: object) -> int | None:
    """The partition key of an Ingress request (CallRequest for Call and Submit, SendRequest,
    AttachRequest, awakeable, promise and invocation requests, SubscribeRequest); None: any node
    will do."""
    if isinstance(request, ipb.CallRequest):
        return invocation_partition_key(request.target.key, request.idempotency_key)
    if isinstance(request, ipb.SendRequest):
        return invocation_partition_key(request.call.target.key, request.call.idempotency_key)
    if isinstance(request, ipb.AttachRequest):
        which = request.WhichOneof("ref")
        if which == "invocation_id":
            return _of_id(request.invocation_id)
        if which == "idempotency":
            ref = request.idempotency
            return attach_partition_key(ref.target.key, ref.idempotency_key)
        return None
    if isinstance(request, ipb.ResolveAwakeableRequest | ipb.RejectAwakeableRequest):
        return _of_awakeable(request.awakeable_id)
    if isinstance(request, ipb.ResolvePromiseRequest):
        return promise_partition_key(request.key)
    if isinstance(request, ipb.InvocationRequest | ipb.SubscribeRequest):
        return _of_id(request.invocation_id)
    return None
