"""Shuffle: the leader's delivery of outbox messages to their partitions' logs.

Messages go out in outbox order, each stamped with this partition as producer and its outbox
sequence, so a receiver drops re-deliveries (after a restart the whole outbox is sent again).
Per target the sequences only grow, which is what the receiver's dedup needs. Delivered rows are
then truncated through the log, like every other change of the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from endure.proto import records_pb2 as pb
from endure.runtime.partition import keys
from endure.runtime.partition.store import PartitionStore
from endure.runtime.tasks import cancel_and_wait
from endure.sdk.backoff import Backoff

log = logging.getLogger("endure.shuffle")
_DELIVERY_RETRY = Backoff(0.2, factor=1.0)  # a failed delivery is retried after a constant pause

Deliver = Callable[[int, Sequence[pb.Envelope]], Awaitable[object]]
AppendOwn = Callable[[Sequence[pb.Envelope]], Awaitable[object]]


class Shuffle:
    def __init__(self, partition: int, store: PartitionStore, deliver: Deliver, append_own: AppendOwn,
                 capacity: int = 10_000) -> None:
        self._partition = partition
        self._store = store
        self._deliver = deliver  # (target partition, envelopes) -> durable, as they are
        self._append_own = append_own  # envelopes -> durable in this partition's log, as its leader
        self._capacity = capacity
        self._queue: deque[pb.OutboxMessage] = deque()
        self._overflow_from: int | None = None  # rows from this sequence on wait in the store only
        self._last_queued = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._truncating: asyncio.Task[None] | None = None
        self._delivered_upto = 0  # highest sequence durably delivered, not yet truncated
        self.producer = f"partition-{partition}"

    def start(self) -> None:
        self._overflow_from = 0  # re-send everything the store still holds
        self._task = asyncio.create_task(self._run(), name=f"shuffle-{self._partition}")
        self._wake.set()

    async def stop(self) -> None:
        await cancel_and_wait(self._task, self._truncating)

    def enqueue(self, message: pb.OutboxMessage) -> None:
        if self._overflow_from is not None or len(self._queue) >= self._capacity:
            if self._overflow_from is None:
                self._overflow_from = message.sequence
            return
        self._queue.append(message)
        self._last_queued = message.sequence
        self._wake.set()

    def _refill(self) -> None:
        start = self._overflow_from or 0
        start = max(start, self._last_queued + 1)
        for _, raw in self._store.scan(keys.OUTBOX, start=keys.outbox(start), limit=self._capacity):
            msg = pb.OutboxMessage()
            msg.ParseFromString(raw)
            self._queue.append(msg)
            self._last_queued = msg.sequence
        if len(self._queue) < self._capacity:
            self._overflow_from = None

    async def _run(self) -> None:
        while True:
            if not self._queue and self._overflow_from is not None:
                self._refill()
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), 1000))]
            by_target: dict[int, list[pb.Envelope]] = {}
            for msg in batch:
                env = pb.Envelope()
                env.CopyFrom(msg.envelope)
                env.header.producer = self.producer
                env.header.sequence = msg.sequence
                env.header.leader_epoch = 0
                by_target.setdefault(msg.partition, []).append(env)
            try:
                await asyncio.gather(*(self._deliver(t, envs) for t, envs in by_target.items()))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("partition %d: outbox delivery failed; retrying", self._partition)
                self._queue.extendleft(reversed(batch))
                await asyncio.sleep(_DELIVERY_RETRY.interval(1))
                continue
            self._delivered_upto = batch[-1].sequence
            if self._truncating is None or self._truncating.done():
                self._truncating = asyncio.create_task(self._truncate())

    async def _truncate(self) -> None:
        """Truncate what was delivered, off the delivery path: one truncation in flight at a time,
        covering everything delivered by the time it starts (a lost one is redone by the next)."""
        while True:
            upto = self._delivered_upto
            try:
                await self._append_own([pb.Envelope(outbox_truncate=pb.OutboxTruncate(up_to=upto))])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("partition %d: outbox truncation failed; will retry", self._partition)
                return
            if self._delivered_upto == upto:
                return
