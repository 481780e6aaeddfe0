"""Client-side routing on `endure serve --processes 2` (real processes): the Python client, given
the shared ingress port, sends every keyed request straight to the node that owns its partition,
so no ingress forwards anything (`endure_ingress_forwarded_total` on each node's metrics), and
the results are those of any other path.

4 partitions: node 0 owns 0 and 2, node 1 owns 1 and 3.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
import pytest
from cluster import Cluster, read_markers, running_cluster, wait_entry, wait_until  # noqa: I001 - tests/integration is on sys.path

from endure.proto import ids
from endure.proto import ingress_pb2 as ipb
from endure.proto import ingress_pb2_grpc as ipb_grpc
from endure.sdk.client import Client, InvocationCancelled

PARTITIONS = 4
NODES = 2


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("client-routing")


@pytest.fixture(scope="module")
def two(root: Path) -> Iterator[Cluster]:
    with running_cluster(root, "e2eapp:app", processes=NODES, partitions=PARTITIONS) as c:
        yield c


def partition_of(key: str) -> int:
    return ids.stable_hash64(key) % PARTITIONS


def keys_on_every_partition(stem: str) -> list[str]:
    """One key per partition (so both partitions of both nodes are used)."""
    found: dict[int, str] = {}
    for i in range(1000):
        found.setdefault(partition_of(f"{stem}-{i}"), f"{stem}-{i}")
        if len(found) == PARTITIONS:
            return [found[p] for p in range(PARTITIONS)]
    raise AssertionError("no key for some partition")


def total_forwarded(cluster: Cluster) -> dict[int, float]:
    return {n: sum(cluster.forwarded(n).values()) for n in range(NODES)}


def test_routes_match_the_placement_and_the_published_ingress_addresses(two: Cluster) -> None:
    placement = json.loads((two.data_dir / "placement.json").read_text())
    published = {n: two.node_ingress(n) for n in range(NODES)}
    for address in (two.ingress, *published.values()):  # every ingress answers the same
        with grpc.insecure_channel(address) as channel:
            routes = ipb_grpc.IngressStub(channel).GetRoutes(ipb.RoutesRequest(), timeout=10)
        assert routes.partitions == placement["partitions"] == PARTITIONS
        assert list(routes.owners) == placement["owners"] == [0, 1, 0, 1]
        assert {n.id: n.address for n in routes.nodes} == published


async def test_keyed_requests_through_the_shared_port_are_not_forwarded(two: Cluster, root: Path) -> None:
    before = total_forwarded(two)
    keys = keys_on_every_partition("routed")
    async with Client(two.ingress) as client:
        # Object calls (exclusive and shared), a send, and attach by id.
        for key in keys:
            assert await client.call("e2eobj/append", "a", key=key, timeout=30) == ["a"]
            sent = await client.send("e2eobj/append", "b", key=key)
            assert ids.partition_of(sent, PARTITIONS) == partition_of(key)
            assert await client.attach(sent, timeout=30) == ["a", "b"]
            assert await client.get_output(sent) == (True, ["a", "b"])
            assert await client.call("e2eobj/items", key=key, timeout=30) == ["a", "b"]
        # Idempotent calls of a service (no object key): the idempotency key's partition.
        for tag in keys_on_every_partition("idem"):
            assert [await client.call("e2e/once", tag, idempotency_key=tag, timeout=30) for _ in range(2)] == [
                f"done {tag}"] * 2
            assert await client.attach(handler="e2e/once", idempotency_key=tag, timeout=30) == f"done {tag}"
            assert read_markers(root).count(f"{tag}:once") == 1
        # Awakeables and cancel of invocations that live on each node (started there, unkeyed).
        for node in range(NODES):
            async with Client(two.node_ingress(node), routing=False) as on_node:
                waiting = await on_node.send("e2e/human")
                sleeping = await on_node.send("e2e/cancellable", f"routed-cancel-{node}")
            assert ids.partition_of(waiting, PARTITIONS) % NODES == node
            assert ids.partition_of(sleeping, PARTITIONS) % NODES == node
            await client.resolve_awakeable(ids.awakeable_id(waiting, wait_entry(two, waiting, "awakeable")), node)
            assert await client.attach(waiting, timeout=30) == f"approved {node}"
            wait_entry(two, sleeping, "sleep")
            await client.cancel(sleeping)
            with pytest.raises(InvocationCancelled):
                await client.attach(sleeping, timeout=30)
            assert read_markers(root).count(f"routed-cancel-{node}:compensated") == 1
    assert total_forwarded(two) == before  # nothing was forwarded, on either node


async def test_without_routing_a_keyed_call_to_the_other_node_is_forwarded(two: Cluster) -> None:
    """The control: the counter does see forwarding. One channel is one connection to one node, so
    of calls on all four partitions, those of the other node's two are forwarded."""
    before = total_forwarded(two)
    async with Client(two.ingress, routing=False) as client:
        for key in keys_on_every_partition("unrouted"):
            assert await client.call("e2eobj/append", "x", key=key, timeout=30) == ["x"]
    after = total_forwarded(two)
    assert sum(after.values()) - sum(before.values()) >= 2


async def test_a_restarted_node_is_found_again(two: Cluster) -> None:
    """kill -9 of node 1: it comes back on a new own ingress port. The client's next request for
    its partition cannot reach the old port, goes once through the shared port, and the client
    reads the routes again and sends the following ones to the new port."""
    key = next(k for k in keys_on_every_partition("moved") if partition_of(k) % NODES == 1)
    old = two.node_ingress(1)
    async with Client(two.ingress) as client:
        assert await client.call("e2eobj/append", "1", key=key, timeout=30) == ["1"]
        psutil.Process(two.node_pid(1)).kill()
        path = two.data_dir / "nodes" / "1" / "ingress"
        new = wait_until(lambda: path.exists() and (a := path.read_text().strip()) != old and a, 60,
                         what="node 1 to publish a new ingress address")
        assert await client.call("e2eobj/append", "2", key=key, timeout=30) == ["1", "2"]
        for _ in range(500):
            routes = client._routes
            if routes is not None and routes.by_partition[partition_of(key)] == new:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the client did not read node 1's new address")
        before = total_forwarded(two)
        assert await client.call("e2eobj/append", "3", key=key, timeout=30) == ["1", "2", "3"]
        assert await client.call("e2eobj/items", key=key, timeout=30) == ["1", "2", "3"]
        assert total_forwarded(two) == before


async def test_one_client_spreads_unkeyed_calls_over_the_nodes_without_forwarding(two: Cluster) -> None:
    before = total_forwarded(two)
    async with Client(two.ingress) as client:
        sent = [await client.send("e2e/echo", i) for i in range(8)]
        assert [await client.attach(inv, timeout=30) for inv in sent] == list(range(8))
    assert {ids.partition_of(inv, PARTITIONS) % NODES for inv in sent} == set(range(NODES))
    assert total_forwarded(two) == before
