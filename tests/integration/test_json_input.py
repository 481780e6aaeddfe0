"""A Call's `json` input (a protobuf Value) is the same input as the JSON bytes of `input`: checked
alike (the handler's input type, no NaN), and answered with the result as `json` too."""

from __future__ import annotations

import grpc
import pytest
from cluster import Cluster  # noqa: I001 - tests/integration is on sys.path
from google.protobuf import json_format, struct_pb2

from endure.proto import ingress_pb2 as ipb
from endure.proto import ingress_pb2_grpc as ipb_grpc
from endure.proto import records_pb2 as pb


def _value(text: str) -> struct_pb2.Value:
    return json_format.Parse(text, struct_pb2.Value())


def test_json_input_is_checked_like_input_and_answered_as_json(cluster: Cluster) -> None:
    cluster.start_runtime()
    cluster.start_worker("e2eapp:app", name="w1")
    add = pb.Target(service="e2e", handler="add")
    with grpc.insecure_channel(cluster.ingress) as channel:
        stub = ipb_grpc.IngressStub(channel)
        out = stub.Call(ipb.CallRequest(target=add, json=_value('{"a": 2, "b": 40}')), timeout=30)
        assert out.value == b"42"
        assert out.json == _value("42")
        # The bytes form keeps answering with bytes only.
        plain = stub.Call(ipb.CallRequest(target=add, input=b'{"a": 1, "b": 1}'), timeout=30)
        assert plain.value == b"2" and not plain.HasField("json")
        for bad in (_value('{"a": "two", "b": 40}'), struct_pb2.Value(number_value=float("nan"))):
            with pytest.raises(grpc.RpcError) as info:
                stub.Call(ipb.CallRequest(target=add, json=bad), timeout=30)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
