"""A run reports the input files it removed (`SandboxResult.deleted`), which a workspace needs to
know what a run left; `collect_files` keeps its old two-value answer for existing callers."""

from __future__ import annotations

from pathlib import Path

import pytest

from endure.sandbox import Limits, Sandbox, SandboxResult
from endure.sandbox.runner import collect_changes, collect_files

session_loop = pytest.mark.asyncio(loop_scope="session")

INPUTS = {"gone.txt": b"1", "dir/also-gone.txt": b"2", "became-dir": b"3", "kept.txt": b"4", "edited.txt": b"5"}


@session_loop
async def test_python_run_reports_deleted_inputs(sandbox: Sandbox) -> None:
    code = (
        "import os\n"
        "os.remove('gone.txt')\n"
        "os.remove('dir/also-gone.txt')\n"
        "os.remove('became-dir')\n"
        "os.makedirs('became-dir')\n"
        "open('became-dir/inside.txt', 'w').write('in')\n"
        "open('edited.txt', 'w').write('five')\n"
        "open('new.txt', 'w').write('new')\n"
    )
    res = await sandbox.run_python(code, files=INPUTS)
    assert res.ok, res.stderr
    assert res.deleted == ["became-dir", "dir/also-gone.txt", "gone.txt"]
    assert res.files == {"became-dir/inside.txt": b"in", "edited.txt": b"five", "new.txt": b"new"}
    assert SandboxResult.model_validate_json(res.model_dump_json()).deleted == res.deleted


@session_loop
async def test_javascript_run_reports_deleted_inputs(sandbox: Sandbox) -> None:
    res = await sandbox.run_javascript("os.remove('gone.txt');", files={"gone.txt": b"x", "kept.txt": b"y"})
    assert res.ok, res.stderr
    assert res.deleted == ["gone.txt"] and res.files == {}


@session_loop
async def test_a_run_that_deletes_nothing_reports_nothing(sandbox: Sandbox) -> None:
    res = await sandbox.run_python("print(open('kept.txt').read())", files={"/kept.txt": b"k"})
    assert res.ok and res.deleted == [] and res.files == {}


def test_collect_files_keeps_its_two_values(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"changed")
    (tmp_path / "link").symlink_to(tmp_path / "a.txt")  # an input replaced by a symlink is gone
    inputs = {"a.txt": b"old", "b.txt": b"removed", "link": b"was a file"}
    assert collect_files(tmp_path, inputs, Limits()) == ({"a.txt": b"changed"}, False)
    assert collect_changes(tmp_path, inputs, Limits()) == ({"a.txt": b"changed"}, False, ["b.txt", "link"])
