"""requirements= on Python runs: real pip resolution of pure-Python packages into the content-addressed
cache, read-only mounts in the guest, cache hits without pip, C-extension packages refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from endure.sandbox import Sandbox
from endure.sandbox.packages import (
    InvalidRequirementError,
    NotPurePythonError,
    PackageCache,
    ResolutionError,
    ResolutionTimeout,
    is_read_only,
    normalize_requirements,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def cache(tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> PackageCache:
    """A fresh package cache per test, so hits and misses are this test's own."""
    pc = PackageCache(tmp_path / "packages", precompile=sandbox.precompile_packages)
    monkeypatch.setattr(sandbox, "packages", pc)
    return pc


async def test_normalize_requirements() -> None:
    assert normalize_requirements(["Six==1.*", " attrs>=23,<30 ", "six==1.*", "Foo_Bar[Y,x]"]) == [
        "attrs<30,>=23",
        "foo-bar[x,y]",
        "six==1.*",
    ]
    for bad in ["--index-url=http://evil/", "-r/etc/passwd", "x @ https://evil/x.whl", "./local", "", "a b"]:
        with pytest.raises(InvalidRequirementError):
            normalize_requirements([bad])
    with pytest.raises(InvalidRequirementError):
        normalize_requirements("six")  # type: ignore[arg-type]


async def test_pure_packages_resolved_mounted_and_cached(sandbox: Sandbox, cache: PackageCache) -> None:
    code = (
        "import sys, attrs, six, dateutil.parser\n"
        "@attrs.define\nclass P:\n    x: int\n"
        "print(P(3), six.PY3, dateutil.parser.parse('2024-05-06').year, sys.path[0])\n"
        "print(attrs.__file__)\n"
    )
    # python-dateutil depends on six: dependencies are resolved too.
    res = await sandbox.run_python(code, requirements=["attrs>=23", "python-dateutil<3"])
    assert res.ok, res.stderr
    first, where = res.stdout.splitlines()
    assert first == "P(x=3) True 2024 /packages"
    assert where.startswith("/packages/attrs/")
    assert cache.resolutions == 1
    pset = cache.lookup(["python-dateutil<3", "attrs>=23"])
    assert pset is not None and is_read_only(pset.path)
    assert {w.name for w in pset.wheels} == {"attrs", "python-dateutil", "six"}
    assert all(len(w.sha256) == 64 and w.filename.endswith("-none-any.whl") for w in pset.wheels)
    # Bytecode for the guest's CPython was written before the set became read-only, so imports are cheap.
    assert list((pset.path / "dateutil" / "parser" / "__pycache__").glob("_parser.cpython-3*.pyc"))  # the guest's own tag
    assert res.fuel_used < 1_500_000_000, res.fuel_used  # over the default 2e9 without the bytecode

    # Same set, other spelling and order: a cache hit, pip does not run.
    res = await sandbox.run_python(
        "import six, attrs; print(six.__name__)", requirements=["Python_Dateutil < 3", "attrs >= 23"]
    )
    assert res.ok and res.stdout == "six\n", res
    assert cache.resolutions == 1
    # A fresh cache object over the same directory (another process) hits the record as well.
    again = PackageCache(cache.root)
    assert (await again.ensure(["attrs>=23", "python-dateutil<3"])) == pset
    assert again.resolutions == 0


async def test_guest_cannot_write_packages(sandbox: Sandbox, cache: PackageCache) -> None:
    code = r"""
import os, six
ops = {
    "create": lambda: open("/packages/new.py", "w").write("x"),
    "append": lambda: open(six.__file__, "a").write("x"),
    "overwrite": lambda: open(six.__file__, "r+").write("x"),
    "mkdir": lambda: os.mkdir("/packages/d"),
    "remove": lambda: os.remove(six.__file__),
    "rename": lambda: os.rename(six.__file__, "/packages/x.py"),
    "rename_out": lambda: os.rename(six.__file__, "/six.py"),
    "truncate": lambda: os.truncate(six.__file__, 0),
    "symlink": lambda: os.symlink("/etc/passwd", "/packages/p"),
}
for name, op in ops.items():
    try:
        op()
        print(name, "WROTE")
    except OSError:
        print(name, "refused")
"""
    res = await sandbox.run_python(code, requirements=["six"])
    assert res.exit_code == 0, res
    assert "WROTE" not in res.stdout and res.stdout.count("refused") == 9, res.stdout
    pset = cache.lookup(["six"])
    assert pset is not None
    six_py = pset.path / "six.py"
    assert six_py.stat().st_size > 10_000 and not (pset.path / "new.py").exists()
    assert res.files == {}  # nothing of /packages leaks into the returned files


async def test_c_extension_package_refused_by_name(sandbox: Sandbox, cache: PackageCache) -> None:
    with pytest.raises(NotPurePythonError) as ei:
        await sandbox.run_python("import numpy", requirements=["numpy<2.3"])
    err = ei.value
    assert err.package == "numpy" and err.version.startswith("2.2")
    assert "numpy 2.2" in str(err) and "has C extensions (cp312-cp312-" in str(err)
    assert "only pure-Python packages run in the sandbox" in str(err)
    assert cache.lookup(["numpy<2.3"]) is None


async def test_unknown_package_and_timeout(tmp_path: Path) -> None:
    pc = PackageCache(tmp_path / "p")
    with pytest.raises(ResolutionError, match="no-such-package-endure-test"):
        await pc.ensure(["no-such-package-endure-test==9.9"])
    slow = PackageCache(tmp_path / "q", resolve_timeout_s=0.05)
    with pytest.raises(ResolutionTimeout, match="longer than 0.05s"):
        await slow.ensure(["six"])
    assert not any((tmp_path / "q" / "tmp").iterdir())  # the staging dir is cleaned up


async def test_no_requirements_no_mount(sandbox: Sandbox, cache: PackageCache) -> None:
    res = await sandbox.run_python(
        "import os, sys; print(os.path.exists('/packages'), '/packages' in sys.path)", requirements=[]
    )
    assert res.stdout == "False False\n", res
    assert cache.resolutions == 0
