"""The fixed placement of partitions on the nodes of one machine (`endure serve --processes N`).

With N nodes, node i owns the partitions {p : p % N == i}. The placement is recorded in the data
dir when it is created (`placement.json`: the node count, the partition count and the owner of
each partition, written atomically) and a later start with another N is refused
(`PlacementMismatch`, one line naming both): the nodes' logs and stores hold only their own
partitions, so the placement cannot change under them.

Layout. N = 1 keeps the single-node layout (the log, metadata and partition stores directly in
the data dir, no `placement.json`: a data dir with data but without the record was made by one
node). With N > 1, node i keeps its own under `nodes/<i>/` (its own lock and FORMAT), and
publishes its internal (admin) address in `nodes/<i>/endpoint` once it serves, and the address
of an ingress port of its own (besides the shared one) in `nodes/<i>/ingress`: a client that
must reach this node's ingress (a test, a router) finds it there, and the ingress's GetRoutes
hands these addresses to clients (`routes`) so they send keyed requests straight to the owner.
Its Prometheus endpoint, when it serves one, is in `nodes/<i>/metrics`. The supervisor holds the
top-level data dir's lock.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from endure.runtime.config import ConfigError

__all__ = ["ENDPOINT_FILE", "INGRESS_FILE", "METRICS_FILE", "PLACEMENT_FILE", "Placement", "PlacementError",
           "PlacementMismatch", "Routes", "check_placement", "clear_endpoint", "node_dir", "read_endpoint", "routes",
           "write_atomic", "write_endpoint"]

PLACEMENT_FILE = "placement.json"
ENDPOINT_FILE = "endpoint"
INGRESS_FILE = "ingress"
METRICS_FILE = "metrics"
_SINGLE_NODE_ENTRIES = ("FORMAT", "log", "metadata", "partitions")  # what a one-node data dir holds


class PlacementError(ConfigError):
    """The placement record is unreadable or inconsistent."""


class PlacementMismatch(PlacementError):
    """The data dir was created with another node (process) count or partition count."""

    def __init__(self, data_dir: Path, nodes: int, partitions: int | None, asked: Placement) -> None:
        self.nodes = nodes
        self.partitions = partitions
        self.asked = asked
        if nodes != asked.nodes:
            what = (f"{data_dir} was created with --processes {nodes}; the placement is fixed when "
                    f"the data dir is created (asked for --processes {asked.nodes})")
        else:
            what = (f"{data_dir} was created with {partitions} partitions; the partition count is fixed "
                    f"when a cluster is created (asked for {asked.partitions})")
        super().__init__(what)


@dataclass(frozen=True, slots=True)
class Placement:
    nodes: int
    partitions: int

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.partitions < 1:
            raise PlacementError(f"a placement needs at least one node and one partition, got {self}")
        if self.nodes > self.partitions:
            raise PlacementError(f"{self.nodes} processes for {self.partitions} partitions: a node would own "
                                 "no partition (use at most one process per partition)")

    def owner(self, partition: int) -> int:
        return partition % self.nodes

    def owned(self, node: int) -> list[int]:
        return [p for p in range(self.partitions) if p % self.nodes == node]

    def to_json(self) -> str:
        return json.dumps({"nodes": self.nodes, "partitions": self.partitions,
                           "owners": [self.owner(p) for p in range(self.partitions)]}) + "\n"

    @classmethod
    def from_json(cls, path: Path, text: str) -> Placement:
        try:
            raw = json.loads(text)
            placement = cls(int(raw["nodes"]), int(raw["partitions"]))
            owners = [int(o) for o in raw["owners"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise PlacementError(f"{path} is not a placement record ({text[:80]!r})") from exc
        if owners != [placement.owner(p) for p in range(placement.partitions)]:
            raise PlacementError(f"{path} records owners this Endure does not place that way: {owners}")
        return placement


def node_dir(data_dir: Path, node: int, nodes: int) -> Path:
    """Where node `node` of `nodes` keeps its log, metadata and stores."""
    return data_dir if nodes == 1 else data_dir / "nodes" / str(node)


def recorded(data_dir: Path) -> Placement | int | None:
    """The data dir's placement record; 1 for a one-node data dir (data but no record: its
    partition count is the node's own to check); None when the data dir is new."""
    path = data_dir / PLACEMENT_FILE
    try:
        return Placement.from_json(path, path.read_text())
    except FileNotFoundError:
        pass
    return 1 if any((data_dir / name).exists() for name in _SINGLE_NODE_ENTRIES) else None


def check_placement(data_dir: Path, asked: Placement) -> Placement:
    """Refuse a data dir placed otherwise (PlacementMismatch); record the placement of a new one
    (N > 1 only: one node keeps today's layout). The caller holds the data dir's lock."""
    data_dir = Path(data_dir)
    found = recorded(data_dir)
    if found is None:
        if asked.nodes > 1:
            data_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(data_dir / PLACEMENT_FILE, asked.to_json())
        return asked
    nodes, partitions = (found, None) if isinstance(found, int) else (found.nodes, found.partitions)
    if nodes != asked.nodes or (partitions is not None and partitions != asked.partitions):
        raise PlacementMismatch(data_dir.resolve(), nodes, partitions, asked)
    return asked


def write_atomic(path: Path, text: str) -> None:
    """Write, fsync, rename, fsync the folder: a reader sees the old content or the new, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_endpoint(directory: Path, address: str, name: str = ENDPOINT_FILE) -> None:
    """Publish a node's internal address (its admin server; `INGRESS_FILE`: its own ingress port)."""
    write_atomic(directory / name, address + "\n")


def clear_endpoint(directory: Path, name: str = ENDPOINT_FILE) -> None:
    """Withdraw a node's published address (as it starts, and when it stops)."""
    try:
        (directory / name).unlink()
    except FileNotFoundError:
        pass


def read_endpoint(directory: Path, name: str = ENDPOINT_FILE) -> str | None:
    """A node's published address, or None while it publishes none."""
    try:
        text = (directory / name).read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


@dataclass(frozen=True, slots=True)
class Routes:
    """What the ingress's GetRoutes answers: the partition count, each node's own ingress address
    ("" = the address the client already uses: one node, or a node not serving yet) and the owner
    node of each partition."""

    partitions: int
    addresses: tuple[str, ...]  # by node id
    owners: tuple[int, ...]  # by partition


def routes(data_dir: Path, placement: Placement) -> Routes:
    """The routes of this placement, with the addresses the nodes publish now (read anew at each
    call, so a restarted node's new port is found)."""
    owners = tuple(placement.owner(p) for p in range(placement.partitions))
    if placement.nodes == 1:
        return Routes(placement.partitions, ("",), owners)
    addresses = tuple(read_endpoint(node_dir(data_dir, n, placement.nodes), INGRESS_FILE) or ""
                      for n in range(placement.nodes))
    return Routes(placement.partitions, addresses, owners)
