"""The snapshot bench at a small size: both catch-up paths end at the same rows (it checks), and
the figures it reports add up."""

from __future__ import annotations

from pathlib import Path

from endure.bench.snapshot_bench import snapshot_catch_up


async def test_snapshot_catch_up_small(tmp_path: Path) -> None:
    out = await snapshot_catch_up(600, 60, root=tmp_path, concurrent=8, step_bytes=10)
    assert out["records"] == 600 and out["snapshot_lsn"] == 540
    assert out["tail_records"] == 60 and out["full_replay_records"] == 600
    assert out["snapshot_bytes"] > 0 and out["snapshot_store"].startswith("dir:")
    assert out["snapshot_catch_up_seconds"] >= out["tail_replay_seconds"]
