"""The Ingress gRPC service: checks each request completely, then appends it to the right log.

Nothing is appended for a request that fails validation, so a bad request leaves no trace. An
accepted invocation is acknowledged only after its record is durable. A client's deadline ends
its wait, never the invocation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from typing import TypeVar

import grpc

from endure.proto import ids, journal, routing
from endure.proto import ingress_pb2 as ipb
from endure.proto import ingress_pb2_grpc as ipb_grpc
from endure.proto import records_pb2 as pb
from endure.proto.streams import InvalidStreamName, check_name
from endure.runtime.auth import TenantResolver, Unauthenticated
from endure.runtime.ingress.json_value import InvalidJsonValue, json_to_value, value_to_json
from endure.runtime.invoker.limits import Limits
from endure.runtime.invoker.registry import HandlerInfo, ServiceRegistry
from endure.runtime.log import LogFull, LogUnavailable
from endure.runtime.partition.api import MAX_STREAM_READ, Partition
from endure.runtime.partition.remote import PartitionNotOwned, PartitionUnavailable
from endure.runtime.partition.state_machine import FINAL
from endure.runtime.partition.waiters import TooManyWaiters
from endure.runtime.placement import Routes

T = TypeVar("T")
_MOVE_WAIT_S = 5.0  # how long a request follows a partition whose leadership is moving
_FOLLOW_POLL_S = 20.0  # a follower's wait for the next stream events before it reads again

log = logging.getLogger("endure.ingress")



class RequestError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after_ms = retry_after_ms


class IngressService(ipb_grpc.IngressServicer):
    def __init__(self, registry: ServiceRegistry, partitions: Mapping[int, Partition],
                 max_waiting: int, max_payload_bytes: int, max_json_depth: int = 64,
                 tenants: TenantResolver | None = None, limits: Limits | None = None,
                 backlog: Callable[[str], int] | None = None, queued: Callable[[], int] | None = None,
                 max_queued: int = 200_000, local: Collection[int] | None = None,
                 routes: Callable[[], Routes] | None = None) -> None:
        self._tenants = tenants or TenantResolver(False, {})
        self._queued = queued or (lambda: 0)
        self._max_queued = max_queued
        self._limits = limits or Limits()
        self._backlog = backlog or (lambda _tenant: 0)
        self.rejected = 0  # requests refused for overload (backlog, waiters, log queue)
        self.rejected_by_tenant: Counter[str] = Counter()  # of those, new invocations refused by admission
        self._registry = registry
        self._partitions = partitions  # the only way to a partition: every read and append
        self._n_partitions = len(partitions)
        # The partitions this node owns (default: all). A new invocation whose partition is free to
        # choose (no key, no idempotency key) goes to one of them, so it costs no forwarding.
        # A live view: in a cluster the node's partitions change as leadership moves.
        self._local: Collection[int] = partitions.keys() if local is None else local
        self._all = sorted(partitions)
        # Requests whose partition another node owns, by RPC: each is forwarded there. A client that
        # routes (GetRoutes) sends keyed requests to the owner, so this stays 0 for it.
        self.forwarded: Counter[str] = Counter()
        n = self._n_partitions
        self._routes = routes or (lambda: Routes(n, ("",), (0,) * n))
        self._max_waiting = max_waiting  # clients this ingress holds waiting for a result, on any partition
        self._waiting = 0
        self._max_payload = max_payload_bytes
        self._max_depth = max_json_depth

    # ------------------------------------------------------------------ validation

    def tenant(self, context: grpc.aio.ServicerContext) -> str:
        try:
            return self._tenants.tenant(context.invocation_metadata())
        except Unauthenticated as exc:
            raise RequestError(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from exc

    def _admit(self, tenant: str) -> None:
        """Refuse new work while the node's or the tenant's queued backlog is at its limit (nothing
        accepted is dropped: what waits is durable, and the in-memory run queue stays bounded)."""
        queued = self._queued()
        if queued >= self._max_queued:
            self.rejected += 1
            self.rejected_by_tenant[tenant] += 1
            raise RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"{queued} invocations are queued on this node (limit {self._max_queued}); "
                               "retry in 1000 ms", retry_after_ms=1000)
        limit = self._limits.tenant(tenant)
        if limit.max_backlog is None:
            return
        backlog = self._backlog(tenant)
        if backlog >= limit.max_backlog:
            self.rejected += 1
            self.rejected_by_tenant[tenant] += 1
            per_s = limit.rate_per_s or 100.0
            retry_ms = int(min(60_000, max(100, 1000 * (backlog - limit.max_backlog + 1) / per_s)))
            raise RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"tenant {tenant!r} has {backlog} invocations queued (limit {limit.max_backlog}); "
                               f"retry in {retry_ms} ms", retry_after_ms=retry_ms)

    def _json(self, raw: bytes, what: str) -> object:
        if len(raw) > self._max_payload:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"{what} is {len(raw)} bytes; the limit is {self._max_payload} bytes")
        if not raw:
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"{what} is not valid UTF-8: {exc}") from exc
        if text.count("[") + text.count("{") > self._max_depth and _nesting(text) > self._max_depth:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"{what} nests deeper than {self._max_depth} levels")
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"{what} is not valid JSON: {exc}") from exc

    def _handler(self, target: pb.Target) -> HandlerInfo:
        if not target.service or not target.handler:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "the target needs a service and a handler")
        info = self._registry.handler(target.service, target.handler)
        if info is None:
            if self._registry.has_service(target.service):
                raise RequestError(grpc.StatusCode.NOT_FOUND,
                                   f"service {target.service!r} has no handler {target.handler!r}")
            raise RequestError(grpc.StatusCode.NOT_FOUND, f"no service {target.service!r} is registered; "
                               "start a worker that serves it")
        if info.keyed and not target.key:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"{target.service}/{target.handler} is keyed: give the object or workflow key")
        if not info.keyed and target.key:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"{target.service}/{target.handler} belongs to a service, which takes no key "
                               f"(got {target.key!r})")
        return info

    @staticmethod
    def _input(request: ipb.CallRequest) -> bytes:
        """The input as JSON bytes, whether given as `input` or as `json` (a protobuf Value)."""
        if request.WhichOneof("payload") != "json":
            return request.input
        try:
            return value_to_json(request.json)
        except InvalidJsonValue as exc:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"the input is not valid JSON: {exc}") from exc

    def _invoke(self, request: ipb.CallRequest, tenant: str, *, workflow_run: bool | None,
                execute_at_ms: int = 0) -> tuple[pb.Invoke, int]:
        # Admission first: a tenant over its backlog is shed before its input is decoded, parsed or
        # validated, so a flood costs the node as little CPU as possible.
        self._admit(tenant)
        info = self._handler(request.target)
        raw = self._input(request)
        value = self._json(raw, "the input")
        problem = info.validate_input(value)
        if problem:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, problem)
        if workflow_run is True and info.kind != pb.WORKFLOW_RUN:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"{request.target.service}/{request.target.handler} is not a workflow's main handler")
        if len(request.idempotency_key) > 256:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "idempotency keys are at most 256 characters")
        t = request.target
        # The client computes the same partition key (endure.proto.routing) to route the request.
        pkey = routing.invocation_partition_key(t.key, request.idempotency_key)
        if info.kind == pb.WORKFLOW_RUN:  # keyed: pkey is the workflow key's
            inv = ids.derived_invocation_id(pkey, "workflow", tenant, t.service, t.key)
        elif request.idempotency_key:
            inv = ids.derived_invocation_id(pkey, "idempotency", tenant, t.service, t.handler, t.key,
                                            request.idempotency_key)
        elif pkey is None:
            inv = ids.new_invocation_id_on(sorted(self._local) or self._all, self._n_partitions)
        else:
            inv = ids.new_invocation_id(pkey)
        record = pb.Invoke(invocation_id=inv, target=t, handler_kind=info.kind, input=raw,
                           idempotency_key=request.idempotency_key, tenant=tenant,
                           priority=request.priority, execute_at_ms=execute_at_ms)
        record.headers.update(request.headers)
        return record, ids.partition_of(inv, self._n_partitions)

    def _count(self, partition: int, rpc: str) -> None:
        """Count a request whose partition lives on another node (it is forwarded there)."""
        if partition not in self._local:
            self.forwarded[rpc] += 1

    async def _on(self, partition: int, call: Callable[[Partition], Awaitable[T]], *, reads: bool = True) -> T:
        """Call the partition, through the node that leads it now. While leadership moves (a cluster)
        the node asked may answer that it does not lead it any more: nothing was done there, so the
        call is made again, on the partition as this node knows it then, for up to `_MOVE_WAIT_S`. A
        read or a wait is also tried again when the leader could not be reached; an append is not
        (it may have arrived)."""
        deadline = time.monotonic() + _MOVE_WAIT_S
        delay = 0.05
        while True:
            try:
                return await call(self._partitions[partition])
            except PartitionNotOwned:
                if time.monotonic() > deadline:
                    raise
            except (PartitionUnavailable, LogUnavailable):
                if not reads or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    @staticmethod
    def _trace_context(request: ipb.CallRequest, context: grpc.aio.ServicerContext) -> None:
        """W3C trace context from the client's metadata travels with the invocation (and its calls)."""
        for key, value in context.invocation_metadata() or ():
            if key in ("traceparent", "tracestate") and key not in request.headers:
                request.headers[key] = value

    async def _append(self, partition: int, env: pb.Envelope) -> int:
        """Append one record without waiting for room in the log's queue; its LSN."""
        env.header.timestamp_ms = int(time.time() * 1000)
        try:
            return (await self._on(partition, lambda part: part.append([env], wait=False), reads=False))[-1]
        except LogFull as exc:
            self.rejected += 1
            raise RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"the log's append queue is full ({exc}); retry with backoff") from exc

    async def _locate(self, invocation_id: str, tenant: str, rpc: str) -> tuple[int, pb.InvocationStatus]:
        try:
            partition = ids.partition_of(invocation_id, self._n_partitions)
        except ids.InvalidId as exc:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc
        self._count(partition, rpc)
        status = await self._on(partition, lambda part: part.get_status(invocation_id))
        if status is None or status.tenant != tenant:
            raise RequestError(grpc.StatusCode.NOT_FOUND, f"no invocation {invocation_id}")
        return partition, status

    async def _wait(self, invocation_id: str, partition: int, tenant: str,
                    append: pb.Envelope | None = None) -> ipb.Output:
        """Wait for the invocation's end through its partition, wherever it lives: after appending
        `append` (a new invocation), from the LSN that append got, so no completion slips by.

        This ingress bounds the clients it holds itself, before anything is appended, so a call
        refused for that leaves no invocation behind; the partition's owner bounds its waiters too."""
        if self._waiting >= self._max_waiting:
            self.rejected += 1
            raise RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"{self._waiting} clients are already waiting for results "
                               f"(limit {self._max_waiting})")
        self._waiting += 1
        try:
            lsn = await self._append(partition, append) if append is not None else 0
            try:
                status = await self._on(partition, lambda part: part.await_completion(invocation_id, lsn))
            except TooManyWaiters as exc:
                self.rejected += 1
                raise RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)) from exc
            if status is None or status.tenant != tenant:
                raise RequestError(grpc.StatusCode.NOT_FOUND, f"no invocation {invocation_id}")
            return _output(status)
        finally:
            self._waiting -= 1

    # ------------------------------------------------------------------ RPCs

    async def _guard(self, context: grpc.aio.ServicerContext, coro: object) -> object:
        try:
            return await coro  # type: ignore[misc]
        except RequestError as exc:
            if exc.retry_after_ms is not None:
                context.set_trailing_metadata((("retry-after-ms", str(exc.retry_after_ms)),))
            await context.abort(exc.code, str(exc))
        except (PartitionUnavailable, PartitionNotOwned, LogUnavailable) as exc:
            # The owner node is down or restarting (or the partition is moving): the client may retry.
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

    async def Call(self, request: ipb.CallRequest, context: grpc.aio.ServicerContext) -> ipb.Output:  # noqa: N802
        return await self._guard(context, self._call(request, context))  # type: ignore[return-value]

    async def _call(self, request: ipb.CallRequest, context: grpc.aio.ServicerContext) -> ipb.Output:
        tenant = self.tenant(context)
        self._trace_context(request, context)
        record, partition = self._invoke(request, tenant, workflow_run=None)
        self._count(partition, "Call")
        out = await self._wait(record.invocation_id, partition, tenant, append=pb.Envelope(invoke=record))
        if request.WhichOneof("payload") == "json" and out.WhichOneof("result") == "value":
            # JSON in, JSON out: the result also as a Value, which grpcurl prints as plain JSON.
            value = json_to_value(out.value)
            if value is not None:
                out.json.CopyFrom(value)
        return out

    async def Send(self, request: ipb.SendRequest, context: grpc.aio.ServicerContext) -> ipb.SendResponse:  # noqa: N802
        return await self._guard(context, self._send(request, context, workflow_run=None))  # type: ignore[return-value]

    async def Submit(self, request: ipb.CallRequest, context: grpc.aio.ServicerContext) -> ipb.SendResponse:  # noqa: N802
        return await self._guard(context, self._send(ipb.SendRequest(call=request), context,  # type: ignore[return-value]
                                                     workflow_run=True))

    async def _send(self, request: ipb.SendRequest, context: grpc.aio.ServicerContext,
                    workflow_run: bool | None) -> ipb.SendResponse:
        delay = request.delay_ms
        if delay > 365 * 24 * 3600 * 1000:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "a delay is at most one year")
        execute_at = int(time.time() * 1000) + delay if delay else 0
        self._trace_context(request.call, context)
        record, partition = self._invoke(request.call, self.tenant(context), workflow_run=workflow_run,
                                         execute_at_ms=execute_at)
        self._count(partition, "Submit" if workflow_run else "Send")
        await self._append(partition, pb.Envelope(invoke=record))
        return ipb.SendResponse(invocation_id=record.invocation_id)

    def _attach_target(self, request: ipb.AttachRequest, tenant: str) -> str:
        which = request.WhichOneof("ref")
        if which == "invocation_id":
            return request.invocation_id
        if which == "idempotency":
            ref = request.idempotency
            info = self._handler(ref.target)
            t = ref.target
            pkey = routing.attach_partition_key(t.key, ref.idempotency_key)
            if info.kind == pb.WORKFLOW_RUN:
                return ids.derived_invocation_id(pkey, "workflow", tenant, t.service, t.key)
            return ids.derived_invocation_id(pkey, "idempotency", tenant, t.service, t.handler, t.key,
                                             ref.idempotency_key)
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "give an invocation id or an idempotency key")

    async def Attach(self, request: ipb.AttachRequest, context: grpc.aio.ServicerContext) -> ipb.Output:  # noqa: N802
        async def attach() -> ipb.Output:
            tenant = self.tenant(context)
            inv = self._attach_target(request, tenant)
            partition, _ = await self._locate(inv, tenant, "Attach")
            return await self._wait(inv, partition, tenant)

        return await self._guard(context, attach())  # type: ignore[return-value]

    async def GetOutput(self, request: ipb.AttachRequest,  # noqa: N802
                        context: grpc.aio.ServicerContext) -> ipb.GetOutputResponse:
        async def get() -> ipb.GetOutputResponse:
            tenant = self.tenant(context)
            _, status = await self._locate(self._attach_target(request, tenant), tenant, "GetOutput")
            if status.status in FINAL:
                return ipb.GetOutputResponse(ready=True, output=_output(status), status=status.status)
            return ipb.GetOutputResponse(ready=False, status=status.status)

        return await self._guard(context, get())  # type: ignore[return-value]

    async def _complete_awakeable(self, awakeable: str, context: grpc.aio.ServicerContext,
                                  completion: pb.Completion, rpc: str) -> ipb.Ack:
        try:
            inv, index = ids.parse_awakeable_id(awakeable)
        except ids.InvalidId as exc:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc
        partition, status = await self._locate(inv, self.tenant(context), rpc)
        if status.status in FINAL:
            raise RequestError(grpc.StatusCode.FAILED_PRECONDITION,
                               f"the invocation waiting on {awakeable} has already finished")
        completion.invocation_id = inv
        completion.entry_index = index
        await self._append(partition, pb.Envelope(completion=completion))
        return ipb.Ack()

    async def ResolveAwakeable(self, request: ipb.ResolveAwakeableRequest,  # noqa: N802
                               context: grpc.aio.ServicerContext) -> ipb.Ack:
        async def resolve() -> ipb.Ack:
            self._json(request.value, "the awakeable's value")
            return await self._complete_awakeable(request.awakeable_id, context,
                                                  pb.Completion(value=request.value or b"null"),
                                                  "ResolveAwakeable")

        return await self._guard(context, resolve())  # type: ignore[return-value]

    async def RejectAwakeable(self, request: ipb.RejectAwakeableRequest,  # noqa: N802
                              context: grpc.aio.ServicerContext) -> ipb.Ack:
        failure = pb.Failure(code=request.code or 500, message=request.reason or "rejected")
        return await self._guard(context, self._complete_awakeable(  # type: ignore[return-value]
            request.awakeable_id, context, pb.Completion(failure=failure), "RejectAwakeable"))

    async def ResolvePromise(self, request: ipb.ResolvePromiseRequest,  # noqa: N802
                             context: grpc.aio.ServicerContext) -> ipb.Ack:
        async def resolve() -> ipb.Ack:
            info = self._handler(pb.Target(service=request.workflow, handler=self._main_handler(request.workflow),
                                           key=request.key))
            if info.kind != pb.WORKFLOW_RUN:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"{request.workflow!r} is not a workflow")
            if not request.name:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "the promise needs a name")
            record = pb.ResolvePromise(workflow=request.workflow, key=request.key, name=request.name,
                                       tenant=self.tenant(context))
            if journal.copy_result(request, record) != "failure":
                self._json(request.value, "the promise's value")
                record.value = request.value or b"null"
            partition = routing.promise_partition_key(request.key) % self._n_partitions
            self._count(partition, "ResolvePromise")
            await self._append(partition, pb.Envelope(resolve_promise=record))
            return ipb.Ack()

        return await self._guard(context, resolve())  # type: ignore[return-value]

    def _main_handler(self, workflow: str) -> str:
        for name, _kind, _dep, handlers in self._registry.services():
            if name == workflow:
                for h in handlers:
                    if h.kind == pb.WORKFLOW_RUN:
                        return h.name
        raise RequestError(grpc.StatusCode.NOT_FOUND, f"no workflow {workflow!r} is registered")

    async def _operator(self, request: ipb.InvocationRequest, context: grpc.aio.ServicerContext,
                        env: pb.Envelope, rpc: str) -> ipb.Ack:
        partition, _ = await self._locate(request.invocation_id, self.tenant(context), rpc)
        getattr(env, env.WhichOneof("body")).invocation_id = request.invocation_id
        await self._append(partition, env)
        return ipb.Ack()

    async def Cancel(self, request: ipb.InvocationRequest, context: grpc.aio.ServicerContext) -> ipb.Ack:  # noqa: N802
        return await self._guard(context, self._operator(request, context,  # type: ignore[return-value]
                                                         pb.Envelope(cancel=pb.Cancel()), "Cancel"))

    async def Kill(self, request: ipb.InvocationRequest, context: grpc.aio.ServicerContext) -> ipb.Ack:  # noqa: N802
        return await self._guard(context, self._operator(request, context,  # type: ignore[return-value]
                                                         pb.Envelope(kill=pb.Kill()), "Kill"))

    # ------------------------------------------------------------------ streams

    async def CallStream(self, request: ipb.CallRequest,  # noqa: N802
                         context: grpc.aio.ServicerContext) -> AsyncIterator[ipb.StreamMessage]:
        async def start() -> tuple[str, int, str]:
            tenant = self.tenant(context)
            self._trace_context(request, context)
            record, partition = self._invoke(request, tenant, workflow_run=None)
            self._count(partition, "CallStream")
            await self._append(partition, pb.Envelope(invoke=record))
            return record.invocation_id, partition, tenant

        started = await self._guard(context, start())
        inv, partition, _ = started  # type: ignore[misc]
        # First, the id alone: a client that loses the stream now can still resume it by Subscribe.
        yield ipb.StreamMessage(invocation_id=inv)
        async for message in self._guard_stream(context, self._follow(inv, partition, "", {})):
            yield message

    async def Subscribe(self, request: ipb.SubscribeRequest,  # noqa: N802
                        context: grpc.aio.ServicerContext) -> AsyncIterator[ipb.StreamMessage]:
        async def locate() -> tuple[int, dict[str, int]]:
            partition, _ = await self._locate(request.invocation_id, self.tenant(context), "Subscribe")
            try:
                names = [request.stream] if request.stream else list(request.from_offsets)
                for name in names:
                    check_name(name)
            except InvalidStreamName as exc:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc
            offsets = {request.stream: request.from_offset} if request.stream else dict(request.from_offsets)
            return partition, offsets

        located = await self._guard(context, locate())
        partition, offsets = located  # type: ignore[misc]
        async for message in self._guard_stream(context, self._follow(request.invocation_id, partition,
                                                                       request.stream, offsets)):
            yield message

    async def _guard_stream(self, context: grpc.aio.ServicerContext,
                            messages: AsyncIterator[ipb.StreamMessage]) -> AsyncIterator[ipb.StreamMessage]:
        """`_guard` for a server stream: an error ends it with its status."""
        try:
            async for message in messages:
                yield message
        except RequestError as exc:
            await context.abort(exc.code, str(exc))
        except (PartitionUnavailable, PartitionNotOwned, LogUnavailable) as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

    async def _follow(self, inv: str, partition: int, stream: str,
                      from_offsets: Mapping[str, int]) -> AsyncIterator[ipb.StreamMessage]:
        """The invocation's stream events (one stream, or every one with stream ""), each from its
        offset in from_offsets, as they are made durable; then its output. Reads come from the
        durable store at the subscriber's own pace (the handler never waits for a subscriber), and
        this ingress holds a bounded number of followers."""
        if self._waiting >= self._max_waiting:
            self.rejected += 1
            raise RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"{self._waiting} clients are already waiting (limit {self._max_waiting})")
        self._waiting += 1
        try:
            after = 0
            while True:
                try:
                    read = await self._on(partition, lambda part, after=after: part.read_stream(
                        inv, after, MAX_STREAM_READ, _FOLLOW_POLL_S))
                except TooManyWaiters as exc:
                    self.rejected += 1
                    raise RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)) from exc
                if not read.found:
                    raise RequestError(grpc.StatusCode.NOT_FOUND, f"no invocation {inv}")
                if read.events:
                    after = read.events[-1].seq
                events = [e for e in read.events
                          if (not stream or e.stream == stream) and e.offset >= from_offsets.get(e.stream, 0)]
                if events:
                    yield ipb.StreamMessage(invocation_id=inv, events=events)
                if stream and any(e.HasField("close") for e in events):
                    yield ipb.StreamMessage(invocation_id=inv, closed=True)
                    return
                if read.finished:
                    status = await self._on(partition, lambda part: part.get_status(inv))
                    if status is None:  # purged since
                        raise RequestError(grpc.StatusCode.NOT_FOUND, f"no invocation {inv}")
                    yield ipb.StreamMessage(invocation_id=inv, output=_output(status))
                    return
        finally:
            self._waiting -= 1

    async def GetRoutes(self, request: ipb.RoutesRequest, context: grpc.aio.ServicerContext) -> ipb.Routes:  # noqa: N802
        async def get() -> ipb.Routes:
            self.tenant(context)  # the same API key as any other ingress request
            routes = self._routes()
            return ipb.Routes(partitions=routes.partitions, owners=routes.owners,
                              nodes=[ipb.IngressNode(id=i, address=a) for i, a in enumerate(routes.addresses)])

        return await self._guard(context, get())  # type: ignore[return-value]


def _output(status: pb.InvocationStatus) -> ipb.Output:
    out = ipb.Output(invocation_id=status.invocation_id)
    if journal.copy_result(status, out) is None:
        out.failure.CopyFrom(status.failure)  # no outcome recorded: an empty failure, as always
    return out


def _nesting(text: str) -> int:
    """Deepest bracket nesting outside strings: refuse hostile JSON before the parser recurses."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest
