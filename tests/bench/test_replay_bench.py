"""The replay bench at a small size: recorded journals replay cleanly offline, `deployments check`
finds every parked invocation and none diverging, and the figures it reports add up."""

from __future__ import annotations

import argparse

import pytest

from endure.bench.apps import app
from endure.bench.replay_bench import OFFLINE_CASES, deployments_check, offline_replay, record_journal, run


async def test_a_recorded_journal_is_what_the_handler_journals() -> None:
    journal = await record_journal(app, "bench", "steps3", b"1")
    assert [e.WhichOneof("kind") for e in journal] == ["run", "run", "run", "output"]
    assert [e.name for e in journal[:3]] == ["a", "b", "c"] and journal[-1].output.value == b"4"


def test_offline_replay_small() -> None:
    out = offline_replay(seconds=0.2, runs=2)
    for handler, steps in OFFLINE_CASES.items():
        case = out[handler]
        assert case["steps"] == steps and case["journal_entries"] == steps + 1
        for mode in ("replay", "replay_async"):
            f = case[mode]
            assert f["replays"] >= 2 and f["replays_per_s"] > 0
            assert f["us_per_replay"] == pytest.approx(1e6 / f["replays_per_s"], rel=0.01)
            assert f["us_per_entry"] == pytest.approx(f["us_per_replay"] / case["journal_entries"], rel=0.01)
            assert f["spread_per_s"][0] <= f["replays_per_s"] <= f["spread_per_s"][1]
    assert set(out["marginal"]) == {"replay", "replay_async"}


@pytest.mark.timeout(120)
def test_deployments_check_small() -> None:
    c = deployments_check(invocations=20, timeout=60)
    assert c["invocations"] == c["checked"] == 20 and c["diverging"] == 0
    assert c["journal_lengths"] == [4]  # 3 runs and the awakeable
    assert c["deployment"].startswith("endure.bench.apps:app@")
    assert c["check_seconds"] > 0 and c["checked_per_s"] == pytest.approx(20 / c["check_seconds"], rel=0.01)
    assert 0 < c["empty_check_seconds"] and c["ms_per_invocation_after_start"] >= 0


def test_the_entry_point_refuses_an_unbounded_run() -> None:
    args = argparse.Namespace(seconds=0.0, runs=1, invocations=1, parts="offline", json=True)
    with pytest.raises(SystemExit):
        run(args)
