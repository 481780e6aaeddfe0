"""The client routes each request to the partition the ingress will use for it.

The ingress runs for real here (its RPC methods, over fake partitions that record which partition
each request touched); the client builds its requests for real too (its public methods, with the
request captured before it is sent) and picks a node with a route table that names one address
per partition. Both must agree for every kind of target: object, workflow, service with
idempotency key, ids and awakeable ids, promises; an unkeyed call is the ingress's to place.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest

from endure.proto import ids, routing
from endure.proto import ingress_pb2 as ipb
from endure.proto import records_pb2 as pb
from endure.proto import worker_pb2 as wpb
from endure.runtime.ingress.service import IngressService
from endure.runtime.invoker.registry import HandlerInfo
from endure.runtime.partition.remote import PartitionUnavailable
from endure.runtime.placement import INGRESS_FILE, Placement, routes, write_endpoint
from endure.sdk.client import Client, _RouteTable

PARTITIONS = 5
LOCAL = [3]  # the partitions of the node whose ingress takes the requests

HANDLERS = {
    ("svc", "run"): (pb.SERVICE, wpb.SERVICE),
    ("obj", "add"): (pb.EXCLUSIVE, wpb.VIRTUAL_OBJECT),
    ("obj", "get"): (pb.SHARED, wpb.VIRTUAL_OBJECT),
    ("flow", "run"): (pb.WORKFLOW_RUN, wpb.WORKFLOW),
    ("flow", "peek"): (pb.WORKFLOW_SHARED, wpb.WORKFLOW),
}


class FakeRegistry:
    def handler(self, service: str, name: str) -> HandlerInfo | None:
        kinds = HANDLERS.get((service, name))
        if kinds is None:
            return None
        return HandlerInfo(service, name, kinds[0], kinds[1], None, None, wpb.RetryPolicy(), 0, "d")

    def has_service(self, service: str) -> bool:
        return any(s == service for s, _ in HANDLERS)

    def services(self) -> list[tuple[str, int, str, list[HandlerInfo]]]:
        by: dict[str, list[HandlerInfo]] = {}
        for s, h in HANDLERS:
            info = self.handler(s, h)
            assert info is not None
            by.setdefault(s, []).append(info)
        return [(s, hs[0].service_kind, "d", hs) for s, hs in by.items()]


class FakePartition:
    """Records that it was used; every invocation exists, runs, and completes when waited for."""

    def __init__(self, partition: int, touched: list[int]) -> None:
        self.id = partition
        self.touched = touched

    async def append(self, envelopes: Any, *, wait: bool = True) -> range:
        self.touched.append(self.id)
        return range(1, 2)

    async def get_status(self, invocation_id: str) -> pb.InvocationStatus:
        self.touched.append(self.id)
        return pb.InvocationStatus(invocation_id=invocation_id, tenant="default", status=pb.RUNNING)

    async def await_completion(self, invocation_id: str, applied_lsn: int = 0) -> pb.InvocationStatus:
        self.touched.append(self.id)
        return pb.InvocationStatus(invocation_id=invocation_id, tenant="default", status=pb.COMPLETED,
                                   value=b"1")


class Context:
    def invocation_metadata(self) -> tuple[()]:
        return ()

    def set_trailing_metadata(self, metadata: object) -> None:
        pass

    async def abort(self, code: object, details: str) -> None:
        raise AssertionError(f"the ingress refused the request: {code} {details}")


_RESPONSES: dict[str, Any] = {
    "Call": ipb.Output(value=b"1"), "Attach": ipb.Output(value=b"1"),
    "Send": ipb.SendResponse(invocation_id="inv_x"), "Submit": ipb.SendResponse(invocation_id="inv_x"),
    "GetOutput": ipb.GetOutputResponse(ready=False),
}


class CapturingClient(Client):
    """A Client whose requests are captured instead of sent."""

    def __init__(self) -> None:
        super().__init__("given:1")
        self.sent: list[tuple[str, Any]] = []
        # A route table with one (fake) node per partition, so the chosen node names the partition.
        self._routes = _RouteTable(PARTITIONS, tuple(f"p{p}:1" for p in range(PARTITIONS)))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        self._first_routes = done

    async def _rpc(self, method: str, request: Any, timeout: float | None = None) -> Any:
        self.sent.append((method, request))
        return _RESPONSES.get(method, ipb.Ack())

    async def partition_of_last(self) -> int | None:
        node = await self._node_for(self.sent[-1][1])
        return None if node is None else int(node.address[1:].split(":")[0])


async def ingress_partition(method: str, request: Any) -> int:
    touched: list[int] = []
    partitions = {p: FakePartition(p, touched) for p in range(PARTITIONS)}
    ingress = IngressService(FakeRegistry(), partitions, 100, 1 << 20, local=LOCAL)  # type: ignore[arg-type]
    await getattr(ingress, method)(request, Context())
    assert touched and set(touched) == {touched[0]}, touched  # one request, one partition
    return touched[0]


def running_id(partition: int) -> str:
    return ids.new_invocation_id(partition)  # partition key = partition: partition_of = key % PARTITIONS


KEYS = [f"key-{i}" for i in range(12)]


async def test_client_and_ingress_agree_on_the_partition_of_every_keyed_request() -> None:
    client = CapturingClient()
    cases: list[tuple[str, Any]] = []
    for key in KEYS:
        cases += [
            ("obj/add", lambda c, k=key: c.call("obj/add", 1, key=k)),
            ("obj/get send", lambda c, k=key: c.send("obj/get", key=k)),
            ("obj/add idem", lambda c, k=key: c.call("obj/add", 1, key=k, idempotency_key="i-" + k)),
            ("flow submit", lambda c, k=key: c.submit("flow/run", "x", key=k)),
            ("flow/peek", lambda c, k=key: c.call("flow/peek", key=k)),
            ("svc idem call", lambda c, k=key: c.call("svc/run", 1, idempotency_key=k)),
            ("svc idem send", lambda c, k=key: c.send("svc/run", 1, idempotency_key=k)),
            ("attach idem", lambda c, k=key: c.attach(handler="svc/run", idempotency_key=k)),
            ("attach workflow", lambda c, k=key: c.attach(handler="flow/run", key=k)),
            ("attach obj idem", lambda c, k=key: c.attach(handler="obj/add", key=k, idempotency_key="i-" + k)),
            ("get_output idem", lambda c, k=key: c.get_output(handler="svc/run", idempotency_key=k)),
            ("promise", lambda c, k=key: c.resolve_promise("flow", k, "p", 1)),
            ("promise reject", lambda c, k=key: c.reject_promise("flow", k, "p", "no")),
        ]
    for p in range(PARTITIONS):
        inv = running_id(p + PARTITIONS * 7)
        awk = ids.awakeable_id(inv, 3)
        cases += [
            ("attach id", lambda c, i=inv: c.attach(i)),
            ("get_output id", lambda c, i=inv: c.get_output(i)),
            ("cancel", lambda c, i=inv: c.cancel(i)),
            ("kill", lambda c, i=inv: c.kill(i)),
            ("resolve awakeable", lambda c, a=awk: c.resolve_awakeable(a, {"ok": 1})),
            ("reject awakeable", lambda c, a=awk: c.reject_awakeable(a, "no")),
        ]
    seen: dict[str, set[int]] = {}
    for what, act in cases:
        await act(client)
        method, request = client.sent[-1]
        routed = await client.partition_of_last()
        actual = await ingress_partition(method, request)
        assert routed == actual, (what, request)
        seen.setdefault(what, set()).add(actual)
    # The keys and ids reach every partition, so agreeing is not an accident of one partition.
    assert all(len(parts) == PARTITIONS for parts in seen.values()), seen
    await client.close()


async def test_unkeyed_calls_go_to_the_nodes_in_turn_and_start_on_a_partition_of_the_node_taking_them() -> None:
    client = CapturingClient()
    for act in (lambda c: c.call("svc/run", 1), lambda c: c.send("svc/run", 2)):
        chosen = []
        for _ in range(2 * PARTITIONS):
            await act(client)
            method, request = client.sent[-1]
            chosen.append(await client.partition_of_last())
            assert await ingress_partition(method, request) in LOCAL  # the node that took it: its own
        assert sorted(chosen) == sorted(list(range(PARTITIONS)) * 2)  # every (fake) node, in turn
    await client.close()


def test_a_malformed_id_is_not_routed() -> None:
    assert routing.request_partition_key(ipb.InvocationRequest(invocation_id="inv_nothex")) is None
    assert routing.request_partition_key(ipb.ResolveAwakeableRequest(awakeable_id="inv_00")) is None
    assert routing.request_partition_key(ipb.AttachRequest()) is None


def test_routes_name_the_published_ingress_addresses(tmp_path: Path) -> None:
    placement = Placement(2, 4)
    for n in range(2):
        (tmp_path / "nodes" / str(n)).mkdir(parents=True)
    write_endpoint(tmp_path / "nodes" / "0", "127.0.0.1:4000", INGRESS_FILE)
    assert routes(tmp_path, placement).addresses == ("127.0.0.1:4000", "")  # node 1 not serving yet
    write_endpoint(tmp_path / "nodes" / "1", "127.0.0.1:4001", INGRESS_FILE)
    r = routes(tmp_path, placement)
    assert (r.partitions, r.addresses, r.owners) == (4, ("127.0.0.1:4000", "127.0.0.1:4001"), (0, 1, 0, 1))
    one = routes(tmp_path, Placement(1, 4))
    assert (one.addresses, one.owners) == (("",), (0, 0, 0, 0))


@pytest.mark.parametrize("address, given, dialed", [
    ("0.0.0.0:5000", "10.1.2.3:7070", "10.1.2.3:5000"),
    ("[::]:5000", "host:7070", "host:5000"),
    ("127.0.0.1:5000", "host:7070", "127.0.0.1:5000"),
])
def test_a_wildcard_host_is_dialed_at_the_host_given(address: str, given: str, dialed: str) -> None:
    from endure.sdk.client import _dialable

    assert _dialable(address, given) == dialed


class _Aborted(Exception):
    pass


class _AbortingContext(Context):
    code: object = None

    async def abort(self, code: object, details: str) -> None:
        self.code, self.details = code, details
        raise _Aborted


class _DownPartition(FakePartition):
    async def append(self, envelopes: Any, *, wait: bool = True) -> range:
        raise PartitionUnavailable(self.id, f"partition {self.id}: node 1 is not serving")


async def test_a_request_for_a_partition_whose_owner_is_down_is_unavailable() -> None:
    partitions = {p: (_DownPartition if p not in LOCAL else FakePartition)(p, []) for p in range(PARTITIONS)}
    ingress = IngressService(FakeRegistry(), partitions, 100, 1 << 20, local=LOCAL)  # type: ignore[arg-type]
    key = next(k for k in KEYS if ids.stable_hash64(k) % PARTITIONS not in LOCAL)
    context = _AbortingContext()
    with pytest.raises(_Aborted):
        await ingress.Send(ipb.SendRequest(call=ipb.CallRequest(target=pb.Target(service="obj", handler="add", key=key))),
                           context)  # type: ignore[arg-type]
    assert context.code == grpc.StatusCode.UNAVAILABLE and "not serving" in context.details
