"""The controller's rule (plan): every partition led by a live node, at a new epoch when it moves."""

from __future__ import annotations

from endure.runtime.cluster.controller import plan
from endure.runtime.cluster.partition_table import UNASSIGNED, Assignment, PartitionTable


def table(*assignments: tuple[int, int, int]) -> PartitionTable:
    return PartitionTable(tuple(Assignment(*a) for a in assignments), version=7)


def test_unassigned_partitions_spread_over_the_live_nodes_at_epoch_one() -> None:
    new = plan(PartitionTable.empty(4), {0: 100, 1: 200})
    assert new is not None
    assert [(a.node, a.epoch, a.incarnation) for a in new.assignments] == [(0, 1, 100), (1, 1, 200), (0, 1, 100),
                                                                         (1, 1, 200)]
    assert new.version == 0  # the version it was read at (none yet): the compare-and-set expects it


def test_a_dead_nodes_partitions_move_with_a_newer_epoch_and_nothing_else_changes() -> None:
    t = table((0, 3, 100), (1, 5, 200), (0, 3, 100), (1, 2, 200))
    new = plan(t, {0: 100})
    assert new is not None
    assert [(a.node, a.epoch) for a in new.assignments] == [(0, 3), (0, 6), (0, 3), (0, 3)]
    assert plan(new, {0: 100}) is None  # stable


def test_a_restarted_node_gets_its_partitions_again_at_a_newer_epoch() -> None:
    t = table((0, 4, 100), (0, 4, 100))
    new = plan(t, {0: 150})  # node 0 restarted: incarnation 150, not 100
    assert new is not None
    assert [(a.node, a.epoch, a.incarnation) for a in new.assignments] == [(0, 5, 150), (0, 5, 150)]


def test_a_joining_node_takes_its_share_one_partition_per_round() -> None:
    t = table(*[(0, 1, 100)] * 4)
    rounds = 0
    while (new := plan(t, {0: 100, 1: 200})) is not None:
        moved = [p for p in range(4) if new.assignments[p] != t.assignments[p]]
        assert len(moved) == 1 and new.assignments[moved[0]].epoch == 2
        t, rounds = new, rounds + 1
    assert rounds == 2 and sorted(a.node for a in t.assignments) == [0, 0, 1, 1]


def test_no_live_node_changes_nothing() -> None:
    assert plan(table((UNASSIGNED, 0, 0)), {}) is None
