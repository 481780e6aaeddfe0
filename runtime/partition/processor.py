"""PartitionProcessor: follows one partition's log, applies it to the store, and leads it.

Restarting is opening the store, reading its applied LSN and replaying the log from there. Once
caught up, the processor announces itself leader with a new epoch through the log; when that
record applies, it re-derives what is still owed (invocations that were running, due timers,
undelivered outbox rows) and from then on carries out the effects of every record it applies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from endure.proto import records_pb2 as pb
from endure.runtime.log import LogRecord, LogUnavailable, VirtualLog
from endure.runtime.partition import keys
from endure.runtime.partition.api import Partition
from endure.runtime.partition.effects import ArmTimer, DeliverOutbox, Effect, StartInvocation
from endure.runtime.partition.shuffle import Shuffle
from endure.runtime.partition.state_machine import StateMachine, apply_batch
from endure.runtime.partition.store import PartitionStore
from endure.runtime.partition.timer_service import TimerService, now_ms
from endure.runtime.tasks import cancel_and_wait

log = logging.getLogger("endure.partition")

_RETRY_MIN_S = 0.05  # backoff of the apply loop while its log is unavailable
_RETRY_MAX_S = 2.0


class EffectSink(Protocol):
    """Who carries out the leader's effects: the invoker and the ingress's waiting clients."""

    def on_effects(self, partition: int, effects: Sequence[Effect]) -> None: ...

    def on_leadership(self, partition: int, leading: bool) -> None: ...


class NotLeader(Exception):
    """An append that only the partition's leader may make was asked of a follower."""


class PartitionProcessor:
    def __init__(
        self,
        partition: int,
        virtual_log: VirtualLog,
        store: PartitionStore,
        state_machine: StateMachine,
        sink: EffectSink,
        partition_of: Callable[[int], Partition],
        node: str = "node-0",
        epoch: int | None = None,
    ) -> None:
        self.partition = partition
        self.log = virtual_log
        self.store = store
        self.state_machine = state_machine
        self._sink = sink
        # Looked up at each delivery: the target may be built after this processor, or be remote.
        self._partition_of = partition_of
        self._node = node
        self.applied_lsn = store.applied_lsn()
        self.epoch = 0  # the leader epoch this processor holds; 0 = not (yet) leader
        # The epoch to announce: given by a cluster's partition table, else the store's last + 1.
        self._assigned_epoch = epoch
        self._stopping: asyncio.Future[object] | None = None  # a step-down's stop of timers and shuffle
        self._announced = 0
        self._applied_waiters: dict[int, list[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.timers = TimerService(store, self._fire_timers)
        self.shuffle = Shuffle(partition, store, self._deliver, self.append)
        self.records_applied = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"partition-{self.partition}")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:  # never silently: nothing applies any more
            log.error("partition %d: the apply loop failed", self.partition, exc_info=task.exception())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._stopping is not None:
            await asyncio.gather(self._stopping, return_exceptions=True)
        await self.timers.stop()
        await self.shuffle.stop()
        if self.epoch:
            self.epoch = 0
            self._sink.on_leadership(self.partition, False)
        for waiters in self._applied_waiters.values():
            for fut in waiters:
                if not fut.done():
                    fut.cancel()
        self._applied_waiters.clear()

    @property
    def node(self) -> str:
        """The name of the node this processor runs on (what its leader announcements carry)."""
        return self._node

    @property
    def is_leader(self) -> bool:
        return self.epoch != 0

    async def wait_applied(self, lsn: int) -> None:
        """Return once every record up to lsn is applied to the store."""
        if self.applied_lsn >= lsn:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._applied_waiters.setdefault(lsn, []).append(fut)
        await fut

    # ------------------------------------------------------------------ appends

    async def append(self, envelopes: Sequence[pb.Envelope], wait: bool = True) -> range:
        """Append records as this partition's leader: stamped with its epoch, fenced if it is stale."""
        if not self.epoch:
            raise NotLeader(f"partition {self.partition} is not led by this node")
        ts = now_ms()
        payloads = []
        for env in envelopes:
            env.header.leader_epoch = self.epoch
            if not env.header.timestamp_ms:
                env.header.timestamp_ms = ts
            payloads.append(env.SerializeToString())
        return await self.log.append(payloads, wait=wait)

    async def _deliver(self, target: int, envelopes: Sequence[pb.Envelope]) -> None:
        """Hand outbox messages to their partition as any outside writer would (Partition.append)."""
        await self._partition_of(target).append(envelopes)

    async def _fire_timers(self, timer_keys: list[str]) -> None:
        await self.append([pb.Envelope(timer_fired=pb.TimerFired(timer_key=k)) for k in timer_keys])

    # ------------------------------------------------------------------ the apply loop

    async def _run(self) -> None:
        catch_up_to = self.log.tail() - 1  # the last record that existed when we started
        delay = _RETRY_MIN_S
        while True:
            try:
                if not self._announced and self.applied_lsn >= catch_up_to:
                    await self._announce()
                async for batch in self.log.reader(self.applied_lsn + 1):
                    self._apply_batch(batch)
                    delay = _RETRY_MIN_S
                    if not self._announced and self.applied_lsn >= catch_up_to:
                        await self._announce()
            except LogUnavailable as exc:
                # A replicated log without quorum (or electing a leader): follow it again from the
                # last applied record once it answers; the apply loop must outlive the outage.
                log.warning("partition %d: the log is unavailable (%s); reading again in %.2f s",
                            self.partition, exc, delay)
                if not self.epoch:
                    self._announced = 0  # the announcement may not have been written: make it again
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)

    async def _announce(self) -> None:
        self._announced = self._assigned_epoch or self.store.leader_epoch() + 1
        env = pb.Envelope(
            header=pb.Header(timestamp_ms=now_ms()),
            announce_leader=pb.AnnounceLeader(epoch=self._announced, node=self._node),
        )
        await self.log.append([env.SerializeToString()])

    def _apply_batch(self, batch: list[LogRecord]) -> None:
        tx = self.store.transaction()
        outcome = apply_batch(self.state_machine, tx, batch, announced_epoch=self._announced)
        effects = outcome.effects
        became_leader = outcome.announced
        last = batch[-1].lsn
        tx.commit(last)
        self.applied_lsn = last
        self.records_applied += len(batch)
        if self.epoch and outcome.newest_epoch > self.epoch:
            self._step_down(outcome.newest_epoch)  # another node leads now: its records win
        if became_leader:
            self._become_leader()
            # Effects of records after the announcement in this batch: starts, timers and outbox
            # were re-derived from the store just now; the rest (client answers, completions,
            # cancel / abort) exist only here.
            self._run_effects([e for e in effects if not isinstance(e, StartInvocation)])
        elif self.epoch:
            self._run_effects(effects)
        for lsn in [k for k in self._applied_waiters if k <= last]:
            for fut in self._applied_waiters.pop(lsn):
                if not fut.done():
                    fut.set_result(None)

    def _run_effects(self, effects: list[Effect]) -> None:
        rest = []
        for effect in effects:
            if isinstance(effect, ArmTimer):
                self.timers.arm(effect.key, effect.wake_at_ms)
            elif isinstance(effect, DeliverOutbox):
                self.shuffle.enqueue(effect.message)
            else:
                rest.append(effect)
        if rest:
            self._sink.on_effects(self.partition, rest)

    def _step_down(self, newer: int) -> None:
        log.warning("partition %d: epoch %d announced by another leader; stepping down from epoch %d",
                    self.partition, newer, self.epoch)
        self.epoch = 0
        self._sink.on_leadership(self.partition, False)
        self._stopping = asyncio.ensure_future(asyncio.gather(self.timers.stop(), self.shuffle.stop()))

    def _become_leader(self) -> None:
        self.epoch = self._announced
        log.info("partition %d: leader with epoch %d at LSN %d", self.partition, self.epoch, self.applied_lsn)
        self._sink.on_leadership(self.partition, True)
        owed: list[Effect] = []
        for raw_key, _ in self.store.scan(keys.RUNNING):
            status = self.store.status(raw_key[len(keys.RUNNING) :].decode())
            if status is not None and status.status == pb.RUNNING:
                owed.append(StartInvocation.of(status))
        self.timers.start()
        self.shuffle.start()
        if owed:
            self._sink.on_effects(self.partition, owed)
