"""JetStream loglets: each segment of a virtual log is one replicated JetStream stream.

Layout, for namespace "endure", log 3, segment 2 (loglet id (3 << 32) | 2):

    stream    ENDURE_LOG_3_2          R3 (configurable), file storage, allow_atomic, allow_direct
    subjects  endure.log.3.2.d        every record of a batch but the last
              endure.log.3.2.t.c      the last record of a batch (its commit message)
              endure.log.3.2.t.s      seal markers (empty)
    tail      endure.tail.3.2         the stream republishes the headers of every .t.* message

A record's LSN is base_lsn + its stream sequence - 1. The stream is created by the first write
(append or seal), so a segment that never gets a record costs nothing until it is sealed.

Appends are group committed. Appenders queue their records and await one future; one writer per
loglet sends everything queued as one JetStream *atomic batch* (stored all or nothing, one raft
entry, one quorum write with `sync_interval: always` on every server), its messages pipelined and
only the commit answered, so a batch costs one round trip whatever its size. An appender is
acknowledged only after the PubAck, which for R3 means stored on a quorum.

Every batch carries `Nats-Expected-Last-Sequence` (the stream's last sequence it was built on) and
an `Endure-Batch` tag on its first message. So two writers can never interleave (the second is
refused, re-reads the tail, and retries after the first), and a lost PubAck never makes a
duplicate or a gap: the writer re-sends the *same* batch at the same expected sequence until it
hears a definite answer; "wrong last sequence" then means either its own earlier copy landed
(the tag at expected + 1 says so) or another writer's did. Nothing is acknowledged on doubt: when
the cluster stays silent past the append timeout the appenders get `LogUnavailable`
(maybe_written=True), and the writer re-reads the tail before its next batch.

Seal. A seal is first a record: an empty message on the seal subject, appended (without an
expected sequence) behind whatever is in flight. Its sequence M is final: records are [1, M), and
no writer can ever be acknowledged past it, because each batch expects the last sequence its
writer saw and a writer that re-reads the stream also sees the marker and stops. Then the stream
config gets `sealed: true`, which makes JetStream refuse every later publish (SealedError here) and
makes the stream read only. (The config alone cannot give the final tail: JetStream checks it before
proposing, so publishes already proposed may still be stored after the update returns.)

Trim purges the stream below the new first sequence; a sealed stream cannot be purged, so its trim
point is kept in the stream's metadata instead (`endure.trim_point`), until the segment is dropped.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections import deque
from collections.abc import Sequence
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ..loglet import (
    LogClosedError,
    LogError,
    LogFull,
    LogletFailedError,
    LogRecord,
    LogUnavailable,
    SealedError,
    TrimmedError,
    check_read_range,
)
from .connection import JetStreamApiError, JetStreamConnection, api_error, parse_json_reply

__all__ = ["JetStreamLoglet", "JetStreamLogletProvider", "SequenceConflict"]

log = logging.getLogger("endure.log.jetstream")

_EXPECTED = "Nats-Expected-Last-Sequence"
_BATCH_ID = "Nats-Batch-Id"
_BATCH_SEQ = "Nats-Batch-Sequence"
_BATCH_COMMIT = "Nats-Batch-Commit"
_TAG = "Endure-Batch"
_SEAL = "Endure-Seal"
_META_TRIM = "endure.trim_point"

_WRONG_LAST_SEQ = frozenset({10071, 10164})
_SEALED = 10109
_STREAM_NOT_FOUND = 10059
_STREAM_NAME_IN_USE = 10058
_NO_MESSAGE = 10037
_BATCH_INCOMPLETE = 10176

# JetStream's own limit on the messages of one atomic batch.
MAX_BATCH_RECORDS = 1000


class SequenceConflict(LogError):
    """Other writers kept appending to the same loglet until the append timed out; not written."""


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a shared future's exception as seen (its appenders may all have been cancelled)."""
    if not fut.cancelled():
        fut.exception()


def _reraise_if_cancelled() -> None:
    """Inside `except CancelledError`: re-raise if *this* task was asked to cancel."""
    task = asyncio.current_task()
    if task is None or task.cancelling():
        raise  # the exception being handled by our caller


class _Batch:
    """The records of one atomic batch and the one future all its appenders await.

    One plain future per batch (not one per appender) keeps the cost per record low. The catch:
    a waiter's cancellation cancels the shared future, and every other waiter wakes with
    CancelledError too; those whose own task was not cancelled wait again (`_again`), so
    cancelling one appender fails nobody else. The cancelled one's records stay in the batch.
    """

    __slots__ = ("payloads", "fut", "first", "error", "done", "_again", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.payloads: list[bytes] = []
        self.fut: asyncio.Future[None] = loop.create_future()
        self.fut.add_done_callback(_retrieve)
        self.first = 0
        self.error: BaseException | None = None
        self.done = False
        self._again: asyncio.Future[None] | None = None

    def resolve(self, first: int, error: BaseException | None = None) -> None:
        self.done, self.first, self.error = True, first, error
        for f in (self.fut, self._again):
            if f is not None and not f.done():
                if error is None:
                    f.set_result(None)
                else:
                    f.set_exception(error)

    async def wait(self) -> int:
        """The LSN of the batch's first record once it is stored; its error otherwise."""
        try:
            await self.fut
        except asyncio.CancelledError:
            _reraise_if_cancelled()
            while not self.done:
                again = self._again
                if again is None or again.done():
                    again = self._again = self._loop.create_future()
                    again.add_done_callback(_retrieve)
                try:
                    await again
                except asyncio.CancelledError:
                    _reraise_if_cancelled()
        if self.error is not None:
            raise self.error
        return self.first


class JetStreamLoglet:
    """One segment stored in one JetStream stream. Obtain it from JetStreamLogletProvider.loglet()."""

    def __init__(self, provider: JetStreamLogletProvider, loglet_id: int, base_lsn: int) -> None:
        self._provider = provider
        self._conn = provider.conn
        self._id = loglet_id
        self._base = base_lsn
        log_id, seq = loglet_id >> 32, loglet_id & 0xFFFFFFFF
        ns = provider.namespace
        self.stream = f"{ns.upper()}_LOG_{log_id}_{seq}"
        root = f"{ns}.log.{log_id}.{seq}"
        self._root = root
        self._data_subject = f"{root}.d"
        self._commit_subject = f"{root}.t.c"
        self._seal_subject = f"{root}.t.s"
        self._tail_subject = f"{ns}.tail.{log_id}.{seq}"
        self._exists: bool | None = None  # None: not asked yet
        self._loaded = False
        self._last_seq = 0  # highest stream sequence known to hold a committed record
        self._stream_last = 0  # the stream's last sequence as last seen (markers included)
        self._seal_seq: int | None = None  # sequence of the first seal marker, once known
        self._seal_requested = False
        self._seal_task: asyncio.Task[int] | None = None
        self._trim_point = 0
        self._expected: int | None = None  # the writer's view of the stream's last sequence
        self._queue: deque[_Batch] = deque()  # batches not yet taken by the writer, oldest first
        self._open: _Batch | None = None  # the newest of them, still taking records
        self._writer: asyncio.Task[None] | None = None
        self._tail_waiters: list[asyncio.Future[None]] = []
        self._watch: Subscription | None = None
        self._tag_prefix = os.urandom(6).hex()
        self._tag_n = 0

    # -- identity -------------------------------------------------------------------------

    @property
    def loglet_id(self) -> int:
        return self._id

    @property
    def kind(self) -> str:
        return JetStreamLogletProvider.kind

    @property
    def base_lsn(self) -> int:
        return self._base

    @property
    def sealed(self) -> bool:
        return self._seal_requested or self._seal_seq is not None

    def tail(self) -> int:
        """Next LSN, as far as this process knows (grows with acks, tail notices and reloads)."""
        return self._base + self._last_seq

    def trim_point(self) -> int:
        return self._trim_point

    def __repr__(self) -> str:
        state = f"sealed@{self.tail()}" if self._seal_seq is not None else "open"
        return f"JetStreamLoglet({self.stream}, base={self._base}, tail={self.tail()}, {state})"

    # -- stream state -----------------------------------------------------------------------

    def _stream_config(self) -> dict[str, Any]:
        p = self._provider
        return {
            "name": self.stream,
            "subjects": [f"{self._root}.>"],
            "retention": "limits",
            "storage": "file",
            "num_replicas": p.replicas,
            "discard": "new",
            "max_msgs": -1,
            "max_bytes": -1,
            "max_age": 0,
            "max_msgs_per_subject": -1,
            "max_msg_size": -1,
            "max_consumers": -1,
            "allow_direct": True,
            "allow_atomic": True,
            "deny_delete": True,
            "deny_purge": False,
            "republish": {"src": f"{self._root}.t.*", "dest": self._tail_subject, "headers_only": True},
            "metadata": {"endure.loglet": str(self._id), "endure.base_lsn": str(self._base)},
        }

    async def _info(self, timeout: float | None = None, patience: float = 0.0) -> dict[str, Any] | None:
        """The stream's info with the seal subject counted; None if the stream does not exist."""
        try:
            return await self._conn.api(
                f"STREAM.INFO.{self.stream}", {"subjects_filter": self._seal_subject},
                what=f"reading the state of {self.stream}", timeout=timeout, patience=patience,
            )
        except JetStreamApiError as err:
            if err.err_code == _STREAM_NOT_FOUND:
                return None
            raise

    async def _refresh(self, timeout: float | None = None, patience: float = 0.0) -> dict[str, Any] | None:
        """Adopt the stream's state (tail, seal, trim point) and return its info (None: no stream)."""
        info = await self._info(timeout, patience)
        self._loaded = True
        if info is None:
            self._exists = False
            return None
        self._exists = True
        state, config = info["state"], info["config"]
        last, first = int(state.get("last_seq", 0)), int(state.get("first_seq", 0))
        self._stream_last = max(self._stream_last, last)
        markers = int((state.get("subjects") or {}).get(self._seal_subject, 0))
        if self._seal_seq is None:
            if markers:
                await self._found_seal(await self._first_marker(timeout))
            elif config.get("sealed"):
                # Sealed by config alone (not by this engine): the stream's end is final.
                await self._found_seal(last + 1)
            else:
                self._set_last(last)
        trim = self._base + first - 2 if first > 1 else 0
        meta = (config.get("metadata") or {}).get(_META_TRIM)
        if meta is not None:
            trim = max(trim, int(meta))
        self._trim_point = max(self._trim_point, min(trim, self.tail() - 1))
        return info

    async def _first_marker(self, timeout: float | None) -> int:
        """Sequence of the first seal marker, asked of the stream leader (authoritative)."""
        resp = await self._conn.api(
            f"STREAM.MSG.GET.{self.stream}", {"seq": 1, "next_by_subj": self._seal_subject},
            what=f"finding the seal of {self.stream}", timeout=timeout,
        )
        return int(resp["message"]["seq"])

    async def _found_seal(self, marker: int) -> None:
        if self._last_seq >= marker:
            raise LogletFailedError(
                f"{self.stream}: a record at sequence {self._last_seq} was acknowledged past the seal "
                f"marker at {marker}; the stream was written by something that does not follow this protocol"
            )
        self._seal_seq = marker
        self._seal_requested = True
        self._last_seq = marker - 1
        self._wake_tail_waiters()
        if self._watch is not None:
            watch, self._watch = self._watch, None
            try:
                await watch.unsubscribe()
            except Exception:  # noqa: BLE001 - the connection may be gone; nothing to undo
                pass

    def _set_last(self, seq: int) -> None:
        if seq > self._last_seq and self._seal_seq is None:
            self._last_seq = seq
            self._wake_tail_waiters()

    async def _create(self, timeout: float | None) -> None:
        try:
            await self._conn.api(
                f"STREAM.CREATE.{self.stream}", self._stream_config(),
                what=f"creating stream {self.stream}", timeout=timeout,
            )
        except JetStreamApiError as err:
            if err.err_code != _STREAM_NAME_IN_USE:  # created (and since changed) by another writer
                raise
        self._exists = True

    async def load(self) -> None:
        """Fetch the stream's state unless it is final already (called by VirtualLog on adoption)."""
        if self._loaded and self._seal_seq is not None:
            return
        await self._refresh(patience=self._provider.append_timeout)

    async def find_tail(self) -> tuple[int, bool]:
        """The committed tail and whether the seal is durable, asked of the stream leader."""
        if self._seal_seq is None:
            await self._refresh(patience=self._provider.append_timeout)
        return self.tail(), self._seal_seq is not None

    # -- append ---------------------------------------------------------------------------

    async def append(self, payloads: Sequence[bytes], *, wait: bool = True) -> range:
        """Durably append `payloads` (stored on a quorum); returns their contiguous LSNs."""
        n = len(payloads)
        for p in payloads:
            if type(p) is not bytes:
                raise TypeError(f"log payloads must be bytes, got {type(p).__name__}")
        if n > self._provider.max_batch_records:
            raise ValueError(
                f"an append holds at most {self._provider.max_batch_records} records on JetStream "
                f"(one atomic batch), got {n}; split it"
            )
        if self.sealed:
            raise SealedError(self._id, self.tail())
        provider = self._provider
        provider._check_open()
        if n == 0:
            return range(self.tail(), self.tail())
        await provider._reserve(n, wait)
        if self.sealed:
            provider._release(n)
            raise SealedError(self._id, self.tail())
        batch = self._open
        if batch is None or len(batch.payloads) + n > provider.max_batch_records:
            batch = self._open = _Batch(asyncio.get_running_loop())
            self._queue.append(batch)
        offset = len(batch.payloads)
        batch.payloads.extend(payloads)
        if self._writer is None:
            # A task, so it first runs after every appender that is already runnable: they all
            # land in its first batch. Later batches take whatever queued during the round trip.
            self._writer = asyncio.get_running_loop().create_task(
                self._write_loop(), name=f"endure-js-writer-{self.stream}")
        first = await batch.wait()
        return range(first + offset, first + offset + n)

    async def _write_loop(self) -> None:
        provider = self._provider
        try:
            while self._queue:
                batch = self._queue.popleft()
                if batch is self._open:
                    self._open = None
                records = len(batch.payloads)
                try:
                    if self._seal_seq is not None:
                        raise SealedError(self._id, self.tail())
                    first = await self._commit(batch.payloads)
                except BaseException as exc:
                    provider._release(records)
                    batch.resolve(0, exc)
                    if isinstance(exc, asyncio.CancelledError | SealedError):
                        self._fail_queued(SealedError(self._id, self.tail()) if isinstance(exc, SealedError)
                                          else LogClosedError(f"{self.stream}: the log was closed"))
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                provider._release(records)
                batch.resolve(first)
        finally:
            self._writer = None

    def _fail_queued(self, exc: BaseException) -> None:
        self._open = None
        while self._queue:
            batch = self._queue.popleft()
            self._provider._release(len(batch.payloads))
            batch.resolve(0, exc)

    def _new_tag(self) -> str:
        self._tag_n += 1
        return f"{self._tag_prefix}.{self._tag_n}"

    async def _commit(self, payloads: list[bytes]) -> int:
        """Store `payloads` as one atomic batch right after the stream's last sequence; return
        the LSN of the first. Retries until a definite answer or the append timeout."""
        provider = self._provider
        loop = asyncio.get_running_loop()
        deadline = loop.time() + provider.append_timeout
        n = len(payloads)
        tag = self._new_tag()
        expected = self._expected
        check = expected is None or self._exists is not True  # look at the stream before sending
        uncertain = False  # an attempt may have been stored (sent, and no definite answer came)
        sending = False
        refused_sealed = False
        refused_seq = False  # the last attempt was refused for its expected sequence
        attempt = 0
        backoff = 0.02
        settle = 0.002
        last_error: LogError | None = None
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                self._expected = None  # the next batch re-reads the tail first
                if not uncertain and isinstance(last_error, JetStreamApiError) \
                        and last_error.err_code in _WRONG_LAST_SEQ:
                    raise SequenceConflict(
                        f"append of {n} record(s) to {self.stream}: other writers kept appending for "
                        f"{provider.append_timeout:g} s, so the batch never got its place; it was not written"
                    )
                raise LogUnavailable(
                    f"append of {n} record(s) to {self.stream} got no definite answer within "
                    f"{provider.append_timeout:g} s; last error: {last_error}",
                    maybe_written=uncertain,
                )
            timeout = min(remaining, provider.ack_timeout)
            try:
                if check:
                    await self._refresh(timeout)
                    if self._exists is False:
                        if uncertain:  # something was sent to a stream that is now gone
                            raise LogletFailedError(f"{self.stream} was deleted under an append")
                        await self._create(timeout)
                        self._stream_last = 0
                    if uncertain and expected is not None and self._stream_last >= expected + n \
                            and await self._is_ours(expected + 1, tag, timeout):
                        return self._accepted(expected, n)
                    if self._seal_seq is not None or refused_sealed:
                        raise SealedError(self._id, self.tail())
                    if expected is not None and expected != self._stream_last:
                        provider.conflicts += 1  # another writer appended: go after its records
                    elif refused_seq:
                        # Refused, yet the stream shows nothing new: a batch is proposed but not
                        # applied yet (another writer's, or our own earlier copy). Give it a moment.
                        await asyncio.sleep(min(settle, max(0.0, deadline - loop.time())))
                        settle = min(settle * 2, 0.2)
                        continue
                    expected = self._stream_last
                    check, refused_seq = False, False
                attempt += 1
                if attempt > 1:
                    provider.resends += 1
                sending = True
                seq = await self._send(expected, payloads, tag, attempt, timeout)
                return self._accepted(expected, n, seq)
            except JetStreamApiError as err:  # a definite refusal of this attempt
                sending = False
                last_error = err
                code = err.err_code
                if code in _WRONG_LAST_SEQ:
                    check, refused_seq = True, True
                    continue
                if code == _SEALED:
                    check, refused_sealed = True, True
                    continue
                if code == _STREAM_NOT_FOUND:
                    check = True
                    continue
                if code == _BATCH_INCOMPLETE:  # a message of the batch was lost on the way: resend
                    continue
                self._expected = None
                raise
            except LogUnavailable as err:
                if sending:
                    uncertain = uncertain or err.maybe_written
                    sending = False
                last_error = err
                await asyncio.sleep(min(backoff, max(0.0, deadline - loop.time())))
                backoff = min(backoff * 2, 0.5)

    def _accepted(self, expected: int, n: int, seq: int | None = None) -> int:
        if seq is not None and seq != expected + n:
            self._expected = None
            raise LogletFailedError(
                f"{self.stream}: a batch of {n} expected after sequence {expected} was stored ending at {seq}"
            )
        end = expected + n
        self._expected = end
        self._stream_last = max(self._stream_last, end)
        self._set_last(end)
        self._provider.batches_written += 1
        self._provider.records_written += n
        return self._base + expected

    async def _send(self, expected: int, payloads: list[bytes], tag: str, attempt: int, timeout: float) -> int:
        """One attempt: the batch's messages pipelined, then the commit; its stream sequence."""
        conn = self._conn
        what = f"append to {self.stream}"
        n = len(payloads)
        if n == 1:
            msg = await conn.request(self._commit_subject, payloads[0], what=what, timeout=timeout,
                                     headers={_EXPECTED: str(expected), _TAG: tag})
        else:
            bid = f"{tag}.{attempt}".encode()  # a fresh id per attempt: the server may hold a partial one
            first = (b"NATS/1.0\r\n" + _BATCH_ID.encode() + b": " + bid + b"\r\n" + _BATCH_SEQ.encode()
                     + b": 1\r\n" + _EXPECTED.encode() + b": %d\r\n" % expected + _TAG.encode() + b": "
                     + tag.encode() + b"\r\n\r\n")
            middle = b"NATS/1.0\r\n" + _BATCH_ID.encode() + b": " + bid + b"\r\n" + _BATCH_SEQ.encode() + b": %d\r\n\r\n"
            messages = [(first, payloads[0])]
            messages += [(middle % (i + 1), payloads[i]) for i in range(1, n - 1)]
            await conn.publish_many(self._data_subject, messages)
            msg = await conn.request(self._commit_subject, payloads[-1], what=what, timeout=timeout,
                                     headers={_BATCH_ID: bid.decode(), _BATCH_SEQ: str(n), _BATCH_COMMIT: "1"})
        resp = parse_json_reply(msg, what)
        err = resp.get("error")
        if err:
            raise api_error(what, err)
        return int(resp["seq"])

    async def _is_ours(self, seq: int, tag: str, timeout: float) -> bool:
        """Whether the message at `seq` is the first of our batch `tag` (asked of the leader)."""
        try:
            resp = await self._conn.api(f"STREAM.MSG.GET.{self.stream}", {"seq": seq},
                                        what=f"checking sequence {seq} of {self.stream}", timeout=timeout)
        except JetStreamApiError as err:
            if err.err_code == _NO_MESSAGE:
                return False
            raise
        raw = resp.get("message", {}).get("hdrs")
        if not raw:
            return False
        return f"{_TAG}: {tag}\r\n".encode() in base64.b64decode(raw)

    # -- read -----------------------------------------------------------------------------

    async def read(self, from_lsn: int, to_lsn: int, limit: int = 1000) -> list[LogRecord]:
        """Committed records in [from_lsn, to_lsn), at most `limit`, in batched direct gets."""
        check_read_range(from_lsn, to_lsn, limit, self._trim_point, self.tail())
        if from_lsn < self._base:
            raise ValueError(f"LSN {from_lsn} is below the base LSN {self._base} of loglet {self._id:#x}")
        end = min(to_lsn, from_lsn + limit)
        out: list[LogRecord] = []
        if from_lsn >= end:
            return out
        provider = self._provider
        loop = asyncio.get_running_loop()
        deadline = loop.time() + provider.append_timeout
        seq, last = from_lsn - self._base + 1, end - self._base  # stream sequences, inclusive
        backoff = 0.005
        while seq <= last:
            count = min(last - seq + 1, provider.read_batch_records)
            payloads, got_last = await self._conn.direct_get_batch(
                self.stream, seq, count, what=f"reading {self.stream}",
                timeout=max(0.001, min(provider.ack_timeout, deadline - loop.time())),
            )
            k = len(payloads)
            if k and got_last - k + 1 != seq:
                # The stream's first records are gone: trimmed meanwhile (purges only cut the front).
                await self._refresh()
                if from_lsn <= self._trim_point:
                    raise TrimmedError(from_lsn, self._trim_point)
                raise LogletFailedError(
                    f"{self.stream}: asked for sequence {seq}, the stream answered from {got_last - k + 1}"
                )
            take = min(k, last - seq + 1)
            if take:
                lsn = self._base + seq - 1
                out.extend(map(LogRecord, range(lsn, lsn + take), payloads[:take]))
                seq += take
                continue
            # Nothing: a replica that has not applied these committed records yet answered, or
            # the records were trimmed. Look, then ask again shortly (bounded).
            if self._trim_point >= self._base + seq - 1:
                raise TrimmedError(from_lsn, self._trim_point)
            if loop.time() >= deadline:
                raise LogUnavailable(f"reading {self.stream} from sequence {seq}: no replica served it")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 0.2)
            if backoff >= 0.04:
                await self._refresh()
        return out

    async def wait_for_tail(self, lsn: int) -> int:
        """Return the tail once it is > lsn or the seal is durable.

        Woken by our own acks and by the stream's republished commit headers (other writers);
        the stream is also asked directly on a bounded backoff, for seals and lost notices.
        """
        provider = self._provider
        poll = provider.poll_min
        loop = asyncio.get_running_loop()
        while self.tail() <= lsn and self._seal_seq is None:
            provider._check_open()
            if self._watch is None:
                try:
                    self._watch = await self._conn.subscribe(self._tail_subject, self._on_tail)
                except LogUnavailable:
                    pass
            fut: asyncio.Future[None] = loop.create_future()
            self._tail_waiters.append(fut)
            try:
                # asyncio.wait, not wait_for: on Python 3.11 wait_for loses a cancellation that
                # arrives as the future completes, and this loop would then never end.
                done, _ = await asyncio.wait({fut}, timeout=poll)
                if not done:
                    try:
                        await self._refresh()
                    except LogUnavailable:
                        pass  # nothing new can be learnt while the cluster is away: keep waiting
                    poll = min(poll * 2, provider.poll_max)
            finally:
                if fut in self._tail_waiters:
                    self._tail_waiters.remove(fut)
        return self.tail()

    async def _on_tail(self, msg: Msg) -> None:
        headers = msg.headers or {}
        try:
            seq = int(headers.get("Nats-Sequence", "0"))
        except ValueError:
            return
        if headers.get("Nats-Subject") == self._seal_subject:
            if self._seal_seq is None:
                try:
                    await self._refresh()
                except LogError:
                    self._wake_tail_waiters()  # let the waiters look for themselves
        else:
            self._stream_last = max(self._stream_last, seq)
            self._set_last(seq)

    def _wake_tail_waiters(self) -> None:
        waiters, self._tail_waiters = self._tail_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    # -- seal / trim ----------------------------------------------------------------------

    async def seal(self) -> int:
        """Seal (idempotent): a marker record fixes the final tail, then the stream config is
        sealed. Returns the final tail once both are stored."""
        if self._seal_seq is not None and self._seal_task is None:
            return self.tail()
        self._seal_requested = True
        task = self._seal_task
        if task is None or (task.done() and task.exception() is not None):
            task = self._seal_task = asyncio.get_running_loop().create_task(self._do_seal())
        return await asyncio.shield(task)

    async def _do_seal(self) -> int:
        provider = self._provider
        loop = asyncio.get_running_loop()
        deadline = loop.time() + provider.append_timeout
        backoff = 0.02
        last_error: LogError | None = None
        while True:
            timeout = min(provider.ack_timeout, deadline - loop.time())
            if timeout <= 0:
                raise LogUnavailable(f"sealing {self.stream}: no definite answer; last error: {last_error}",
                                     maybe_written=True)
            try:
                info = await self._refresh(timeout)
                if info is None:
                    await self._create(timeout)
                    info = await self._refresh(timeout)
                    if info is None:
                        continue
                if self._seal_seq is None:
                    msg = await self._conn.request(self._seal_subject, b"", what=f"sealing {self.stream}",
                                                   headers={_SEAL: self._new_tag()}, timeout=timeout)
                    resp = parse_json_reply(msg, f"sealing {self.stream}")
                    if resp.get("error") and int(resp["error"].get("err_code", 0)) != _SEALED:
                        raise api_error(f"sealing {self.stream}", resp["error"])
                    info = await self._refresh(timeout)  # finds the first marker (ours or an earlier one)
                    if info is None or self._seal_seq is None:
                        continue
                config = info["config"]
                if not config.get("sealed"):
                    # What JetStream makes of a sealed config anyway, so racing sealers send equal ones.
                    config.update(sealed=True, deny_delete=True, deny_purge=True, allow_rollup_hdrs=False)
                    try:
                        await self._conn.api(f"STREAM.UPDATE.{self.stream}", config,
                                             what=f"sealing the config of {self.stream}", timeout=timeout)
                    except JetStreamApiError:
                        again = await self._info(timeout)
                        if again is None or not again["config"].get("sealed"):
                            raise
                return self.tail()
            except LogUnavailable as err:
                last_error = err
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 0.5)

    async def trim(self, up_to_lsn: int) -> None:
        """Drop records <= up_to_lsn (clamped to the committed tail): purge, or for a sealed
        stream (which JetStream does not let us purge) record the trim point in its metadata."""
        up_to = min(up_to_lsn, self.tail() - 1)
        if up_to <= self._trim_point:
            return
        if up_to < self._base or self._exists is False:
            self._trim_point = up_to
            return
        what = f"trimming {self.stream}"
        sealed = self._seal_seq is not None
        if not sealed:
            try:
                await self._conn.api(f"STREAM.PURGE.{self.stream}", {"seq": up_to - self._base + 2}, what=what)
            except JetStreamApiError:
                await self._refresh()
                if self._exists is False:
                    self._trim_point = max(self._trim_point, up_to)  # nothing stored, nothing to purge
                    return
                if self._seal_seq is None:
                    raise
                sealed = True
        if sealed:
            info = await self._info()
            if info is not None:
                config = info["config"]
                meta = dict(config.get("metadata") or {})
                if int(meta.get(_META_TRIM, "0")) < up_to:
                    meta[_META_TRIM] = str(up_to)
                    config["metadata"] = meta
                    await self._conn.api(f"STREAM.UPDATE.{self.stream}", config, what=what)
        self._trim_point = max(self._trim_point, up_to)

    async def _close(self) -> None:
        if self._writer is not None:
            await asyncio.wait([self._writer])
        if self._watch is not None:
            watch, self._watch = self._watch, None
            try:
                await watch.unsubscribe()
            except Exception:  # noqa: BLE001 - closing: the connection may be gone already
                pass
        self._wake_tail_waiters()


class JetStreamLogletProvider:
    """LogletProvider of kind "jetstream": loglets as streams on one NATS connection.

    `replicas` is the streams' replication (3 in a 3-server cluster). `max_pending_records`
    bounds the records accepted but not yet acknowledged over all loglets (backpressure, or
    LogFull with wait=False). `append_timeout` bounds how long an append (or seal) keeps trying
    before it fails with LogUnavailable; `ack_timeout` bounds each attempt.
    """

    kind = "jetstream"

    def __init__(
        self,
        conn: JetStreamConnection,
        *,
        replicas: int = 3,
        namespace: str = "endure",
        max_pending_records: int = 65536,
        max_batch_records: int = MAX_BATCH_RECORDS,
        read_batch_records: int = 1000,
        append_timeout: float = 10.0,
        ack_timeout: float = 2.0,
        poll_min: float = 0.05,
        poll_max: float = 1.0,
    ) -> None:
        if not namespace or not namespace.replace("_", "").replace("-", "").isalnum() or not namespace.isascii():
            raise ValueError(f"namespace must be ASCII letters, digits, '-' or '_', got {namespace!r}")
        if not 1 <= max_batch_records <= MAX_BATCH_RECORDS:
            raise ValueError(f"max_batch_records must be in [1, {MAX_BATCH_RECORDS}], got {max_batch_records}")
        if max_pending_records < 1 or replicas < 1:
            raise ValueError("max_pending_records and replicas must be >= 1")
        self.conn = conn
        self.replicas = replicas
        self.namespace = namespace
        self.max_pending_records = max_pending_records
        self.max_batch_records = max_batch_records
        self.read_batch_records = read_batch_records
        self.append_timeout = append_timeout
        self.ack_timeout = ack_timeout
        self.poll_min = poll_min
        self.poll_max = poll_max
        self._loglets: dict[int, JetStreamLoglet] = {}
        self._inflight = 0
        self._room_waiters: list[asyncio.Future[None]] = []
        self._closed = False
        # Counters for tests, the admin view and the benchmark.
        self.batches_written = 0  # atomic batches acknowledged: one round trip each
        self.records_written = 0
        self.conflicts = 0  # batches that had to move behind another writer's records
        self.resends = 0  # attempts after the first (lost acks, elections)

    def loglet(self, loglet_id: int, base_lsn: int) -> JetStreamLoglet:
        """The loglet with this id (its stream is read by load() and created by the first write)."""
        lg = self._loglets.get(loglet_id)
        if lg is not None:
            if lg.base_lsn != base_lsn:
                raise LogletFailedError(f"loglet {loglet_id:#x} is open with base LSN {lg.base_lsn}, asked for {base_lsn}")
            return lg
        if not 0 <= loglet_id < (1 << 63) or base_lsn < 1:
            raise ValueError(f"bad loglet id {loglet_id} or base LSN {base_lsn}")
        self._check_open()
        lg = self._loglets[loglet_id] = JetStreamLoglet(self, loglet_id, base_lsn)
        return lg

    def stream_name(self, loglet_id: int) -> str:
        return f"{self.namespace.upper()}_LOG_{loglet_id >> 32}_{loglet_id & 0xFFFFFFFF}"

    async def drop(self, loglet_id: int) -> None:
        """Delete the stream of a loglet that left its chain (trimmed away)."""
        self._check_open()
        lg = self._loglets.pop(loglet_id, None)
        if lg is not None:
            await lg._close()
        name = self.stream_name(loglet_id)
        try:
            await self.conn.api(f"STREAM.DELETE.{name}", what=f"deleting stream {name}")
        except JetStreamApiError as err:
            if err.err_code != _STREAM_NOT_FOUND:
                raise

    @property
    def pending_records(self) -> int:
        """Records accepted but not yet acknowledged (queued or in flight)."""
        return self._inflight

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError("the JetStream loglet provider is closed")

    async def _reserve(self, n: int, wait: bool) -> None:
        while self._inflight and self._inflight + n > self.max_pending_records:
            if not wait:
                raise LogFull(self._inflight, self.max_pending_records)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._room_waiters.append(fut)
            await fut
            self._check_open()
        self._inflight += n

    def _release(self, n: int) -> None:
        self._inflight -= n
        if self._room_waiters:
            waiters, self._room_waiters = self._room_waiters, []
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    async def close(self) -> None:
        """Let in-flight batches finish (acknowledged or failed), then stop. The connection stays
        open (its owner closes it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for lg in list(self._loglets.values()):
            await lg._close()
        for w in self._room_waiters:
            if not w.done():
                w.set_exception(LogClosedError("the JetStream loglet provider is closed"))
        self._room_waiters = []
