"""A real PartitionService on 127.0.0.1:0 over LocalPartitions, and RemotePartition clients to it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc

from endure.proto import partition_pb2_grpc as ppb_grpc
from endure.proto import records_pb2 as pb
from endure.runtime.checked_requests import add_checked
from endure.runtime.partition.api import LocalPartition
from endure.runtime.partition.remote import PartitionServicer, RemotePartition


class CountingInterceptor(grpc.aio.ServerInterceptor):
    """Counts the calls of each method the server receives (to see appends coalesce)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        name = details.method.rsplit("/", 1)[-1]
        self.calls[name] = self.calls.get(name, 0) + 1
        return await continuation(details)


class Served:
    """The server, its channel, and the counter of the RPCs it received."""

    def __init__(self, partitions: Mapping[int, LocalPartition]) -> None:
        self.counter = CountingInterceptor()
        self.server = grpc.aio.server(interceptors=[self.counter])
        add_checked(ppb_grpc.add_PartitionServiceServicer_to_server, PartitionServicer(partitions), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.channel: grpc.aio.Channel | None = None

    async def start(self) -> grpc.aio.Channel:
        await self.server.start()
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.port}")
        return self.channel

    def remote(self, partition: int, **kwargs: Any) -> RemotePartition:
        assert self.channel is not None
        return RemotePartition(partition, self.channel, **kwargs)

    async def stop(self) -> None:
        if self.channel is not None:
            await self.channel.close()
        await self.server.stop(None)


class RemoteView:
    """The RemotePartition under test, with the in-process-only methods the tests drive the partition
    with (waiting for apply, appending as the leader) taken from the owner's LocalPartition."""

    def __init__(self, remote: RemotePartition, local: LocalPartition) -> None:
        self.remote = remote
        self.local = local

    def __getattr__(self, name: str) -> Any:
        return getattr(self.remote, name)

    async def wait_applied(self, lsn: int) -> None:
        await self.local.wait_applied(lsn)

    async def append_as_leader(self, envelopes: Sequence[pb.Envelope]) -> range:
        return await self.local.append_as_leader(envelopes)
