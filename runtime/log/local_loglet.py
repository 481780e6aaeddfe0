"""RocksDB-backed loglets with group commit: the embedded default log storage of a node.

One `LocalLogletStore` owns one RocksDB database holding every loglet (every segment of
every partition) of the node. Keys are big-endian so that one loglet's records are one
sequential key range:

    b"R" + loglet_id (8 bytes) + lsn (8 bytes)  ->  payload
    b"M" + loglet_id (8 bytes)                  ->  sealed (1) | seal tail (8) | trim point (8)

Group commit. Appenders never touch RocksDB. An append takes its LSNs in memory, puts its
records on its loglet's pending list and awaits the one future of the batch it landed in.
Whenever the writer is idle, a loop callback (scheduled with call_soon, so every appender
that is already runnable gets in first) hands *everything* queued to one dedicated writer
thread, which writes it as one WriteBatch with sync=True (RocksDB releases the GIL while it
writes and fsyncs, so the event loop keeps running) and reports back with
call_soon_threadsafe; only then are the records published and the batch future resolved.
While a write is in flight, new appends pile up for the next batch, so batches grow with
load and there is no timer anywhere on the hot path. The queue is bounded (records accepted
but not yet durable): appenders wait for room (backpressure) or get LogFull.

Seal and trim go through the same writer, so they are ordered with appends: everything
appended before a seal is in the same or an earlier batch, and the seal flag, its tail and
the trim point are written atomically with (and as one WriteBatch as) the records.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rocksdict import Options, Rdict, ReadOptions, WriteBatch, WriteOptions

from .loglet import (
    LogClosedError,
    LogError,
    LogFull,
    LogletFailedError,
    LogRecord,
    SealedError,
    TrimmedError,
    check_read_range,
)

__all__ = ["LocalLoglet", "LocalLogletStore", "LogCorruptionError", "log_db_options"]

_RECORD = b"R"
_META = b"M"
_META_FMT = struct.Struct(">BQQ")
_MAX_U64 = (1 << 64) - 1


class LogCorruptionError(LogError):
    """The on-disk state contradicts an invariant (a gap, or a seal tail that does not match)."""


def log_db_options() -> Options:
    """RocksDB options for the log database (also used by the benchmark's raw baseline).

    Records are small and written once, read mostly once, and deleted by range: a big
    memtable keeps recent records in memory for readers that lag a little.
    """
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.set_write_buffer_size(64 * 1024 * 1024)
    opts.set_max_write_buffer_number(4)
    opts.set_max_background_jobs(2)
    return opts


class _Batch:
    """One group-commit batch: every appender in it awaits the same plain future.

    A plain Future keeps asyncio's C fast path. The catch: a waiter's cancellation cancels
    the shared future, and then every other waiter wakes with CancelledError too. Those
    (their task has no cancel request) go back to waiting through `wait()`, so cancelling
    one appender never fails the others. The cancelled one's records are still written.
    """

    __slots__ = ("fut", "done", "error", "_again", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.fut: asyncio.Future[None] = loop.create_future()
        self.done = False
        self.error: BaseException | None = None
        self._again: asyncio.Future[None] | None = None

    def resolve(self, error: BaseException | None = None) -> None:
        self.done = True
        self.error = error
        for f in (self.fut, self._again):
            if f is not None and not f.done():
                if error is None:
                    f.set_result(None)
                else:
                    f.set_exception(error)

    async def wait(self) -> None:
        """Wait for the batch after the shared future was cancelled by another waiter."""
        while not self.done:
            again = self._again
            if again is None or again.done():
                again = self._again = self._loop.create_future()
            try:
                await again
            except asyncio.CancelledError:
                _reraise_if_cancelled()
        if self.error is not None:
            raise self.error


def _reraise_if_cancelled() -> None:
    """Inside `except CancelledError`: re-raise if *this* task was asked to cancel."""
    task = asyncio.current_task()
    if task is None or task.cancelling():
        raise  # the exception being handled by our caller


async def _await_batch(batch: _Batch) -> None:
    try:
        await batch.fut
    except asyncio.CancelledError:
        _reraise_if_cancelled()
        await batch.wait()


class _MetaWrite:
    """A seal/trim state change, written in the writer's batch and applied after the sync."""

    __slots__ = ("loglet", "value", "delete_to", "seal")

    def __init__(self, loglet: LocalLoglet, *, seal: bool, delete_to: int | None) -> None:
        self.loglet = loglet
        self.seal = seal
        self.delete_to = delete_to
        # Encoded now, from the loglet's requested state: requests are monotonic (a seal is
        # never undone, the trim point only grows), so the last write in a batch wins safely.
        self.value = _META_FMT.pack(int(loglet._sealed), loglet._seal_tail, loglet._trim_point)

    def write(self, wb: WriteBatch) -> None:
        lg = self.loglet
        if self.delete_to is not None:
            wb.delete_range(lg._prefix + bytes(8), lg._prefix + self.delete_to.to_bytes(8, "big"))
        wb.put(lg._meta_key, self.value)

    def committed(self) -> None:
        lg = self.loglet
        if self.seal:
            lg._seal_durable = True
            lg._wake_tail_waiters()


class _DropWrite:
    """Delete everything of a loglet that left its log's chain (records and seal/trim state)."""

    __slots__ = ("store", "loglet_id")

    def __init__(self, store: LocalLogletStore, loglet_id: int) -> None:
        self.store = store
        self.loglet_id = loglet_id

    def write(self, wb: WriteBatch) -> None:
        lo = _RECORD + self.loglet_id.to_bytes(8, "big")
        hi = _RECORD + (self.loglet_id + 1).to_bytes(8, "big")
        wb.delete_range(lo, hi)
        wb.delete(_META + self.loglet_id.to_bytes(8, "big"))

    def committed(self) -> None:
        self.store._loglets.pop(self.loglet_id, None)


class LocalLoglet:
    """One loglet (one segment's storage) inside a LocalLogletStore. Create via store.loglet()."""

    __slots__ = (
        "_store",
        "_id",
        "_prefix",
        "_meta_key",
        "_base",
        "_assigned",
        "_tail",
        "_sealed",
        "_seal_durable",
        "_seal_tail",
        "_seal_batch",
        "_trim_point",
        "_cache",
        "_cache_base",
        "_tail_waiters",
        "_pending",
        "_pending_first",
    )

    def __init__(
        self,
        store: LocalLogletStore,
        loglet_id: int,
        base_lsn: int,
        *,
        tail: int,
        sealed: bool,
        trim_point: int,
    ) -> None:
        self._store = store
        self._id = loglet_id
        self._prefix = _RECORD + loglet_id.to_bytes(8, "big")
        self._meta_key = _META + loglet_id.to_bytes(8, "big")
        self._base = base_lsn
        self._assigned = tail
        self._tail = tail
        self._sealed = sealed
        self._seal_durable = sealed
        self._seal_tail = tail if sealed else 0
        self._seal_batch: _Batch | None = None
        self._trim_point = trim_point
        # Most recent committed payloads, so tailing readers are served from memory.
        # Invariant: _cache_base + len(_cache) == _tail.
        self._cache: list[bytes] = []
        self._cache_base = tail
        self._tail_waiters: list[asyncio.Future[None]] = []
        # Accepted, not yet taken by the writer: payloads of LSNs _pending_first, ... in order.
        self._pending: list[bytes] = []
        self._pending_first = tail

    # -- identity -------------------------------------------------------------------------

    @property
    def loglet_id(self) -> int:
        return self._id

    @property
    def kind(self) -> str:
        return "local"

    @property
    def base_lsn(self) -> int:
        return self._base

    @property
    def sealed(self) -> bool:
        return self._sealed

    def __repr__(self) -> str:
        state = f"sealed@{self._seal_tail}" if self._sealed else "open"
        return f"LocalLoglet(id={self._id:#x}, base={self._base}, tail={self._tail}, {state})"

    # -- append ---------------------------------------------------------------------------

    async def append(self, payloads: Sequence[bytes], *, wait: bool = True) -> range:
        """Durably append `payloads`; returns their contiguous LSNs after the fsync."""
        n = len(payloads)
        for p in payloads:
            if type(p) is not bytes:
                raise TypeError(f"log payloads must be bytes, got {type(p).__name__}")
        store = self._store
        if self._sealed:
            raise SealedError(self._id, self._seal_tail)
        if store._state is not None or store._closing:
            raise store._state or LogClosedError(f"the log store at {store.path} is closing")
        if n == 0:
            return range(self._assigned, self._assigned)
        if store._inflight and store._inflight + n > store._max_pending:
            if not wait:
                raise LogFull(store._inflight, store._max_pending)
            await store._wait_for_room(n)
            if self._sealed:
                raise SealedError(self._id, self._seal_tail)
        first = self._assigned
        self._assigned = first + n
        pending = self._pending
        if not pending:
            self._pending_first = first
            store._dirty.append(self)
        pending.extend(payloads)
        store._inflight += n
        batch = store._open_batch or store._start_batch()
        try:
            await batch.fut
        except asyncio.CancelledError:
            _reraise_if_cancelled()
            await batch.wait()
        return range(first, first + n)

    # -- read -----------------------------------------------------------------------------

    def tail(self) -> int:
        return self._tail

    def trim_point(self) -> int:
        return self._trim_point

    async def find_tail(self) -> tuple[int, bool]:
        """For a local loglet the in-memory state is authoritative: it changes only after syncs."""
        return self._tail, self._seal_durable

    def check_readable(self, from_lsn: int, to_lsn: int, limit: int) -> None:
        """Raise the specific error for a bad read range."""
        check_read_range(from_lsn, to_lsn, limit, self._trim_point, self._tail)
        if from_lsn < self._base:
            raise ValueError(f"LSN {from_lsn} is below the base LSN {self._base} of loglet {self._id:#x}")

    async def read(self, from_lsn: int, to_lsn: int, limit: int = 1000) -> list[LogRecord]:
        """Committed records in [from_lsn, to_lsn), at most `limit`; recent ones from memory."""
        self.check_readable(from_lsn, to_lsn, limit)
        return self.read_committed(from_lsn, min(to_lsn, from_lsn + limit))

    def read_committed(self, from_lsn: int, end: int) -> list[LogRecord]:
        """Records [from_lsn, end) of an already validated range (no await: a consistent cut)."""
        if from_lsn >= end:
            return []
        cache_base = self._cache_base
        if from_lsn >= cache_base:
            cache = self._cache
            return list(map(LogRecord, range(from_lsn, end), cache[from_lsn - cache_base : end - cache_base]))
        return self._store._read_range(self, from_lsn, end)

    async def wait_for_tail(self, lsn: int) -> int:
        """Wake on commit (no polling): return the tail once it is > lsn or the seal is durable."""
        while self._tail <= lsn and not self._seal_durable:
            store = self._store
            if store._state is not None:
                raise store._state
            fut: asyncio.Future[None] = store._get_loop().create_future()
            self._tail_waiters.append(fut)
            try:
                await fut
            finally:
                if not fut.done():
                    fut.cancel()
        return self._tail

    def _wake_tail_waiters(self, exc: BaseException | None = None) -> None:
        waiters = self._tail_waiters
        if waiters:
            self._tail_waiters = []
            for w in waiters:
                if not w.done():
                    if exc is None:
                        w.set_result(None)
                    else:
                        w.set_exception(exc)

    def _committed(self, first: int, payloads: Sequence[bytes]) -> None:
        """Called by the writer, in LSN order, after the batch holding these records synced."""
        self._tail = first + len(payloads)
        cache = self._cache
        cache.extend(payloads)
        if len(cache) > self._store._cache_high:
            drop = len(cache) - self._store._cache_records
            del cache[:drop]
            self._cache_base += drop
        if self._tail_waiters:
            self._wake_tail_waiters()

    # -- seal / trim ----------------------------------------------------------------------

    async def seal(self) -> int:
        """Seal idempotently; returns the final tail once the seal is on disk.

        New appends are refused at once; appends queued before the seal are in the same or
        an earlier write batch, so the final tail is known right now.
        """
        if self._seal_durable:
            return self._seal_tail
        if self._seal_batch is None:
            store = self._store
            if store._state is not None:
                raise store._state
            self._sealed = True
            self._seal_tail = self._assigned
            self._seal_batch = store._enqueue_control(_MetaWrite(self, seal=True, delete_to=None))
        await _await_batch(self._seal_batch)
        return self._seal_tail

    async def trim(self, up_to_lsn: int) -> None:
        """Delete records <= up_to_lsn (clamped to the committed tail) and persist the trim point."""
        up_to = min(up_to_lsn, self._tail - 1)
        if up_to <= self._trim_point:
            return
        store = self._store
        if store._state is not None:
            raise store._state
        self._trim_point = up_to
        k = up_to + 1 - self._cache_base
        if k > 0:
            del self._cache[:k]
            self._cache_base += k
        await _await_batch(store._enqueue_control(_MetaWrite(self, seal=False, delete_to=up_to + 1)))


class LocalLogletStore:
    """One RocksDB database holding all loglets of a node, with one group-commit writer."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_pending_records: int = 65536,
        cache_records: int = 1024,
        options: Options | None = None,
    ) -> None:
        if max_pending_records < 1:
            raise ValueError("max_pending_records must be >= 1")
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(self.path), options or log_db_options())
        self._sync = WriteOptions()
        self._sync.sync = True
        self._max_pending = max_pending_records
        self._cache_records = max(0, cache_records)
        self._cache_high = max(1, 2 * self._cache_records)
        self._loglets: dict[int, LocalLoglet] = {}
        # Writer state, all touched only from the event loop thread.
        self._dirty: list[LocalLoglet] = []  # loglets with pending records, in first-append order
        self._controls: list[_MetaWrite | _DropWrite] = []
        self._open_batch: _Batch | None = None
        self._inflight = 0
        self._room_waiters: list[asyncio.Future[None]] = []
        self._writing = False  # a batch is in the writer thread
        self._kick_scheduled = False
        self._drained: asyncio.Future[None] | None = None  # close() waits on it
        self._loop: asyncio.AbstractEventLoop | None = None
        # The writer thread: takes one job at a time, handed over through _job + _job_ready
        # (a lock used as a binary semaphore: the cheapest cross-thread wake-up CPython has).
        self._job: tuple[list[tuple[LocalLoglet, int, list[bytes]]], list[_MetaWrite | _DropWrite], _Batch] | None = None
        self._job_ready = threading.Lock()
        self._job_ready.acquire()
        self._thread: threading.Thread | None = None
        self._state: LogError | None = None  # set once closed or failed: every call raises it
        self._closing = False  # close() started: the writer drains the queue, then stops
        self._db_closed = False
        # Counters for the admin view and the benchmark.
        self.batches_written = 0
        # Observer of each synced batch: (records, seconds from hand-off to durable); for metrics.
        self.on_batch: Callable[[int, float], None] | None = None
        self._write_started = 0.0
        self.records_written = 0

    # -- loglets --------------------------------------------------------------------------

    def loglet(self, loglet_id: int, base_lsn: int) -> LocalLoglet:
        """The loglet with this id, opened (tail recovered from the last key) on first use."""
        lg = self._loglets.get(loglet_id)
        if lg is not None:
            if lg._base != base_lsn:
                raise LogCorruptionError(
                    f"loglet {loglet_id:#x} is open with base LSN {lg._base}, asked for {base_lsn}"
                )
            return lg
        if self._state is not None:
            raise self._state
        if not 0 <= loglet_id <= _MAX_U64 or base_lsn < 1:
            raise ValueError(f"bad loglet id {loglet_id} or base LSN {base_lsn}")
        prefix = _RECORD + loglet_id.to_bytes(8, "big")
        meta = self._db.get(_META + loglet_id.to_bytes(8, "big"))
        sealed, seal_tail, trim_point = _META_FMT.unpack(meta) if meta is not None else (0, 0, 0)
        it = self._db.iter()
        it.seek_for_prev(prefix + _MAX_U64.to_bytes(8, "big"))
        tail = base_lsn
        if it.valid():
            key = it.key()
            if key[:9] == prefix:
                tail = int.from_bytes(key[9:17], "big") + 1
        del it
        tail = max(tail, trim_point + 1)
        if sealed:
            if tail > seal_tail:
                raise LogCorruptionError(
                    f"loglet {loglet_id:#x} holds records up to LSN {tail - 1} beyond its seal tail {seal_tail}"
                )
            tail = seal_tail
        lg = LocalLoglet(self, loglet_id, base_lsn, tail=tail, sealed=bool(sealed), trim_point=trim_point)
        self._loglets[loglet_id] = lg
        return lg

    async def drop(self, loglet_id: int) -> None:
        """Delete a loglet that is no longer in any chain; its id must never be used again."""
        if self._state is not None:
            raise self._state
        lg = self._loglets.get(loglet_id)
        if lg is not None and not lg._seal_durable and lg._tail != lg._trim_point + 1:
            raise ValueError(f"loglet {loglet_id:#x} still holds records and is not sealed; trim it first")
        await _await_batch(self._enqueue_control(_DropWrite(self, loglet_id)))

    def _read_range(self, lg: LocalLoglet, from_lsn: int, end: int) -> list[LogRecord]:
        """Sequential range read with one iterator (records of one loglet are adjacent keys)."""
        if self._db_closed:
            raise LogClosedError(f"the log store at {self.path} is closed")
        prefix = lg._prefix
        ro = ReadOptions()
        ro.set_iterate_upper_bound(prefix + end.to_bytes(8, "big"))
        it = self._db.iter(ro)
        it.seek(prefix + from_lsn.to_bytes(8, "big"))
        out: list[LogRecord] = []
        expect = from_lsn
        while it.valid():
            lsn = int.from_bytes(it.key()[9:17], "big")
            if lsn != expect:
                break
            out.append(LogRecord(lsn, it.value()))
            expect += 1
            it.next()
        del it
        if expect != end:
            if from_lsn <= lg._trim_point:  # trimmed while we looked: say so, not "corrupt"
                raise TrimmedError(from_lsn, lg._trim_point)
            raise LogCorruptionError(
                f"loglet {lg._id:#x}: expected records [{from_lsn}, {end}) but LSN {expect} is missing"
            )
        return out

    # -- the group-commit writer ----------------------------------------------------------

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def _start_batch(self) -> _Batch:
        """Open a new batch (the first record since the last write was taken)."""
        batch = self._open_batch = _Batch(self._get_loop())
        if not self._writing and not self._kick_scheduled:
            self._schedule_kick()
        return batch

    def _schedule_kick(self) -> None:
        # call_soon, not now: appenders already scheduled to run (e.g. the ones just woken by
        # the previous batch) get to add their records first. That is the adaptive batching.
        self._kick_scheduled = True
        self._get_loop().call_soon(self._kick)

    def _enqueue_control(self, op: _MetaWrite | _DropWrite) -> _Batch:
        self._controls.append(op)
        return self._open_batch or self._start_batch()

    async def _wait_for_room(self, n: int) -> None:
        loop = self._get_loop()
        while self._inflight and self._inflight + n > self._max_pending:
            if self._state is not None:
                raise self._state
            fut: asyncio.Future[None] = loop.create_future()
            self._room_waiters.append(fut)
            await fut
        if self._state is not None:
            raise self._state

    def _kick(self) -> None:
        """Hand everything queued to the writer thread as one batch (if it is idle)."""
        self._kick_scheduled = False
        if self._writing or (not self._dirty and not self._controls):
            return
        if self._state is not None and not self._closing:
            return
        dirty, self._dirty = self._dirty, []
        records = []
        for lg in dirty:
            records.append((lg, lg._pending_first, lg._pending))
            lg._pending = []
        controls, self._controls = self._controls, []
        batch, self._open_batch = self._open_batch, None
        assert batch is not None
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._thread_main, args=(self._get_loop(),), name="endure-log-writer", daemon=True
            )
            self._thread.start()
        self._writing = True
        self._write_started = time.monotonic()
        self._job = (records, controls, batch)
        self._job_ready.release()

    def _thread_main(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            self._job_ready.acquire()
            job, self._job = self._job, None
            if job is None:
                return  # close()
            records, controls, batch = job
            error: BaseException | None = None
            try:
                self._write(records, controls)
            except BaseException as exc:  # reported to the loop, which fails the store
                error = exc
            try:
                loop.call_soon_threadsafe(self._written, records, controls, batch, error)
            except RuntimeError:
                return  # the event loop is gone; nobody is waiting any more

    def _written(
        self,
        records: list[tuple[LocalLoglet, int, list[bytes]]],
        controls: list[_MetaWrite | _DropWrite],
        batch: _Batch,
        error: BaseException | None,
    ) -> None:
        """On the loop, after the synced write returned: publish the records, wake everyone."""
        self._writing = False
        if error is not None:
            # A failed synced write leaves the durable state unknown: refuse all further work
            # so no LSN is handed out twice or skipped; reopening recovers from disk.
            err = LogletFailedError(f"log write failed, reopen the log to recover: {error!r}")
            err.__cause__ = error
            self._fail(err, batch)
        else:
            n = 0
            for lg, first, payloads in records:
                lg._committed(first, payloads)
                n += len(payloads)
            for op in controls:
                op.committed()
            self._inflight -= n
            self.batches_written += 1
            self.records_written += n
            if self.on_batch is not None:
                self.on_batch(n, time.monotonic() - self._write_started)
            if self._room_waiters:
                waiters, self._room_waiters = self._room_waiters, []
                for w in waiters:
                    if not w.done():
                        w.set_result(None)
            batch.resolve()
            if self._dirty or self._controls:
                if not self._kick_scheduled:
                    self._schedule_kick()
                return
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _write(
        self, records: list[tuple[LocalLoglet, int, list[bytes]]], controls: list[_MetaWrite | _DropWrite]
    ) -> None:
        """Runs in the writer thread: one WriteBatch, one synced write."""
        wb = WriteBatch(raw_mode=True)
        put = wb.put
        for lg, first, payloads in records:
            prefix = lg._prefix
            if len(payloads) == 1:
                put(prefix + first.to_bytes(8, "big"), payloads[0])
            else:
                for lsn, p in enumerate(payloads, first):
                    put(prefix + lsn.to_bytes(8, "big"), p)
        for op in controls:
            op.write(wb)
        self._db.write(wb, self._sync)

    def _fail(self, err: LogError, batch: _Batch | None) -> None:
        if self._state is None or isinstance(err, LogletFailedError):
            self._state = err
        for b in (batch, self._open_batch):
            if b is not None and not b.done:
                b.resolve(err)
        self._open_batch = None
        for lg in self._dirty:
            lg._pending = []
        self._dirty = []
        self._controls = []
        for w in self._room_waiters:
            if not w.done():
                w.set_exception(err)
        self._room_waiters = []
        for lg in self._loglets.values():
            lg._wake_tail_waiters(err)

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def pending_records(self) -> int:
        """Records accepted but not yet durable (queued or being written)."""
        return self._inflight

    async def close(self) -> None:
        """Finish everything already accepted, then sync and close the database. Idempotent."""
        if self._closing:
            return
        self._closing = True
        if self._writing or self._dirty or self._controls:
            self._drained = self._get_loop().create_future()
            if not self._writing and not self._kick_scheduled:
                self._schedule_kick()
            await asyncio.shield(self._drained)
        if self._state is None:
            self._state = LogClosedError(f"the log store at {self.path} is closed")
        self._fail(self._state, None)
        if self._thread is not None:
            self._job = None
            self._job_ready.release()
            self._thread.join()
        self._db_closed = True
        self._db.flush_wal(True)
        self._db.close()
