"""The controller: keeps every partition led by a live node.

Rule: the live node with the lowest id is the controller; every node runs this loop and acts only
while it is that node. Two nodes that both think so are safe: the table changes by compare-and-set,
so one of two conflicting changes fails and is recomputed from the new table.

Each round (every `interval_s`): a partition whose leader is not live (or that has none, or that
restarted since it was assigned) goes to the live node leading the fewest partitions, with its
epoch + 1. Then, at most one partition per
round moves from the node leading the most to the one leading the fewest while they differ by more
than one, so a node that joins takes its share.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from endure.runtime.cluster.membership import Membership
from endure.runtime.cluster.partition_table import Assignment, PartitionTable, read_table, write_table
from endure.runtime.log import LogError, MetadataStore, VersionMismatch

log = logging.getLogger("endure.cluster")


def plan(table: PartitionTable, live: Mapping[int, int]) -> PartitionTable | None:
    """The table after one round (live: node id -> its incarnation), or None when nothing changes."""
    if not live:
        return None
    assignments = list(table.assignments)
    load = {n: 0 for n in live}
    for a in assignments:
        if live.get(a.node) == a.incarnation:
            load[a.node] += 1

    def least() -> int:
        return min(load, key=lambda n: (load[n], n))

    changed = False
    for p, a in enumerate(assignments):
        if live.get(a.node) != a.incarnation:
            target = least()
            assignments[p] = Assignment(target, a.epoch + 1, live[target])
            load[target] += 1
            changed = True
    if not changed:
        most = max(load, key=lambda n: (load[n], -n))
        fewest = least()
        if load[most] - load[fewest] > 1:
            p = max(p for p, a in enumerate(assignments) if a.node == most)
            assignments[p] = Assignment(fewest, assignments[p].epoch + 1, live[fewest])
            changed = True
    return PartitionTable(tuple(assignments), table.version) if changed else None


class Controller:
    def __init__(self, metadata: MetadataStore, membership: Membership, node_id: int, partitions: int,
                 on_table: Callable[[PartitionTable], None], interval_s: float = 0.2) -> None:
        self._metadata = metadata
        self._membership = membership
        self._node_id = node_id
        self._partitions = partitions
        self._on_table = on_table
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="controller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def round(self) -> PartitionTable:
        """Read the table, change it if this node is the controller, and hand it to on_table."""
        table = await read_table(self._metadata, self._partitions)
        live = {n: r.incarnation for n, r in self._membership.live_nodes().items()}
        if self._membership.holds_lease and live and min(live) == self._node_id:
            new = plan(table, live)
            if new is not None:
                try:
                    table = await write_table(self._metadata, new)
                    log.info("controller: partition table v%d: %s", table.version,
                             [(a.node, a.epoch) for a in table.assignments])
                except VersionMismatch:
                    table = await read_table(self._metadata, self._partitions)
        self._on_table(table)
        return table

    async def _run(self) -> None:
        while True:
            try:
                await self.round()
            except LogError as exc:
                log.warning("node %d: cannot read the partition table: %s", self._node_id, exc)
            await asyncio.sleep(self.interval_s)
