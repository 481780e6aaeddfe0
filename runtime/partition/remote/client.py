"""The client side: a partition another node owns, as a `Partition` (see the package docstring)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import grpc

from endure.proto import partition_pb2 as ppb
from endure.proto import partition_pb2_grpc as ppb_grpc
from endure.proto import records_pb2 as pb
from endure.runtime.log import LogFull
from endure.runtime.partition.api import (
    MAX_KEYS_READ,
    MAX_STREAM_READ,
    InvocationFilter,
    PartitionInfo,
    StreamRead,
    UsageRecord,
)
from endure.runtime.partition.remote.wire import (
    LIMIT_KEY,
    MAX_APPEND,
    MAX_SCAN,
    PENDING_KEY,
    InvalidPartitionRequest,
    PartitionError,
    PartitionNotOwned,
    PartitionUnavailable,
    filter_fields,
    info_of,
)
from endure.runtime.partition.waiters import TooManyWaiters

T = TypeVar("T")


# ---------------------------------------------------------------------------------------- the client


@dataclass(eq=False, slots=True)
class _Waiting:
    """One caller's records waiting for (or in) an Append RPC."""

    envelopes: list[pb.Envelope]
    wait: bool
    future: asyncio.Future[range]
    taken: bool = field(default=False)


class RemotePartition:
    """A partition another node owns, reached through its `PartitionService`.

    Errors are typed: `PartitionNotOwned`, `PartitionUnavailable`, `InvalidPartitionRequest`,
    `LogFull` (the owner's log queue, or this client's own bounded queue, is full), `PartitionError`.
    """

    def __init__(self, partition: int, channel: grpc.aio.Channel, *,
                 metadata: Sequence[tuple[str, str]] = (), timeout: float = 30.0,
                 max_batch: int = MAX_APPEND, max_pending_records: int = 10_000) -> None:
        if not 1 <= max_batch <= MAX_APPEND:
            raise ValueError(f"max_batch must be 1 to {MAX_APPEND}, got {max_batch}")
        if max_pending_records < max_batch:
            raise ValueError(f"max_pending_records ({max_pending_records}) must hold one batch ({max_batch})")
        self._partition = partition
        self._stub = ppb_grpc.PartitionServiceStub(channel)
        self._metadata = tuple(metadata)
        self._timeout = timeout
        self._max_batch = max_batch
        self._max_pending = max_pending_records
        self._queue: deque[_Waiting] = deque()
        self._pending = 0  # records queued or in the RPC in flight
        self._room = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self.append_rpcs = 0  # Append RPCs sent (how well appends coalesce)

    @property
    def id(self) -> int:
        return self._partition

    # ------------------------------------------------------------------ appends, batched

    async def append(self, envelopes: Sequence[pb.Envelope], *, wait: bool = True) -> range:
        n = len(envelopes)
        if n == 0:
            return range(0, 0)  # like the log: nothing to append, no LSNs (and no round trip)
        if n > self._max_batch:
            raise InvalidPartitionRequest(self._partition, f"an append carries at most {self._max_batch} "
                                                           f"envelopes, got {n}")
        # Refused here, per caller, so one bad record never fails the others' batch.
        for i, env in enumerate(envelopes):
            if env.header.leader_epoch:
                raise InvalidPartitionRequest(
                    self._partition, f"envelopes[{i}] carries leader epoch {env.header.leader_epoch}: writers "
                                     "outside a partition never stamp one")
        while self._pending + n > self._max_pending:
            if not wait:
                raise LogFull(self._pending, self._max_pending)
            self._room.clear()
            await self._room.wait()
        item = _Waiting(list(envelopes), wait, asyncio.get_running_loop().create_future())
        self._queue.append(item)
        self._pending += n
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send(), name=f"remote-partition-{self._partition}-append")
        try:
            return await item.future
        except asyncio.CancelledError:
            if not item.taken:  # still queued: take it back (in flight, it is appended regardless)
                self._queue.remove(item)
                self._release(n)
            raise

    def _release(self, n: int) -> None:
        self._pending -= n
        self._room.set()

    def _next_batch(self, waiting_only: bool) -> list[_Waiting]:
        """As many queued calls from the head as fit one Append (only callers that wait, after the
        owner's log was full: they are sent again with wait, without the others)."""
        batch: list[_Waiting] = []
        count = 0
        queue = self._queue
        while queue and count + len(queue[0].envelopes) <= self._max_batch and (queue[0].wait or not waiting_only):
            item = queue.popleft()
            item.taken = True
            if item.future.done():  # its caller was cancelled while it was being retried
                self._release(len(item.envelopes))
                continue
            batch.append(item)
            count += len(item.envelopes)
        return batch

    async def _send(self) -> None:
        """Sends the queue's batches one RPC at a time until it is empty; every future is resolved.

        A batch mixes callers that wait and callers that do not; it is sent with wait only if all of
        them wait. When the owner's log is full, the callers that do not wait get LogFull and those
        that wait go back to the head of the queue (their order kept) and are sent again, with wait."""
        waiting_only = False
        while self._queue:
            batch = self._next_batch(waiting_only)
            waiting_only = False
            if not batch:
                continue
            count = sum(len(item.envelopes) for item in batch)
            wait = all(item.wait for item in batch)
            done = batch
            try:
                request = ppb.AppendRequest(partition=self._partition, wait=wait,
                                            envelopes=[e for item in batch for e in item.envelopes])
                self.append_rpcs += 1
                response = await self._stub.Append(request, timeout=self._timeout, metadata=self._metadata)
                first = response.first_lsn
                if response.last_lsn - first + 1 != count:
                    raise PartitionError(self._partition, f"the owner answered LSNs {first}..{response.last_lsn} "
                                                          f"for {count} records")
                for item in batch:
                    if not item.future.done():
                        item.future.set_result(range(first, first + len(item.envelopes)))
                    first += len(item.envelopes)
            except asyncio.CancelledError:
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(PartitionUnavailable(self._partition, "the append was cancelled"))
                raise
            except Exception as exc:  # every caller hears of the failure, none hangs
                error = self._error(exc)
                if isinstance(error, LogFull) and not wait:
                    retry = [item for item in batch if item.wait and not item.future.done()]
                    for item in reversed(retry):
                        item.taken = False
                        self._queue.appendleft(item)
                    waiting_only = bool(retry)
                    done = [item for item in batch if item not in retry]
                for item in done:
                    if not item.future.done():
                        item.future.set_exception(self._error(exc))
            finally:
                self._release(sum(len(item.envelopes) for item in done))

    # ------------------------------------------------------------------ reads

    async def get_status(self, invocation_id: str) -> pb.InvocationStatus | None:
        r = await self._call(self._stub.GetStatus, ppb.InvocationRequest(partition=self._partition,
                                                                         invocation_id=invocation_id))
        return r.status if r.found else None

    async def get_journal(self, invocation_id: str, start: int = 0, limit: int = 0) -> list[pb.JournalEntry]:
        r = await self._call(self._stub.GetJournal, ppb.InvocationRequest(
            partition=self._partition, invocation_id=invocation_id, start=start, limit=limit))
        return list(r.entries)

    async def scan_object_keys(self, tenant: str, service: str, after: str | None, limit: int,
                               promises: bool = False) -> list[str]:
        limit = min(limit, MAX_KEYS_READ)
        if limit < 1:
            return []
        r = await self._call(self._stub.ScanObjectKeys, ppb.ObjectKeysRequest(
            partition=self._partition, tenant=tenant, service=service, after=after or "", limit=limit,
            promises=promises))
        return list(r.keys)

    async def get_object_state(self, tenant: str, service: str, key: str) -> list[tuple[str, bytes]]:
        r = await self._call(self._stub.GetObjectState,
                             ppb.ObjectRequest(partition=self._partition, tenant=tenant, service=service, key=key))
        return [(e.name, e.value) for e in r.entries]

    async def get_promises(self, tenant: str, workflow: str, key: str) -> list[tuple[str, pb.Promise]]:
        r = await self._call(self._stub.GetPromises,
                             ppb.ObjectRequest(partition=self._partition, tenant=tenant, service=workflow, key=key))
        return [(p.name, p.promise) for p in r.promises]

    async def scan_invocations(self, flt: InvocationFilter, after: str | None, limit: int) -> list[pb.InvocationStatus]:
        """Like LocalPartition's: limit < 1 is an empty list; a limit above one page is fetched in pages."""
        out: list[pb.InvocationStatus] = []
        while len(out) < limit:
            page = min(limit - len(out), MAX_SCAN)
            r = await self._call(self._stub.ScanInvocations,
                                 ppb.ScanRequest(partition=self._partition, after=after or "", limit=page,
                                                 **filter_fields(flt)))  # type: ignore[arg-type]
            out.extend(r.statuses)
            if len(r.statuses) < page:
                break
            after = out[-1].invocation_id
        return out

    async def scan_recent(self, flt: InvocationFilter, before: tuple[int, str] | None,
                          limit: int) -> list[pb.InvocationStatus]:
        """Like LocalPartition's; a limit above one page is fetched in pages."""
        out: list[pb.InvocationStatus] = []
        while len(out) < limit:
            page = min(limit - len(out), MAX_SCAN)
            r = await self._call(self._stub.ScanInvocations, ppb.ScanRequest(
                partition=self._partition, newest_first=True, after=before[1] if before else "",
                before_ms=before[0] if before else 0, limit=page, **filter_fields(flt)))  # type: ignore[arg-type]
            out.extend(r.statuses)
            if len(r.statuses) < page:
                break
            before = (out[-1].created_at_ms, out[-1].invocation_id)
        return out

    async def get_usage(self, tenant: str | None, since_day: int) -> list[UsageRecord]:
        r = await self._call(self._stub.GetUsage,
                             ppb.UsageRequest(partition=self._partition, tenant=tenant or "", since_day=since_day))
        return [UsageRecord(row.tenant, row.day, row.service, row.handler, dict(row.counters)) for row in r.rows]

    async def get_info(self) -> PartitionInfo:
        return info_of(await self._call(self._stub.GetInfo, ppb.InfoRequest(partition=self._partition)))

    async def get_pinned_counts(self) -> dict[str, int]:
        r = await self._call(self._stub.GetPinnedCounts, ppb.InfoRequest(partition=self._partition))
        return dict(r.counts)

    async def read_stream(self, invocation_id: str, after_seq: int, limit: int, wait_s: float = 0.0) -> StreamRead:
        request = ppb.ReadStreamRequest(partition=self._partition, invocation_id=invocation_id, after_seq=after_seq,
                                        limit=max(1, min(limit, MAX_STREAM_READ)), wait_ms=int(wait_s * 1000))
        try:
            r = await self._stub.ReadStream(request, timeout=self._timeout + wait_s, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise TooManyWaiters(exc.details() or "too many subscribers are waiting") from exc
            raise self._error(exc) from exc
        return StreamRead(tuple(r.events), r.found, r.finished)

    # ------------------------------------------------------------------ waiting for an end

    async def await_completion(self, invocation_id: str, applied_lsn: int = 0) -> pb.InvocationStatus | None:
        """No deadline of its own: cancelling the caller cancels the RPC (and frees the owner's waiter).
        The owner's waiter bound is TooManyWaiters, as in process."""
        request = ppb.AwaitCompletionRequest(partition=self._partition, invocation_id=invocation_id,
                                             applied_lsn=applied_lsn)
        try:
            r = await self._stub.AwaitCompletion(request, timeout=None, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise TooManyWaiters(exc.details() or "too many clients are waiting for results") from exc
            raise self._error(exc) from exc
        return r.status if r.found else None

    # ------------------------------------------------------------------ errors

    async def _call(self, method: Callable[..., Awaitable[T]], request: object) -> T:
        try:
            return await method(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc

    def _error(self, exc: BaseException) -> Exception:
        """The typed exception for a failed call (a new one per caller: exceptions carry tracebacks)."""
        p = self._partition
        if isinstance(exc, PartitionError):
            return type(exc)(p, str(exc))
        if not isinstance(exc, grpc.aio.AioRpcError):
            return PartitionUnavailable(p, f"partition {p}: the call failed: {exc!r}")
        code, details = exc.code(), exc.details() or ""
        if code == grpc.StatusCode.FAILED_PRECONDITION:
            return PartitionNotOwned(p, details)
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            figures = dict(exc.trailing_metadata() or ())
            return LogFull(_int(figures.get(PENDING_KEY)), _int(figures.get(LIMIT_KEY)))
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return InvalidPartitionRequest(p, details)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
            return PartitionUnavailable(p, f"partition {p} is unavailable ({code.name}): {details}")
        return PartitionError(p, f"partition {p}: {code.name}: {details}")


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return 0


def remote_partitions(channel: grpc.aio.Channel, partitions: Iterable[int], *,
                      metadata: Sequence[tuple[str, str]] = ()) -> dict[int, RemotePartition]:
    """One RemotePartition per partition id, all over one channel to their owner."""
    return {p: RemotePartition(p, channel, metadata=metadata) for p in partitions}
