from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import Cluster  # noqa: I001 - tests/integration is on sys.path (rootdir-relative import)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module", params=[1, 2], ids=["p1", "p2"])
def processes(request: pytest.FixtureRequest) -> int:
    """A module whose cluster takes this runs against one node, and against two node processes
    (`endure serve --processes 2`: calls, sends, awakeables, attaches and the CLI then cross nodes
    through the internal partition service)."""
    return int(request.param)
