"""The distribution exposes the folders as `endure.*` and nothing else."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAPPED = {"runtime", "sdk", "proto", "sandbox", "bench", "examples"}


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = set()
    for top in MAPPED:
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT)
            found.add("endure." + ".".join(rel.parts))
    assert found == listed


def test_subpackages_import_under_endure() -> None:
    for name in MAPPED:
        module = importlib.import_module(f"endure.{name}")
        assert Path(module.__file__).resolve().parent == ROOT / name


def test_bare_names_are_not_importable(tmp_path: Path) -> None:
    # Run from an empty folder so the project root is not on sys.path by accident.
    code = f"import importlib.util as u; print([n for n in {sorted(MAPPED)!r} if u.find_spec(n)])"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_version_and_help() -> None:
    out = subprocess.run(["endure", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("endure ")
    out = subprocess.run(["endure", "--help"], capture_output=True, text=True, check=True)
    assert "Usage" in out.stdout
