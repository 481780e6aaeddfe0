"""A checkpoint folder as one tar archive: what a snapshot store keeps.

Uncompressed (RocksDB compresses its own blocks), written in one streaming pass that also
counts the bytes and takes the SHA-256, so a reader can check what it downloaded before it
trusts it. Extraction uses tarfile's "data" filter: no absolute paths, links or devices.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
from pathlib import Path
from typing import BinaryIO

from .errors import SnapshotError

_CHUNK = 1 << 20


class _HashingWriter:
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self._out.write(data)


class _HashingReader:
    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self.sha256 = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        self.sha256.update(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


def pack(checkpoint_dir: Path, out: BinaryIO) -> tuple[int, str]:
    """Write the folder's files as a tar to `out`; return (bytes written, hex SHA-256)."""
    writer = _HashingWriter(out)
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for entry in sorted(Path(checkpoint_dir).iterdir()):
            tar.add(entry, arcname=entry.name, recursive=True)
    return writer.size, writer.sha256.hexdigest()


def unpack(archive: Path, into_dir: Path, expected_sha256: str | None, where: str) -> None:
    """Extract the archive into `into_dir` (created; must be missing or empty), checking its SHA-256
    when one is expected; on a mismatch nothing is left in `into_dir`. `where` names the source."""
    into_dir.mkdir(parents=True, exist_ok=True)
    if any(into_dir.iterdir()):
        raise SnapshotError(f"cannot restore {where} into {into_dir}: the folder is not empty")
    try:
        with open(archive, "rb") as f:
            reader = _HashingReader(f)
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                tar.extractall(into_dir, filter="data")
            reader.drain()
    except (tarfile.TarError, OSError) as exc:
        _empty(into_dir)
        raise SnapshotError(f"snapshot {where} is not a readable archive: {exc}") from exc
    if expected_sha256 is not None and reader.sha256.hexdigest() != expected_sha256:
        _empty(into_dir)
        raise SnapshotError(f"snapshot {where} is corrupt: SHA-256 {reader.sha256.hexdigest()} where "
                            f"{expected_sha256} was written")


def _empty(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
