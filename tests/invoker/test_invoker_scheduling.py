"""Unit tests of the invoker's logic around its parts: the fair queue, limits, and restarts.

The partition processors (behind a LocalPartition) are stand-ins around a real PartitionStore (a
mock is fine for the logic around a part); end-to-end behaviour is in tests/integration.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from endure.proto import ids
from endure.proto import records_pb2 as pb
from endure.runtime.invoker.invoker import Invoker
from endure.runtime.invoker.limits import Limit, Limits, TokenBucket
from endure.runtime.invoker.scheduler import FairQueue, Runnable
from endure.runtime.partition import keys
from endure.runtime.partition.api import LocalPartition
from endure.runtime.partition.effects import AbortAttempt
from endure.runtime.partition.store import PartitionStore


def item(i: int, tenant: str, priority: int = pb.NORMAL) -> Runnable:
    return Runnable(0, f"inv{i}", "svc", tenant, priority, "h")


def test_fair_queue_alternates_tenants_whatever_their_backlog() -> None:
    q = FairQueue()
    for i in range(20):
        q.push(item(i, "flood"))
    q.push(item(100, "quiet"))
    q.push(item(101, "quiet"))
    order = [q.pop().tenant for _ in range(6)]  # type: ignore[union-attr]
    assert order.count("quiet") == 2 and order.index("quiet") <= 1


def test_fair_queue_weights_priorities_and_eligibility() -> None:
    q = FairQueue(weight=lambda t: 3.0 if t == "big" else 1.0)
    for i in range(30):
        q.push(item(i, "big"))
        q.push(item(100 + i, "small"))
    first = [q.pop().tenant for _ in range(40)]  # type: ignore[union-attr]
    assert first.count("big") == 30 and first.count("small") == 10
    q = FairQueue()
    q.push(item(1, "t", pb.LOW))
    q.push(item(2, "t", pb.NORMAL))
    q.push(item(3, "t", pb.HIGH))
    assert [q.pop().invocation_id for _ in range(3)] == ["inv3", "inv2", "inv1"]  # type: ignore[union-attr]
    q.push(item(4, "blocked"))
    assert q.pop(lambda r: r.tenant != "blocked") is None and len(q) == 1


def test_limits_count_running_per_scope_and_refill_tokens() -> None:
    limits = Limits({"t": Limit(max_running=2)}, {"svc/h": Limit(max_running=1)})
    assert limits.can_start("t", "svc", "h", now=0)
    limits.started("t", "svc", "h", now=0)
    assert not limits.can_start("t", "svc", "h", now=0)  # the handler's limit
    assert limits.can_start("t", "svc", "other", now=0)
    limits.started("t", "svc", "other", now=0)
    assert not limits.can_start("t", "svc", "other", now=0)  # the tenant's limit
    limits.finished("t", "svc", "h")
    assert limits.can_start("t", "svc", "other", now=0)
    bucket = TokenBucket(rate=5.0, burst=1.0, stamp=0.0)
    bucket.take(0.0)
    assert not bucket.available(0.1) and bucket.available(0.2)
    assert abs(TokenBucket(rate=5.0, burst=1.0, tokens=0.0, stamp=0.0).wait_time(0.0) - 0.2) < 1e-9


def test_a_refused_last_frame_restarts_an_invocation_nobody_runs(tmp_path: Path) -> None:
    """AbortAttempt(restart) for an attempt that already ended (its End was refused) queues the
    invocation again instead of leaving it RUNNING with no attempt."""
    store = PartitionStore(tmp_path / "p0")
    try:
        inv = ids.new_invocation_id()
        tx = store.transaction()
        tx.put_proto(keys.status(inv), pb.InvocationStatus(
            invocation_id=inv, target=pb.Target(service="svc", handler="h"), status=pb.RUNNING, tenant="t"))
        tx.commit(1)
        processor = SimpleNamespace(store=store, applied_lsn=1, is_leader=True, epoch=1)
        partition = LocalPartition(processor)  # type: ignore[arg-type]
        invoker = Invoker(SimpleNamespace(handler=lambda *_: None, latest=lambda *_: "d@v1"), {0: partition})  # type: ignore[arg-type]
        invoker.on_effects(0, [AbortAttempt(inv, "journal index gap", restart=True)])
        assert invoker.queued() == 1 and invoker.backlog("t") == 1
        invoker.on_effects(0, [AbortAttempt(inv, "killed")])  # no restart asked: nothing more
        assert invoker.queued() == 1
    finally:
        store.close()


def test_each_of_n_nodes_enforces_an_even_share_of_a_limit() -> None:
    """With N nodes side by side, a tenant gets ⌈max_running / N⌉ running and rate / N starts per node,
    so the cluster as a whole does not give it N times its limit; the configured limit is shown whole."""
    from endure.runtime.invoker.limits import Limit, Limits

    assert Limit(max_running=8, rate_per_s=10.0, burst=4.0, max_backlog=100).share(2) == Limit(
        max_running=4, rate_per_s=5.0, burst=2.0, max_backlog=100)
    assert Limit(max_running=3).share(2).max_running == 2  # rounded up: never 0
    assert Limit(max_running=5).share(1) == Limit(max_running=5)
    limits = Limits({"a": Limit(max_running=4, rate_per_s=2.0, burst=2.0)}, nodes=2)
    assert limits.tenant("a").max_running == 4  # as configured, for the admin and the CLI
    import time

    t0 = time.monotonic()  # the buckets start full at their creation time
    assert limits.can_start("a", "s", "h", now=t0)
    limits.started("a", "s", "h", now=t0)
    assert not limits.can_start("a", "s", "h", now=t0)  # burst 2 / 2 nodes = 1 token here
    limits.started("a", "s", "h", now=t0 + 1.0)  # rate 1/s on this node: one more a second later
    assert limits.running["tenant:a"] == 2
    assert not limits.can_start("a", "s", "h", now=t0 + 5.0)  # max_running 4 / 2 nodes = 2 here
