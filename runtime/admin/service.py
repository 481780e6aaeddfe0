"""The Admin gRPC service. Reads come from the partition stores; every change goes through the log."""

from __future__ import annotations

import time
from collections.abc import Mapping

import grpc

from endure.proto import admin_pb2 as apb
from endure.proto import admin_pb2_grpc as apb_grpc
from endure.proto import ids
from endure.proto import records_pb2 as pb
from endure.runtime.invoker.invoker import Invoker
from endure.runtime.invoker.limits import Limit
from endure.runtime.invoker.limits_store import LimitsStore
from endure.runtime.invoker.registry import ServiceRegistry
from endure.runtime.log import NodeLog
from endure.runtime.partition import keys
from endure.runtime.partition.processor import PartitionProcessor

_MAX_PAGE = 1000


class AdminService(apb_grpc.AdminServicer):
    def __init__(self, registry: ServiceRegistry, processors: Mapping[int, PartitionProcessor],
                 invoker: Invoker, node_log: NodeLog, limits_store: LimitsStore | None = None) -> None:
        self._limits_store = limits_store
        self._registry = registry
        self._processors = processors
        self._invoker = invoker
        self._log = node_log

    async def ListServices(self, request: apb.ListServicesRequest,  # noqa: N802
                           context: grpc.aio.ServicerContext) -> apb.ListServicesResponse:
        out = apb.ListServicesResponse()
        deployments = self._registry.deployments()
        for name, _kind, dep_id, _handlers in self._registry.services():
            dep = deployments[dep_id]
            info = out.services.add(deployment_id=dep_id, deployment_version=dep.deployment_version)
            info.definition.CopyFrom(next(s for s in dep.services if s.name == name))
            for session in self._invoker.sessions.values():
                if name in session.services:
                    info.workers.add(worker_id=session.id, name=session.name, deployment_id=session.deployment_id,
                                     deployment_version=session.deployment_version,
                                     concurrency=session.concurrency, active=session.active)
        return out

    async def ListInvocations(self, request: apb.ListInvocationsRequest,  # noqa: N802
                              context: grpc.aio.ServicerContext) -> apb.ListInvocationsResponse:
        size = min(request.page_size or 100, _MAX_PAGE)
        start_partition, start_key = 0, None
        if request.page_token:
            try:
                p, _, inv = request.page_token.partition(":")
                start_partition, start_key = int(p), keys.status(inv) + b"\x00"
            except ValueError:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad page token {request.page_token!r}")
        out = apb.ListInvocationsResponse()
        for partition in range(start_partition, len(self._processors)):
            store = self._processors[partition].store
            start = start_key if partition == start_partition else None
            for _, raw in store.scan(keys.STATUS, start=start):
                status = pb.InvocationStatus()
                status.ParseFromString(raw)
                if not _matches(status, request):
                    continue
                if len(out.invocations) == size:
                    last = out.invocations[-1]
                    out.next_page_token = f"{last.partition}:{last.status.invocation_id}"
                    return out
                status.ClearField("input")
                status.ClearField("result")
                out.invocations.add(status=status, partition=partition,
                                    on_worker=self._invoker.is_active(status.invocation_id))
        return out

    def _find(self, invocation_id: str) -> tuple[int, pb.InvocationStatus] | None:
        try:
            partition = ids.partition_of(invocation_id, len(self._processors))
        except ids.InvalidId:
            return None
        status = self._processors[partition].store.status(invocation_id)
        return (partition, status) if status is not None else None

    async def DescribeInvocation(self, request: apb.InvocationRef,  # noqa: N802
                                 context: grpc.aio.ServicerContext) -> apb.InvocationDescription:
        found = self._find(request.invocation_id)
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no invocation {request.invocation_id!r}")
        partition, status = found  # type: ignore[misc]
        out = apb.InvocationDescription(status=status, partition=partition,
                                        on_worker=self._invoker.is_active(request.invocation_id))
        out.journal.extend(self._processors[partition].store.journal(request.invocation_id))
        return out

    async def _act(self, request: apb.InvocationRef, context: grpc.aio.ServicerContext, env: pb.Envelope,
                   allowed: tuple[int, ...] | None = None) -> apb.Done:
        found = self._find(request.invocation_id)
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no invocation {request.invocation_id!r}")
        partition, status = found  # type: ignore[misc]
        action = env.WhichOneof("body")
        if allowed is not None and status.status not in allowed:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"cannot {action} {request.invocation_id}: it is {pb.Status.Name(status.status)}")
        getattr(env, action).invocation_id = request.invocation_id
        env.header.timestamp_ms = int(time.time() * 1000)
        await self._processors[partition].log.append([env.SerializeToString()])
        return apb.Done()

    async def CancelInvocation(self, request: apb.InvocationRef, context: grpc.aio.ServicerContext) -> apb.Done:  # noqa: N802
        return await self._act(request, context, pb.Envelope(cancel=pb.Cancel()))

    async def KillInvocation(self, request: apb.InvocationRef, context: grpc.aio.ServicerContext) -> apb.Done:  # noqa: N802
        return await self._act(request, context, pb.Envelope(kill=pb.Kill()))

    async def PurgeInvocation(self, request: apb.InvocationRef, context: grpc.aio.ServicerContext) -> apb.Done:  # noqa: N802
        return await self._act(request, context, pb.Envelope(purge=pb.Purge()),
                               allowed=(pb.COMPLETED, pb.KILLED, pb.CANCELLED))

    async def PauseInvocation(self, request: apb.InvocationRef, context: grpc.aio.ServicerContext) -> apb.Done:  # noqa: N802
        return await self._act(request, context, pb.Envelope(pause=pb.Pause()),
                               allowed=(pb.RUNNING, pb.SUSPENDED, pb.BACKING_OFF))

    async def ResumeInvocation(self, request: apb.InvocationRef, context: grpc.aio.ServicerContext) -> apb.Done:  # noqa: N802
        return await self._act(request, context, pb.Envelope(resume=pb.Resume()), allowed=(pb.PAUSED,))

    async def ListPartitions(self, request: apb.ListPartitionsRequest,  # noqa: N802
                             context: grpc.aio.ServicerContext) -> apb.ListPartitionsResponse:
        out = apb.ListPartitionsResponse()
        for p, processor in sorted(self._processors.items()):
            vlog = processor.log
            info = out.partitions.add(partition=p, leader_epoch=processor.store.leader_epoch(),
                                      leader=processor.is_leader, applied_lsn=processor.applied_lsn,
                                      log_tail=vlog.tail(), trim_point=vlog.trim_point(),
                                      timers_in_memory=processor.timers.pending())
            for seg in vlog.segments():
                info.segments.add(base_lsn=seg.base_lsn, loglet=f"{seg.kind}:{seg.loglet_id:#x}", sealed=seg.sealed)
        return out


    def _limits_response(self) -> apb.LimitsResponse:
        limits = self._invoker.limits
        out = apb.LimitsResponse()
        for name, limit in limits.tenants().items():
            out.tenants[name].CopyFrom(_spec(limit))
        for name, limit in limits.handlers().items():
            out.targets[name].CopyFrom(_spec(limit))
        for tenant, depth in self._invoker.backlog_by_tenant().items():
            out.backlog[tenant] = depth
        for key, n in limits.running.items():
            out.running[key] = n
        return out

    async def GetLimits(self, request: apb.GetLimitsRequest,  # noqa: N802
                        context: grpc.aio.ServicerContext) -> apb.LimitsResponse:
        return self._limits_response()

    async def SetLimits(self, request: apb.SetLimitsRequest,  # noqa: N802
                        context: grpc.aio.ServicerContext) -> apb.LimitsResponse:
        subject = request.WhichOneof("subject")
        name = getattr(request, subject) if subject else ""
        if not name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name a tenant or a target (service[/handler])")
        spec = request.limits
        for field_name in ("max_running", "max_backlog"):
            if spec.HasField(field_name) and getattr(spec, field_name) < 1:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{field_name} must be at least 1")
        for field_name in ("rate_per_s", "burst", "weight"):
            if spec.HasField(field_name) and not getattr(spec, field_name) > 0:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{field_name} must be positive")
        limit = None if request.clear else Limit(
            max_running=spec.max_running if spec.HasField("max_running") else None,
            rate_per_s=spec.rate_per_s if spec.HasField("rate_per_s") else None,
            burst=spec.burst if spec.HasField("burst") else None,
            max_backlog=spec.max_backlog if spec.HasField("max_backlog") else None,
            weight=spec.weight if spec.HasField("weight") else 1.0,
        )
        if self._limits_store is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "limits cannot be changed on this node")
        await self._limits_store.set("tenant" if subject == "tenant" else "target", name, limit)  # type: ignore[union-attr]
        self._invoker.limits_changed()
        return self._limits_response()

    async def GetUsage(self, request: apb.UsageRequest,  # noqa: N802
                       context: grpc.aio.ServicerContext) -> apb.UsageResponse:
        by = request.by or "tenant"
        if by not in ("tenant", "service", "handler", "day"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "by is one of tenant, service, handler, day")
        since_day = request.since_ms // 86_400_000
        prefix = keys.USAGE + (keys.part(request.tenant) if request.tenant else b"")
        groups: dict[tuple[str, str], dict[str, float]] = {}
        for processor in self._processors.values():
            for raw_key, raw in processor.store.scan(prefix):
                tenant, day, service, handler = keys.parse_usage(raw_key)
                if day < since_day:
                    continue
                group = {"tenant": "", "service": service, "handler": f"{service}/{handler}",
                         "day": time.strftime("%Y-%m-%d", time.gmtime(day * 86_400))}[by]
                row = pb.UsageRow()
                row.ParseFromString(raw)
                totals = groups.setdefault((tenant, group), {})
                for name, amount in row.counters.items():
                    if name.endswith("peak_memory_bytes"):
                        totals[name] = max(totals.get(name, 0.0), amount)
                    else:
                        totals[name] = totals.get(name, 0.0) + amount
        out = apb.UsageResponse()
        for (tenant, group), totals in sorted(groups.items()):
            out.rows.add(tenant=tenant, group=group, counters=totals)
        return out


def _spec(limit: Limit) -> apb.LimitSpec:
    spec = apb.LimitSpec(weight=limit.weight)
    if limit.max_running is not None:
        spec.max_running = limit.max_running
    if limit.rate_per_s is not None:
        spec.rate_per_s = limit.rate_per_s
    if limit.burst is not None:
        spec.burst = limit.burst
    if limit.max_backlog is not None:
        spec.max_backlog = limit.max_backlog
    return spec


def _matches(status: pb.InvocationStatus, req: apb.ListInvocationsRequest) -> bool:
    if req.service and status.target.service != req.service:
        return False
    if req.status and status.status != req.status:
        return False
    if req.key and status.target.key != req.key:
        return False
    if req.tenant and status.tenant != req.tenant:
        return False
    if req.created_after_ms and status.created_at_ms < req.created_after_ms:
        return False
    if req.created_before_ms and status.created_at_ms >= req.created_before_ms:
        return False
    return True
