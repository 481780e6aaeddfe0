"""DirSnapshotStore (`dir:/path`): snapshots as tar files in a folder, local or mounted.

Layout: `<root>/p<partition>/<lsn>-<created ms>-<random>.tar`. An archive is written under a
temporary name (`.tmp-…`, never listed), fsynced, renamed to its final name and the folder
fsynced, so a listed or indexed snapshot is always complete and durable.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from endure.runtime.data_format import CURRENT_VERSION

from . import archive
from .base import SnapshotRef, blocking, dir_path, now, object_name, parse_name, wrap
from .errors import SnapshotNotFound


class DirSnapshotStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.url = f"dir:{self.root}"

    @classmethod
    def from_url(cls, url: str) -> DirSnapshotStore:
        return cls(dir_path(url))

    def _location(self, key: str) -> str:
        return f"dir:{self.root / key}"

    # ------------------------------------------------------------------ put

    async def put(self, partition: int, lsn: int, local_checkpoint_dir: Path) -> SnapshotRef:
        return await blocking(self._put, partition, lsn, Path(local_checkpoint_dir))

    def _put(self, partition: int, lsn: int, checkpoint: Path) -> SnapshotRef:
        created = now()
        key = object_name(partition, lsn, created)
        final = self.root / key
        tmp = final.with_name(f".tmp-{uuid.uuid4().hex}.tar")
        try:
            if not final.parent.is_dir():
                final.parent.mkdir(parents=True, exist_ok=True)
                _fsync_dir(final.parent.parent)  # the partition's folder itself is durable too
            with open(tmp, "wb") as f:
                size, sha = archive.pack(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, final)
            _fsync_dir(final.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise wrap(exc, f"writing snapshot of partition {partition} at LSN {lsn} to {self._location(key)}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return SnapshotRef(partition, lsn, key, self._location(key), created, size, sha, CURRENT_VERSION)

    # ------------------------------------------------------------------ get / delete / list

    async def get(self, ref: SnapshotRef, into_dir: Path) -> None:
        await blocking(self._get, ref, Path(into_dir))

    def _get(self, ref: SnapshotRef, into_dir: Path) -> None:
        path = self.root / ref.key
        if not path.is_file():
            raise SnapshotNotFound(f"snapshot {self._location(ref.key)} (partition {ref.partition}, LSN {ref.lsn}) "
                                   f"does not exist")
        archive.unpack(path, into_dir, ref.sha256, self._location(ref.key))

    async def delete(self, ref: SnapshotRef) -> None:
        await blocking(self._delete, ref)

    def _delete(self, ref: SnapshotRef) -> None:
        path = self.root / ref.key
        try:
            path.unlink(missing_ok=True)
            _fsync_dir(path.parent)
        except FileNotFoundError:
            pass  # the folder is gone too: so is the snapshot
        except OSError as exc:
            raise wrap(exc, f"deleting snapshot {self._location(ref.key)}") from exc

    async def list(self, partition: int) -> list[SnapshotRef]:
        return await blocking(self._list, partition)

    def _list(self, partition: int) -> list[SnapshotRef]:
        folder = self.root / f"p{partition}"
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise wrap(exc, f"listing snapshots of partition {partition} in {self._location(f'p{partition}')}") from exc
        out = []
        for entry in entries:
            parsed = parse_name(entry.name)
            if parsed is None or not entry.is_file():
                continue
            lsn, created = parsed
            key = f"p{partition}/{entry.name}"
            try:
                size = entry.stat().st_size
            except FileNotFoundError:
                continue  # deleted while we listed
            out.append(SnapshotRef(partition, lsn, key, self._location(key), created, size))
        return sorted(out, key=lambda r: (r.lsn, r.created_at, r.key))

    async def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"DirSnapshotStore({self.url!r})"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
