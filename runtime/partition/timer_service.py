"""TimerService: fires a partition's durable timers, keeping only the next few in memory.

Timers live in the partition store ordered by wake time. The service loads a window of the
earliest ones, sleeps until the first is due, and fires it by appending a TimerFired record; the
state machine deletes the row when it applies that record, so a timer fired twice (say, around a
restart) changes the state once. Timers armed beyond the loaded window stay in the store until
the window reaches them.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Awaitable, Callable

from endure.proto import records_pb2 as pb
from endure.runtime.partition import keys
from endure.runtime.partition.store import PartitionStore
from endure.runtime.tasks import cancel_and_wait
from endure.sdk.backoff import Backoff

log = logging.getLogger("endure.timers")
_FIRE_RETRY = Backoff(0.1, factor=1.0)  # failed firings are retried after a constant pause


def now_ms() -> int:
    return int(time.time() * 1000)


class TimerService:
    def __init__(
        self,
        store: PartitionStore,
        fire: Callable[[list[str]], Awaitable[None]],
        window: int = 1024,
    ) -> None:
        self._store = store
        self._fire = fire
        self._window = window
        self._heap: list[tuple[int, str]] = []
        self._in_heap: set[str] = set()
        self._loaded_upto: str | None = None  # every timer key <= this is in the heap or fired
        self._exhausted = False  # the store held nothing beyond the window when it was loaded
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reload()
        self._task = asyncio.create_task(self._run(), name="timers")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    def pending(self) -> int:
        return len(self._heap)

    def arm(self, key: str, wake_at_ms: int) -> None:
        """A timer was written to the store; keep it in memory if it falls inside the window."""
        if key in self._in_heap:
            return
        if self._exhausted or (self._loaded_upto is not None and key <= self._loaded_upto):
            self._push(key, wake_at_ms)
            if len(self._heap) > 2 * self._window:
                self._shrink()
        if self._heap and self._heap[0][1] == key:
            self._wake.set()

    def _push(self, key: str, wake_at_ms: int) -> None:
        heapq.heappush(self._heap, (wake_at_ms, key))
        self._in_heap.add(key)

    def _shrink(self) -> None:
        """Keep the earliest `window` timers; the rest are reloaded from the store later."""
        keep = heapq.nsmallest(self._window, self._heap, key=lambda t: t[1])
        self._heap = keep
        heapq.heapify(self._heap)
        self._in_heap = {k for _, k in keep}
        self._loaded_upto = max(self._in_heap)
        self._exhausted = False

    def _reload(self) -> None:
        start = keys.timer(self._loaded_upto) + b"\x00" if self._loaded_upto else None
        rows = list(self._store.scan(keys.TIMER, start=start, limit=self._window))
        for raw_key, raw in rows:
            key = raw_key[len(keys.TIMER) :].decode()
            timer = pb.Timer()
            timer.ParseFromString(raw)
            if key not in self._in_heap:
                self._push(key, timer.wake_at_ms)
            self._loaded_upto = key
        self._exhausted = len(rows) < self._window

    async def _run(self) -> None:
        while True:
            if not self._heap and not self._exhausted:
                self._reload()
            if not self._heap:
                self._wake.clear()
                await self._wake.wait()
                continue
            wake_at, _ = self._heap[0]
            delay = (wake_at - now_ms()) / 1000
            if delay > 0:
                self._wake.clear()
                try:  # asyncio.timeout, not wait_for: 3.11's wait_for can lose a cancellation
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            due = []
            now = now_ms()
            while self._heap and self._heap[0][0] <= now and len(due) < 512:
                _, key = heapq.heappop(self._heap)
                self._in_heap.discard(key)
                due.append(key)
            try:
                await self._fire(due)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("firing %d timers failed; will retry", len(due))
                for key in due:
                    self._push(key, now)
                await asyncio.sleep(_FIRE_RETRY.interval(1))
