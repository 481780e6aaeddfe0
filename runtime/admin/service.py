"""The Admin gRPC service. Reads and changes reach the partitions only through `Partition`: every read
is a partition read, every change a record appended to the partition's log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc

from endure.proto import admin_pb2 as apb
from endure.proto import admin_pb2_grpc as apb_grpc
from endure.proto import ids
from endure.proto import records_pb2 as pb
from endure.proto.deployments import parse_ref, ref_text
from endure.runtime.admin.deployments import DeploymentError, DeploymentOps
from endure.runtime.invoker.invoker import Invoker
from endure.runtime.invoker.limits import Limit
from endure.runtime.invoker.limits_store import LimitsStore
from endure.runtime.invoker.registry import ServiceRegistry
from endure.runtime.partition.api import InvocationFilter, Partition, add_usage
from endure.runtime.partition.remote import PartitionNotOwned, PartitionUnavailable

_MAX_PAGE = 1000
_LISTED_FAILURE_CHARS = 200
FORWARDED = "x-endure-forwarded"  # metadata on an admin call one node passes to the others: answer for yourself
_PEER_TIMEOUT_S = 10.0


class PeerAdminError(Exception):
    """An admin change reached this node but not every other one."""


class AdminService(apb_grpc.AdminServicer):
    def __init__(self, registry: ServiceRegistry, partitions: Mapping[int, Partition],
                 invoker: Invoker, limits_store: LimitsStore | None = None,
                 peers: Callable[[], Sequence[tuple[int, str | None]]] = lambda: ()) -> None:
        self._limits_store = limits_store
        self._registry = registry
        self._partitions = partitions
        self._invoker = invoker
        self._peers = peers  # the other nodes: (node id, admin address or None while it is down)
        self._deployments = DeploymentOps(registry, partitions, invoker)

    @staticmethod
    def _forwarded(context: grpc.aio.ServicerContext) -> bool:
        return any(k == FORWARDED for k, _ in context.invocation_metadata() or ())

    async def _on_peers(self, method: str, request: object, context: grpc.aio.ServicerContext) -> list[Any]:
        """Pass a call on to every other node (with the caller's authorization), each to answer for
        itself. Raises PeerAdminError naming the nodes that did not answer."""
        if self._forwarded(context):
            return []
        auth = [(k, v) for k, v in context.invocation_metadata() or () if k == "authorization"]
        metadata = (*auth, (FORWARDED, "1"))

        async def one(node: int, address: str | None) -> Any:
            if address is None:
                raise PeerAdminError(f"node {node} is not serving")
            async with grpc.aio.insecure_channel(address) as channel:
                rpc = getattr(apb_grpc.AdminStub(channel), method)
                try:
                    return await rpc(request, metadata=metadata, timeout=_PEER_TIMEOUT_S)
                except grpc.aio.AioRpcError as exc:
                    raise PeerAdminError(f"node {node} ({address}): {exc.code().name} {exc.details()}") from exc

        peers = list(self._peers())
        results = await asyncio.gather(*(one(n, a) for n, a in peers), return_exceptions=True)
        failed = [str(r) for r in results if isinstance(r, BaseException)]
        if failed:
            raise PeerAdminError("; ".join(failed))
        return list(results)

    async def ListServices(self, request: apb.ListServicesRequest,  # noqa: N802
                           context: grpc.aio.ServicerContext) -> apb.ListServicesResponse:
        out = apb.ListServicesResponse()
        for name, _kind, ref, _handlers in self._registry.services():
            version = self._registry.version(ref)
            assert version is not None  # services() names registered versions only
            reg = version.stored.register
            info = out.services.add(deployment_id=reg.deployment_id, deployment_version=reg.deployment_version)
            info.definition.CopyFrom(next(s for s in reg.services if s.name == name))
            for session in self._invoker.sessions.values():
                if name in session.services:
                    info.workers.add(worker_id=session.id, name=session.name, deployment_id=session.deployment_id,
                                     deployment_version=session.deployment_version,
                                     concurrency=session.concurrency, active=session.active)
        return out

    async def ListInvocations(self, request: apb.ListInvocationsRequest,  # noqa: N802
                              context: grpc.aio.ServicerContext) -> apb.ListInvocationsResponse:
        size = min(request.page_size or 100, _MAX_PAGE)
        start_partition: int = 0
        after: str | None = None
        before: tuple[int, str] | None = None
        if request.page_token and request.newest_first:
            ms, _, inv = request.page_token.partition(":")
            if not ms.isdigit() or not inv:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad page token {request.page_token!r}")
            before = (int(ms), inv)
        elif request.page_token:
            try:
                p, _, inv = request.page_token.partition(":")
                start_partition, after = int(p), inv
                if not 0 <= start_partition < len(self._partitions):
                    raise ValueError(f"no partition {start_partition}")
            except ValueError:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad page token {request.page_token!r}")
        deployment = ""
        if request.deployment:
            try:
                deployment = self._deployments.resolve(request.deployment)
            except DeploymentError as exc:
                if "@" not in request.deployment:  # a removed version may still be named in full
                    await context.abort(exc.code, str(exc))
                deployment = request.deployment
        flt = InvocationFilter(service=request.service, status=request.status, key=request.key,
                               tenant=request.tenant, created_after_ms=request.created_after_ms,
                               created_before_ms=request.created_before_ms, in_flight=request.in_flight,
                               deployment=deployment, handler=request.handler, failed=request.failed,
                               idempotency_key=request.idempotency_key)
        out = apb.ListInvocationsResponse()
        if request.newest_first:
            return await self._list_newest(flt, before, size)
        for partition in range(start_partition, len(self._partitions)):
            remaining = size - len(out.invocations)
            # One more than fits: a next page token only when at least one more match exists.
            found = await self._partitions[partition].scan_invocations(
                flt, after if partition == start_partition else None, remaining + 1)
            for status in found[:remaining]:
                self._listed(out, status, partition)
            if len(found) > remaining:
                last = out.invocations[-1]
                out.next_page_token = f"{last.partition}:{last.status.invocation_id}"
                return out
        return out

    def _listed(self, out: apb.ListInvocationsResponse, status: pb.InvocationStatus, partition: int) -> None:
        status.ClearField("input")
        if status.WhichOneof("result") == "failure":  # kept, cut short: a list tells failed from ok
            status.failure.message = status.failure.message[:_LISTED_FAILURE_CHARS]
        else:
            status.ClearField("result")
        out.invocations.add(status=status, partition=partition, on_worker=self._invoker.is_active(status.invocation_id))

    async def _list_newest(self, flt: InvocationFilter, before: tuple[int, str] | None,
                           size: int) -> apb.ListInvocationsResponse:
        """A page newest first over every partition: each is asked (at once) for its newest matches
        older than the cursor, one more than fits; the newest `size` of them all make the page."""
        found = await asyncio.gather(*(part.scan_recent(flt, before, size + 1) for part in self._partitions.values()))
        merged = sorted(((s.created_at_ms, s.invocation_id, p, s) for p, statuses in zip(self._partitions, found,
                                                                                       strict=True)
                         for s in statuses), key=lambda row: (row[0], row[1]), reverse=True)
        out = apb.ListInvocationsResponse()
        for _created, _inv, partition, status in merged[:size]:
            self._listed(out, status, partition)
        if len(merged) > size:
            last = out.invocations[-1].status
            out.next_page_token = f"{last.created_at_ms}:{last.invocation_id}"
        return out

    async def _find(self, invocation_id: str) -> tuple[int, pb.InvocationStatus] | None:
        try:
            partition = ids.partition_of(invocation_id, len(self._partitions))
        except ids.InvalidId:
            return None
        status = await self._partitions[partition].get_status(invocation_id)
        return (partition, status) if status is not None else None

    async def describe(self, invocation_id: str, journal_start: int = 0,
                       journal_limit: int = 0) -> apb.InvocationDescription | None:
        """DescribeInvocation's answer with one page of the journal (limit 0: to its end), or None when
        there is no such invocation; the web console pages long journals with it."""
        found = await self._find(invocation_id)
        if found is None:
            return None
        partition, status = found
        out = apb.InvocationDescription(status=status, partition=partition,
                                        on_worker=self._invoker.is_active(invocation_id))
        if status.status == pb.RUNNING and not out.on_worker:
            out.waiting_for = self._invoker.waiting_for(status.target.service, ref_text(status.deployment))
        out.journal.extend(await self._partitions[partition].get_journal(invocation_id, journal_start, journal_limit))
        return out

    async def DescribeInvocation(self, request: apb.InvocationRef,  # noqa: N802
                                 context: grpc.aio.ServicerContext) -> apb.InvocationDescription:
        out = await self.describe(request.invocation_id)
        if out is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no invocation {request.invocation_id!r}")
        return out  # type: ignore[return-value]

    async def _act(self, request: apb.InvocationRef, context: grpc.aio.ServicerContext, env: pb.Envelope,
                   allowed: tuple[int, ...] | None = None) -> apb.Done:
        found = await self._find(request.invocation_id)
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no invocation {request.invocation_id!r}")
        partition, status = found  # type: ignore[misc]
        action = env.WhichOneof("body")
        if allowed is not None and status.status not in allowed:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"cannot {action} {request.invocation_id}: it is {pb.Status.Name(status.status)}")
        getattr(env, action).invocation_id = request.invocation_id
        env.header.timestamp_ms = int(time.time() * 1000)
        await self._partitions[partition].append([env])
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

    async def ResumeInvocation(self, request: apb.ResumeRequest, context: grpc.aio.ServicerContext) -> apb.Done:  # noqa: N802
        env = pb.Envelope(resume=pb.Resume())
        if request.deployment:
            found = await self._find(request.invocation_id)
            if found is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"no invocation {request.invocation_id!r}")
            try:
                env.resume.deployment.CopyFrom(self._deployments.move_target(found[1], request.deployment))  # type: ignore[index]
            except DeploymentError as exc:
                await context.abort(exc.code, str(exc))
        return await self._act(apb.InvocationRef(invocation_id=request.invocation_id), context, env,
                               allowed=(pb.PAUSED,))

    # ------------------------------------------------------------------ deployments

    async def _peers_or_abort(self, method: str, request: object, context: grpc.aio.ServicerContext,
                              changed: str = "") -> list[Any]:
        try:
            return await self._on_peers(method, request, context)
        except PeerAdminError as exc:
            done = f"{changed} on this node but not on every other one" if changed else "cannot ask every node"
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{done} ({exc}); try again once every node serves")
        return []

    async def ListDeployments(self, request: apb.ListDeploymentsRequest,  # noqa: N802
                              context: grpc.aio.ServicerContext) -> apb.ListDeploymentsResponse:
        async def peers(method: str, req: object) -> list[Any]:
            return await self._peers_or_abort(method, req, context)

        return await self._deployments.list(self._forwarded(context), peers)

    async def DescribeDeployment(self, request: apb.DeploymentRequest,  # noqa: N802
                                 context: grpc.aio.ServicerContext) -> apb.DeploymentInfo:
        try:
            ref = self._deployments.resolve(request.deployment)
        except DeploymentError as exc:
            await context.abort(exc.code, str(exc))
        listed = await self.ListDeployments(apb.ListDeploymentsRequest(), context)
        for info in listed.deployments:
            if ref_text(info.deployment) == ref:
                return info
        await context.abort(grpc.StatusCode.NOT_FOUND, f"deployment {ref} was removed meanwhile")
        raise AssertionError("abort returned")

    async def _change(self, request: apb.DeploymentRequest, context: grpc.aio.ServicerContext,
                      method: str, change: Callable[[str], Awaitable[Any]]) -> apb.DeploymentInfo:
        try:
            version = await change(request.deployment)
        except DeploymentError as exc:
            await context.abort(exc.code, str(exc))
        self._invoker.deployments_changed()
        await self._peers_or_abort(method, apb.DeploymentRequest(deployment=version.ref), context,
                                   changed=f"{method.removesuffix('Deployment').lower()}d {version.ref}")
        if self._forwarded(context):
            return apb.DeploymentInfo(deployment=parse_ref(version.ref))
        return await self.DescribeDeployment(apb.DeploymentRequest(deployment=version.ref), context)

    async def PromoteDeployment(self, request: apb.DeploymentRequest,  # noqa: N802
                                context: grpc.aio.ServicerContext) -> apb.DeploymentInfo:
        return await self._change(request, context, "PromoteDeployment", self._deployments.promote)

    async def DrainDeployment(self, request: apb.DeploymentRequest,  # noqa: N802
                              context: grpc.aio.ServicerContext) -> apb.DeploymentInfo:
        return await self._change(request, context, "DrainDeployment", self._deployments.drain)

    async def RemoveDeployment(self, request: apb.RemoveDeploymentRequest,  # noqa: N802
                               context: grpc.aio.ServicerContext) -> apb.RemoveDeploymentResponse:
        forwarded = self._forwarded(context)
        moved = 0
        try:
            ref = self._deployments.resolve(request.deployment)
            self._deployments.check_no_workers(ref)
            if not forwarded:  # the first node moves what is pinned; the others only forget the version
                moved = await self._deployments.move_pinned(ref, request.force)
            await self._deployments.remove(ref)
        except DeploymentError as exc:
            await context.abort(exc.code, str(exc))
        self._invoker.deployments_changed()
        await self._peers_or_abort("RemoveDeployment", apb.RemoveDeploymentRequest(deployment=ref, force=True),
                                   context, changed=f"removed {ref}")
        return apb.RemoveDeploymentResponse(removed=parse_ref(ref), moved=moved)

    async def ListPartitions(self, request: apb.ListPartitionsRequest,  # noqa: N802
                             context: grpc.aio.ServicerContext) -> apb.ListPartitionsResponse:
        out = apb.ListPartitionsResponse()
        for p, partition in sorted(self._partitions.items()):
            try:
                pi = await partition.get_info()
            except (PartitionUnavailable, PartitionNotOwned):
                out.partitions.add(partition=p, leader=False)  # its leader is down or moving: none to show
                continue
            info = out.partitions.add(partition=p, leader_epoch=pi.leader_epoch, leader=pi.leader,
                                      applied_lsn=pi.applied_lsn, log_tail=pi.log_tail, trim_point=pi.trim_point,
                                      timers_in_memory=pi.timers_in_memory, node=pi.node)
            for seg in pi.segments:
                info.segments.add(base_lsn=seg.base_lsn, loglet=seg.loglet, sealed=seg.sealed)
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
        """The limits, and the backlog and running counts of the whole cluster (summed over nodes)."""
        out = self._limits_response()
        try:
            others = await self._on_peers("GetLimits", request, context)
        except PeerAdminError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot read the limits of every node: {exc}")
        for other in others:
            for tenant, depth in other.backlog.items():
                out.backlog[tenant] = out.backlog.get(tenant, 0) + depth
            for key, n in other.running.items():
                out.running[key] = out.running.get(key, 0) + n
        return out

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
        try:  # every node stores and enforces its share of the limit
            await self._on_peers("SetLimits", request, context)
        except PeerAdminError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                f"the limits were changed on this node but not on every other one ({exc}); "
                                "set them again once every node serves")
        return await self.GetLimits(apb.GetLimitsRequest(), context)

    async def GetUsage(self, request: apb.UsageRequest,  # noqa: N802
                       context: grpc.aio.ServicerContext) -> apb.UsageResponse:
        by = request.by or "tenant"
        if by not in ("tenant", "service", "handler", "day"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "by is one of tenant, service, handler, day")
        since_day = request.since_ms // 86_400_000
        groups: dict[tuple[str, str], dict[str, float]] = {}
        for partition in self._partitions.values():
            for row in await partition.get_usage(request.tenant or None, since_day):
                group = {"tenant": "", "service": row.service, "handler": f"{row.service}/{row.handler}",
                         "day": time.strftime("%Y-%m-%d", time.gmtime(row.day * 86_400))}[by]
                add_usage(groups.setdefault((row.tenant, group), {}), row.counters)
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

