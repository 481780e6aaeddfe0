"""PartitionStore: one partition's state in RocksDB, written only through transactions.

A transaction collects the changes of one or more applied records in memory (reads see them),
then commits them together with the new applied LSN in one write batch, so the store never holds
state that its applied LSN does not account for. Store writes are not synced: the log is the
durable source and a lost tail of store writes is replayed from the log.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import rocksdict
from google.protobuf.message import Message

from endure.proto import records_pb2 as pb
from endure.runtime.partition import keys

M = TypeVar("M", bound=Message)
_DELETED = object()


class PartitionStore:
    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        opts = rocksdict.Options(raw_mode=True)
        opts.create_if_missing(True)
        self._db = rocksdict.Rdict(str(path), options=opts)
        self._write_opts = rocksdict.WriteOptions()
        self._write_opts.sync = False
        self.path = path

    def close(self) -> None:
        self._db.close()

    # -------------------------------------------------------------- checkpoints (snapshots)

    def checkpoint(self, path: Path) -> int:
        """Write a consistent RocksDB checkpoint of the store into `path` (missing or an empty
        folder); return the applied LSN the checkpoint holds.

        The LSN is read from the checkpoint itself (opened read-only), not from the live store,
        which may apply more records meanwhile: the rows and the LSN of a checkpoint always agree.
        Unsynced writes are included (RocksDB flushes the memtable into it). Files are hard
        links where the filesystem allows, so a checkpoint next to the store costs little space.
        Blocking: run it in a thread (`asyncio.to_thread`), and do not close the store meanwhile.
        """
        path = Path(path)
        if path.exists():
            if not path.is_dir() or any(path.iterdir()):
                raise FileExistsError(f"a checkpoint goes into a missing or empty folder, and {path} is not one")
            path.rmdir()  # RocksDB creates the folder itself and refuses an existing one
        path.parent.mkdir(parents=True, exist_ok=True)
        rocksdict.Checkpoint(self._db).create_checkpoint(str(path))
        return read_applied_lsn(path)

    @classmethod
    def from_checkpoint(cls, checkpoint: Path, path: Path, *, move: bool = False) -> PartitionStore:
        """Put a checkpoint folder in place as the store at `path` (see install_checkpoint) and open it."""
        install_checkpoint(checkpoint, path, move=move)
        return cls(path)

    def sync(self) -> None:
        """Make every write so far durable (store writes are not synced: for one-off rewrites)."""
        self._db.flush_wal(True)

    # -------------------------------------------------------------- reads outside a transaction

    def get(self, key: bytes) -> bytes | None:
        value = self._db.get(key)
        return None if value is None else bytes(value)

    def get_proto(self, key: bytes, cls: type[M]) -> M | None:
        return _parse(self.get(key), cls)

    def scan(self, prefix: bytes, start: bytes | None = None, limit: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Rows whose key starts with prefix, from start (inclusive) in key order."""
        it = self._db.iter()
        it.seek(start if start is not None else prefix)
        n = 0
        while it.valid():
            key = bytes(it.key())
            if not key.startswith(prefix):
                break
            yield key, bytes(it.value())
            n += 1
            if limit is not None and n >= limit:
                break
            it.next()

    def scan_back(self, prefix: bytes, before: bytes | None = None,
                  limit: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Rows whose key starts with prefix, before `before` (exclusive; None: from the last) in
        descending key order."""
        it = self._db.iter()
        it.seek_for_prev(before if before is not None else keys.successor(prefix))
        if before is not None and it.valid() and bytes(it.key()) == before:
            it.prev()
        if before is None and it.valid() and bytes(it.key()) == keys.successor(prefix):
            it.prev()
        n = 0
        while it.valid():
            key = bytes(it.key())
            if not key.startswith(prefix):
                break
            yield key, bytes(it.value())
            n += 1
            if limit is not None and n >= limit:
                break
            it.prev()

    def applied_lsn(self) -> int:
        raw = self.get(keys.APPLIED_LSN)
        return keys.read_u64(raw) if raw else 0

    def leader_epoch(self) -> int:
        raw = self.get(keys.LEADER_EPOCH)
        return keys.read_u64(raw) if raw else 0

    def status(self, invocation_id: str) -> pb.InvocationStatus | None:
        return self.get_proto(keys.status(invocation_id), pb.InvocationStatus)

    def failed_attempts(self, invocation_id: str) -> int:
        """How many attempts of the invocation failed (what a retry policy counts; not `status.attempts`,
        which counts every attempt started, resumptions included)."""
        raw = self.get(keys.failed_attempts(invocation_id))
        return keys.read_u64(raw) if raw else 0

    def journal(self, invocation_id: str, start: int = 0, limit: int | None = None) -> list[pb.JournalEntry]:
        """The entries from index start, at most limit of them (None: to the end)."""
        out: list[pb.JournalEntry] = []
        if limit is not None and limit < 1:
            return out
        begin = keys.journal(invocation_id, start) if start else None
        for _, raw in self.scan(keys.journal_prefix(invocation_id), start=begin, limit=limit):
            entry = pb.JournalEntry()
            entry.ParseFromString(raw)
            out.append(entry)
        return out

    def object_state(self, tenant: str, service: str, key: str) -> list[tuple[str, bytes]]:
        prefix = keys.object_prefix(keys.STATE, tenant, service, key)
        return [(keys.state_name(k, prefix), v) for k, v in self.scan(prefix)]

    def object_keys(self, table: bytes, tenant: str, service: str, after: str | None, limit: int) -> list[str]:
        """Distinct object keys with rows in table (state or promises), in store order after `after`;
        one seek per key, whatever rows each holds."""
        prefix = keys.objects_prefix(table, tenant, service)
        start = keys.successor(prefix + keys.part(after)) if after is not None else prefix
        out: list[str] = []
        while len(out) < limit:
            row = next(self.scan(prefix, start=start, limit=1), None)
            if row is None:
                break
            key, rows = keys.object_key(row[0], prefix)
            out.append(key)
            start = keys.successor(rows)
        return out

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every row in key order: what determinism tests compare."""
        for key, value in self._db.items():
            yield bytes(key), bytes(value)

    def transaction(self) -> Transaction:
        return Transaction(self)

    def _write(self, batch: rocksdict.WriteBatch) -> None:
        self._db.write(batch, write_opt=self._write_opts)


def is_store(path: Path) -> bool:
    """Whether `path` holds a RocksDB database (a store or a checkpoint of one)."""
    return (Path(path) / "CURRENT").is_file()


def read_applied_lsn(path: Path) -> int:
    """The applied LSN of the store or checkpoint at `path`, opened read-only (no lock taken, so
    this works while the store is open elsewhere; it sees what was flushed or logged to disk)."""
    path = Path(path)
    if not is_store(path):
        raise FileNotFoundError(f"no partition store at {path}")
    db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True),
                         access_type=rocksdict.AccessType.read_only())
    try:
        raw = db.get(keys.APPLIED_LSN)
    finally:
        db.close()
    return keys.read_u64(bytes(raw)) if raw else 0


def install_checkpoint(checkpoint: Path, path: Path, *, move: bool = False) -> None:
    """Make the checkpoint folder the store folder `path`, replacing whatever store is there.

    The checkpoint is copied (or moved, when `move` and on the same filesystem) to a temporary
    sibling of `path`, every file is fsynced, then it is renamed into place and the parent folder
    fsynced: a crash leaves either the old store or the complete new one at `path`, never a mix.
    The store at `path` must not be open.
    """
    checkpoint, path = Path(checkpoint), Path(path)
    if not is_store(checkpoint):
        raise FileNotFoundError(f"{checkpoint} is not a checkpoint of a partition store (no CURRENT file)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    staged = path.with_name(f".{path.name}.restore-{tag}")
    old = path.with_name(f".{path.name}.old-{tag}")
    moved_aside = False
    try:
        if move:
            try:
                os.rename(checkpoint, staged)
            except OSError:  # another filesystem: copy instead
                shutil.copytree(checkpoint, staged)
        else:
            shutil.copytree(checkpoint, staged)
        for f in staged.iterdir():
            _fsync(f)
        _fsync(staged)
        if path.exists():
            os.rename(path, old)
            moved_aside = True
        os.rename(staged, path)
        _fsync(path.parent)
    except BaseException:
        if moved_aside and not path.exists():
            os.rename(old, path)  # put the old store back
        shutil.rmtree(staged, ignore_errors=True)
        raise
    if moved_aside:
        shutil.rmtree(old, ignore_errors=True)
    if move and checkpoint.exists():
        shutil.rmtree(checkpoint, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _parse(raw: bytes | None, cls: type[M]) -> M | None:
    if raw is None:
        return None
    msg = cls()
    msg.ParseFromString(raw)
    return msg


class Transaction:
    """Buffered changes over the store; reads see the buffer first."""

    def __init__(self, store: PartitionStore) -> None:
        self._store = store
        self._changes: dict[bytes, object] = {}
        self._undo: list[tuple[bytes, object]] = []  # (key, buffered value before the change or None)
        self._before_commit: list[Callable[[Transaction], None]] = []

    def get(self, key: bytes) -> bytes | None:
        value = self._changes.get(key)
        if value is _DELETED:
            return None
        if value is not None:
            return value  # type: ignore[return-value]
        return self._store.get(key)

    def get_proto(self, key: bytes, cls: type[M]) -> M | None:
        return _parse(self.get(key), cls)

    def put(self, key: bytes, value: bytes) -> None:
        self._undo.append((key, self._changes.get(key)))
        self._changes[key] = value

    def put_proto(self, key: bytes, msg: Message) -> None:
        self.put(key, msg.SerializeToString(deterministic=True))

    def delete(self, key: bytes) -> None:
        self._undo.append((key, self._changes.get(key)))
        self._changes[key] = _DELETED

    def checkpoint(self) -> int:
        return len(self._undo)

    def rollback(self, checkpoint: int) -> None:
        """Undo every change since checkpoint (a rejected record leaves nothing behind)."""
        while len(self._undo) > checkpoint:
            key, previous = self._undo.pop()
            if previous is None:
                self._changes.pop(key, None)
            else:
                self._changes[key] = previous

    def scan_keys(self, prefix: bytes) -> list[bytes]:
        """Keys under prefix, buffer included, in order (for small tables: one object's state, an inbox)."""
        found = {k for k, _ in self._store.scan(prefix)}
        for k, v in self._changes.items():
            if k.startswith(prefix):
                if v is _DELETED:
                    found.discard(k)
                else:
                    found.add(k)
        return sorted(found)

    def first_key(self, prefix: bytes) -> bytes | None:
        """The smallest live key under prefix, reading the store only up to its first live row."""
        best = None
        for key, _ in self._store.scan(prefix):
            if self._changes.get(key) is not _DELETED:
                best = key
                break
        for key, value in self._changes.items():
            if value is not _DELETED and key.startswith(prefix) and (best is None or key < best):
                best = key
        return best

    def before_commit(self, hook: Callable[[Transaction], None]) -> None:
        """Run hook(tx) once, right before this transaction is written (to flush aggregated rows)."""
        if hook not in self._before_commit:
            self._before_commit.append(hook)

    def commit(self, applied_lsn: int) -> None:
        for hook in self._before_commit:
            hook(self)
        self._before_commit.clear()
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in self._changes.items():
            if value is _DELETED:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(keys.APPLIED_LSN, keys.u64(applied_lsn))
        self._store._write(batch)
        self._changes.clear()
        self._undo.clear()
