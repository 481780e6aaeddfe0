"""Node leases: each node's record in the metadata, renewed by compare-and-set.

A node is live while its lease (`lease_until_ms`, wall-clock time written by the node itself) is in
the future. A node that cannot renew before its lease ends must stop leading at once
(`on_lost`): by then the controller may have given its partitions to another node. Nodes compare
lease times with their own clocks, so the nodes' clocks must agree to well within a lease
(NTP); a clock ahead makes a lease look shorter, never longer than its holder believes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from endure.runtime.log import LogError, MetadataStore, VersionMismatch

log = logging.getLogger("endure.cluster")

NODES_PREFIX = "cluster/nodes/"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """What the other nodes, workers and clients need of a node."""

    node_id: int
    admin: str  # admin API, worker endpoint and the internal PartitionService
    ingress: str
    lease_until_ms: int
    incarnation: int  # its start time: tells a restarted node from the one before

    def live(self, at_ms: int) -> bool:
        return self.lease_until_ms > at_ms

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @staticmethod
    def decode(raw: bytes) -> NodeRecord:
        return NodeRecord(**json.loads(raw))


def node_key(node_id: int) -> str:
    return f"{NODES_PREFIX}{node_id}"


async def read_nodes(metadata: MetadataStore) -> dict[int, NodeRecord]:
    """Every node that ever registered, live or not."""
    out: dict[int, NodeRecord] = {}
    for key in await metadata.keys(NODES_PREFIX):  # type: ignore[attr-defined]
        found = await metadata.get(key)
        if found is not None and found[1]:
            record = NodeRecord.decode(found[1])
            out[record.node_id] = record
    return out


class Membership:
    """This node's lease: registered at start, renewed every lease / 4, given up at stop."""

    def __init__(self, metadata: MetadataStore, node_id: int, admin: str, ingress: str, lease_ms: int,
                 on_lost: Callable[[], None], on_change: Callable[[], None] = lambda: None) -> None:
        self._metadata = metadata
        self._node_id = node_id
        self._admin = admin
        self._ingress = ingress
        self.lease_ms = lease_ms
        self._on_lost = on_lost
        self._on_change = on_change  # the live nodes or their addresses changed
        self.incarnation = now_ms()
        self._version = 0
        self.lease_until_ms = 0
        self.nodes: dict[int, NodeRecord] = {}  # the last read of every node's record
        self._task: asyncio.Task[None] | None = None

    @property
    def holds_lease(self) -> bool:
        return self.lease_until_ms > now_ms()

    def live_nodes(self) -> dict[int, NodeRecord]:
        at = now_ms()
        return {n: r for n, r in self.nodes.items() if r.live(at)}

    def address_of(self, node_id: int) -> str | None:
        """A live node's admin address (what peers and workers connect to), else None."""
        record = self.live_nodes().get(node_id)
        return record.admin if record is not None else None

    async def register(self) -> None:
        """Take this node's lease. A previous incarnation's lease is taken over: the same id is the
        same node (its partitions are moved only if it stays away past the lease)."""
        await self._renew()
        self.nodes = await read_nodes(self._metadata)
        self._task = asyncio.create_task(self._run(), name="membership")

    async def _renew(self) -> None:
        key = node_key(self._node_id)
        until = now_ms() + self.lease_ms
        record = NodeRecord(self._node_id, self._admin, self._ingress, until, self.incarnation)
        while True:
            try:
                self._version = await self._metadata.put(key, record.encode(), self._version)
                break
            except VersionMismatch as exc:
                self._version = exc.actual  # our own earlier write, or a previous incarnation's
        self.lease_until_ms = until

    async def _run(self) -> None:
        interval = self.lease_ms / 4000
        while True:
            await asyncio.sleep(interval)
            if self.lease_until_ms and not self.holds_lease:  # this process stalled (paused, swapped)
                self._lose("it ran out before it could be renewed")
            try:
                async with asyncio.timeout(max(0.05, (self.lease_until_ms - now_ms()) / 1000)
                                           if self.lease_until_ms else self.lease_ms / 1000):
                    await self._renew()
                before = {n: r.admin for n, r in self.live_nodes().items()}
                self.nodes = await read_nodes(self._metadata)
                if {n: r.admin for n, r in self.live_nodes().items()} != before:
                    self._on_change()
            except (LogError, TimeoutError) as exc:
                if self.lease_until_ms and not self.holds_lease:
                    self._lose(str(exc) or type(exc).__name__)
                else:
                    log.warning("node %d: lease renewal failed (%s); retrying", self._node_id, exc)

    def _lose(self, why: str) -> None:
        log.error("node %d: lease lost (%s); no longer leading", self._node_id, why)
        self.lease_until_ms = 0
        # A new life: what was assigned to the old one (its epochs) is not led again; once the
        # lease is back, the controller assigns anew, at newer epochs.
        self.incarnation = now_ms()
        self._on_lost()

    async def stop(self) -> None:
        """Stop renewing and end the lease at once, so the partitions move without waiting for it."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            record = NodeRecord(self._node_id, self._admin, self._ingress, 0, self.incarnation)
            async with asyncio.timeout(2):
                await self._metadata.put(node_key(self._node_id), record.encode(), self._version)
        except (TimeoutError, LogError, VersionMismatch):
            pass  # the lease runs out by itself
        self.lease_until_ms = 0
