"""Following the partition table: lead what is assigned to this node, reach the rest remotely.

The node hands in how to open a local partition (its store, log and processor, leading with the
table's epoch) and how to reach a partition led elsewhere; this keeps the node's maps (its local
partitions, and every partition by id) in step with the newest table it was given. Changes are
made one table at a time, in order; a table that arrives while one is being applied waits, and
only the newest waiting one is applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping

from endure.runtime.cluster.partition_table import PartitionTable
from endure.runtime.partition.api import LocalPartition, Partition

log = logging.getLogger("endure.cluster")


class Leadership:
    def __init__(self, node_id: int, incarnation: Callable[[], int], local: MutableMapping[int, LocalPartition],
                 every: MutableMapping[int, Partition],
                 open_local: Callable[[int, int], Awaitable[LocalPartition]],
                 close_local: Callable[[int], Awaitable[None]],
                 remote: Callable[[int, int], Partition],
                 may_lead: Callable[[], bool]) -> None:
        self._node_id = node_id
        self._incarnation = incarnation
        self._local = local  # the node's own maps, changed in place (the ingress, invoker and admin hold them)
        self._every = every
        self._open_local = open_local
        self._close_local = close_local
        self._remote = remote
        self._may_lead = may_lead
        self._epochs: dict[int, int] = {}  # the epoch each local partition leads with
        self._owners: dict[int, int] = {}
        self._pending: PartitionTable | None = None
        self._task: asyncio.Task[None] | None = None
        self.table: PartitionTable | None = None

    def apply(self, table: PartitionTable) -> None:
        self._pending = table
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="leadership")

    async def _drain(self) -> None:
        while self._pending is not None:
            table, self._pending = self._pending, None
            try:
                await self._reconcile(table)
            except Exception:
                log.exception("node %d: applying partition table v%d failed; retrying with the next",
                              self._node_id, table.version)

    async def _reconcile(self, table: PartitionTable) -> None:
        self.table = table
        leading = self._may_lead()
        for p, assignment in enumerate(table.assignments):
            mine = leading and assignment.node == self._node_id and assignment.incarnation == self._incarnation()
            if p in self._local and (not mine or self._epochs.get(p) != assignment.epoch):
                await self._stop(p)
            if mine and p not in self._local:
                log.info("node %d: leading partition %d with epoch %d", self._node_id, p, assignment.epoch)
                self._local[p] = await self._open_local(p, assignment.epoch)
                self._epochs[p] = assignment.epoch
                self._every[p] = self._local[p]
            elif not mine and (self._owners.get(p) != assignment.node or p not in self._every):
                self._every[p] = self._remote(p, assignment.node)
            self._owners[p] = assignment.node

    async def _stop(self, p: int) -> None:
        log.info("node %d: no longer leading partition %d", self._node_id, p)
        self._local.pop(p, None)
        self._epochs.pop(p, None)
        self._owners.pop(p, None)
        self._every[p] = self._remote(p, self.table.owner(p) if self.table is not None else -1)
        await self._close_local(p)

    async def stop_all(self) -> None:
        """Stop leading everything now (the lease is lost, or the node stops)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for p in list(self._local):
            await self._stop(p)
