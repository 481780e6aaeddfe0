"""Issue 8 end to end: tenants and access, flow control, metering, metrics and traces, with a real
runtime and real workers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cluster import Cluster, free_port, get_limits, read_markers, wait_until

from endure.proto import admin_pb2 as apb
from endure.proto import ingress_pb2 as ipb
from endure.proto import ingress_pb2_grpc as ipb_grpc
from endure.proto import records_pb2 as pb
from endure.proto import worker_pb2 as wpb
from endure.proto import worker_pb2_grpc as wpb_grpc
from endure.sdk.client import Client, RequestError

APP = "harnessapp:app"
KEYS = {"a": "key-a", "b": "key-b", "limited": "key-limited", "rated": "key-rated"}
ADMIN_TOKEN = "admin-secret"
WORKER_TOKEN = "worker-secret"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


CONFIG = f"""
auth = true
admin_token_sha256 = "{sha(ADMIN_TOKEN)}"
worker_token_sha256 = "{sha(WORKER_TOKEN)}"

[tenants.a]
api_keys_sha256 = ["{sha(KEYS['a'])}"]

[tenants.b]
api_keys_sha256 = ["{sha(KEYS['b'])}"]

[tenants.limited]
api_keys_sha256 = ["{sha(KEYS['limited'])}"]
max_running = 2
max_backlog = 3

[tenants.rated]
api_keys_sha256 = ["{sha(KEYS['rated'])}"]
rate_per_s = 5
burst = 1
"""


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("secured")
    (root / "endure.toml").write_text(CONFIG)
    cluster = Cluster(root, env={"ENDURE_TEST_DIR": str(root), "ENDURE_WORKER_TOKEN": WORKER_TOKEN},
                      admin_token=ADMIN_TOKEN)
    try:
        cluster.start_runtime(["--config", str(root / "endure.toml")])
        cluster.start_worker(APP, concurrency=32)
        yield cluster
    finally:
        cluster.stop()


def client(cluster: Cluster, tenant: str | None) -> Client:
    return Client(cluster.ingress, api_key=KEYS[tenant] if tenant else None)




def open_gate(cluster: Cluster, tag: str) -> None:
    (cluster.root / f"gate-{tag}").touch()


def starts(cluster: Cluster, prefix: str) -> list[tuple[str, float]]:
    out = []
    for line in read_markers(cluster.root):
        parts = line.split()
        if len(parts) == 3 and parts[0] == "start" and parts[1].startswith(prefix):
            out.append((parts[1], float(parts[2])))
    return out


# ---------------------------------------------------------------------- tenants and access


async def test_requests_need_a_known_api_key(secured: Cluster) -> None:
    for api_key in (None, "not-a-key"):
        async with Client(secured.ingress, api_key=api_key) as c:
            with pytest.raises(RequestError) as err:
                await c.call("h/stamp", "nobody")
            assert err.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_routes_need_a_known_api_key_and_one_node_has_nowhere_else_to_route(secured: Cluster) -> None:
    with grpc.insecure_channel(secured.ingress) as channel:
        stub = ipb_grpc.IngressStub(channel)
        for metadata in ((), (("authorization", "Bearer not-a-key"),)):
            with pytest.raises(grpc.RpcError) as err:
                stub.GetRoutes(ipb.RoutesRequest(), timeout=10, metadata=metadata)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        routes = stub.GetRoutes(ipb.RoutesRequest(), timeout=10, metadata=(("authorization", f"Bearer {KEYS['a']}"),))
    assert routes.partitions == secured.partitions
    assert list(routes.owners) == [0] * secured.partitions
    assert [(n.id, n.address) for n in routes.nodes] == [(0, "")]  # "": the address the client already uses


async def test_another_tenants_ids_are_not_found_for_every_rpc(secured: Cluster) -> None:
    async with client(secured, "a") as a, client(secured, "b") as b:
        inv = await a.send("h/gated", "xa")
        waiting = await a.send("h/awakeable")
        wait_until(lambda: any(line.startswith("awakeable ") for line in read_markers(secured.root)), 60,
                   "the awakeable id")
        awakeable_id = next(line.split()[1] for line in read_markers(secured.root) if line.startswith("awakeable "))
        refused = [
            b.attach(inv, timeout=5), b.get_output(inv), b.cancel(inv), b.kill(inv),
            b.resolve_awakeable(awakeable_id, "stolen"), b.reject_awakeable(awakeable_id, "no"),
        ]
        for attempt in refused:
            with pytest.raises(RequestError) as err:
                await attempt
            assert err.value.code == grpc.StatusCode.NOT_FOUND, err.value
        with pytest.raises(RequestError) as err:  # its live streams too
            [event async for event in b.subscribe(inv)]
        assert err.value.code == grpc.StatusCode.NOT_FOUND, err.value
        assert await a.get_output(inv) == (False, None)  # untouched, still running
        await a.resolve_awakeable(awakeable_id, "mine")
        assert await a.attach(waiting, timeout=30) == "mine"
        open_gate(secured, "xa")
        assert await a.attach(inv, timeout=30) == "xa"


async def test_object_state_is_per_tenant(secured: Cluster) -> None:
    async with client(secured, "a") as a, client(secured, "b") as b:
        await a.call("hobj/put", "from-a", key="shared-key")
        await b.call("hobj/put", "from-b", key="shared-key")
        assert await a.call("hobj/get", key="shared-key") == "from-a"
        assert await b.call("hobj/get", key="shared-key") == "from-b"


def test_admin_and_worker_endpoints_need_their_tokens(secured: Cluster) -> None:
    channel = grpc.insecure_channel(secured.admin)
    try:
        with pytest.raises(grpc.RpcError) as err:
            apb_stub = __import__("endure.proto.admin_pb2_grpc", fromlist=["AdminStub"]).AdminStub(channel)
            apb_stub.ListServices(apb.ListServicesRequest(), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stream = wpb_grpc.WorkerEndpointStub(channel).Connect(
            iter([wpb.WorkerMessage(frames=[wpb.WorkerFrame(register=wpb.Register(deployment_id="intruder"))])]),
            timeout=10)
        with pytest.raises(grpc.RpcError) as err:
            next(iter(stream))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        channel.close()


# ---------------------------------------------------------------------- flow control


async def test_concurrency_limit_is_exact_and_backlog_overflow_is_refused(secured: Cluster) -> None:
    tags = [f"lim{i}" for i in range(5)]
    async with client(secured, "limited") as c:
        ids = [await c.send("h/gated", tag) for tag in tags]
        wait_until(lambda: get_limits(secured).running.get("tenant:limited") == 2
                   and get_limits(secured).backlog.get("limited") == 3, 60, "2 running and 3 queued")
        wait_until(lambda: len(starts(secured, "lim")) == 2, 60, "the two running handlers' steps")
        assert len(starts(secured, "lim")) == 2
        channel = grpc.aio.insecure_channel(secured.ingress)
        try:
            stub = ipb_grpc.IngressStub(channel)
            call = stub.Send(ipb.SendRequest(call=ipb.CallRequest(
                target=pb.Target(service="h", handler="gated"), input=b'"lim-extra"')),
                metadata=(("authorization", f"Bearer {KEYS['limited']}"),), timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            trailers = dict(await call.trailing_metadata() or ())
            assert int(trailers["retry-after-ms"]) > 0
            # Shed at admission, before the input is even parsed: a flood of bad input costs no parsing.
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Send(ipb.SendRequest(call=ipb.CallRequest(
                    target=pb.Target(service="h", handler="gated"), input=b"{not json")),
                    metadata=(("authorization", f"Bearer {KEYS['limited']}"),), timeout=10)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
        finally:
            await channel.close()
        for tag in tags:
            open_gate(secured, tag)
        results = await asyncio.gather(*(c.attach(i, timeout=60) for i in ids))
    assert results == tags  # nothing accepted was dropped
    assert len(starts(secured, "lim")) == 5


async def test_rate_limit_spaces_starts(secured: Cluster) -> None:
    async with client(secured, "rated") as c:
        ids = [await c.send("h/stamp", f"rate{i}") for i in range(6)]
        await asyncio.gather(*(c.attach(i, timeout=60) for i in ids))
    times = sorted(t for _, t in starts(secured, "rate"))
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(times) == 6
    assert min(gaps) >= 0.15, gaps  # 5 per second with a burst of 1: one start every 200 ms


# ---------------------------------------------------------------------- metering, limits across restarts


@pytest.fixture
def open_cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, env={"ENDURE_TEST_DIR": str(tmp_path)})
    try:
        yield cluster
    finally:
        cluster.stop()


def usage(cluster: Cluster, **request: object) -> apb.UsageResponse:
    channel, stub = cluster.admin_stub()
    try:
        return stub.GetUsage(apb.UsageRequest(**request), timeout=10)  # type: ignore[arg-type]
    finally:
        channel.close()


async def test_metering_is_exact_after_kill9_of_runtime_and_worker(open_cluster: Cluster) -> None:
    c = open_cluster
    c.start_runtime()
    first = c.start_worker(APP, name="w1")
    async with Client(c.ingress) as client_:
        inv = await client_.send("h/metered", "m")
    wait_until(lambda: len(starts(c, "m")) == 1, 60, "step two")
    c.runtime.kill9()  # type: ignore[union-attr]
    c.start_runtime()
    c.wait_for_workers(1)
    first.kill9()
    c.start_worker(APP, name="w2")
    wait_until(lambda: len(starts(c, "m")) >= 2, 60, "step two again on the new worker")
    open_gate(c, "m")
    async with Client(c.ingress) as client_:
        assert await client_.attach(inv, timeout=60) == 30
    rows = usage(c, by="handler").rows
    metered = [r for r in rows if r.group == "h/metered"]
    assert len(metered) == 1
    assert metered[0].tenant == "default"
    assert metered[0].counters["llm.tokens.input"] == 30.0  # not 40: the replayed meter entry is not re-counted
    assert metered[0].counters["invocations"] == 1.0
    assert metered[0].counters["journal.bytes"] > 0
    assert c.describe(inv).status.usage["llm.tokens.input"] == 30.0


async def test_limits_set_through_the_admin_api_survive_a_restart(open_cluster: Cluster) -> None:
    c = open_cluster
    c.start_runtime()
    channel, stub = c.admin_stub()
    try:
        stub.SetLimits(apb.SetLimitsRequest(tenant="acme", limits=apb.LimitSpec(max_running=7, rate_per_s=3)),
                       timeout=10)
        with pytest.raises(grpc.RpcError) as err:
            stub.SetLimits(apb.SetLimitsRequest(tenant="acme", limits=apb.LimitSpec(max_running=0)), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        channel.close()
    assert c.runtime.terminate() == 0  # type: ignore[union-attr]
    c.start_runtime()
    got = get_limits(c).tenants["acme"]
    assert (got.max_running, got.rate_per_s) == (7, 3.0)


# ---------------------------------------------------------------------- observability


def scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:  # noqa: S310 - loopback
        return response.read().decode()


async def test_metrics_of_runtime_and_worker_and_traces_follow_the_client(open_cluster: Cluster) -> None:
    c = open_cluster
    c.env["ENDURE_OTEL"] = "console"
    c.start_runtime()
    worker_metrics = f"127.0.0.1:{free_port()}"
    worker = c.start_worker(APP, extra_args=["--metrics", worker_metrics])
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    channel = grpc.aio.insecure_channel(c.ingress)
    try:
        out = await ipb_grpc.IngressStub(channel).Call(
            ipb.CallRequest(target=pb.Target(service="h", handler="stamp"), input=b'"traced"'),
            metadata=(("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01"),), timeout=30)
    finally:
        await channel.close()
    assert json.loads(out.value) == "traced"

    runtime_text = scrape(c.metrics)
    assert re.search(r'endure_invocations_finished_total\{outcome="ok",status="completed"\} [1-9]', runtime_text)
    assert "endure_partition_apply_lag_records" in runtime_text
    assert re.search(r"endure_workers 1\.0", runtime_text)
    worker_text = scrape(worker_metrics)
    assert re.search(r'endure_worker_attempts_total\{handler="stamp",outcome="ok",service="h"\} 1\.0', worker_text)
    assert re.search(r"endure_worker_step_seconds_count [1-9]", worker_text)

    def spans() -> list[str]:
        return [line for line in worker.lines if f'"trace_id": "0x{trace_id}"' in line]

    wait_until(lambda: len(spans()) >= 2, 30, "the attempt and step spans")  # printed as spans end
    names = [line for line in worker.lines if '"name": ' in line]
    assert any('"name": "h/stamp"' in n for n in names) and any('"name": "run stamp"' in n for n in names)


async def test_node_wide_queue_bound_refuses_new_work_and_keeps_what_it_accepted(tmp_path: Path) -> None:
    c = Cluster(tmp_path, env={"ENDURE_TEST_DIR": str(tmp_path), "ENDURE_MAX_QUEUED": "3"})
    try:
        c.start_runtime()
        c.start_worker(APP, name="w1").kill9()  # registers the services, then no worker is left
        async with Client(c.ingress) as client_:
            ids = [await client_.send("h/stamp", f"q{i}") for i in range(3)]
            wait_until(lambda: sum(get_limits(c).backlog.values()) == 3, 60, "three queued invocations")
            with pytest.raises(RequestError) as err:
                await client_.send("h/stamp", "q-extra")
            assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            c.start_worker(APP, name="w2")
            assert await asyncio.gather(*(client_.attach(i, timeout=60) for i in ids)) == ["q0", "q1", "q2"]
    finally:
        c.stop()
