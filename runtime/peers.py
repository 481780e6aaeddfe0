"""The partitions the other nodes of one machine own, reached at the addresses they publish.

Each node publishes its internal (admin) address in `nodes/<i>/endpoint` once it serves
(`endure.runtime.placement`). A `PeerPartition` is the `Partition` a node uses for a partition
node i owns: a `RemotePartition` over one channel per peer (`Peer`), opened at the first call
(peers start in any order: the first call waits up to `resolve_timeout` for the file).

A restarted peer binds a new port. The rule is simple: when a call fails with
`PartitionUnavailable`, the peer's file is read again; if it names a new address, the channel is
replaced. A read is then tried once more on the new channel; an append is not (it may have reached
the old process before it died), its caller gets the `PartitionUnavailable` and may retry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import grpc

from endure.proto import records_pb2 as pb
from endure.runtime.partition.api import InvocationFilter, PartitionInfo, StreamRead, UsageRecord
from endure.runtime.partition.remote import PartitionUnavailable, RemotePartition
from endure.runtime.placement import read_endpoint

__all__ = ["Peer", "PeerPartition", "peer_partitions"]

T = TypeVar("T")
_MAX_MESSAGE = 64 << 20


class Peer:
    """One other node: its published address, and one channel to it (replaced when it moves)."""

    def __init__(self, node: int, where: Path | Callable[[], str | None], *,
                 metadata: Sequence[tuple[str, str]] = (), resolve_timeout: float = 10.0) -> None:
        self.node = node
        # Where its address is published: its node folder (one machine), or a lookup (a cluster's
        # node registry).
        self._resolve = where if callable(where) else (lambda d=where: read_endpoint(d))
        self.where = where
        self.metadata = tuple(metadata)
        self.resolve_timeout = resolve_timeout
        self.address: str | None = None
        self._channel: grpc.aio.Channel | None = None
        self._partitions: dict[int, RemotePartition] = {}
        self._old: list[grpc.aio.Channel] = []

    async def partition(self, p: int) -> RemotePartition:
        if self._channel is None:
            deadline = time.monotonic() + self.resolve_timeout
            while (address := self._resolve()) is None:
                if time.monotonic() > deadline:
                    raise PartitionUnavailable(p, f"partition {p}: node {self.node} published no address "
                                                  f"({self.where}) within {self.resolve_timeout:g}s")
                await asyncio.sleep(0.05)  # the peer is starting: polling its published file
            if self._channel is None:  # another caller may have connected meanwhile
                self._connect(address)
        part = self._partitions.get(p)
        if part is None:
            assert self._channel is not None
            part = self._partitions[p] = RemotePartition(p, self._channel, metadata=self.metadata)
        return part

    def refresh(self) -> bool:
        """Read the peer's address again; True if it moved (the channel was replaced)."""
        address = self._resolve()
        if address is None or address == self.address:
            return False
        self._connect(address)
        return True

    def _connect(self, address: str) -> None:
        if self._channel is not None:
            self._old.append(self._channel)  # calls still on it fail on their own; closed in close()
        self.address = address
        self._channel = grpc.aio.insecure_channel(address, options=[
            ("grpc.max_receive_message_length", _MAX_MESSAGE), ("grpc.max_send_message_length", _MAX_MESSAGE)])
        self._partitions = {}

    async def close(self) -> None:
        channels = [*self._old, *([self._channel] if self._channel is not None else [])]
        self._old, self._channel, self._partitions = [], None, {}
        for channel in channels:
            await channel.close()


class PeerPartition:
    """A partition a peer owns, as a `Partition` (errors as RemotePartition's: typed)."""

    def __init__(self, partition: int, peer: Peer) -> None:
        self._partition = partition
        self._peer = peer

    @property
    def id(self) -> int:
        return self._partition

    @property
    def owner(self) -> int:
        return self._peer.node

    async def _read(self, call: Callable[[RemotePartition], Awaitable[T]]) -> T:
        try:
            return await call(await self._peer.partition(self._partition))
        except PartitionUnavailable:
            if not self._peer.refresh():
                raise
        return await call(await self._peer.partition(self._partition))

    async def append(self, envelopes: Sequence[pb.Envelope], *, wait: bool = True) -> range:
        part = await self._peer.partition(self._partition)
        try:
            return await part.append(envelopes, wait=wait)
        except PartitionUnavailable:
            self._peer.refresh()  # the next call goes to the peer's new address, if it moved
            raise

    async def get_status(self, invocation_id: str) -> pb.InvocationStatus | None:
        return await self._read(lambda part: part.get_status(invocation_id))

    async def get_journal(self, invocation_id: str, start: int = 0, limit: int = 0) -> list[pb.JournalEntry]:
        return await self._read(lambda part: part.get_journal(invocation_id, start, limit))

    async def scan_object_keys(self, tenant: str, service: str, after: str | None, limit: int,
                               promises: bool = False) -> list[str]:
        return await self._read(lambda part: part.scan_object_keys(tenant, service, after, limit, promises))

    async def get_object_state(self, tenant: str, service: str, key: str) -> list[tuple[str, bytes]]:
        return await self._read(lambda part: part.get_object_state(tenant, service, key))

    async def get_promises(self, tenant: str, workflow: str, key: str) -> list[tuple[str, pb.Promise]]:
        return await self._read(lambda part: part.get_promises(tenant, workflow, key))

    async def scan_invocations(self, flt: InvocationFilter, after: str | None, limit: int) -> list[pb.InvocationStatus]:
        return await self._read(lambda part: part.scan_invocations(flt, after, limit))

    async def scan_recent(self, flt: InvocationFilter, before: tuple[int, str] | None,
                          limit: int) -> list[pb.InvocationStatus]:
        return await self._read(lambda part: part.scan_recent(flt, before, limit))

    async def get_usage(self, tenant: str | None, since_day: int) -> list[UsageRecord]:
        return await self._read(lambda part: part.get_usage(tenant, since_day))

    async def get_info(self) -> PartitionInfo:
        return await self._read(lambda part: part.get_info())

    async def get_pinned_counts(self) -> dict[str, int]:
        return await self._read(lambda part: part.get_pinned_counts())

    async def read_stream(self, invocation_id: str, after_seq: int, limit: int, wait_s: float = 0.0) -> StreamRead:
        return await self._read(lambda part: part.read_stream(invocation_id, after_seq, limit, wait_s))

    async def await_completion(self, invocation_id: str, applied_lsn: int = 0) -> pb.InvocationStatus | None:
        # A wait changes nothing, so after a restart of the owner it is asked again like any read.
        return await self._read(lambda part: part.await_completion(invocation_id, applied_lsn))


def peer_partitions(peers: dict[int, Peer], owners: dict[int, int]) -> dict[int, PeerPartition]:
    """A PeerPartition for each partition in owners (partition → owning node), over that node's Peer."""
    return {p: PeerPartition(p, peers[node]) for p, node in owners.items()}
