"""The admin API's deployment operations: list, describe, promote, drain and remove versions, and
move invocations onto other code.

Every node keeps its own registry (workers register with each node), so a change is made here and
passed on to every other node (`PeerCalls`); counts of pinned invocations come from every
partition through `Partition`, and moves are records appended to the partitions' logs.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import grpc

from endure.proto import admin_pb2 as apb
from endure.proto import records_pb2 as pb
from endure.proto.deployments import parse_ref, ref_text
from endure.runtime.invoker.invoker import Invoker
from endure.runtime.invoker.registry import (
    AmbiguousDeployment,
    DeploymentVersion,
    ServiceRegistry,
    UnknownDeployment,
)
from endure.runtime.partition.api import InvocationFilter, Partition

_MOVE_BATCH = 500  # MoveDeployment records per append


class DeploymentError(Exception):
    """A deployment request that cannot be served; `code` is its gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


# (method, request) -> what every other node answered; raises DeploymentError naming those that failed
PeerCalls = Callable[[str, object], Awaitable[list[object]]]


class DeploymentOps:
    def __init__(self, registry: ServiceRegistry, partitions: Mapping[int, Partition], invoker: Invoker) -> None:
        self._registry = registry
        self._partitions = partitions
        self._invoker = invoker

    # ------------------------------------------------------------------ names

    def resolve(self, name: str) -> str:
        """ "id@version" for what name names, or DeploymentError NOT_FOUND / INVALID_ARGUMENT."""
        if not name:
            raise DeploymentError(grpc.StatusCode.INVALID_ARGUMENT, "name a deployment version (ID@VERSION)")
        try:
            return self._registry.resolve(name)
        except UnknownDeployment as exc:
            raise DeploymentError(grpc.StatusCode.NOT_FOUND, str(exc)) from exc
        except AmbiguousDeployment as exc:
            raise DeploymentError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc

    def move_target(self, status: pb.InvocationStatus, name: str) -> pb.DeploymentRef:
        """Where `resume --deployment name` moves the invocation: "latest" or a version serving it."""
        service = status.target.service
        if name == "latest":
            ref = self._registry.latest(service)
            if ref is None:
                raise DeploymentError(grpc.StatusCode.FAILED_PRECONDITION,
                                      f"no version of {service} takes new invocations (all drain): promote one")
        else:
            ref = self.resolve(name)
            version = self._registry.version(ref)
            if version is None or not version.serves(service):
                raise DeploymentError(grpc.StatusCode.FAILED_PRECONDITION,
                                      f"deployment {ref} does not serve {service}")
        return parse_ref(ref)

    # ------------------------------------------------------------------ views

    async def pinned_counts(self) -> dict[str, int]:
        """Unfinished invocations per version, over every partition."""
        total: dict[str, int] = {}
        for partition in self._partitions.values():
            for ref, n in (await partition.get_pinned_counts()).items():
                total[ref] = total.get(ref, 0) + n
        return total

    def info(self, version: DeploymentVersion, pinned: Mapping[str, int],
             waiting: Mapping[str, int]) -> apb.DeploymentInfo:
        stored = version.stored
        out = apb.DeploymentInfo(deployment=parse_ref(version.ref), services=version.services,
                                 latest_for=[s for s in version.services if self._registry.latest(s) == version.ref],
                                 draining=stored.draining, registered_at_ms=stored.registered_at_ms,
                                 promoted_at_ms=stored.promoted_at_ms, in_flight=pinned.get(version.ref, 0),
                                 waiting=waiting.get(version.ref, 0))
        for session in self._invoker.sessions.values():
            if session.deployment == version.ref and not session.closed:
                out.workers.add(worker_id=session.id, name=session.name, deployment_id=session.deployment_id,
                                deployment_version=session.deployment_version, concurrency=session.concurrency,
                                active=session.active)
        return out

    async def list(self, forwarded: bool, peers: PeerCalls) -> apb.ListDeploymentsResponse:
        """Every version with its workers; in-flight counts over all partitions and waiting counts
        summed over every node (a forwarded call answers for this node's queues only)."""
        waiting = dict(self._invoker.waiting_for_deployment())
        pinned: dict[str, int] = {}
        if not forwarded:
            pinned = await self.pinned_counts()
            for answer in await peers("ListDeployments", apb.ListDeploymentsRequest()):
                assert isinstance(answer, apb.ListDeploymentsResponse)
                for d in answer.deployments:
                    ref = ref_text(d.deployment)
                    waiting[ref] = waiting.get(ref, 0) + d.waiting
        out = apb.ListDeploymentsResponse()
        for version in self._registry.versions():
            out.deployments.append(self.info(version, pinned, waiting))
        return out

    # ------------------------------------------------------------------ changes

    async def promote(self, name: str) -> DeploymentVersion:
        try:
            return await self._registry.promote(self.resolve(name))
        except UnknownDeployment as exc:
            raise DeploymentError(grpc.StatusCode.NOT_FOUND, str(exc)) from exc

    async def drain(self, name: str) -> DeploymentVersion:
        try:
            return await self._registry.drain(self.resolve(name))
        except UnknownDeployment as exc:
            raise DeploymentError(grpc.StatusCode.NOT_FOUND, str(exc)) from exc

    def check_no_workers(self, ref: str) -> None:
        connected = [s.name for s in self._invoker.sessions.values() if s.deployment == ref and not s.closed]
        if connected:
            raise DeploymentError(grpc.StatusCode.FAILED_PRECONDITION,
                                  f"{len(connected)} worker(s) of {ref} are connected ({', '.join(sorted(connected))}): "
                                  "stop them first (drain the version to send them no new work)")

    async def _pinned_pages(self, ref: str) -> AsyncIterator[tuple[int, list[pb.InvocationStatus]]]:
        """(partition, a page of unfinished invocations pinned to ref), every partition, in id order."""
        for p, partition in self._partitions.items():
            after: str | None = None
            while True:
                page = await partition.scan_invocations(InvocationFilter(deployment=ref), after, _MOVE_BATCH)
                if page:
                    yield p, page
                if len(page) < _MOVE_BATCH:
                    break
                after = page[-1].invocation_id

    async def move_pinned(self, ref: str, force: bool) -> int:
        """Move every unfinished invocation pinned to ref onto its service's latest other version
        (force), or refuse while there are any. Returns how many were moved. Pages through the
        pinned index (memory bounded by a page), and checks every service has somewhere to go
        before it moves anything."""
        count = (await self.pinned_counts()).get(ref, 0)
        if not count:
            return 0
        if not force:
            raise DeploymentError(grpc.StatusCode.FAILED_PRECONDITION,
                                  f"{count} unfinished invocation(s) are pinned to {ref}: let them finish, "
                                  "or remove with --force to move them to their service's latest version")
        targets: dict[str, pb.DeploymentRef] = {}
        async for _, page in self._pinned_pages(ref):
            for service in {s.target.service for s in page} - set(targets):
                latest = self._registry.latest(service, excluding=ref)
                if latest is None:
                    raise DeploymentError(grpc.StatusCode.FAILED_PRECONDITION,
                                          f"no other version of {service} takes new invocations: register "
                                          f"(or promote) one before moving the invocations pinned to {ref}")
                targets[service] = parse_ref(latest)
        moved = 0
        now = int(time.time() * 1000)
        async for p, page in self._pinned_pages(ref):
            records = [pb.Envelope(header=pb.Header(timestamp_ms=now), move_deployment=pb.MoveDeployment(
                invocation_id=s.invocation_id, from_deployment=s.deployment, to_deployment=targets[s.target.service],
                reason=f"deployments remove --force {ref}")) for s in page if s.target.service in targets]
            if records:  # (one pinned since the check, of a service not checked, stays: a rerun moves it)
                await self._partitions[p].append(records)
            moved += len(records)
        return moved

    async def remove(self, ref: str) -> None:
        try:
            await self._registry.remove(ref)
        except UnknownDeployment as exc:
            raise DeploymentError(grpc.StatusCode.NOT_FOUND, str(exc)) from exc
