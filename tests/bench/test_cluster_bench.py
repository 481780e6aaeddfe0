"""The `cluster` benchmark's pieces: which node is killed, keys that land on a partition, the
catch-up line that is not a figure, and a short real failover measurement (3 nats-servers,
2 Endure cluster nodes, one worker, kill -9 of one node)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from endure.bench.cluster_bench import (
    keys_for_partition,
    measure_failover,
    pick_victim,
    run_cluster_bench,
)
from endure.proto import ids


def test_the_victim_leads_the_most_partitions_and_ties_are_taken_in_turn() -> None:
    leaders = {0: "node-0", 1: "node-1", 2: "node-1", 3: "node-2"}
    assert [pick_victim(leaders, [0, 1, 2], turn) for turn in range(3)] == [1, 1, 1]
    even = {0: "node-0", 1: "node-1", 2: "node-2", 3: "node-0", 4: "node-1", 5: "node-2"}
    assert [pick_victim(even, [0, 1, 2], turn) for turn in range(4)] == [0, 1, 2, 0]


def test_keys_land_on_their_partition() -> None:
    keys = keys_for_partition(4, 6, "k")
    got = [next(keys) for _ in range(20)]
    assert len(set(got)) == 20 and all(ids.stable_hash64(k) % 6 == 4 for k in got)


def test_catch_up_reports_full_replay_against_a_snapshot() -> None:
    line = run_cluster_bench(phases=("catchup",), catch_up_records=6_000)["catch_up"]
    assert "full replay" in line and "snapshot restore" in line


@pytest.mark.timeout(90)
def test_a_short_failover_is_measured(tmp_path: Path) -> None:
    pytest.importorskip("nats", reason="cluster mode needs the cluster extra (nats-py)")
    from endure.bench.procs import ClusterNodes
    from endure.runtime.log.jetstream.local_cluster import LocalNatsCluster, NatsServerNotFound

    try:
        nats = LocalNatsCluster(tmp_path / "nats", 3)
    except NatsServerNotFound as exc:
        pytest.skip(str(exc))
    with nats, ClusterNodes(nats.urls, "benchsmoke", 2, root=tmp_path) as cn:
        cn.start_node(0)
        cn.start_node(1)
        cn.wait_balanced()
        cn.start_worker(concurrency=64)
        r = asyncio.run(measure_failover(cn, partitions=2, clients=4, flowing=0.5, timeout=30))
    assert r["victim"] == 0 and r["victim_was_controller"]  # a tie: turn 0 is the lowest id
    assert r["moved_partitions"] and r["moved_to"] == ["node-1"]
    assert 0 < r["led_again_s"] < 30
    assert 0 < r["first_moved_completion_s"] <= r["all_moved_completed_s"] < 30
    assert r["completed_before_kill"] > 0
