"""The pre-initialized Python component: it is the engine in use, the default Limits fit real work,
the stdlib it pre-imports works, read-only mounts, and the build cache (lock, MAC, failure marker,
fallback warning)."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from endure.sandbox import Limits, Sandbox, SandboxResult
from endure.sandbox import component as comp_mod
from endure.sandbox import pool as pool_mod
from endure.sandbox.component import ComponentStore, ComponentUnavailableError, LoadedComponent
from endure.sandbox.engine import get_engine
from endure.sandbox.pool import HARD_GRACE_S
from endure.sandbox.reference import AGENT_SCRIPT, agent_files

asyncio_session = pytest.mark.asyncio(loop_scope="session")


def _component(sb: Sandbox) -> bool:
    return sb.pool.python_info.get("engine") == "component"


async def _run_raw(sb: Sandbox, code: str, **extra: Any) -> SandboxResult:
    """A run with request fields that Sandbox.run_python does not take (yet): mounts, sys_path."""
    msg, lim = sb._common(None, None, b"", None, None)
    msg.update(kind="python", code=code, **extra)
    return await sb.pool.run(msg, lim.wall_time_ms / 1000 + HARD_GRACE_S)


@asyncio_session
async def test_component_is_the_python_engine(sandbox: Sandbox) -> None:
    pytest.importorskip("componentize_py")
    info = sandbox.pool.python_info
    assert info["engine"] == "component", info
    assert 16 << 20 <= info["initial_memory_bytes"] <= 48 << 20
    res = await sandbox.run_python("import sys; print(sys.implementation.name, sys.version_info[:2])")
    assert res.stdout == "cpython (3, 14)\n"


@asyncio_session
async def test_reference_agent_script_under_default_limits(sandbox: Sandbox) -> None:
    res = await sandbox.run_python(AGENT_SCRIPT, files=agent_files())
    assert res.ok, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["region", "product", "n", "units", "revenue"]
    assert len(lines) == 1 + 30 + 1  # header, 5 regions x 6 products, the summary
    assert set(res.files) == {"summary.json"} and b'"rows": 5000' in res.files["summary.json"]
    # Far inside the defaults: fuel is a backstop, wall time the bound.
    assert res.fuel_used < Limits().fuel // 100
    assert res.wall_ms < Limits().wall_time_ms / 4


@asyncio_session
async def test_pre_imported_stdlib_works(sandbox: Sandbox) -> None:
    code = """
import asyncio, base64, collections, csv, dataclasses, datetime, decimal, fractions, functools, hashlib
import html, io, itertools, json, math, random, re, sqlite3, statistics, string, textwrap, typing
import unittest, urllib.parse, xml.etree.ElementTree as ET, email.utils, zipfile, gzip, pathlib

async def twice(x):
    await asyncio.sleep(0.001)
    return 2 * x

@dataclasses.dataclass
class P:
    x: int

class T(unittest.TestCase):
    def test_ok(self):
        self.assertEqual(1 + 1, 2)

r = unittest.TextTestRunner(stream=io.StringIO()).run(unittest.defaultTestLoader.loadTestsFromTestCase(T))
db = sqlite3.connect(":memory:")
out = [
    asyncio.run(twice(21)),
    statistics.mean([1, 2, 3]),
    str(decimal.Decimal("0.1") + decimal.Decimal("0.2")),
    str(fractions.Fraction(1, 3) * 3),
    base64.b64encode(b"hi").decode(),
    ET.fromstring("<a><b>t</b></a>").find("b").text,
    urllib.parse.urlparse("https://x.org/p?q=1").query,
    html.escape("<&>"),
    list(csv.reader(io.StringIO("a,b\\n1,2")))[1],
    db.execute("select sqlite_version() > '3'").fetchone()[0],
    r.wasSuccessful(),
    P(3).x,
    gzip.decompress(gzip.compress(b"z")).decode(),
    "é".encode("latin-1").decode("cp1252"),
    email.utils.parseaddr("A <a@b.c>")[1],
]
print(json.dumps(out))
"""
    res = await sandbox.run_python(code)
    assert res.ok, res.stderr
    assert res.stdout.strip() == (
        '[42, 2, "0.3", "1", "aGk=", "t", "q=1", "&lt;&amp;&gt;", ["1", "2"], 1, true, 3, "z", "\\u00e9", "a@b.c"]'
    )


@asyncio_session
async def test_each_run_is_fresh_and_unseeded(sandbox: Sandbox) -> None:
    code = "import random, sys\nprint(random.random(), len(sys.argv))\nsys.path.append('x'); sys.argv.append('y')"
    a = await sandbox.run_python(code)
    b = await sandbox.run_python(code)
    assert a.ok and b.ok
    assert a.stdout != b.stdout  # random is not replayed from the build-time seed
    assert a.stdout.split()[1] == b.stdout.split()[1] == "1"  # nothing leaks from the run before


@asyncio_session
async def test_read_only_mounts_and_sys_path(sandbox: Sandbox, tmp_path: Path) -> None:
    if not _component(sandbox):
        pytest.skip("mounts on the core path belong to the packages work")
    pkg = tmp_path / "site" / "agentlib"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("ANSWER = 42\n")
    code = """
import agentlib, os
print(agentlib.ANSWER, agentlib.__file__)
for act in (lambda: open('/site/new.txt', 'w'), lambda: os.remove('/site/agentlib/__init__.py')):
    try:
        act()
    except OSError as e:
        print(type(e).__name__)
open('mine.txt', 'w').write('scratch is still writable')
"""
    res = await _run_raw(sandbox, code, mounts=[[str(tmp_path / "site"), "/site"]], sys_path=["/site"])
    assert res.ok, res.stderr
    assert res.stdout == "42 /site/agentlib/__init__.py\nPermissionError\nPermissionError\n"
    assert res.files == {"mine.txt": b"scratch is still writable"}
    assert (pkg / "__init__.py").read_text() == "ANSWER = 42\n" and not (tmp_path / "site" / "new.txt").exists()
    for bad in ([[str(tmp_path), "/"]], [[str(tmp_path), "rel"]], [[str(tmp_path / "nope"), "/x"]]):
        res = await _run_raw(sandbox, "print(1)", mounts=bad)
        assert res.error and "mount" in res.error, bad


def test_component_cache_is_reused_and_checked(sandbox: Sandbox, wasm_cache_dir: Path, tmp_path: Path) -> None:
    if not _component(sandbox):
        pytest.skip("componentize-py not installed")
    t = time.perf_counter()
    loaded = ComponentStore(get_engine(), wasm_cache_dir).load(build=False)
    assert not loaded.built and time.perf_counter() - t < 5
    # A copy of the cache with the compiled file altered is refused (MAC), never deserialized.
    copy = tmp_path / "cache"
    copy.mkdir()
    for f in [wasm_cache_dir / ".key", *wasm_cache_dir.glob(f"python-component-{loaded.key}.*")]:
        shutil.copy(f, copy / f.name)
    cw = copy / f"python-component-{loaded.key}.cwasm"
    raw = bytearray(cw.read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    cw.write_bytes(bytes(raw))
    with pytest.raises(ComponentUnavailableError, match="not built yet"):
        ComponentStore(get_engine(), copy).load(build=False)


def test_concurrent_loads_build_once(
    sandbox: Sandbox, wasm_cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two loaders of an empty cache: one builds under the lock, the other waits and loads its result."""
    real = ComponentStore(get_engine(), wasm_cache_dir).load(build=False)
    shutil.copy(wasm_cache_dir / ".key", tmp_path / ".key")
    builds: list[int] = []

    def fake_build(self: ComponentStore, key: str, version: str) -> LoadedComponent:
        builds.append(1)
        time.sleep(0.3)
        for f in wasm_cache_dir.glob(f"python-component-{real.key}.*"):
            if f.suffix in (".cwasm", ".mac", ".json"):
                shutil.copy(f, self.dir / f"python-component-{key}{f.suffix}")
        hit = self._try_load(key)
        assert hit is not None
        return hit

    monkeypatch.setattr(ComponentStore, "_build", fake_build)
    results: list[LoadedComponent] = []
    threads = [
        threading.Thread(target=lambda: results.append(ComponentStore(get_engine(), tmp_path).load()))
        for _ in range(2)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(builds) == 1 and len(results) == 2


def test_missing_componentize_py_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comp_mod, "componentize_py_version", lambda: None)
    with pytest.raises(ComponentUnavailableError, match=r"pip install 'componentize-py==0\.25\.1'"):
        ComponentStore(get_engine(), tmp_path).load()


def test_failed_build_is_not_retried_by_every_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []

    def failing(out: Path, version: str, timeout_s: float = 0) -> float:
        calls.append(out)
        raise ComponentUnavailableError("componentize-py failed (exit 1): boom", "fix it")

    monkeypatch.setattr(comp_mod, "componentize", failing)
    store = ComponentStore(get_engine(), tmp_path)
    with pytest.raises(ComponentUnavailableError, match="boom"):
        store.load()
    with pytest.raises(ComponentUnavailableError, match="an earlier build failed: .*boom"):
        store.load()
    assert len(calls) == 1
    with pytest.raises(ComponentUnavailableError, match="boom"):
        store.load(force=True)  # `prepare --force` tries again
    assert len(calls) == 2


def test_fallback_is_logged_once(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(pool_mod, "_warned_fallback", False)
    with caplog.at_level(logging.WARNING, logger="endure.sandbox"):
        for _ in range(3):
            pool_mod._note_python_engine({"engine": "core", "fallback": "componentize-py is not installed; pip it"})
        pool_mod._note_python_engine({"engine": "component"})
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 1 and "componentize-py is not installed; pip it" in msgs[0] and "CPython 3.12" in msgs[0]


@asyncio_session
async def test_prepare_reports_the_cached_component(sandbox: Sandbox) -> None:
    if not _component(sandbox):
        pytest.skip("componentize-py not installed")
    report = await sandbox.prepare()  # `python -m endure.sandbox prepare --cache-dir ...` in a child
    assert report["ok"] and not report["built"] and report["path"].endswith(".cwasm")
    assert report["initial_memory_bytes"] == sandbox.pool.python_info["initial_memory_bytes"]
