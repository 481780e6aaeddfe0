"""The one way into a partition: every part outside `runtime/partition/` goes through `Partition`.

The ingress, the admin API, the metrics and other partitions (calls and sends through the outbox)
read and write a partition only through this interface, so none of them knows the store's key
layout or holds a processor. `LocalPartition` serves the partitions this node owns; a remote
implementation (internal gRPC to the owner node, batched) serves the others, with the same
methods, which is why every read is async.

The invoker runs beside the partition it serves and needs a consistent view at one instant (the
journal and state it sends with a StartFrame, read without an await in between): it uses the
synchronous reads `LocalPartition` adds, and appends as the partition's leader (fenced by epoch).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from endure.proto import records_pb2 as pb
from endure.proto.deployments import ref_text
from endure.runtime.log import LogError, LogUnavailable
from endure.runtime.partition import keys
from endure.runtime.partition.state_machine import FINAL
from endure.runtime.partition.state_machine.metering import add_usage
from endure.runtime.partition.waiters import CompletionWaiters

if TYPE_CHECKING:
    from endure.runtime.partition.processor import PartitionProcessor

__all__ = ["MAX_KEYS_READ", "MAX_STREAM_READ", "InvocationFilter", "LocalPartition", "Partition", "PartitionInfo", "SegmentInfo",
           "StreamRead", "UsageRecord", "add_usage", "local_partitions"]


@dataclass(frozen=True, slots=True)
class InvocationFilter:
    """Which invocation statuses a scan returns; empty fields match everything."""

    service: str = ""
    status: int = pb.STATUS_UNSPECIFIED
    key: str = ""
    tenant: str = ""
    created_after_ms: int = 0
    created_before_ms: int = 0  # exclusive
    in_flight: bool = False  # only unfinished invocations
    deployment: str = ""  # only unfinished invocations pinned to this "id@version" (scans its index)
    handler: str = ""
    failed: bool = False  # only invocations that completed with a failure (killed and cancelled have their own status)
    idempotency_key: str = ""

    def matches_fixed(self, tenant: str, service: str, handler: str, key: str, idempotency_key: str) -> bool:
        """Whether what never changes about an invocation can match (its status may not, still)."""
        return ((not self.tenant or tenant == self.tenant) and (not self.service or service == self.service)
                and (not self.handler or handler == self.handler) and (not self.key or key == self.key)
                and (not self.idempotency_key or idempotency_key == self.idempotency_key))

    def matches(self, s: pb.InvocationStatus) -> bool:
        return ((not (self.in_flight or self.deployment) or s.status not in FINAL)
                and (not self.deployment or ref_text(s.deployment) == self.deployment)
                and (not self.service or s.target.service == self.service)
                and (not self.handler or s.target.handler == self.handler)
                and (not self.failed or (s.status == pb.COMPLETED and s.WhichOneof("result") == "failure"))
                and (not self.idempotency_key or s.idempotency_key == self.idempotency_key)
                and (not self.status or s.status == self.status)
                and (not self.key or s.target.key == self.key)
                and (not self.tenant or s.tenant == self.tenant)
                and (not self.created_after_ms or s.created_at_ms >= self.created_after_ms)
                and (not self.created_before_ms or s.created_at_ms < self.created_before_ms))


@dataclass(frozen=True, slots=True)
class StreamRead:
    """Stream events of one invocation after a position. `finished`: it is final and nothing
    follows these events; `found`: it exists."""

    events: tuple[pb.StreamEvent, ...]
    found: bool
    finished: bool


MAX_STREAM_READ = 1000  # events in one read
MAX_KEYS_READ = 1000  # object keys in one scan_object_keys


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One tenant's metering of one handler on one day (UTC day number)."""

    tenant: str
    day: int
    service: str
    handler: str
    counters: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    base_lsn: int
    loglet: str
    sealed: bool


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """Where a partition's log and apply stand, and who leads it."""

    partition: int
    leader: bool
    leader_epoch: int
    applied_lsn: int
    log_tail: int
    trim_point: int
    timers_in_memory: int
    segments: tuple[SegmentInfo, ...]
    node: str = ""  # the node that owns it (its processor's node name)

    @property
    def apply_lag(self) -> int:
        """Records appended but not applied yet."""
        return max(0, self.log_tail - 1 - self.applied_lsn)


class Partition(Protocol):
    """A partition as every other part of a node sees it, wherever it lives."""

    @property
    def id(self) -> int: ...

    async def append(self, envelopes: Sequence[pb.Envelope], *, wait: bool = True) -> range:
        """Append records as a writer outside the partition (not stamped with an epoch); returns their
        LSNs once durable. wait=False: LogFull at once instead of waiting for room in the queue."""
        ...

    async def get_status(self, invocation_id: str) -> pb.InvocationStatus | None: ...

    async def get_journal(self, invocation_id: str, start: int = 0, limit: int = 0) -> list[pb.JournalEntry]:
        """The journal from entry index start, at most limit entries (0: all): a long journal is read
        in pages."""
        ...

    async def get_object_state(self, tenant: str, service: str, key: str) -> list[tuple[str, bytes]]: ...

    async def scan_object_keys(self, tenant: str, service: str, after: str | None, limit: int,
                               promises: bool = False) -> list[str]:
        """Up to limit (at most MAX_KEYS_READ) keys of the virtual object `service` that have state
        (promises: of the workflow `service` that have promises), in store order after `after`."""
        ...

    async def get_promises(self, tenant: str, workflow: str, key: str) -> list[tuple[str, pb.Promise]]: ...

    async def scan_invocations(self, flt: InvocationFilter, after: str | None, limit: int) -> list[pb.InvocationStatus]:
        """Up to limit statuses matching flt, in invocation-id order, after the id `after` (exclusive)."""
        ...

    async def scan_recent(self, flt: InvocationFilter, before: tuple[int, str] | None,
                          limit: int) -> list[pb.InvocationStatus]:
        """Up to limit statuses matching flt, newest first (by creation time, then id), created before
        `before` = (created_at_ms, invocation id), exclusive; None: from the newest."""
        ...

    async def get_usage(self, tenant: str | None, since_day: int) -> list[UsageRecord]: ...

    async def get_info(self) -> PartitionInfo: ...

    async def get_pinned_counts(self) -> dict[str, int]:
        """Unfinished invocations pinned to each deployment version ("id@version")."""
        ...

    async def read_stream(self, invocation_id: str, after_seq: int, limit: int, wait_s: float = 0.0) -> StreamRead:
        """Up to limit (at most MAX_STREAM_READ) stream events of the invocation with seq > after_seq,
        every stream, in order. With wait_s, waits up to that long for the first one (or the end)
        when there is none yet. TooManyWaiters when the owner holds as many subscribers as it may."""
        ...

    async def await_completion(self, invocation_id: str, applied_lsn: int = 0) -> pb.InvocationStatus | None:
        """Once the partition applied applied_lsn (the LSN the caller's own append got; 0: nothing to
        wait for), the invocation's status as soon as it is final (COMPLETED, KILLED, CANCELLED), or
        None if it does not exist then. No completion is missed: the waiter is registered before the
        status is read. TooManyWaiters when the owner holds as many waiters as it may; no deadline of
        its own (cancel the caller to stop waiting)."""
        ...


_READ_YOUR_WRITES_S = 5.0


class LocalPartition:
    """A partition this node owns: its processor, store and log, in this process."""

    def __init__(self, processor: PartitionProcessor, waiters: CompletionWaiters | None = None) -> None:
        self._processor = processor
        self._store = processor.store
        # The node's, answered by its effect sink from InvocationCompleted. Without them (a partition
        # built only to read and append) it holds no waiter: await_completion is TooManyWaiters.
        self._waiters = waiters if waiters is not None else CompletionWaiters(0)

    @property
    def id(self) -> int:
        return self._processor.partition

    # ------------------------------------------------------------------ the Partition interface

    async def append(self, envelopes: Sequence[pb.Envelope], *, wait: bool = True) -> range:
        return await self._processor.log.append([e.SerializeToString() for e in envelopes], wait=wait)

    async def get_status(self, invocation_id: str) -> pb.InvocationStatus | None:
        # Read what was appended before the read: a client that got an id from Send (the append is
        # durable, maybe not applied yet) then finds it. Bounded: a partition that does not apply
        # (it is stopping) answers from what it has.
        status = self.status(invocation_id)
        if status is None:  # maybe appended and not applied yet, or by another node (cluster mode)
            try:
                async with asyncio.timeout(_READ_YOUR_WRITES_S):
                    tail = await self._processor.log.find_tail() - 1
                    if self._processor.applied_lsn < tail:
                        await self._processor.wait_applied(tail)
            except (TimeoutError, LogError) as exc:
                # "Not found" would be a guess: the log cannot say what it holds right now.
                raise LogUnavailable(f"partition {self.id}: cannot tell whether {invocation_id} exists "
                                     f"({exc or type(exc).__name__})") from exc
            status = self.status(invocation_id)
        return status

    async def get_journal(self, invocation_id: str, start: int = 0, limit: int = 0) -> list[pb.JournalEntry]:
        return self._store.journal(invocation_id, start, limit or None)

    async def get_object_state(self, tenant: str, service: str, key: str) -> list[tuple[str, bytes]]:
        return self.object_state(tenant, service, key)

    async def scan_object_keys(self, tenant: str, service: str, after: str | None, limit: int,
                               promises: bool = False) -> list[str]:
        table = keys.PROMISE if promises else keys.STATE
        return self._store.object_keys(table, tenant, service, after, max(0, min(limit, MAX_KEYS_READ)))

    async def get_promises(self, tenant: str, workflow: str, key: str) -> list[tuple[str, pb.Promise]]:
        prefix = keys.object_prefix(keys.PROMISE, tenant, workflow, key)
        out = []
        for raw_key, raw in self._store.scan(prefix):
            promise = pb.Promise()
            promise.ParseFromString(raw)
            out.append((keys.state_name(raw_key, prefix), promise))
        return out

    async def scan_invocations(self, flt: InvocationFilter, after: str | None, limit: int) -> list[pb.InvocationStatus]:
        out: list[pb.InvocationStatus] = []
        if limit < 1:
            return out
        for status in self._statuses(flt.deployment, after):
            if flt.matches(status):
                out.append(status)
                if len(out) == limit:
                    break
        return out

    async def scan_recent(self, flt: InvocationFilter, before: tuple[int, str] | None,
                          limit: int) -> list[pb.InvocationStatus]:
        out: list[pb.InvocationStatus] = []
        if limit < 1:
            return out
        start = keys.created(*before) if before is not None else None
        if flt.created_before_ms and (start is None or keys.created(flt.created_before_ms, "") < start):
            start = keys.created(flt.created_before_ms, "")  # the time range bounds the scan itself
        by_fixed = bool(flt.tenant or flt.service or flt.handler or flt.key or flt.idempotency_key)
        for raw_key, raw in self._store.scan_back(keys.CREATED, start):
            created, invocation_id = keys.parse_created(raw_key)
            if flt.created_after_ms and created < flt.created_after_ms:
                break
            if by_fixed and raw and not flt.matches_fixed(*keys.parse_created_value(raw)):
                continue  # no need to read a status that cannot match
            status = self._store.status(invocation_id)
            if status is not None and flt.matches(status):
                out.append(status)
                if len(out) == limit:
                    break
        return out

    def _statuses(self, deployment: str, after: str | None) -> Iterable[pb.InvocationStatus]:
        """Every status in id order after `after`; only those in a deployment's pinned index if named."""
        if not deployment:
            for _, raw in self._store.scan(keys.STATUS, start=keys.status(after) + b"\x00" if after else None):
                status = pb.InvocationStatus()
                status.ParseFromString(raw)
                yield status
            return
        prefix = keys.pinned_prefix(deployment)
        for raw_key, _ in self._store.scan(prefix, start=prefix + after.encode() + b"\x00" if after else None):
            found = self._store.status(keys.parse_pinned(raw_key)[1])
            if found is not None:
                yield found

    async def read_stream(self, invocation_id: str, after_seq: int, limit: int, wait_s: float = 0.0) -> StreamRead:
        limit = max(1, min(limit, MAX_STREAM_READ))
        fut = self._waiters.streams.register(invocation_id) if wait_s else None  # before the read: none slips by
        try:
            read = self._read_stream(invocation_id, after_seq, limit)
            if not read.found:
                if await self.get_status(invocation_id) is None:  # appended, maybe not applied yet
                    return read
                read = self._read_stream(invocation_id, after_seq, limit)
            if read.events or read.finished or fut is None:
                return read
            try:
                async with asyncio.timeout(wait_s):
                    await fut
            except TimeoutError:
                return read
            return self._read_stream(invocation_id, after_seq, limit)
        finally:
            if fut is not None:
                self._waiters.streams.unregister(invocation_id, fut)

    def _read_stream(self, invocation_id: str, after_seq: int, limit: int) -> StreamRead:
        status = self._store.status(invocation_id)
        if status is None:
            return StreamRead((), False, False)
        final = status.status in FINAL  # read before the events: an end after them is seen next time
        events = []
        start = keys.stream_event(invocation_id, after_seq + 1)
        for _, raw in self._store.scan(keys.stream_events_prefix(invocation_id), start=start, limit=limit):
            event = pb.StreamEvent()
            event.ParseFromString(raw)
            events.append(event)
        return StreamRead(tuple(events), True, final and len(events) < limit)

    async def get_pinned_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for raw_key, _ in self._store.scan(keys.PINNED):
            deployment = keys.parse_pinned(raw_key)[0]
            counts[deployment] = counts.get(deployment, 0) + 1
        return counts

    async def get_usage(self, tenant: str | None, since_day: int) -> list[UsageRecord]:
        prefix = keys.USAGE + (keys.part(tenant) if tenant else b"")
        out = []
        for raw_key, raw in self._store.scan(prefix):
            row_tenant, day, service, handler = keys.parse_usage(raw_key)
            if day < since_day:
                continue
            row = pb.UsageRow()
            row.ParseFromString(raw)
            out.append(UsageRecord(row_tenant, day, service, handler, dict(row.counters)))
        return out

    async def get_info(self) -> PartitionInfo:
        return self.info()

    async def await_completion(self, invocation_id: str, applied_lsn: int = 0) -> pb.InvocationStatus | None:
        fut = self._waiters.register(invocation_id)  # before anything is read: no completion slips by
        try:
            if applied_lsn:
                await self._processor.wait_applied(applied_lsn)
            if fut.done():  # it ended while we waited (its status may be purged already)
                return fut.result()
            status = self._store.status(invocation_id)
            if status is None or status.status in FINAL:
                return status
            return await fut
        finally:
            self._waiters.unregister(invocation_id, fut)

    # ------------------------------------------------------------------ in-process only (the invoker, metrics)

    @property
    def is_leader(self) -> bool:
        return self._processor.is_leader

    @property
    def leader_epoch(self) -> int:
        """The epoch this node leads the partition with (0: it does not lead it)."""
        return self._processor.epoch

    def status(self, invocation_id: str) -> pb.InvocationStatus | None:
        return self._store.status(invocation_id)

    def journal(self, invocation_id: str) -> list[pb.JournalEntry]:
        return self._store.journal(invocation_id)

    def object_state(self, tenant: str, service: str, key: str) -> list[tuple[str, bytes]]:
        return self._store.object_state(tenant, service, key)

    def failed_attempts(self, invocation_id: str) -> int:
        return self._store.failed_attempts(invocation_id)

    def stream_progress(self, invocation_id: str) -> tuple[dict[str, int], int, int]:
        """(handler-level writes durable per stream, stream bytes, stream events) of the invocation."""
        writes = {}
        prefix = keys.stream_state_prefix(invocation_id)
        for raw_key, raw in self._store.scan(prefix):
            state = pb.StreamState()
            state.ParseFromString(raw)
            writes[keys.state_name(raw_key, prefix)] = state.handler_writes
        totals = self._store.get_proto(keys.stream_totals(invocation_id), pb.StreamTotals) or pb.StreamTotals()
        return writes, totals.bytes, totals.events

    async def append_as_leader(self, envelopes: Sequence[pb.Envelope]) -> range:
        """Append as this partition's leader, stamped with its epoch (NotLeader if it is not)."""
        return await self._processor.append(envelopes)

    async def wait_applied(self, lsn: int) -> None:
        await self._processor.wait_applied(lsn)

    def info(self) -> PartitionInfo:
        p = self._processor
        vlog = p.log
        return PartitionInfo(
            partition=p.partition, leader=p.is_leader, leader_epoch=self._store.leader_epoch(),
            applied_lsn=p.applied_lsn, log_tail=vlog.tail(), trim_point=vlog.trim_point(),
            timers_in_memory=p.timers.pending(),
            segments=tuple(SegmentInfo(s.base_lsn, f"{s.kind}:{s.loglet_id:#x}", s.sealed) for s in vlog.segments()),
            node=p.node,
        )


def local_partitions(processors: Iterable[PartitionProcessor], waiters: CompletionWaiters) -> dict[int, LocalPartition]:
    """A LocalPartition per processor; all share the node's waiters (fed from its effect sink)."""
    return {p.partition: LocalPartition(p, waiters) for p in processors}
