"""FairQueue: the runnable invocations of one service, in the order the invoker starts them.

Deficit round-robin across tenants (weighted), so a tenant that floods the queue gets its share
and no more; within a tenant, high priority before normal before low; then arrival order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from endure.proto import records_pb2 as pb

_ORDER = (pb.HIGH, pb.NORMAL, pb.LOW)


@dataclass(slots=True)
class Runnable:
    partition: int
    invocation_id: str
    service: str
    tenant: str
    priority: int
    handler: str = ""
    deployment: str = ""  # "id@version" it is pinned to; "" = not run yet: its service's latest version


@dataclass(slots=True)
class _TenantQueue:
    by_priority: dict[int, deque[Runnable]] = field(default_factory=lambda: {p: deque() for p in _ORDER})
    deficit: float = 0.0
    size: int = 0

    def head(self) -> deque[Runnable]:
        for p in _ORDER:
            q = self.by_priority[p]
            if q:
                return q
        raise IndexError("empty tenant queue")

    def pop(self) -> Runnable:
        self.size -= 1
        return self.head().popleft()


class FairQueue:
    def __init__(self, weight: Callable[[str], float] = lambda _tenant: 1.0) -> None:
        self._weight = weight
        self._tenants: dict[str, _TenantQueue] = {}
        self._ring: deque[str] = deque()  # tenants with queued work, in round-robin order
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def depth(self, tenant: str) -> int:
        q = self._tenants.get(tenant)
        return q.size if q else 0

    def depths(self) -> dict[str, int]:
        return {tenant: q.size for tenant, q in self._tenants.items()}

    def push(self, item: Runnable) -> None:
        q = self._tenants.get(item.tenant)
        if q is None:
            q = self._tenants[item.tenant] = _TenantQueue()
        if q.size == 0:
            self._ring.append(item.tenant)
        q.by_priority.get(item.priority, q.by_priority[pb.NORMAL]).append(item)
        q.size += 1
        self._size += 1

    def pop(self, eligible: Callable[[Runnable], bool] = lambda _item: True) -> Runnable | None:
        """The next item by DRR among tenants whose next item is eligible (e.g. under its limits)."""
        skipped = 0
        while self._ring and skipped <= len(self._ring):
            tenant = self._ring[0]
            q = self._tenants[tenant]
            if not eligible(q.head()[0]):
                self._ring.rotate(-1)
                skipped += 1
                continue
            if q.deficit < 1.0:
                q.deficit += max(self._weight(tenant), 0.01)
                self._ring.rotate(-1)
                skipped = 0  # an eligible tenant is still in the ring
                continue
            q.deficit -= 1.0
            item = q.pop()
            self._size -= 1
            if q.size == 0:
                self._ring.popleft()
                q.deficit = 0.0
                del self._tenants[tenant]
            return item
        return None

    def remove(self, invocation_id: str) -> Runnable | None:
        """Take one item out (it moves to another queue); None when it is not here."""
        for tenant, q in self._tenants.items():
            for p in _ORDER:
                for item in q.by_priority[p]:
                    if item.invocation_id == invocation_id:
                        q.by_priority[p].remove(item)
                        q.size -= 1
                        self._size -= 1
                        if q.size == 0:
                            del self._tenants[tenant]
                            self._ring.remove(tenant)
                        return item
        return None

    def remove_partition(self, partition: int) -> list[Runnable]:
        """Drop the items of a partition this node no longer leads."""
        dropped = []
        for tenant in list(self._tenants):
            q = self._tenants[tenant]
            for p in _ORDER:
                keep = deque(i for i in q.by_priority[p] if i.partition != partition)
                dropped.extend(i for i in q.by_priority[p] if i.partition == partition)
                q.by_priority[p] = keep
            q.size = sum(len(d) for d in q.by_priority.values())
            if q.size == 0:
                del self._tenants[tenant]
                self._ring.remove(tenant)
        self._size -= len(dropped)
        return dropped
