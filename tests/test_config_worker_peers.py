"""The static peer list: `worker_peers` in the file, ENDURE_WORKER_PEERS (comma-separated) in the
environment; checked at start like every setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from endure.runtime.config import ConfigError, load_config


def test_no_peers_by_default() -> None:
    assert load_config(environ={}).worker_peers == []


def test_peers_from_the_environment() -> None:
    cfg = load_config(environ={"ENDURE_WORKER_PEERS": "10.0.0.2:7071, node-3:7071,"})
    assert cfg.worker_peers == ["10.0.0.2:7071", "node-3:7071"]


def test_peers_from_the_file(tmp_path: Path) -> None:
    f = tmp_path / "endure.toml"
    f.write_text('worker_peers = ["127.0.0.1:9001"]\n')
    assert load_config(f, environ={}).worker_peers == ["127.0.0.1:9001"]


@pytest.mark.parametrize("bad", ["node-2", "host:port", ":7071", "h:0"])
def test_a_bad_peer_names_the_setting(bad: str) -> None:
    with pytest.raises(ConfigError, match="worker_peers"):
        load_config(environ={"ENDURE_WORKER_PEERS": bad})


def test_at_most_64_peers() -> None:
    with pytest.raises(ConfigError, match="worker_peers"):
        load_config(environ={"ENDURE_WORKER_PEERS": ",".join(f"h{i}:1" for i in range(65))})
