"""CompletionWaiters: clients blocked on an invocation's result, answered when its End applies.

One per node, shared by its LocalPartitions (`Partition.await_completion`) and answered by the
node's effect sink from InvocationCompleted effects; clients on other nodes wait here too, through
the AwaitCompletion RPC."""

from __future__ import annotations

import asyncio

from endure.proto import records_pb2 as pb


class TooManyWaiters(Exception):
    """More clients are waiting for results than the node is configured to hold (RESOURCE_EXHAUSTED)."""


class StreamWaiters:
    """Subscribers waiting for an invocation's next stream events (or its end), woken by the node's
    effect sink from StreamAppended and InvocationCompleted; bounded like completion waiters."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def register(self, invocation_id: str) -> asyncio.Future[None]:
        if self._count >= self.capacity:
            raise TooManyWaiters(f"{self._count} subscribers are already waiting for stream events "
                                 f"(limit {self.capacity})")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(invocation_id, set()).add(fut)
        self._count += 1
        return fut

    def unregister(self, invocation_id: str, fut: asyncio.Future[None]) -> None:
        waiting = self._waiters.get(invocation_id)
        if waiting and fut in waiting:
            waiting.discard(fut)
            self._count -= 1
            if not waiting:
                del self._waiters[invocation_id]

    def wake(self, invocation_id: str) -> None:
        for fut in self._waiters.pop(invocation_id, ()):
            self._count -= 1
            if not fut.done():
                fut.set_result(None)


class CompletionWaiters:
    """Also holds the node's stream subscribers (`streams`), counted apart with the same bound."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.streams = StreamWaiters(capacity)
        self._waiters: dict[str, list[asyncio.Future[pb.InvocationStatus]]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def register(self, invocation_id: str) -> asyncio.Future[pb.InvocationStatus]:
        if self._count >= self.capacity:
            raise TooManyWaiters(f"{self._count} clients are already waiting for results (limit {self.capacity})")
        fut: asyncio.Future[pb.InvocationStatus] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(invocation_id, []).append(fut)
        self._count += 1
        return fut

    def unregister(self, invocation_id: str, fut: asyncio.Future[pb.InvocationStatus]) -> None:
        waiting = self._waiters.get(invocation_id)
        if waiting and fut in waiting:
            waiting.remove(fut)
            self._count -= 1
            if not waiting:
                del self._waiters[invocation_id]

    def complete(self, invocation_id: str, status: pb.InvocationStatus) -> None:
        for fut in self._waiters.pop(invocation_id, ()):
            self._count -= 1
            if not fut.done():
                fut.set_result(status)
