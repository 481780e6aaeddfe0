"""The snapshot index: metadata key `snapshots/<partition>`, the newest snapshots of a partition.

JSON, small, changed by compare-and-set so two writers (a leader and its stale predecessor) never
lose each other's update:

    {"snapshots": [{"partition": 0, "lsn": 1200, "key": "p0/…tar", "location": "dir:/…",
                    "created_at": 1700000000.1, "size": 81920, "sha256": "…", "format": 3}, …]}

oldest LSN first. Only snapshots the index names may be restored, and only snapshots it no
longer names may be deleted: the writer deletes what an update dropped after the update is in.
"""

from __future__ import annotations

import json

from endure.runtime.log import MetadataStore, VersionMismatch

from .base import SnapshotRef
from .errors import SnapshotError

DEFAULT_KEEP = 2


def index_key(partition: int) -> str:
    """The metadata key of a partition's snapshot index."""
    return f"snapshots/{partition}"


def _order(ref: SnapshotRef) -> tuple[int, float, str]:
    return ref.lsn, ref.created_at, ref.key


def decode_index(raw: bytes, partition: int) -> list[SnapshotRef]:
    try:
        refs = [SnapshotRef.from_json(d) for d in json.loads(raw)["snapshots"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise SnapshotError(f"metadata key {index_key(partition)!r} is not a snapshot index: {exc}") from exc
    return sorted(refs, key=_order)


def encode_index(refs: list[SnapshotRef]) -> bytes:
    return json.dumps({"snapshots": [r.to_json() for r in sorted(refs, key=_order)]},
                      separators=(",", ":")).encode()


async def read_index(metadata: MetadataStore, partition: int) -> tuple[int, list[SnapshotRef]]:
    """(version, snapshots oldest LSN first); (0, []) when the partition has no index yet."""
    got = await metadata.get(index_key(partition))
    if got is None:
        return 0, []
    version, raw = got
    return version, decode_index(raw, partition)


async def list_snapshots(metadata: MetadataStore, partition: int) -> list[SnapshotRef]:
    """The snapshots the index names, oldest LSN first."""
    return (await read_index(metadata, partition))[1]


async def latest_snapshot(metadata: MetadataStore, partition: int) -> SnapshotRef | None:
    """The newest snapshot (highest LSN) the partition's index names, or None."""
    refs = await list_snapshots(metadata, partition)
    return refs[-1] if refs else None


async def record_snapshot(metadata: MetadataStore, partition: int, ref: SnapshotRef,
                          keep: int = DEFAULT_KEEP) -> tuple[list[SnapshotRef], list[SnapshotRef]]:
    """Add `ref` to the index and keep only the newest `keep` (by LSN) by compare-and-set,
    retrying on a concurrent update. Returns (kept oldest first, dropped): the caller deletes the
    dropped snapshots from the snapshot store now that the index no longer names them. `ref`
    itself is among the dropped when `keep` newer snapshots are already indexed."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    if ref.partition != partition:
        raise ValueError(f"snapshot {ref.location} is of partition {ref.partition}, not {partition}")
    while True:
        version, refs = await read_index(metadata, partition)
        merged = sorted({r.key: r for r in [*refs, ref]}.values(), key=_order)
        kept, dropped = merged[-keep:], merged[:-keep]
        try:
            await metadata.put(index_key(partition), encode_index(kept), version)
        except VersionMismatch:
            continue
        return kept, dropped


async def forget_snapshot(metadata: MetadataStore, partition: int, ref: SnapshotRef) -> bool:
    """Remove `ref` from the index (compare-and-set); False if it was not named. For an operator
    dropping a bad snapshot, or a writer that must not leave an unusable one indexed."""
    while True:
        version, refs = await read_index(metadata, partition)
        left = [r for r in refs if r.key != ref.key]
        if len(left) == len(refs):
            return False
        try:
            await metadata.put(index_key(partition), encode_index(left), version)
        except VersionMismatch:
            continue
        return True
