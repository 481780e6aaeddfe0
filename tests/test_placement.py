"""The fixed placement of `endure serve --processes N`: who owns what, where it lives, and the record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from endure.runtime.config import ConfigError, load_config
from endure.runtime.placement import (
    PLACEMENT_FILE,
    Placement,
    PlacementError,
    PlacementMismatch,
    check_placement,
    clear_endpoint,
    node_dir,
    read_endpoint,
    write_endpoint,
)
from endure.runtime.supervisor import resolve_processes


def test_node_i_owns_the_partitions_congruent_to_i() -> None:
    placement = Placement(3, 8)
    assert [placement.owned(i) for i in range(3)] == [[0, 3, 6], [1, 4, 7], [2, 5]]
    assert [placement.owner(p) for p in range(8)] == [0, 1, 2, 0, 1, 2, 0, 1]
    with pytest.raises(PlacementError, match="own no partition"):
        Placement(5, 4)


def test_one_node_keeps_the_data_dir_layout(tmp_path: Path) -> None:
    assert node_dir(tmp_path, 0, 1) == tmp_path
    assert node_dir(tmp_path, 1, 2) == tmp_path / "nodes" / "1"
    check_placement(tmp_path, Placement(1, 4))
    assert not (tmp_path / PLACEMENT_FILE).exists()  # no record: today's layout


def test_the_placement_is_recorded_and_another_is_refused(tmp_path: Path) -> None:
    check_placement(tmp_path, Placement(2, 4))
    assert json.loads((tmp_path / PLACEMENT_FILE).read_text()) == {"nodes": 2, "partitions": 4,
                                                                  "owners": [0, 1, 0, 1]}
    assert check_placement(tmp_path, Placement(2, 4)) == Placement(2, 4)
    with pytest.raises(PlacementMismatch) as other:
        check_placement(tmp_path, Placement(3, 4))
    assert "--processes 2" in str(other.value) and "--processes 3" in str(other.value)
    assert "\n" not in str(other.value)
    with pytest.raises(PlacementMismatch, match="created with --processes 2.*asked for --processes 1"):
        check_placement(tmp_path, Placement(1, 4))
    with pytest.raises(PlacementMismatch, match="created with 4 partitions.*asked for 6"):
        check_placement(tmp_path, Placement(2, 6))
    assert isinstance(other.value, ConfigError)


def test_a_one_node_data_dir_refuses_more_processes(tmp_path: Path) -> None:
    (tmp_path / "FORMAT").write_text('{"version": 3}\n')  # what a one-node runtime leaves
    with pytest.raises(PlacementMismatch, match="created with --processes 1.*asked for --processes 2"):
        check_placement(tmp_path, Placement(2, 4))
    assert not (tmp_path / PLACEMENT_FILE).exists()


def test_a_damaged_record_is_a_placement_error(tmp_path: Path) -> None:
    (tmp_path / PLACEMENT_FILE).write_text("{not json")
    with pytest.raises(PlacementError, match="not a placement record"):
        check_placement(tmp_path, Placement(2, 4))
    (tmp_path / PLACEMENT_FILE).write_text(json.dumps({"nodes": 2, "partitions": 4, "owners": [0, 0, 1, 1]}))
    with pytest.raises(PlacementError, match="owners"):
        check_placement(tmp_path, Placement(2, 4))


def test_endpoints_are_published_and_withdrawn(tmp_path: Path) -> None:
    assert read_endpoint(tmp_path) is None
    write_endpoint(tmp_path, "127.0.0.1:4242")
    assert read_endpoint(tmp_path) == "127.0.0.1:4242"
    clear_endpoint(tmp_path)
    clear_endpoint(tmp_path)
    assert read_endpoint(tmp_path) is None


def test_processes_and_node_settings() -> None:
    assert resolve_processes("3", 8) == 3
    assert 1 <= resolve_processes("auto", 2) <= 2
    for bad in ("0", "-1", "many"):
        with pytest.raises(ConfigError, match="--processes"):
            resolve_processes(bad, 4)
    assert load_config(environ={}).nodes == 1
    with pytest.raises(ConfigError, match="node_id 2 is not one of 2 nodes"):
        load_config(overrides={"node_id": 2, "nodes": 2}, environ={})


def test_auto_keeps_the_count_an_existing_data_dir_was_created_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    new = tmp_path / "new"
    assert resolve_processes("auto", 4, new) == 4  # a new data dir: the cores, at most one per partition
    assert resolve_processes("auto", 16, new) == 8
    one = tmp_path / "one"
    (one / "log").mkdir(parents=True)  # made by one node: no placement record
    assert resolve_processes("auto", 4, one) == 1
    three = tmp_path / "three"
    check_placement(three, Placement(3, 6))
    assert resolve_processes("auto", 6, three) == 3
    assert resolve_processes("2", 6, three) == 2  # an explicit count is taken as asked (and refused later)
