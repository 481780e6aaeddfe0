"""Test kit for the JetStream engine: a real 3-server cluster and "nodes" (connection + metadata
store + loglet provider) on it.

The cluster itself is `endure.runtime.log.jetstream.local_cluster.LocalNatsCluster` (shared with
the benchmark): free 127.0.0.1 ports, a store per server, `sync_interval: always`, readiness from
`/healthz`, servers that die with the test process (PR_SET_PDEATHSIG) and are killed in the
fixture's finalizer. Tests sharing one cluster keep apart by namespace (stream names) and bucket.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endure.runtime.log import VirtualLog
from endure.runtime.log.jetstream import JetStreamConnection, JetStreamLogletProvider, JetStreamMetadataStore
from endure.runtime.log.jetstream.local_cluster import (
    LocalNatsCluster,
    NatsServerNotFound,
    nats_server_binary,
)

__all__ = ["JsNode", "LocalNatsCluster", "NatsServerNotFound", "fresh_namespace", "nats_server_binary",
           "open_node", "start_cluster", "stream_leader"]

_names = itertools.count(1)


def fresh_namespace() -> str:
    """A namespace (stream prefix and bucket) no other test of this run uses."""
    return f"t{next(_names)}"


def start_cluster(root: Path, size: int = 3) -> LocalNatsCluster:
    return LocalNatsCluster(root, size).start()


@dataclass
class JsNode:
    """What one Endure node holds for the replicated log: a connection, the metadata store, the
    loglet provider. Two JsNodes on one namespace behave like two nodes sharing the cluster's logs."""

    conn: JetStreamConnection
    metadata: JetStreamMetadataStore
    provider: JetStreamLogletProvider

    async def log(self, log_id: int = 0) -> VirtualLog:
        return await VirtualLog.open(log_id, self.metadata, {"jetstream": self.provider}, default_kind="jetstream")

    async def close(self) -> None:
        await self.provider.close()
        await self.metadata.close()
        await self.conn.close()


async def open_node(urls: list[str], namespace: str, **provider_options: Any) -> JsNode:
    conn = await JetStreamConnection.connect(urls)
    try:
        metadata = await JetStreamMetadataStore.open(conn, f"{namespace}-meta", replicas=3)
        provider = JetStreamLogletProvider(conn, namespace=namespace, replicas=3, **provider_options)
    except BaseException:
        await conn.close()
        raise
    return JsNode(conn, metadata, provider)


async def stream_leader(conn: JetStreamConnection, stream: str) -> str:
    """The server name of a stream's raft leader."""
    info = await conn.api(f"STREAM.INFO.{stream}", what="stream info")
    return str(info["cluster"]["leader"])
