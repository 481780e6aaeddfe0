"""What every snapshot store shares: the reference to a snapshot, the protocol, object names, and
the URL that picks an implementation (`dir:/path` or `s3://bucket/prefix`)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from .errors import SnapshotConfigError, SnapshotError

T = TypeVar("T")

# <lsn>-<created ms>-<random>.tar: names sort by LSN, and two leaders snapshotting the same LSN
# (a stale one and its successor) never write the same object.
_NAME = re.compile(r"^(\d{20})-(\d{13})-([0-9a-f]{8})\.tar$")


@dataclass(frozen=True, slots=True)
class SnapshotRef:
    """One snapshot of one partition store: what the index keeps and what `get` / `delete` take.

    `key` names the object inside its store (`p<partition>/<name>.tar`); `location` is the full
    address, for messages and operators (`dir:/root/p0/...tar`, `s3://bucket/prefix/p0/...tar`).
    `sha256` is None for a reference that came from `list()` rather than `put()`.
    """

    partition: int
    lsn: int
    key: str
    location: str
    created_at: float  # unix seconds
    size: int  # bytes of the archive
    sha256: str | None = None
    format: int | None = None  # the data format of the store (endure.runtime.data_format)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(d: dict[str, Any]) -> SnapshotRef:
        return SnapshotRef(
            partition=int(d["partition"]), lsn=int(d["lsn"]), key=str(d["key"]), location=str(d["location"]),
            created_at=float(d["created_at"]), size=int(d["size"]),
            sha256=None if d.get("sha256") is None else str(d["sha256"]),
            format=None if d.get("format") is None else int(d["format"]),
        )


@runtime_checkable
class SnapshotStore(Protocol):
    """Where partition snapshots live. Every method does its blocking I/O in a thread."""

    url: str

    async def put(self, partition: int, lsn: int, local_checkpoint_dir: Path) -> SnapshotRef:
        """Store a checkpoint folder (of the store at applied LSN `lsn`); visible only once complete."""
        ...

    async def get(self, ref: SnapshotRef, into_dir: Path) -> None:
        """Download and unpack the snapshot into `into_dir` (missing or empty): a checkpoint folder.
        SnapshotNotFound if it is gone."""
        ...

    async def delete(self, ref: SnapshotRef) -> None:
        """Remove the snapshot; deleting one that is already gone is not an error."""
        ...

    async def list(self, partition: int) -> list[SnapshotRef]:
        """The partition's snapshots in the store, oldest LSN first (sha256 not filled in)."""
        ...

    async def close(self) -> None: ...


def object_name(partition: int, lsn: int, created_at: float) -> str:
    """The key of a new snapshot object: `p<partition>/<lsn>-<created ms>-<random>.tar`."""
    if partition < 0 or lsn < 0:
        raise ValueError(f"partition and LSN must be >= 0, got {partition} and {lsn}")
    return f"p{partition}/{lsn:020d}-{int(created_at * 1000):013d}-{uuid.uuid4().hex[:8]}.tar"


def parse_name(name: str) -> tuple[int, float] | None:
    """(LSN, created_at) of an object's file name (the part after `p<partition>/`), None if foreign."""
    m = _NAME.match(name)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)) / 1000


def now() -> float:
    return time.time()


async def blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run fn(*args) in a thread. If the caller is cancelled meanwhile, wait for the thread to
    finish before re-raising, so nothing it touches (a store, a temp folder) is pulled from under it."""
    fut = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.wait([fut])
        if not fut.cancelled():
            fut.exception()  # retrieved: a failure after cancellation is not "never retrieved"
        raise


def open_snapshot_store(url: str) -> SnapshotStore:
    """The snapshot store a URL names: `dir:/path` (a local or mounted folder) or
    `s3://bucket/prefix[?endpoint=URL&region=NAME]`. SnapshotConfigError for anything else."""
    kind, _ = check_url(url)
    if kind == "dir":
        from .dir_store import DirSnapshotStore

        return DirSnapshotStore.from_url(url)
    from .s3_store import S3SnapshotStore

    return S3SnapshotStore.from_url(url)


def check_url(url: str) -> tuple[str, str]:
    """("dir", path) or ("s3", bucket) for a valid snapshot store URL; SnapshotConfigError otherwise.
    Cheap and import-free: what configuration validation calls."""
    if not isinstance(url, str) or not url.strip():
        raise SnapshotConfigError(f"snapshot store URL must be dir:/path or s3://bucket/prefix, got {url!r}")
    if url.startswith("dir:"):
        path = dir_path(url)
        return "dir", str(path)
    if url.startswith("s3://"):
        bucket = url[len("s3://"):].split("/", 1)[0].split("?", 1)[0]
        if not bucket:
            raise SnapshotConfigError(f"snapshot store URL {url!r} names no bucket (expected s3://bucket/prefix)")
        return "s3", bucket
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise SnapshotConfigError(f"snapshot store URL {url!r} has an unknown scheme {scheme!r}: expected "
                              f"dir:/path or s3://bucket/prefix")


def dir_path(url: str) -> Path:
    rest = url[len("dir:"):]
    if rest.startswith("//"):  # dir:///abs/path, as in file URLs
        rest = rest[2:]
    if not rest:
        raise SnapshotConfigError(f"snapshot store URL {url!r} names no folder (expected dir:/path)")
    return Path(rest).expanduser()


def wrap(exc: BaseException, what: str) -> SnapshotError:
    """A SnapshotError for an I/O failure, naming what was being done and where."""
    return SnapshotError(f"{what}: {type(exc).__name__}: {exc}")
