"""The client's routing against fake ingresses on loopback: which address each request reaches,
how often it asks for the routes, and when it sends a request again elsewhere (only when it was
never sent)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import grpc
import pytest

from endure.proto import ids
from endure.proto import ingress_pb2 as ipb
from endure.proto import ingress_pb2_grpc as ipb_grpc
from endure.sdk import client as client_module
from endure.sdk.client import Client, RequestError, SyncClient

PARTITIONS = 2


class FakeIngress(ipb_grpc.IngressServicer):
    """Answers a Call with its own name; GetRoutes from `routes` (None: UNIMPLEMENTED, as a runtime
    from before routing)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.routes: Callable[[], ipb.Routes] | None = None
        self.fail: grpc.StatusCode | None = None
        self.calls: list[str] = []
        self.route_requests = 0
        self.server: grpc.aio.Server | None = None
        self.address = ""

    async def start(self) -> None:
        self.server = grpc.aio.server()
        ipb_grpc.add_IngressServicer_to_server(self, self.server)
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        await self.server.start()

    async def GetRoutes(self, request: ipb.RoutesRequest, context: grpc.aio.ServicerContext) -> ipb.Routes:  # noqa: N802
        self.route_requests += 1
        if self.routes is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
        assert self.routes is not None
        return self.routes()

    async def Call(self, request: ipb.CallRequest, context: grpc.aio.ServicerContext) -> ipb.Output:  # noqa: N802
        self.calls.append(request.target.key)
        if self.fail is not None:
            await context.abort(self.fail, "this node is draining")
        return ipb.Output(invocation_id="inv_x", value=f'"{self.name}"'.encode())

    async def Cancel(self, request: ipb.InvocationRequest, context: grpc.aio.ServicerContext) -> ipb.Ack:  # noqa: N802
        self.calls.append(request.invocation_id)
        return ipb.Ack()


def routes_to(*addresses: str) -> Callable[[], ipb.Routes]:
    """Routes of len(addresses) nodes; partition p is owned by node p % nodes."""
    return lambda: ipb.Routes(partitions=PARTITIONS, owners=[p % len(addresses) for p in range(PARTITIONS)],
                              nodes=[ipb.IngressNode(id=i, address=a) for i, a in enumerate(addresses)])


def key_on(partition: int, stem: str = "k") -> str:
    return next(k for k in (f"{stem}{i}" for i in range(100)) if ids.stable_hash64(k) % PARTITIONS == partition)


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[FakeIngress, FakeIngress]]:
    """Node a (the address the client is given, which is also its own address) and node b."""
    a, b = FakeIngress("a"), FakeIngress("b")
    await a.start()
    await b.start()
    a.routes = routes_to(a.address, b.address)
    yield a, b
    for n in (a, b):
        assert n.server is not None
        await n.server.stop(None)


async def test_keyed_calls_go_to_their_owner_and_the_routes_are_asked_once(
        nodes: tuple[FakeIngress, FakeIngress]) -> None:
    a, b = nodes
    async with Client(a.address) as client:
        # Unkeyed: the nodes in turn (each starts it on a partition of its own).
        assert [await client.call("svc/run", i) for i in range(4)] == ["a", "b", "a", "b"]
        results = await asyncio.gather(*(client.call("obj/add", key=key_on(i % 2, f"c{i}-")) for i in range(20)))
        assert results == ["a", "b"] * 10
        assert await client.call("svc/run", idempotency_key=key_on(1)) == "b"
        await client.cancel(ids.new_invocation_id(1))  # an id's partition: 1
        assert b.calls[-1].startswith(ids.INVOCATION_PREFIX)
        assert a.route_requests == 1  # once, although 20 calls wanted them at the same time


async def test_without_get_routes_or_with_routing_off_everything_goes_to_the_address_given(
        nodes: tuple[FakeIngress, FakeIngress]) -> None:
    a, b = nodes
    a.routes = None  # UNIMPLEMENTED
    async with Client(a.address) as client:
        assert [await client.call("obj/add", key=key_on(p)) for p in (0, 1, 1)] == ["a", "a", "a"]
    assert a.route_requests == 1
    a.routes = routes_to(a.address, b.address)
    async with Client(a.address, routing=False) as client:
        assert await client.call("obj/add", key=key_on(1)) == "a"
    assert a.route_requests == 1 and b.calls == []


async def test_an_unreachable_owner_sends_that_request_to_the_address_given_and_the_routes_are_read_again(
        nodes: tuple[FakeIngress, FakeIngress], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = nodes
    monkeypatch.setattr(client_module, "_ROUTES_REFRESH_S", 0.0)
    gone = closed_port()
    a.routes = routes_to(a.address, gone)  # node 1's published address is dead (it restarted elsewhere)
    async with Client(a.address) as client:
        key = key_on(1)
        assert await client.call("obj/add", key=key) == "a"  # never sent to `gone`: sent once, to a
        assert a.calls == [key]
        a.routes = routes_to(a.address, b.address)  # node 1 now publishes its new address
        assert await client.call("obj/add", key=key) == "a"  # the old route, until the reread ends
        for _ in range(200):
            if client._routes is not None and client._routes.by_partition[1] == b.address:
                break
            await asyncio.sleep(0.01)
        assert await client.call("obj/add", key=key) == "b"
        assert a.route_requests >= 2
        assert gone not in client._nodes  # the dead node's channel was dropped


async def test_a_node_without_an_address_yet_is_looked_up_again(
        nodes: tuple[FakeIngress, FakeIngress], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = nodes
    monkeypatch.setattr(client_module, "_ROUTES_REFRESH_S", 0.0)
    a.routes = routes_to(a.address, "")  # node 1 is restarting: it has withdrawn its address
    async with Client(a.address) as client:
        key = key_on(1)
        assert await client.call("obj/add", key=key) == "a"
        a.routes = routes_to(a.address, b.address)  # it serves again
        for _ in range(200):
            if await client.call("obj/add", key=key) == "b":
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("node 1's address was never read again")
        asked = a.route_requests
        assert [await client.call("obj/add", key=key) for _ in range(3)] == ["b"] * 3
        assert a.route_requests == asked  # every node has an address now: no more reads


async def test_a_request_that_may_have_been_delivered_is_not_sent_again(
        nodes: tuple[FakeIngress, FakeIngress]) -> None:
    a, b = nodes
    b.fail = grpc.StatusCode.UNAVAILABLE  # b took the call, then answered UNAVAILABLE
    async with Client(a.address) as client:
        key = key_on(1)
        with pytest.raises(RequestError) as info:
            await client.call("obj/add", key=key)
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert b.calls == [key] and a.calls == []


async def test_the_sync_client_routes_too(nodes: tuple[FakeIngress, FakeIngress]) -> None:
    a, b = nodes
    results: list[object] = []

    def use() -> None:  # a SyncClient runs its own event loop: in a thread, while this loop serves the nodes
        with SyncClient(a.address) as client:
            results.extend(client.call("obj/add", key=key_on(p)) for p in (0, 1))

    await asyncio.to_thread(use)
    assert results == ["a", "b"]
