"""Invoker: starts runnable invocations on workers and turns what workers send into log records.

It is the leader's hand: effects of applied records come in (start, complete, cancel, abort);
journal entries, suspensions, ends and failures from workers go out as appends to the partition's
log, and a worker hears that an entry is durable (AckFrame) only after its append was synced.
At most one attempt of an invocation runs at a time: every attempt has a fresh number, frames of
any other attempt are dropped, and an attempt that replaces a lost or aborted one is queued only
once the old worker's in-flight appends are applied, so the new attempt sees a complete journal.
Each invocation's state lives in one `InvocationMachine` (runtime/invoker/attempts.py).

Deployments: an invocation runs only on workers of the version it is pinned to (its status says
which); one not run yet goes to its service's latest version, and its first attempt pins it there
(`pin` on the attempt's first record, so the pin is durable with the first thing that attempt
did). Queues are per (service, version): work for a version with no worker connected waits in its
queue and is never started on other code.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from endure.proto import records_pb2 as pb
from endure.proto import worker_pb2 as wpb
from endure.proto.deployments import parse_ref, ref_text
from endure.proto.journal import copy_result
from endure.proto.streams import StreamLimits
from endure.runtime.invoker.attempts import ON_WORKER, AttemptState, IllegalTransition, InvocationMachine
from endure.runtime.invoker.limits import Limits
from endure.runtime.invoker.registry import ServiceRegistry
from endure.runtime.invoker.scheduler import FairQueue, Runnable
from endure.runtime.invoker.session import SessionOverflow, WorkerSession
from endure.runtime.partition.api import LocalPartition
from endure.runtime.partition.effects import (
    AbortAttempt,
    CancelAttempt,
    CompleteEntry,
    Effect,
    StartInvocation,
)
from endure.sdk.backoff import Backoff, BackoffError, Jitter

log = logging.getLogger("endure.invoker")

_DEFAULT_RETRY = wpb.RetryPolicy(initial_interval_ms=100, factor=2.0, max_interval_ms=10_000)
_FAILURE_JITTER = Jitter.symmetric(0.25)  # retries of failed attempts spread over 0.75x..1.25x
_LOST_JITTER = Jitter.symmetric(0.2)
_LOST_MAX_INTERVAL_S = 10.0


@dataclass(slots=True)
class InvokerConfig:
    eager_state_bytes: int = 1 << 20  # object state sent with a start; beyond it, gets are lazy
    max_queued: int = 200_000  # runnable invocations waiting for a worker slot, node-wide
    lost_worker_backoff_s: float = 0.2  # first delay before retrying attempts of a lost worker
    # Ack a step only once its record applied under the epoch it was written with. Needed where
    # another node may lead the partition meanwhile (cluster mode): a record a deposed leader
    # appended is durable but ignored on apply, so acking it at append would be a false promise.
    ack_after_apply: bool = False
    stream_limits: StreamLimits = field(default_factory=StreamLimits)  # told to workers with each start
    # Per tenant: what its invocations' sandbox runs may reach over HTTP (told with each start).
    tenant_network: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


class Invoker:
    def __init__(self, registry: ServiceRegistry, partitions: Mapping[int, LocalPartition],
                 config: InvokerConfig | None = None, limits: Limits | None = None) -> None:
        self.registry = registry
        # The partitions this node owns, by id: the invoker reads and appends only through them.
        self.partitions = partitions
        self.config = config or InvokerConfig()
        self.limits = limits or Limits()
        self._token_timer: asyncio.TimerHandle | None = None
        self.sessions: dict[str, WorkerSession] = {}
        self._queues: dict[tuple[str, str], FairQueue] = {}  # by (service, pinned version or "")
        self._machines: dict[str, InvocationMachine] = {}  # every invocation not ENDED, by id
        self._queued = 0  # machines QUEUED
        self._on_worker = 0  # machines STARTING or RUNNING
        self._lost: dict[str, int] = {}  # invocation -> attempts lost with their worker, for backoff
        self._numbers = itertools.count(1)
        self._tasks: set[asyncio.Task[object]] = set()
        self._lost_backoff = Backoff(self.config.lost_worker_backoff_s, 2.0, _LOST_MAX_INTERVAL_S,
                                     jitter=_LOST_JITTER)
        self._stream_limits = self.config.stream_limits.to_proto()
        self.stats = {"started": 0, "ended": 0, "suspended": 0, "failed": 0, "lost": 0, "released": 0}

    # ------------------------------------------------------------------ views

    def queued(self) -> int:
        return self._queued

    def backlog(self, tenant: str) -> int:
        """Invocations of tenant waiting for a worker slot or for their limits, node-wide."""
        return sum(queue.depth(tenant) for queue in self._queues.values())

    def backlog_by_tenant(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for queue in self._queues.values():
            for tenant, depth in queue.depths().items():
                out[tenant] = out.get(tenant, 0) + depth
        return out

    def running(self) -> int:
        return self._on_worker

    def serving(self, deployment: str) -> bool:
        """True while a connected worker of the version ("id@version") takes work."""
        return any(s.deployment == deployment and not s.closed and not s.draining for s in self.sessions.values())

    def waiting_for_deployment(self) -> dict[str, int]:
        """Queued invocations per version ("id@version") while no worker of that version takes work
        ("" for a service whose every version drains)."""
        out: dict[str, int] = {}
        for (service, deployment), queue in self._queues.items():
            target = self._target(service, deployment) or ""
            if queue and not (target and self.serving(target)):
                out[target] = out.get(target, 0) + len(queue)
        return out

    def waiting_for(self, service: str, deployment: str) -> str:
        """What an invocation of service pinned to deployment ("" = not run yet) waits for before it
        can start, in words; "" when a worker of its version is connected."""
        target = self._target(service, deployment)
        if target is None:
            return f"a deployment of {service} (every version of it is draining: promote one)"
        if self.serving(target):
            return ""
        pinned = "pinned" if deployment else f"the latest version of {service}"
        return f"deployment {target} ({pinned}; no worker of it is connected)"

    def is_active(self, invocation_id: str) -> bool:
        return self._attempt(invocation_id) is not None

    def state(self, invocation_id: str) -> AttemptState:
        """Where the invocation is in the invoker (ENDED when the invoker holds nothing of it)."""
        machine = self._machines.get(invocation_id)
        return machine.state if machine is not None else AttemptState.ENDED

    def _attempt(self, invocation_id: str) -> InvocationMachine | None:
        """The invocation's machine while an attempt of it holds a worker slot."""
        machine = self._machines.get(invocation_id)
        return machine if machine is not None and machine.session is not None else None

    # ------------------------------------------------------------------ transitions

    def _move(self, machine: InvocationMachine, target: AttemptState) -> bool:
        """Move machine to target, keeping the counts; an illegal move is logged and refused."""
        before = machine.state
        try:
            if target is AttemptState.STARTING:
                raise IllegalTransition(machine.invocation_id, before, target)  # only through _begin
            if before in (AttemptState.STARTING, AttemptState.RUNNING) and target is not AttemptState.RUNNING:
                machine.leave_worker(target)
            else:
                machine.move(target)
        except IllegalTransition as exc:
            log.error("invoker: %s (refused)", exc)
            return False
        self._count(before, -1)
        self._count(target, +1)
        inv = machine.invocation_id
        if target is AttemptState.ENDED and self._machines.get(inv) is machine:
            del self._machines[inv]
        return True

    def _count(self, state: AttemptState, delta: int) -> None:
        if state is AttemptState.QUEUED:
            self._queued += delta
        elif state in ON_WORKER:
            self._on_worker += delta

    # ------------------------------------------------------------------ effects from the partitions

    def on_effects(self, partition: int, effects: Sequence[Effect]) -> None:
        touched: set[str] = set()
        for effect in effects:
            if isinstance(effect, StartInvocation):
                if self._enqueue(Runnable(partition, effect.invocation_id, effect.service, effect.tenant,
                                          effect.priority, effect.handler, effect.deployment)):
                    touched.add(effect.service)
            elif isinstance(effect, CompleteEntry):
                attempt = self._attempt(effect.invocation_id)
                if attempt is not None and attempt.session is not None:
                    frame = wpb.CompleteFrame(invocation_id=effect.invocation_id, attempt=attempt.number,
                                              index=effect.index)
                    if copy_result(effect.entry, frame) is None:
                        frame.void.SetInParent()
                    self._send(attempt.session, wpb.RuntimeFrame(complete=frame))
            elif isinstance(effect, CancelAttempt):
                attempt = self._attempt(effect.invocation_id)
                if attempt is not None and attempt.session is not None:
                    self._send(attempt.session, wpb.RuntimeFrame(
                        cancel=wpb.CancelFrame(invocation_id=effect.invocation_id, attempt=attempt.number)))
            elif isinstance(effect, AbortAttempt):
                attempt = self._attempt(effect.invocation_id)
                if attempt is not None:
                    session = attempt.session
                    self._end_attempt(attempt, abort_reason=effect.reason, lost=effect.restart)
                    if effect.restart and session is not None:
                        self._spawn(self._restart_after(attempt, session, 0.0))
                elif effect.restart:
                    # The attempt already ended (its last frames were refused): start it again
                    # from the journal, or it would stay RUNNING with nobody running it.
                    status = self.partitions[partition].status(effect.invocation_id)
                    if status is not None and status.status == pb.RUNNING and self._enqueue(Runnable(
                            partition, effect.invocation_id, status.target.service, status.tenant,
                            status.priority, status.target.handler, ref_text(status.deployment))):
                        touched.add(status.target.service)
        for service in touched:
            self._dispatch(service)

    def on_leadership(self, partition: int, leading: bool) -> None:
        if leading:
            return
        for queue in self._queues.values():
            for item in queue.remove_partition(partition):
                machine = self._machines.get(item.invocation_id)
                if machine is not None and machine.state is AttemptState.QUEUED:
                    self._move(machine, AttemptState.ENDED)
        for attempt in [m for m in self._machines.values()
                        if m.runnable.partition == partition and m.session is not None]:
            self._end_attempt(attempt, abort_reason="partition leadership lost")

    # ------------------------------------------------------------------ scheduling

    def _enqueue(self, item: Runnable) -> bool:
        """Queue item unless it is queued or on a worker already (a lost one may be queued again).
        A queued one whose pin changed (an operator moved it) moves to its new version's queue."""
        inv = item.invocation_id
        machine = self._machines.get(inv)
        if machine is None:
            self._machines[inv] = InvocationMachine(item)  # born QUEUED
            self._count(AttemptState.QUEUED, +1)
        elif machine.state in (AttemptState.LOST, AttemptState.WAITING_FOR_RETRY):
            machine.runnable = item
            self._move(machine, AttemptState.QUEUED)
        elif machine.state is AttemptState.QUEUED and machine.runnable.deployment != item.deployment:
            old = self._queues.get((machine.runnable.service, machine.runnable.deployment))
            if old is not None:
                old.remove(inv)
            machine.runnable = item
        else:
            return False
        queue = self._queues.get((item.service, item.deployment))
        if queue is None:
            queue = self._queues[(item.service, item.deployment)] = FairQueue(self.limits.weight)
        queue.push(item)
        return True

    def _target(self, service: str, deployment: str) -> str | None:
        """The version work of (service, deployment) runs on: its pin, else the service's latest."""
        return deployment or self.registry.latest(service)

    def _dispatch(self, service: str) -> None:
        for key in [k for k in self._queues if k[0] == service]:
            self._dispatch_queue(*key)

    def _dispatch_queue(self, service: str, deployment: str) -> None:
        queue = self._queues.get((service, deployment))
        target = self._target(service, deployment)
        while queue and target is not None:
            session = self._pick_worker(service, target)
            if session is None:
                return
            # One instant for the eligibility scan and the token wait: with two clock reads, a
            # token arriving between them (the refill timer fires right at that boundary) made the
            # scan refuse and the wait say "no bucket is empty", and the queue stalled.
            now = time.monotonic()
            item = queue.pop(lambda it, now=now: self.limits.can_start(it.tenant, it.service, it.handler, now))
            if item is None:
                self._retry_when_tokens(now)
                return
            machine = self._machines.get(item.invocation_id)
            if machine is None or machine.state is not AttemptState.QUEUED:
                log.error("invoker: %s was in a queue while %s (dropped)", item.invocation_id,
                          machine.state.value if machine else "unknown")
                continue
            self._begin(machine, session)

    def deployments_changed(self) -> None:
        """A version was promoted, drained or removed: the latest versions may differ now."""
        self._dispatch_all()

    def limits_changed(self) -> None:
        """Limits were raised or lowered: start what may now start."""
        self._dispatch_all()

    def _dispatch_all(self) -> None:
        for key in list(self._queues):
            self._dispatch_queue(*key)

    def _retry_when_tokens(self, now: float) -> None:
        """Rate-limited work waits for its bucket to refill: dispatch again then."""
        if self._token_timer is not None:
            return
        wait = self.limits.next_token_in(now)
        if wait is None:
            return

        def fire() -> None:
            self._token_timer = None
            self._dispatch_all()

        self._token_timer = asyncio.get_running_loop().call_later(max(wait, 0.001), fire)

    def _pick_worker(self, service: str, deployment: str) -> WorkerSession | None:
        best = None
        for session in self.sessions.values():
            if session.deployment == deployment and service in session.services and session.free_slots > 0:
                if best is None or session.active * best.concurrency < best.active * session.concurrency:
                    best = session
        return best

    def _begin(self, machine: InvocationMachine, session: WorkerSession) -> None:
        """QUEUED -> STARTING: take a slot on session under a fresh attempt number, then send the start."""
        item = machine.runnable
        try:
            machine.start(next(self._numbers), session)
        except IllegalTransition as exc:
            log.error("invoker: %s (refused)", exc)
            return
        self._count(AttemptState.QUEUED, -1)
        self._count(AttemptState.STARTING, +1)
        session.active += 1
        self.limits.started(item.tenant, item.service, item.handler)
        self._send_start(machine)

    async def _restart_after(self, lost: InvocationMachine, old: WorkerSession, delay: float) -> None:
        """Queue the lost invocation again once the old worker's in-flight appends are applied, after delay."""
        item = lost.runnable
        results = await asyncio.gather(*list(old.inflight), return_exceptions=True)
        last = max((r[-1] for r in results if isinstance(r, range) and len(r)), default=0)
        partition = self.partitions[item.partition]
        await partition.wait_applied(last)
        if lost.state is AttemptState.LOST and self._machines.get(item.invocation_id) is lost:
            self._move(lost, AttemptState.WAITING_FOR_RETRY)
        if delay:
            await asyncio.sleep(delay)
        status = partition.status(item.invocation_id) if partition.is_leader else None
        if status is not None:  # its pin as applied now (its first attempt's, or an operator's move)
            item.deployment = ref_text(status.deployment)
        if partition.is_leader and self._enqueue(item):
            self._dispatch(item.service)
        elif lost.state is AttemptState.WAITING_FOR_RETRY and self._machines.get(item.invocation_id) is lost:
            self._move(lost, AttemptState.ENDED)  # not the leader any more: the new leader starts it

    def _send_start(self, attempt: InvocationMachine) -> None:
        """Read the journal and state as applied right now and send them (no await: a consistent view)."""
        item = attempt.runnable
        session = attempt.session
        assert session is not None
        partition = self.partitions[item.partition]  # synchronous reads: one consistent view
        status = partition.status(item.invocation_id)
        if status is None or status.status != pb.RUNNING:
            self._end_attempt(attempt)  # killed, paused or purged meanwhile
            self._dispatch(item.service)
            return
        pinned = ref_text(status.deployment)
        if pinned and pinned != session.deployment:  # moved onto other code since it was queued
            self._end_attempt(attempt)
            item.deployment = pinned
            if self._enqueue(item):
                self._dispatch(item.service)
            return
        attempt.pin_due = "" if pinned else session.deployment
        start = wpb.StartFrame(
            invocation_id=item.invocation_id,
            attempt=attempt.number,
            target=status.target,
            handler_kind=status.handler_kind,
            input=status.input,
            tenant=status.tenant,
            cancelled=status.cancel_requested,
            state_complete=True,
        )
        start.headers.update(status.headers)
        start.stream_limits.CopyFrom(self._stream_limits)
        start.sandbox_network.extend(self.config.tenant_network.get(status.tenant, ()))
        if status.journal_length:  # a first attempt has no journal to read
            start.journal.extend(partition.journal(item.invocation_id))
        if status.has_streams:  # what earlier attempts wrote: a replay skips it, the limits count it
            writes, start.stream_bytes, start.stream_events = partition.stream_progress(item.invocation_id)
            start.stream_writes.update(writes)
        if status.handler_kind != pb.SERVICE:
            budget = self.config.eager_state_bytes
            for name, value in partition.object_state(status.tenant, status.target.service, status.target.key):
                budget -= len(name) + len(value)
                if budget < 0:
                    start.state_complete = False
                    break
                start.state.add(key=name, value=value)
        self.stats["started"] += 1
        session.started += 1
        self._move(attempt, AttemptState.RUNNING)  # before the send: an overflow loses a running attempt
        self._send(session, wpb.RuntimeFrame(start=start))

    def _end_attempt(self, attempt: InvocationMachine, abort_reason: str | None = None, lost: bool = False) -> None:
        """End the attempt (LOST when it is to be restarted, else ENDED) and free its worker slot,
        telling the worker to drop it, if asked."""
        inv = attempt.runnable.invocation_id
        session = attempt.session
        if session is not None and self._move(attempt, AttemptState.LOST if lost else AttemptState.ENDED):
            session.active -= 1
            item = attempt.runnable
            self.limits.finished(item.tenant, item.service, item.handler)
            if abort_reason is not None:
                self._send(session, wpb.RuntimeFrame(
                    abort=wpb.AbortFrame(invocation_id=inv, attempt=attempt.number, reason=abort_reason)))
            self._dispatch_all()

    def _send(self, session: WorkerSession, frame: wpb.RuntimeFrame) -> None:
        try:
            session.send(frame)
        except SessionOverflow:
            log.warning("dropping worker %s: it does not read its stream", session.name)
            self.remove_session(session)

    def _spawn(self, coro: object) -> asyncio.Task[object]:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("invoker task failed", exc_info=task.exception())

    # ------------------------------------------------------------------ workers

    def add_session(self, session: WorkerSession) -> None:
        self.sessions[session.id] = session
        log.info("worker %s connected (%s, concurrency %d)", session.name, session.deployment_id,
                 session.concurrency)
        for service in session.services:
            self._dispatch(service)

    def remove_session(self, session: WorkerSession) -> None:
        if self.sessions.pop(session.id, None) is None:
            return
        session.close()
        lost = [m for m in self._machines.values() if m.session is session]
        log.info("worker %s gone with %d attempts in flight", session.name, len(lost))
        for attempt in lost:
            self._end_attempt(attempt, lost=True)
            if session.draining:  # it shut down on purpose: hand its attempts to others at once
                self.stats["released"] += 1
                self._spawn(self._restart_after(attempt, session, 0.0))
                continue
            inv = attempt.runnable.invocation_id
            tries = self._lost.get(inv, 0) + 1
            if len(self._lost) < self.config.max_queued:
                self._lost[inv] = tries
            delay = self._lost_backoff.delay(tries)
            self.stats["lost"] += 1
            self._spawn(self._restart_after(attempt, session, delay))

    def drain_session(self, session: WorkerSession) -> None:
        """The worker is shutting down: start nothing more on it, and tell it so (DrainedFrame; the
        stream is ordered, so no StartFrame follows). What it still runs may finish there."""
        if session.draining:
            return
        session.draining = True
        log.info("worker %s draining with %d attempts running", session.name, session.active)
        self._send(session, wpb.RuntimeFrame(drained=wpb.DrainedFrame(running=session.active)))

    # ------------------------------------------------------------------ frames from workers

    def on_frames(self, session: WorkerSession, frames: Sequence[wpb.WorkerFrame]) -> None:
        """Turn a worker's frames into log appends, one batch per partition, in the frames' order."""
        batches: dict[int, list[pb.Envelope]] = {}
        acks: dict[int, list[wpb.AckFrame]] = {}
        released: list[InvocationMachine] = []
        for frame in frames:
            kind = frame.WhichOneof("frame")
            body = getattr(frame, kind) if kind else None
            if kind is None or kind == "register":
                continue
            if kind == "drain":
                self.drain_session(session)
                continue
            attempt = self._machines.get(body.invocation_id)
            if attempt is None or not attempt.is_running(body.attempt, session):
                continue  # a stale attempt: fenced
            partition = attempt.runnable.partition
            envs = batches.setdefault(partition, [])
            inv = body.invocation_id
            before = len(envs)
            run_ms = int((time.monotonic() - attempt.started_at) * 1000)
            if kind == "entry":
                envs.append(self._entry_record(body))
                if not body.entry.HasField("output"):  # an output is followed by End: nobody waits for its ack
                    acks.setdefault(partition, []).append(
                        wpb.AckFrame(invocation_id=inv, attempt=body.attempt, index=body.index))
            elif kind == "end":
                envs.append(pb.Envelope(end=pb.End(invocation_id=inv, run_ms=run_ms)))
                self.stats["ended"] += 1
                self._lost.pop(inv, None)
                self._end_attempt(attempt)
            elif kind == "suspend":
                envs.append(pb.Envelope(suspend=pb.Suspend(invocation_id=inv, waiting_on=body.waiting_on,
                                                           run_ms=run_ms)))
                self.stats["suspended"] += 1
                self._end_attempt(attempt)
            elif kind == "fail":
                failed = self._failure_record(attempt, body)
                failed.run_ms = run_ms
                envs.append(pb.Envelope(attempt_failed=failed))
                self.stats["failed"] += 1
                self._end_attempt(attempt)
            elif kind == "stream":
                envs.append(pb.Envelope(stream_write=pb.StreamWrite(invocation_id=inv, chunks=body.chunks)))
            elif kind == "release":
                log.info("worker %s released %s (%s)", session.name, inv, body.reason)
                self.stats["released"] += 1
                self._end_attempt(attempt, lost=True)
                released.append(attempt)
            if attempt.pin_due and len(envs) > before:  # the attempt's first record pins the invocation
                record = envs[-1]
                getattr(record, record.WhichOneof("body") or "").pin.CopyFrom(parse_ref(attempt.pin_due))
                attempt.runnable.deployment = attempt.pin_due
                attempt.pin_due = ""
        for partition, envs in batches.items():
            if envs:
                task = self._spawn(self._append(session, partition, envs, acks.get(partition, [])))
                session.inflight.add(task)
                task.add_done_callback(session.inflight.discard)
        for attempt in released:  # after the batches: the restart waits for their appends too
            self._spawn(self._restart_after(attempt, session, 0.0))

    async def _append(self, session: WorkerSession, partition: int, envs: list[pb.Envelope],
                      acks: list[wpb.AckFrame]) -> range:
        # No await before the log append: appends reach the log in the order of the frames.
        part = self.partitions.get(partition)
        if part is None:  # no longer led here (it moved): its new leader restarts the attempt
            return range(0)
        epoch = part.leader_epoch
        lsns = await part.append_as_leader(envs)
        if acks and self.config.ack_after_apply:
            await part.wait_applied(lsns[-1])
            if part.leader_epoch != epoch:
                return lsns  # deposed meanwhile: the new leader replays what was applied, and resumes
        for ack in acks:
            attempt = self._machines.get(ack.invocation_id)
            if attempt is not None and attempt.is_running(ack.attempt, session):
                self._send(session, wpb.RuntimeFrame(ack=ack))
        return lsns

    def _entry_record(self, frame: wpb.EntryFrame) -> pb.Envelope:
        entry = frame.entry
        for field_name in ("call", "send"):
            if entry.HasField(field_name):
                call = getattr(entry, field_name)
                info = self.registry.handler(call.target.service, call.target.handler)
                call.handler_kind = info.kind if info is not None else pb.HANDLER_KIND_UNSPECIFIED
                if info is not None and info.keyed and not call.target.key:
                    call.handler_kind = pb.HANDLER_KIND_UNSPECIFIED  # a keyed handler needs a key
        return pb.Envelope(append_entry=pb.AppendEntry(invocation_id=frame.invocation_id, index=frame.index,
                                                        entry=entry, step_try_token=frame.step_try_token))

    def _failure_record(self, attempt: InvocationMachine, frame: wpb.FailFrame) -> pb.AttemptFailed:
        record = pb.AttemptFailed(invocation_id=frame.invocation_id, failure=frame.failure)
        item = attempt.runnable
        partition = self.partitions[item.partition]
        status = partition.status(item.invocation_id)
        if frame.journal_mismatch:
            record.pause = True
            if status is not None and attempt.session is not None:
                record.failure.message += _versions_involved(status, attempt.session.deployment)
            return record
        info = (self.registry.handler(status.target.service, status.target.handler, ref_text(status.deployment))
                if status else None)
        policy = info.retry if info is not None and info.retry.initial_interval_ms else _DEFAULT_RETRY
        failures = partition.failed_attempts(item.invocation_id) + 1
        now_ms = int(time.time() * 1000)
        backoff = _failure_backoff(policy)
        exhausted = backoff.exhausted(failures)
        if status is not None and policy.max_duration_ms:
            exhausted |= now_ms - status.created_at_ms >= policy.max_duration_ms
        if exhausted:
            record.pause = policy.pause_on_exhaustion
            record.retry_at_ms = 0
            return record
        record.retry_at_ms = now_ms + max(1, int(backoff.delay(failures)))
        return record


def _versions_involved(status: pb.InvocationStatus, replayed_on: str) -> str:
    """The deployment versions a divergence involves, for its message."""
    first = ref_text(status.first_deployment) or "an unpinned attempt"
    moves = "".join(f", moved to {ref_text(m.to_deployment)} ({m.reason})" for m in status.moves)
    return f" (journal written on {first}{moves}; replayed on {replayed_on})"


def _failure_backoff(policy: wpb.RetryPolicy) -> Backoff:
    """A handler's registered retry policy as a backoff in milliseconds (0 fields = defaults)."""
    try:
        return Backoff(policy.initial_interval_ms, policy.factor or 2.0, policy.max_interval_ms or None,
                       policy.max_attempts or None, _FAILURE_JITTER)
    except BackoffError as exc:  # a worker registered a policy the SDK would refuse (factor < 1)
        log.warning("retry policy %s is invalid (%s): using the default", policy, exc)
        return _failure_backoff(_DEFAULT_RETRY)
