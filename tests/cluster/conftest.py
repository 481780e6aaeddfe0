"""Fixtures of the JetStream engine tests: one real 3-server cluster for the whole session (the
failure tests start their own), a fresh namespace per test, and node handles on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("nats", reason="the JetStream engine needs the cluster extra (nats-py)")

from nats_cluster import (  # noqa: E402, I001 - tests/cluster is on sys.path (rootdir-relative import)
    JsNode,
    LocalNatsCluster,
    NatsServerNotFound,
    fresh_namespace,
    nats_server_binary,
    open_node,
    start_cluster,
)


def _require_server() -> None:
    try:
        nats_server_binary()
    except NatsServerNotFound as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNatsCluster]:
    _require_server()
    cluster = start_cluster(tmp_path_factory.mktemp("nats"))
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def namespace() -> str:
    return fresh_namespace()


@pytest.fixture
async def make_node(nats_cluster: LocalNatsCluster, namespace: str) -> AsyncIterator[Callable[..., Awaitable[JsNode]]]:
    """open another node on this test's namespace (same logs, own connection and provider)."""
    nodes: list[JsNode] = []

    async def make(**provider_options: Any) -> JsNode:
        node = await open_node(nats_cluster.urls, namespace, **provider_options)
        nodes.append(node)
        return node

    try:
        yield make
    finally:
        for node in nodes:
            await node.close()


@pytest.fixture
async def node(make_node: Callable[..., Awaitable[JsNode]]) -> JsNode:
    return await make_node()
