"""Partitions another node owns, over the internal gRPC service `endure.internal.PartitionService`.

`PartitionServicer` serves the partitions this node owns (its `LocalPartition`s) to other nodes;
`RemotePartition` is the `Partition` a node uses for a partition it does not own. Both sides speak
the api dataclasses, so the ingress and admin cannot tell a remote partition from a local one: the
same results, and the same `LogFull` when the owner's log is full.

Appends are batched: the ingress appends one record per call, and a round trip per record would
cap a node at one partition's RTT. Concurrent `append`s to one `RemotePartition` wait in a bounded
queue and go out together in one Append RPC (one in flight per partition, so LSNs follow call
order); each caller gets its own slice of the batch's LSNs.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NoReturn, TypeVar

import grpc

from endure.proto import partition_pb2 as ppb
from endure.proto import partition_pb2_grpc as ppb_grpc
from endure.proto import records_pb2 as pb
from endure.runtime.log import LogClosedError, LogFull, LogletFailedError
from endure.runtime.partition.api import (
    InvocationFilter,
    LocalPartition,
    PartitionInfo,
    SegmentInfo,
    UsageRecord,
)

__all__ = ["MAX_APPEND", "MAX_SCAN", "SERVICE_NAME", "InvalidPartitionRequest", "PartitionError",
           "PartitionNotOwned", "PartitionServicer", "PartitionUnavailable", "RemotePartition",
           "remote_partitions"]

SERVICE_NAME = ppb.DESCRIPTOR.services_by_name["PartitionService"].full_name
MAX_APPEND = 1000  # envelopes in one Append: bounds the request and the time the log is held by one writer
MAX_SCAN = 1000  # statuses in one ScanInvocations page
_PENDING_KEY = "endure-log-pending"  # LogFull's figures travel as trailing metadata
_LIMIT_KEY = "endure-log-limit"

T = TypeVar("T")


# ---------------------------------------------------------------------------------------- errors


class PartitionError(Exception):
    """A remote partition call failed for a reason none of the narrower types names."""

    def __init__(self, partition: int, message: str) -> None:
        self.partition = partition
        super().__init__(message)


class PartitionNotOwned(PartitionError):
    """The node asked does not own the partition (FAILED_PRECONDITION): the placement moved or is wrong."""


class PartitionUnavailable(PartitionError):
    """The owner could not be reached or did not answer in time; the call may be retried."""


class InvalidPartitionRequest(PartitionError, ValueError):
    """The request was refused as malformed (INVALID_ARGUMENT); retrying it unchanged cannot help."""


# ---------------------------------------------------------------------------------------- conversions


def _filter_fields(flt: InvocationFilter) -> dict[str, object]:
    return {"service": flt.service, "status": flt.status, "key": flt.key, "tenant": flt.tenant,
            "created_after_ms": flt.created_after_ms, "created_before_ms": flt.created_before_ms}


def _filter_of(request: ppb.ScanRequest) -> InvocationFilter:
    return InvocationFilter(service=request.service, status=request.status, key=request.key,
                            tenant=request.tenant, created_after_ms=request.created_after_ms,
                            created_before_ms=request.created_before_ms)


def _info_message(info: PartitionInfo) -> ppb.InfoResponse:
    return ppb.InfoResponse(
        partition=info.partition, leader=info.leader, leader_epoch=info.leader_epoch,
        applied_lsn=info.applied_lsn, log_tail=info.log_tail, trim_point=info.trim_point,
        timers_in_memory=info.timers_in_memory,
        segments=[ppb.SegmentInfo(base_lsn=s.base_lsn, loglet=s.loglet, sealed=s.sealed) for s in info.segments])


def _info_of(msg: ppb.InfoResponse) -> PartitionInfo:
    return PartitionInfo(
        partition=msg.partition, leader=msg.leader, leader_epoch=msg.leader_epoch, applied_lsn=msg.applied_lsn,
        log_tail=msg.log_tail, trim_point=msg.trim_point, timers_in_memory=msg.timers_in_memory,
        segments=tuple(SegmentInfo(s.base_lsn, s.loglet, s.sealed) for s in msg.segments))


# ---------------------------------------------------------------------------------------- the server


class PartitionServicer(ppb_grpc.PartitionServiceServicer):
    """Serves this node's partitions to the others. Register with `add_checked` (bytes that do not
    parse are INVALID_ARGUMENT) behind the admin token."""

    def __init__(self, partitions: Mapping[int, LocalPartition]) -> None:
        self._partitions = partitions

    async def _owned(self, partition: int, context: grpc.aio.ServicerContext) -> LocalPartition:
        part = self._partitions.get(partition)
        if part is None:
            owned = ", ".join(str(p) for p in sorted(self._partitions)) or "none"
            await _abort(context, grpc.StatusCode.FAILED_PRECONDITION,
                         f"partition {partition} is not owned here (this node owns partitions: {owned})")
        return part

    async def Append(self, request: ppb.AppendRequest, context: grpc.aio.ServicerContext) -> ppb.AppendResponse:
        part = await self._owned(request.partition, context)
        n = len(request.envelopes)
        if not 1 <= n <= MAX_APPEND:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                         f"an Append carries 1 to {MAX_APPEND} envelopes, got {n}; nothing was appended")
        # Checked for every record before any is appended, so a refused batch leaves no trace.
        for i, env in enumerate(request.envelopes):
            if env.header.leader_epoch:
                await _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                             f"envelopes[{i}] carries leader epoch {env.header.leader_epoch}: writers outside "
                             "a partition never stamp one (only its leader does, in-process); nothing was appended")
        try:
            lsns = await part.append(list(request.envelopes), wait=request.wait)
        except LogFull as exc:
            context.set_trailing_metadata(((_PENDING_KEY, str(exc.pending)), (_LIMIT_KEY, str(exc.limit))))
            await _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except (LogClosedError, LogletFailedError) as exc:
            await _abort(context, grpc.StatusCode.UNAVAILABLE,
                         f"partition {request.partition}'s log cannot take appends: {exc}")
        return ppb.AppendResponse(first_lsn=lsns[0], last_lsn=lsns[-1])

    async def GetStatus(self, request: ppb.InvocationRequest,
                        context: grpc.aio.ServicerContext) -> ppb.StatusResponse:
        status = await (await self._owned(request.partition, context)).get_status(request.invocation_id)
        return ppb.StatusResponse() if status is None else ppb.StatusResponse(found=True, status=status)

    async def GetJournal(self, request: ppb.InvocationRequest,
                         context: grpc.aio.ServicerContext) -> ppb.JournalResponse:
        entries = await (await self._owned(request.partition, context)).get_journal(request.invocation_id)
        return ppb.JournalResponse(entries=entries)

    async def GetObjectState(self, request: ppb.ObjectRequest,
                             context: grpc.aio.ServicerContext) -> ppb.ObjectStateResponse:
        part = await self._owned(request.partition, context)
        state = await part.get_object_state(request.tenant, request.service, request.key)
        return ppb.ObjectStateResponse(entries=[ppb.StateEntry(name=n, value=v) for n, v in state])

    async def GetPromises(self, request: ppb.ObjectRequest,
                          context: grpc.aio.ServicerContext) -> ppb.PromisesResponse:
        part = await self._owned(request.partition, context)
        promises = await part.get_promises(request.tenant, request.service, request.key)
        return ppb.PromisesResponse(promises=[ppb.NamedPromise(name=n, promise=p) for n, p in promises])

    async def ScanInvocations(self, request: ppb.ScanRequest,
                              context: grpc.aio.ServicerContext) -> ppb.ScanResponse:
        part = await self._owned(request.partition, context)
        if not 1 <= request.limit <= MAX_SCAN:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                         f"scan limit must be 1 to {MAX_SCAN}, got {request.limit}")
        found = await part.scan_invocations(_filter_of(request), request.after or None, request.limit)
        return ppb.ScanResponse(statuses=found)

    async def GetUsage(self, request: ppb.UsageRequest, context: grpc.aio.ServicerContext) -> ppb.UsageResponse:
        part = await self._owned(request.partition, context)
        rows = await part.get_usage(request.tenant or None, request.since_day)
        return ppb.UsageResponse(rows=[ppb.UsageRecord(tenant=r.tenant, day=r.day, service=r.service,
                                                       handler=r.handler, counters=dict(r.counters))
                                       for r in rows])

    async def GetInfo(self, request: ppb.InfoRequest, context: grpc.aio.ServicerContext) -> ppb.InfoResponse:
        return _info_message(await (await self._owned(request.partition, context)).get_info())


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # it raises; this tells the type checker so


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

    async def get_journal(self, invocation_id: str) -> list[pb.JournalEntry]:
        r = await self._call(self._stub.GetJournal, ppb.InvocationRequest(partition=self._partition,
                                                                          invocation_id=invocation_id))
        return list(r.entries)

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
                                                 **_filter_fields(flt)))  # type: ignore[arg-type]
            out.extend(r.statuses)
            if len(r.statuses) < page:
                break
            after = out[-1].invocation_id
        return out

    async def get_usage(self, tenant: str | None, since_day: int) -> list[UsageRecord]:
        r = await self._call(self._stub.GetUsage,
                             ppb.UsageRequest(partition=self._partition, tenant=tenant or "", since_day=since_day))
        return [UsageRecord(row.tenant, row.day, row.service, row.handler, dict(row.counters)) for row in r.rows]

    async def get_info(self) -> PartitionInfo:
        return _info_of(await self._call(self._stub.GetInfo, ppb.InfoRequest(partition=self._partition)))

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
            return LogFull(_int(figures.get(_PENDING_KEY)), _int(figures.get(_LIMIT_KEY)))
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
