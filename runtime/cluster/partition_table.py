"""The partition table: partition -> (leader node, epoch), one metadata key, changed by CAS.

The epoch of an assignment is the leader epoch its node announces through the partition's log, so
records a former leader still writes carry a lower epoch and are ignored on apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from endure.runtime.log import MetadataStore

TABLE_KEY = "cluster/partition-table"
UNASSIGNED = -1


@dataclass(frozen=True, slots=True)
class Assignment:
    node: int  # UNASSIGNED: nobody leads it yet
    epoch: int
    # The node's incarnation (its start time) the assignment is for: a node that restarts does not
    # lead on its previous life's epoch (its announcement would not be newer); it gets a new one.
    incarnation: int = 0


@dataclass(frozen=True, slots=True)
class PartitionTable:
    assignments: tuple[Assignment, ...]
    version: int = 0  # the metadata version it was read at (0: not stored yet)

    @staticmethod
    def empty(partitions: int) -> PartitionTable:
        return PartitionTable(tuple(Assignment(UNASSIGNED, 0, 0) for _ in range(partitions)))

    def owner(self, partition: int) -> int:
        return self.assignments[partition].node

    def led_by(self, node: int) -> list[int]:
        return [p for p, a in enumerate(self.assignments) if a.node == node]

    def encode(self) -> bytes:
        return json.dumps([[a.node, a.epoch, a.incarnation] for a in self.assignments]).encode()

    @staticmethod
    def decode(raw: bytes, version: int) -> PartitionTable:
        return PartitionTable(tuple(Assignment(*(int(v) for v in a)) for a in json.loads(raw)), version)


async def read_table(metadata: MetadataStore, partitions: int) -> PartitionTable:
    found = await metadata.get(TABLE_KEY)
    if found is None:
        return PartitionTable.empty(partitions)
    return PartitionTable.decode(found[1], found[0])


async def write_table(metadata: MetadataStore, table: PartitionTable) -> PartitionTable:
    """Store table if the stored one is still at table.version (VersionMismatch otherwise)."""
    version = await metadata.put(TABLE_KEY, table.encode(), table.version)
    return PartitionTable(table.assignments, version)
