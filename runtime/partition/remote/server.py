"""The server side: this node's partitions served to other nodes (see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn

import grpc

from endure.proto import partition_pb2 as ppb
from endure.proto import partition_pb2_grpc as ppb_grpc
from endure.runtime.log import LogClosedError, LogFull, LogletFailedError, LogUnavailable
from endure.runtime.partition.api import (
    MAX_KEYS_READ,
    MAX_STREAM_READ,
    LocalPartition,
)
from endure.runtime.partition.remote.wire import (
    LIMIT_KEY,
    MAX_APPEND,
    MAX_SCAN,
    PENDING_KEY,
    filter_of,
    info_message,
)
from endure.runtime.partition.waiters import TooManyWaiters

# ---------------------------------------------------------------------------------------- the server


_MAX_STREAM_WAIT_MS = 60_000  # a long poll answers within a minute at most


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
            context.set_trailing_metadata(((PENDING_KEY, str(exc.pending)), (LIMIT_KEY, str(exc.limit))))
            await _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except (LogClosedError, LogletFailedError, LogUnavailable) as exc:
            await _abort(context, grpc.StatusCode.UNAVAILABLE,
                         f"partition {request.partition}'s log cannot take appends: {exc}")
        return ppb.AppendResponse(first_lsn=lsns[0], last_lsn=lsns[-1])

    async def GetStatus(self, request: ppb.InvocationRequest,
                        context: grpc.aio.ServicerContext) -> ppb.StatusResponse:
        try:
            status = await (await self._owned(request.partition, context)).get_status(request.invocation_id)
        except LogUnavailable as exc:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))
        return ppb.StatusResponse() if status is None else ppb.StatusResponse(found=True, status=status)

    async def GetJournal(self, request: ppb.InvocationRequest,
                         context: grpc.aio.ServicerContext) -> ppb.JournalResponse:
        part = await self._owned(request.partition, context)
        entries = await part.get_journal(request.invocation_id, request.start, request.limit)
        return ppb.JournalResponse(entries=entries)

    async def ScanObjectKeys(self, request: ppb.ObjectKeysRequest,
                             context: grpc.aio.ServicerContext) -> ppb.ObjectKeysResponse:
        part = await self._owned(request.partition, context)
        if not 1 <= request.limit <= MAX_KEYS_READ:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                         f"key scan limit must be 1 to {MAX_KEYS_READ}, got {request.limit}")
        found = await part.scan_object_keys(request.tenant, request.service, request.after or None, request.limit,
                                            request.promises)
        return ppb.ObjectKeysResponse(keys=found)

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
        if request.newest_first:
            before = (request.before_ms, request.after) if request.after else None
            found = await part.scan_recent(filter_of(request), before, request.limit)
        else:
            found = await part.scan_invocations(filter_of(request), request.after or None, request.limit)
        return ppb.ScanResponse(statuses=found)

    async def GetUsage(self, request: ppb.UsageRequest, context: grpc.aio.ServicerContext) -> ppb.UsageResponse:
        part = await self._owned(request.partition, context)
        rows = await part.get_usage(request.tenant or None, request.since_day)
        return ppb.UsageResponse(rows=[ppb.UsageRecord(tenant=r.tenant, day=r.day, service=r.service,
                                                       handler=r.handler, counters=dict(r.counters))
                                       for r in rows])

    async def GetInfo(self, request: ppb.InfoRequest, context: grpc.aio.ServicerContext) -> ppb.InfoResponse:
        return info_message(await (await self._owned(request.partition, context)).get_info())

    async def GetPinnedCounts(self, request: ppb.InfoRequest,
                              context: grpc.aio.ServicerContext) -> ppb.PinnedCountsResponse:
        part = await self._owned(request.partition, context)
        return ppb.PinnedCountsResponse(counts=await part.get_pinned_counts())

    async def ReadStream(self, request: ppb.ReadStreamRequest,
                         context: grpc.aio.ServicerContext) -> ppb.ReadStreamResponse:
        part = await self._owned(request.partition, context)
        if not 1 <= request.limit <= MAX_STREAM_READ:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                         f"stream read limit must be 1 to {MAX_STREAM_READ}, got {request.limit}")
        if request.wait_ms > _MAX_STREAM_WAIT_MS:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                         f"wait_ms is at most {_MAX_STREAM_WAIT_MS}, got {request.wait_ms}")
        try:
            read = await part.read_stream(request.invocation_id, request.after_seq, request.limit,
                                          request.wait_ms / 1000)
        except TooManyWaiters as exc:
            await _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        return ppb.ReadStreamResponse(events=read.events, found=read.found, finished=read.finished)

    async def AwaitCompletion(self, request: ppb.AwaitCompletionRequest,
                              context: grpc.aio.ServicerContext) -> ppb.StatusResponse:
        """Waits as long as the caller does: its cancellation (or deadline) cancels this handler,
        which frees the waiter."""
        part = await self._owned(request.partition, context)
        tail = part.info().log_tail
        if request.applied_lsn >= tail:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                         f"applied_lsn {request.applied_lsn} is past partition {request.partition}'s log "
                         f"(its next LSN is {tail}): it would never be applied")
        try:
            status = await part.await_completion(request.invocation_id, request.applied_lsn)
        except TooManyWaiters as exc:
            await _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        return ppb.StatusResponse() if status is None else ppb.StatusResponse(found=True, status=status)


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # it raises; this tells the type checker so


