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
from endure.runtime.invoker.registry import ServiceRegistry
from endure.runtime.log import NodeLog
from endure.runtime.partition import keys
from endure.runtime.partition.processor import PartitionProcessor

_MAX_PAGE = 1000


class AdminService(apb_grpc.AdminServicer):
    def __init__(self, registry: ServiceRegistry, processors: Mapping[int, PartitionProcessor],
                 invoker: Invoker, node_log: NodeLog) -> None:
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
                status.ClearField("output")
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
