"""The log and metadata of a cluster node: a JetStream connection, its metadata bucket and one
virtual log per partition (opened when the node first needs it)."""

from __future__ import annotations

from endure.runtime.config import ClusterConfig, ConfigError
from endure.runtime.log import VirtualLog
from endure.runtime.log.jetstream import (
    ClusterUnavailable,
    JetStreamConnection,
    JetStreamLogletProvider,
    JetStreamMetadataStore,
)

KIND = "jetstream"


class ClusterLog:
    def __init__(self, conn: JetStreamConnection, metadata: JetStreamMetadataStore,
                 provider: JetStreamLogletProvider) -> None:
        self.conn = conn
        self.metadata = metadata
        self.provider = provider
        self._logs: dict[int, VirtualLog] = {}

    @classmethod
    async def open(cls, config: ClusterConfig, connect_timeout: float = 5.0) -> ClusterLog:
        """Connect; an unreachable cluster is a ConfigError naming the addresses (one line)."""
        try:
            conn = await JetStreamConnection.connect(config.nats, connect_timeout=connect_timeout)
        except ClusterUnavailable as exc:
            raise ConfigError(str(exc)) from exc
        try:
            metadata = await JetStreamMetadataStore.open(conn, f"{config.name}-metadata", replicas=config.replicas)
        except BaseException:
            await conn.close()
            raise
        return cls(conn, metadata, JetStreamLogletProvider(conn, replicas=config.replicas, namespace=config.name))

    async def log(self, partition: int) -> VirtualLog:
        vlog = self._logs.get(partition)
        if vlog is None:
            vlog = self._logs[partition] = await VirtualLog.open(partition, self.metadata, {KIND: self.provider},
                                                                 default_kind=KIND)
        return vlog

    def forget(self, partition: int) -> None:
        """Drop a partition's log view (it is led elsewhere now; a later lead reloads its chain)."""
        self._logs.pop(partition, None)

    async def close(self) -> None:
        await self.provider.close()
        await self.metadata.close()
        await self.conn.close()
