"""Deployment pins in the partition state machine, on a real store: the first pin holds, the
pinned index follows the invocation until it finishes, and an operator's move re-pins, records
itself and restarts a running attempt on the new code."""

from __future__ import annotations

import asyncio

import pytest
from partition_testkit import T0, Partition, end, env, inv_id, invoke, of_type, output, run_entry

from endure.proto import records_pb2 as pb
from endure.runtime.partition import keys
from endure.runtime.partition.effects import AbortAttempt, StartInvocation

V1 = pb.DeploymentRef(id="shop:app", version="v1")
V2 = pb.DeploymentRef(id="shop:app", version="v2")


@pytest.fixture
def part(tmp_path):
    p = Partition(tmp_path / "store")
    yield p
    p.close()


def pin(inv: str, ref: pb.DeploymentRef, index: int = 0) -> pb.Envelope:
    """An attempt's first record (a run entry at `index`) carrying its pin."""
    record = run_entry(inv, index)
    record.append_entry.pin.CopyFrom(ref)
    return record


def pinned_rows(part: Partition) -> list[tuple[str, str]]:
    return [keys.parse_pinned(k) for k, _ in part.table(keys.PINNED)]


def test_the_first_pin_holds_and_the_index_lists_it_until_it_finishes(part):
    inv = inv_id("a")
    part.apply(invoke(inv), pin(inv, V1))
    part.apply(pin(inv, V2, index=1))  # a later pin (another attempt) changes nothing
    status = part.status(inv)
    assert status.deployment == V1 and status.first_deployment == V1
    assert pinned_rows(part) == [("shop:app@v1", inv)]
    part.apply(output(inv, 2), end(inv))
    assert part.status(inv).status == pb.COMPLETED and part.status(inv).deployment == V1
    assert pinned_rows(part) == []  # finished: no longer in flight on v1


def test_a_restart_starts_from_the_pinned_version(part):
    inv = inv_id("b")
    part.apply(invoke(inv), pin(inv, V1))
    part.apply(env(pause=pb.Pause(invocation_id=inv)))
    [start] = of_type(part.apply(env(resume=pb.Resume(invocation_id=inv))), StartInvocation)
    assert start.deployment == "shop:app@v1"


def test_resume_onto_a_version_moves_and_records_the_move(part):
    inv = inv_id("c")
    part.apply(invoke(inv), pin(inv, V1), env(pause=pb.Pause(invocation_id=inv)))
    effects = part.apply(env(ts=T0 + 5, resume=pb.Resume(invocation_id=inv, deployment=V2)))
    [start] = of_type(effects, StartInvocation)
    status = part.status(inv)
    assert start.deployment == "shop:app@v2" and status.deployment == V2 and status.first_deployment == V1
    assert [(m.from_deployment, m.to_deployment, m.at_ms, m.reason) for m in status.moves] == [
        (V1, V2, T0 + 5, "resume --deployment")]
    assert pinned_rows(part) == [("shop:app@v2", inv)]


def test_a_move_of_a_running_invocation_restarts_it_and_a_stale_move_changes_nothing(part):
    inv = inv_id("d")
    part.apply(invoke(inv), pin(inv, V1))
    move = pb.MoveDeployment(invocation_id=inv, from_deployment=V1, to_deployment=V2, reason="remove --force")
    [abort] = of_type(part.apply(env(move_deployment=move)), AbortAttempt)
    assert abort.restart and "shop:app@v2" in abort.reason
    assert part.status(inv).deployment == V2 and pinned_rows(part) == [("shop:app@v2", inv)]
    before = part.rows(without_lsn=True)
    assert part.apply(env(move_deployment=move)) == []  # pinned to v2 now: the v1 move does not apply
    assert part.rows(without_lsn=True) == before


def test_a_first_record_with_a_half_empty_pin_is_rejected_whole(part):
    inv = inv_id("e")
    part.apply(invoke(inv))
    before = part.rows(without_lsn=True)
    rejected = part.sm.rejected
    part.apply(pin(inv, pb.DeploymentRef(id="shop:app")))
    assert part.sm.rejected == rejected + 1 and part.rows(without_lsn=True) == before
    other = inv_id("f")
    part.apply(invoke(other))
    rejected = part.sm.rejected
    part.apply(env(resume=pb.Resume(invocation_id=other, deployment=pb.DeploymentRef(id="x"))))
    assert part.sm.rejected == rejected + 1 and not part.status(other).HasField("deployment")


def test_local_partition_counts_and_scans_by_pin(tmp_path):
    from endure.runtime.partition.api import InvocationFilter, LocalPartition

    part = Partition(tmp_path / "s")
    a, b, c = inv_id("p1"), inv_id("p2"), inv_id("p3")
    part.apply(invoke(a), pin(a, V1), invoke(b), pin(b, V1), invoke(c), pin(c, V2))

    class _Processor:  # LocalPartition's reads need only the store
        store = part.store
        partition = 0

    local = LocalPartition(_Processor())  # type: ignore[arg-type]

    async def check() -> None:
        assert await local.get_pinned_counts() == {"shop:app@v1": 2, "shop:app@v2": 1}
        found = await local.scan_invocations(InvocationFilter(deployment="shop:app@v1"), None, 10)
        assert sorted(s.invocation_id for s in found) == sorted([a, b])
        first = await local.scan_invocations(InvocationFilter(deployment="shop:app@v1"), None, 1)
        rest = await local.scan_invocations(InvocationFilter(deployment="shop:app@v1"), first[0].invocation_id, 10)
        assert len(first) == 1 and [s.invocation_id for s in first + rest] == sorted([a, b])
        in_flight = await local.scan_invocations(InvocationFilter(in_flight=True), None, 10)
        assert len(in_flight) == 3

    asyncio.run(check())
    part.close()
