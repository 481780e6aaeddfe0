"""Bytes that are not a valid request message are a bad request (INVALID_ARGUMENT naming the
expected type), never UNKNOWN "Unexpected DecodeError", on every method of the ingress and admin
servers (the admin server also serves the internal PartitionService); the servers keep serving afterwards.

The methods are found by server reflection, so a method added later is covered without a change here.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import grpc
import pytest
from cluster import Cluster  # noqa: I001 - tests/integration is on sys.path
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from endure.proto import admin_pb2 as apb
from endure.proto import admin_pb2_grpc as apb_grpc
from endure.proto import ingress_pb2 as ipb
from endure.proto import ingress_pb2_grpc as ipb_grpc
from endure.proto import records_pb2 as pb


def _identity(raw: bytes) -> bytes:
    return raw


def _endure_methods(channel: grpc.Channel) -> list[MethodDescriptor]:
    """Every method of every endure.* service the server reflects (health and reflection are gRPC's)."""
    database = ProtoReflectionDescriptorDatabase(channel)
    pool = descriptor_pool.DescriptorPool(database)
    methods = []
    for name in database.get_services():
        if name.startswith("endure."):
            methods.extend(pool.FindServiceByName(name).methods)
    return methods


def _unparsable(method: MethodDescriptor, rng: random.Random) -> bytes:
    """Random bytes that really fail to parse as the method's request type (some random bytes parse)."""
    cls = message_factory.GetMessageClass(method.input_type)
    while True:
        raw = rng.randbytes(rng.randint(8, 64))
        try:
            cls.FromString(raw)
        except DecodeError:
            return raw


def _call_raw(channel: grpc.Channel, method: MethodDescriptor, raw: bytes) -> grpc.RpcError:
    path = f"/{method.containing_service.full_name}/{method.name}"
    kwargs = {"request_serializer": _identity, "response_deserializer": _identity}
    with pytest.raises(grpc.RpcError) as info:
        if method.client_streaming and method.server_streaming:
            list(channel.stream_stream(path, **kwargs)(iter([raw]), timeout=10))
        elif method.client_streaming:
            channel.stream_unary(path, **kwargs)(iter([raw]), timeout=10)
        elif method.server_streaming:
            list(channel.unary_stream(path, **kwargs)(raw, timeout=10))
        else:
            channel.unary_unary(path, **kwargs)(raw, timeout=10)
    return info.value  # type: ignore[return-value]


@pytest.fixture
def running(cluster: Cluster) -> Iterator[Cluster]:
    cluster.start_runtime()
    cluster.start_worker("e2eapp:app", name="w1")
    yield cluster


def test_undecodable_requests_are_invalid_argument_on_every_method(running: Cluster) -> None:
    rng = random.Random(20240611)
    seen: set[str] = set()
    for address in (running.ingress, running.admin):
        with grpc.insecure_channel(address) as channel:
            methods = _endure_methods(channel)
            assert methods, f"reflection on {address} lists no endure service"
            for method in methods:
                seen.add(method.full_name)
                error = _call_raw(channel, method, _unparsable(method, rng))
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (method.full_name, error.details())
                assert f"request is not a valid {method.input_type.full_name}" in (error.details() or ""), (
                    method.full_name, error.details())
    assert {"endure.ingress.Ingress.Call", "endure.admin.Admin.ListServices",
            "endure.internal.PartitionService.Append", "endure.internal.PartitionService.GetInfo"} <= seen
    assert any(name.endswith(".Connect") for name in seen), "the worker stream (streaming) was not covered"

    # Both servers still serve, and the worker stream still works (the worker runs the call).
    with grpc.insecure_channel(running.ingress) as channel:
        out = ipb_grpc.IngressStub(channel).Call(
            ipb.CallRequest(target=pb.Target(service="e2e", handler="echo"), input=b'"still fine"'), timeout=30)
    assert json.loads(out.value) == "still fine"
    with grpc.insecure_channel(running.admin) as channel:
        services = apb_grpc.AdminStub(channel).ListServices(apb.ListServicesRequest(), timeout=10)
    assert any(s.definition.name == "e2e" and s.workers for s in services.services)
