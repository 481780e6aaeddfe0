"""Issue 5, end to end: every ingress RPC, idempotency, deadlines, and malformed or hostile
requests against a real runtime; after each abuse the server still serves and reports SERVING.

(Awakeable, promise, Submit, Cancel and Kill RPCs are driven through the Client in
test_e2e_context.py as well; here they are also hit with bad ids.)
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from cluster import Cluster, read_markers
from grpc_health.v1 import health_pb2, health_pb2_grpc

from endure.proto import admin_pb2 as apb
from endure.proto import ingress_pb2 as ipb
from endure.proto import ingress_pb2_grpc as ipb_grpc
from endure.proto import records_pb2 as pb
from endure.sdk.client import Client, RequestError

APP = "e2eapp:app"
MAX_WAITING = 1000


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-ingress")


@pytest.fixture(scope="module")
def cluster(root: Path) -> Iterator[Cluster]:
    c = Cluster(root, env={"ENDURE_TEST_DIR": str(root), "ENDURE_MAX_WAITING_CALLS": str(MAX_WAITING)})
    try:
        c.start_runtime()
        c.start_worker(APP, name="w1", concurrency=256)
        yield c
    finally:
        c.stop()


async def raw_stub(cluster: Cluster) -> tuple[grpc.aio.Channel, ipb_grpc.IngressStub]:
    channel = grpc.aio.insecure_channel(cluster.ingress, options=[("grpc.max_send_message_length", 64 << 20)])
    return channel, ipb_grpc.IngressStub(channel)


async def assert_healthy(cluster: Cluster) -> None:
    """The server still answers: the health service says SERVING and a normal call works."""
    async with grpc.aio.insecure_channel(cluster.ingress) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "endure.ingress.Ingress"):
            resp = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
    async with Client(cluster.ingress) as client:
        assert await client.call("e2e/add", {"a": 2, "b": 3}, timeout=30) == 5
    assert cluster.runtime is not None and cluster.runtime.alive()


def target(service: str, handler: str, key: str = "") -> pb.Target:
    return pb.Target(service=service, handler=handler, key=key)


async def expect_code(coro: object, code: grpc.StatusCode, *needles: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await coro  # type: ignore[misc]
    assert err.value.code() == code, (err.value.code(), err.value.details())
    details = err.value.details() or ""
    for needle in needles:
        assert needle in details, details
    return details


# ---------------------------------------------------------------------- the RPCs


async def test_call_send_attach_get_output(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        assert await client.call("e2e/echo", {"x": [1, "two"]}, timeout=30) == {"x": [1, "two"]}
        inv = await client.send("e2e/sleeper", 400)
        assert await client.get_output(inv) == (False, None)
        assert await client.attach(inv, timeout=30) == "slept 400"
        assert await client.get_output(inv) == (True, "slept 400")
        # Attach by idempotency key
        keyed = await client.send("e2e/sleeper", 200, idempotency_key="attach-me")
        assert await client.attach(handler="e2e/sleeper", idempotency_key="attach-me", timeout=30) == "slept 200"
        assert await client.get_output(handler="e2e/sleeper", idempotency_key="attach-me") == (True, "slept 200")
        assert await client.attach(keyed, timeout=30) == "slept 200"
    channel, stub = await raw_stub(cluster)
    async with channel:
        out = await stub.GetOutput(ipb.AttachRequest(invocation_id=inv), timeout=10)
        assert out.ready and out.status == pb.COMPLETED and out.output.invocation_id == inv


async def test_send_with_delay_is_scheduled_then_runs(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("e2e/echo", "delayed", delay=timedelta(milliseconds=1200))
        channel, stub = await raw_stub(cluster)
        async with channel:
            out = await stub.GetOutput(ipb.AttachRequest(invocation_id=inv), timeout=10)
        assert not out.ready and out.status == pb.SCHEDULED
        assert await client.attach(inv, timeout=30) == "delayed"
    status = cluster.describe(inv).status
    assert status.execute_at_ms - status.created_at_ms >= 1100
    assert status.completed_at_ms >= status.execute_at_ms


async def test_idempotent_retries_return_same_invocation_and_result(cluster: Cluster, root: Path) -> None:
    async with Client(cluster.ingress) as client:
        first = await client.call("e2e/once", "idem1", idempotency_key="k-1", timeout=30)
        again = await client.call("e2e/once", "idem1", idempotency_key="k-1", timeout=30)
        a = await client.send("e2e/once", "idem1", idempotency_key="k-1")
        b = await client.send("e2e/once", "idem1", idempotency_key="k-1")
        # concurrent duplicates (a client retrying while the first is in flight)
        c = await asyncio.gather(*(client.send("e2e/once", "idem2", idempotency_key="k-2") for _ in range(20)))
        results = await asyncio.gather(*(client.call("e2e/once", "idem2", idempotency_key="k-2", timeout=30)
                                         for _ in range(5)))
        # the same key on another handler is another invocation
        other = await client.send("e2e/echo", "x", idempotency_key="k-1")
    assert first == again == "done idem1"
    assert a == b and other != a
    assert len(set(c)) == 1 and results == ["done idem2"] * 5
    markers = read_markers(root)
    assert markers.count("idem1:once") == 1 and markers.count("idem2:once") == 1


async def test_client_deadline_ends_the_wait_not_the_invocation(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        with pytest.raises(RequestError) as err:
            await client.call("e2e/sleeper", 1500, idempotency_key="deadline-1", timeout=0.3)
        assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        ready, _ = await client.get_output(handler="e2e/sleeper", idempotency_key="deadline-1")
        assert not ready
        assert await client.attach(handler="e2e/sleeper", idempotency_key="deadline-1", timeout=30) == "slept 1500"
        with pytest.raises(RequestError) as attach_err:  # an attach's own deadline, too
            inv = await client.send("e2e/sleeper", 1000)
            await client.attach(inv, timeout=0.2)
        assert attach_err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert await client.attach(inv, timeout=30) == "slept 1000"


# ---------------------------------------------------------------------- malformed and hostile requests


async def test_wrong_types_unknown_targets_and_keys(cluster: Cluster) -> None:
    channel, stub = await raw_stub(cluster)
    async with channel:
        call = stub.Call
        await expect_code(call(ipb.CallRequest(target=target("e2e", "add"), input=b'{"a": "1", "b": 2}'), timeout=10),
                          grpc.StatusCode.INVALID_ARGUMENT, "a")
        await expect_code(call(ipb.CallRequest(target=target("e2e", "add"), input=b"[1, 2]"), timeout=10),
                          grpc.StatusCode.INVALID_ARGUMENT)
        await expect_code(call(ipb.CallRequest(target=target("e2e", "add"), input=b""), timeout=10),
                          grpc.StatusCode.INVALID_ARGUMENT)
        await expect_code(call(ipb.CallRequest(target=target("e2e", "runs"), input=b"1.5"), timeout=10),
                          grpc.StatusCode.INVALID_ARGUMENT)
        await expect_code(call(ipb.CallRequest(target=target("nosuch", "h")), timeout=10),
                          grpc.StatusCode.NOT_FOUND, "nosuch")
        await expect_code(call(ipb.CallRequest(target=target("e2e", "nosuch")), timeout=10),
                          grpc.StatusCode.NOT_FOUND, "nosuch")
        await expect_code(call(ipb.CallRequest(target=target("", "")), timeout=10), grpc.StatusCode.INVALID_ARGUMENT)
        await expect_code(call(ipb.CallRequest(target=target("e2eobj", "put"), input=b"{}"), timeout=10),
                          grpc.StatusCode.INVALID_ARGUMENT, "key")
        await expect_code(call(ipb.CallRequest(target=target("e2e", "echo", "k"), input=b"1"), timeout=10),
                          grpc.StatusCode.INVALID_ARGUMENT, "key")
        await expect_code(stub.Submit(ipb.CallRequest(target=target("e2e", "echo"), input=b"1"), timeout=10),
                          grpc.StatusCode.INVALID_ARGUMENT)
        await expect_code(stub.Send(ipb.SendRequest(call=ipb.CallRequest(target=target("e2e", "echo"), input=b"1"),
                                                    delay_ms=10 * 365 * 24 * 3600 * 1000), timeout=10),
                          grpc.StatusCode.INVALID_ARGUMENT, "delay")
        await expect_code(call(ipb.CallRequest(target=target("e2e", "echo"), input=b"1",
                                               idempotency_key="k" * 10_000), timeout=10),
                          grpc.StatusCode.INVALID_ARGUMENT, "idempotency")
        # unknown JSON fields are ignored by the model (pydantic's default), not an error
        ok = await call(ipb.CallRequest(target=target("e2e", "add"), input=b'{"a": 1, "b": 2, "c": 3}'), timeout=30)
        assert json.loads(ok.value) == 3
    await assert_healthy(cluster)


async def test_payloads_invalid_utf8_bad_json_and_deep_nesting(cluster: Cluster) -> None:
    deep = b"[" * 10_000 + b"]" * 10_000
    deep_obj = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    huge = json.dumps("x" * (5 << 20)).encode()
    channel, stub = await raw_stub(cluster)
    async with channel:
        for data, needle in [(b'"\xff\xfe"', "UTF-8"), (b"{not json", "JSON"), (deep, "deeper"),
                             (deep_obj, "deeper"), (huge, "limit")]:
            await expect_code(stub.Call(ipb.CallRequest(target=target("e2e", "echo"), input=data), timeout=10),
                              grpc.StatusCode.INVALID_ARGUMENT, needle)
            await expect_code(stub.Send(ipb.SendRequest(call=ipb.CallRequest(target=target("e2e", "echo"),
                                                                             input=data)), timeout=10),
                              grpc.StatusCode.INVALID_ARGUMENT, needle)
        # a huge message beyond the transport limit of the server is refused by gRPC itself
        await expect_code(stub.Call(ipb.CallRequest(target=target("e2e", "echo"), input=b"1" * (65 << 20)),
                                    timeout=30), grpc.StatusCode.RESOURCE_EXHAUSTED)
        # values for awakeables and promises go through the same checks
        await expect_code(stub.ResolvePromise(ipb.ResolvePromiseRequest(workflow="e2eflow", key="k", name="p",
                                                                        value=deep), timeout=10),
                          grpc.StatusCode.INVALID_ARGUMENT, "deeper")
        await expect_code(stub.ResolvePromise(ipb.ResolvePromiseRequest(workflow="e2eflow", key="k", name="p",
                                                                        value=b"\xff"), timeout=10),
                          grpc.StatusCode.INVALID_ARGUMENT, "UTF-8")
        # garbage bytes where a protobuf request belongs
        garbage = channel.unary_unary("/endure.ingress.Ingress/Call", request_serializer=None,
                                      response_deserializer=None)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await garbage(b"\xff\xff\xff\xff\x0f", timeout=10)
        # grpc.aio answers an undecodable request with UNKNOWN ("Unexpected DecodeError ... Wire format was corrupt")
        assert err.value.code() in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
        assert "corrupt" in (err.value.details() or "")
    await assert_healthy(cluster)


async def test_bad_invocation_and_awakeable_ids(cluster: Cluster) -> None:
    unknown = "inv_" + "0" * 48
    channel, stub = await raw_stub(cluster)
    async with channel:
        for bad in ("", "garbage", "inv_zz", "inv_" + "0" * 47, "inv_" + "f" * 4000):
            await expect_code(stub.Attach(ipb.AttachRequest(invocation_id=bad), timeout=10),
                              grpc.StatusCode.INVALID_ARGUMENT)
            await expect_code(stub.GetOutput(ipb.AttachRequest(invocation_id=bad), timeout=10),
                              grpc.StatusCode.INVALID_ARGUMENT)
            await expect_code(stub.Cancel(ipb.InvocationRequest(invocation_id=bad), timeout=10),
                              grpc.StatusCode.INVALID_ARGUMENT)
            await expect_code(stub.Kill(ipb.InvocationRequest(invocation_id=bad), timeout=10),
                              grpc.StatusCode.INVALID_ARGUMENT)
            await expect_code(stub.ResolveAwakeable(ipb.ResolveAwakeableRequest(awakeable_id=bad, value=b"1"),
                                                    timeout=10), grpc.StatusCode.INVALID_ARGUMENT)
            await expect_code(stub.RejectAwakeable(ipb.RejectAwakeableRequest(awakeable_id=bad, reason="x"),
                                                   timeout=10), grpc.StatusCode.INVALID_ARGUMENT)
        for rpc in (stub.Attach, stub.GetOutput):
            await expect_code(rpc(ipb.AttachRequest(invocation_id=unknown), timeout=10), grpc.StatusCode.NOT_FOUND)
            await expect_code(rpc(ipb.AttachRequest(), timeout=10), grpc.StatusCode.INVALID_ARGUMENT)
            await expect_code(rpc(ipb.AttachRequest(idempotency=ipb.IdempotencyRef(
                target=target("e2e", "echo"), idempotency_key="never-used")), timeout=10), grpc.StatusCode.NOT_FOUND)
        for rpc in (stub.Cancel, stub.Kill):
            await expect_code(rpc(ipb.InvocationRequest(invocation_id=unknown), timeout=10), grpc.StatusCode.NOT_FOUND)
        await expect_code(stub.ResolvePromise(ipb.ResolvePromiseRequest(workflow="nosuch", key="k", name="p"),
                                              timeout=10), grpc.StatusCode.NOT_FOUND)
        await expect_code(stub.ResolvePromise(ipb.ResolvePromiseRequest(workflow="e2eflow", key="k", name=""),
                                              timeout=10), grpc.StatusCode.INVALID_ARGUMENT)
        await expect_code(stub.ResolvePromise(ipb.ResolvePromiseRequest(workflow="e2eobj", key="k", name="p"),
                                              timeout=10), grpc.StatusCode.NOT_FOUND)
    await assert_healthy(cluster)


async def test_thousands_of_concurrent_waiting_calls(cluster: Cluster) -> None:
    """2000 calls that all wait (their handlers sleep suspended) against a limit of 1000 waiting
    calls: each is served or refused with RESOURCE_EXHAUSTED; nothing crashes or hangs (gRPC core
    used to cancel calls queued in front of a busy server: CANCELLED)."""
    request = ipb.CallRequest(target=target("e2e", "park"), input=b"1500")

    def burst() -> Counter[str]:
        outcomes: Counter[str] = Counter()
        with grpc.insecure_channel(cluster.ingress) as channel:
            call = ipb_grpc.IngressStub(channel).Call
            futures = [call.future(request, timeout=120) for _ in range(2000)]
            for f in futures:
                try:
                    assert json.loads(f.result().value) == "parked"
                    outcomes["ok"] += 1
                except grpc.RpcError as exc:
                    outcomes[exc.code().name] += 1  # type: ignore[attr-defined]
        return outcomes

    outcomes = await asyncio.to_thread(burst)
    assert set(outcomes) <= {"ok", "RESOURCE_EXHAUSTED"}, outcomes
    assert outcomes["ok"] >= 1 and sum(outcomes.values()) == 2000, outcomes
    await assert_healthy(cluster)
    # every accepted invocation finished: nothing is left waiting in the runtime
    channel, stub = cluster.admin_stub()
    try:
        for status in (pb.PENDING, pb.RUNNING, pb.SUSPENDED, pb.BACKING_OFF):
            resp = stub.ListInvocations(apb.ListInvocationsRequest(service="e2e", status=status), timeout=10)
            assert not resp.invocations, [i.status.invocation_id for i in resp.invocations]
    finally:
        channel.close()


async def test_client_with_thousands_of_concurrent_calls(cluster: Cluster) -> None:
    """A fan-out of 2000 calls through one Client: all served (none CANCELLED by the server's core)."""
    async with Client(cluster.ingress) as client:
        results = await asyncio.gather(*(client.call("e2e/echo", i, timeout=120) for i in range(2000)),
                                       return_exceptions=True)
    failures = Counter(type(r).__name__ + ":" + str(r)[:60] for r in results if isinstance(r, Exception))
    assert not failures, failures


@pytest.mark.parametrize("token", ["-1:x", "99:x", "x:y"])
def test_a_bad_page_token_is_invalid_argument(cluster: Cluster, token: str) -> None:
    """A page token naming no partition (or not a token at all) is the client's error, not the server's."""
    channel, stub = cluster.admin_stub()
    try:
        with pytest.raises(grpc.RpcError) as info:
            stub.ListInvocations(apb.ListInvocationsRequest(page_token=token), timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value  # type: ignore[attr-defined]
        assert "bad page token" in (info.value.details() or "")  # type: ignore[attr-defined]
        stub.ListInvocations(apb.ListInvocationsRequest(page_size=1), timeout=10)  # and the admin still answers
    finally:
        channel.close()
