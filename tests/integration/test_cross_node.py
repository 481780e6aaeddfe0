"""Two nodes, each reached through its own ingress port (clients without routing, so a request goes
where it is sent): work that starts on one node and is
continued, resolved, attached or retried through the other.

With `--processes 2` and 4 partitions, node 0 owns partitions 0 and 2 and node 1 owns 1 and 3. An
unkeyed invocation lands on a partition of the node whose ingress took it (no forwarding); a keyed
one lands on its key's partition, wherever that lives.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import Cluster, read_markers, running_cluster, wait_entry  # noqa: I001 - tests/integration is on sys.path

from endure.proto import ids
from endure.sdk.client import Client, InvocationCancelled

PARTITIONS = 2  # running_cluster's default: node 0 owns partition 0, node 1 owns partition 1


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cross-node")


@pytest.fixture(scope="module")
def two(root: Path) -> Iterator[Cluster]:
    with running_cluster(root, "e2eapp:app", processes=2) as c:
        assert c.partitions == PARTITIONS
        yield c


def owner(partition_key_or_id: str | int) -> int:
    """The node that owns a key's (str) or an invocation id's partition."""
    if isinstance(partition_key_or_id, int):
        return partition_key_or_id % PARTITIONS
    if partition_key_or_id.startswith(ids.INVOCATION_PREFIX):
        return ids.partition_of(partition_key_or_id, PARTITIONS)
    return ids.stable_hash64(partition_key_or_id) % PARTITIONS


def key_on(node: int, stem: str) -> str:
    return next(k for k in (f"{stem}-{i}" for i in range(100)) if owner(k) == node)


async def test_unkeyed_invocations_start_on_the_node_that_took_them(two: Cluster) -> None:
    for node in (0, 1):
        async with Client(two.node_ingress(node), routing=False) as client:
            sent = [await client.send("e2e/echo", i) for i in range(8)]
            assert {owner(inv) for inv in sent} == {node}
            assert [await client.attach(inv, timeout=30) for inv in sent] == list(range(8))


async def test_a_handler_calls_an_object_whose_key_lives_on_the_other_node(two: Cluster) -> None:
    key = key_on(1, "remote-obj")
    async with Client(two.node_ingress(0), routing=False) as on_0, Client(two.node_ingress(1), routing=False) as on_1:
        first = await on_0.send("e2e/object_caller", {"key": key, "item": "a"})
        assert owner(first) == 0  # the caller runs on node 0, the object on node 1
        assert await on_0.attach(first, timeout=30) == ["a"]
        assert await on_0.call("e2e/object_caller", {"key": key, "item": "b"}, timeout=30) == ["a", "b"]
        # The object's state is on its owner, read through either node.
        assert await on_1.call("e2eobj/items", key=key, timeout=30) == ["a", "b"]
        assert await on_0.call("e2eobj/items", key=key, timeout=30) == ["a", "b"]


async def test_awakeables_are_resolved_and_attached_through_the_other_node(two: Cluster) -> None:
    for start, other in ((0, 1), (1, 0)):
        async with Client(two.node_ingress(start), routing=False) as here, Client(two.node_ingress(other), routing=False) as there:
            inv = await here.send("e2e/human")
            assert owner(inv) == start
            awakeable = ids.awakeable_id(inv, wait_entry(two, inv, "awakeable"))
            await there.resolve_awakeable(awakeable, {"from": other})
            assert await there.attach(inv, timeout=30) == f"approved {{'from': {other}}}"


async def test_idempotent_retries_through_either_node_run_once(two: Cluster, root: Path) -> None:
    for node in (0, 1):  # the idempotency key's partition is on each node in turn
        tag = key_on(node, "idem")
        async with Client(two.node_ingress(0), routing=False) as on_0, Client(two.node_ingress(1), routing=False) as on_1:
            results = [await client.call("e2e/once", tag, idempotency_key=tag, timeout=30)
                       for client in (on_0, on_1, on_0, on_1)]
            assert results == [f"done {tag}"] * 4
            sent = {await client.send("e2e/once", tag, idempotency_key=tag) for client in (on_0, on_1)}
            assert len(sent) == 1
            assert await on_1.attach(handler="e2e/once", idempotency_key=tag, timeout=30) == f"done {tag}"
        assert read_markers(root).count(f"{tag}:once") == 1


async def test_workflow_promises_across_nodes(two: Cluster) -> None:
    key = key_on(1, "flow")
    async with Client(two.node_ingress(0), routing=False) as on_0, Client(two.node_ingress(1), routing=False) as on_1:
        inv = await on_0.submit("e2eflow/run", "a@b.c", key=key)
        assert owner(inv) == 1
        assert await on_0.call("e2eflow/approve", "ann", key=key, timeout=30) == "approved by ann"
        await on_0.resolve_promise("e2eflow", key, "confirmed", True)
        result = await on_0.attach(inv, timeout=30)
        assert result["approved"] == "ann" and result["confirmed"] is True
        assert await on_1.attach(inv, timeout=30) == result


async def test_cancel_through_the_other_node(two: Cluster, root: Path) -> None:
    async with Client(two.node_ingress(0), routing=False) as on_0, Client(two.node_ingress(1), routing=False) as on_1:
        inv = await on_0.send("e2e/cancellable", "x-cancel")
        assert owner(inv) == 0
        wait_entry(two, inv, "sleep")
        await on_1.cancel(inv)
        with pytest.raises(InvocationCancelled):
            await on_1.attach(inv, timeout=30)
    assert read_markers(root).count("x-cancel:compensated") == 1
