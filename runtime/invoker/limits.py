"""Flow control of the invoker: concurrency and rate limits per tenant and per service / handler.

A limit is checked when the invoker is about to start an attempt, never when work is accepted:
what the ingress accepted is durable and only waits. Rates are token buckets (a rate per second
and a burst). The invoker is node-wide, so every limit holds for the node as a whole.

With N node processes (`endure serve --processes N`) each node's invoker enforces an even share
of every limit (`Limit.share`): ⌈max_running / N⌉ running attempts and rate / N starts per second,
so a tenant cannot take N times its limit. Invocations land on partitions, and so on nodes, evenly
at random; the cluster-wide maximum is at most N·⌈max_running / N⌉ (exact when N divides it).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace


@dataclass(slots=True)
class Limit:
    """None = unlimited."""

    max_running: int | None = None
    rate_per_s: float | None = None
    burst: float | None = None
    max_backlog: int | None = None
    weight: float = 1.0

    def share(self, nodes: int) -> Limit:
        """What one of `nodes` nodes enforces on its own (the backlog bound and the weight stay whole:
        the ingress checks the backlog where a call arrives, and weights are relative)."""
        if nodes <= 1:
            return self
        return replace(
            self,
            max_running=None if self.max_running is None else -(-self.max_running // nodes),
            rate_per_s=None if self.rate_per_s is None else self.rate_per_s / nodes,
            burst=None if self.burst is None else max(1.0, self.burst / nodes),
        )


@dataclass(slots=True)
class TokenBucket:
    rate: float
    burst: float
    tokens: float = field(default=-1.0)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def available(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= 1.0

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1.0

    def wait_time(self, now: float) -> float:
        """Seconds until one token is there."""
        self._refill(now)
        return max(0.0, (1.0 - self.tokens) / self.rate) if self.rate > 0 else 3600.0


class Limits:
    def __init__(self, tenants: dict[str, Limit] | None = None, handlers: dict[str, Limit] | None = None,
                 nodes: int = 1) -> None:
        self.nodes = nodes  # nodes enforcing these limits side by side: each enforces its share
        self._tenants: dict[str, Limit] = {}
        self._handlers: dict[str, Limit] = {}  # "service" or "service/handler"
        self._buckets: dict[str, TokenBucket] = {}
        self._scopes: dict[tuple[str, str, str], list[tuple[str, Limit]]] = {}  # cache of _keys
        self.running: Counter[str] = Counter()  # "tenant:NAME" / "handler:SERVICE[/HANDLER]" -> running attempts
        for name, limit in (tenants or {}).items():
            self.set_tenant(name, limit)
        for name, limit in (handlers or {}).items():
            self.set_handler(name, limit)

    def set_tenant(self, tenant: str, limit: Limit) -> None:
        self._scopes.clear()
        self._tenants[tenant] = limit
        self._reset_bucket(f"tenant:{tenant}", limit)

    def set_handler(self, target: str, limit: Limit) -> None:
        self._scopes.clear()
        self._handlers[target] = limit
        self._reset_bucket(f"handler:{target}", limit)

    def _reset_bucket(self, key: str, limit: Limit) -> None:
        limit = limit.share(self.nodes)
        if limit.rate_per_s:
            self._buckets[key] = TokenBucket(limit.rate_per_s, limit.burst or max(1.0, limit.rate_per_s))
        else:
            self._buckets.pop(key, None)

    def tenant(self, tenant: str) -> Limit:
        return self._tenants.get(tenant) or self._tenants.get("*") or Limit()

    def tenants(self) -> dict[str, Limit]:
        return dict(self._tenants)

    def handlers(self) -> dict[str, Limit]:
        return dict(self._handlers)

    def weight(self, tenant: str) -> float:
        return self.tenant(tenant).weight

    def _keys(self, tenant: str, service: str, handler: str) -> list[tuple[str, Limit]]:
        """The limit scopes an invocation counts against (cached: this is on every start and end)."""
        found = self._scopes.get((tenant, service, handler))
        if found is not None:
            return found
        keys = [(f"tenant:{tenant}", self.tenant(tenant).share(self.nodes))]
        for target in (service, f"{service}/{handler}"):
            limit = self._handlers.get(target)
            if limit is not None:
                keys.append((f"handler:{target}", limit.share(self.nodes)))
        if len(self._scopes) > 10_000:
            self._scopes.clear()
        self._scopes[(tenant, service, handler)] = keys
        return keys

    def can_start(self, tenant: str, service: str, handler: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        for key, limit in self._keys(tenant, service, handler):
            if limit.max_running is not None and self.running[key] >= limit.max_running:
                return False
            bucket = self._buckets.get(key)
            if bucket is not None and not bucket.available(now):
                return False
        return True

    def started(self, tenant: str, service: str, handler: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for key, _ in self._keys(tenant, service, handler):
            self.running[key] += 1
            bucket = self._buckets.get(key)
            if bucket is not None:
                bucket.take(now)

    def finished(self, tenant: str, service: str, handler: str) -> None:
        for key, _ in self._keys(tenant, service, handler):
            self.running[key] -= 1
            if self.running[key] <= 0:
                del self.running[key]

    def next_token_in(self, now: float | None = None) -> float | None:
        """Seconds until some empty bucket has a token again (None: no bucket is empty)."""
        now = time.monotonic() if now is None else now
        waits = [b.wait_time(now) for b in self._buckets.values() if not b.available(now)]
        return min(waits) if waits else None
