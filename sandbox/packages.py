"""Pure-Python packages for sandbox runs, resolved on the host into a content-addressed cache.

A requirement list is normalized (PEP 508, canonical names, sorted) and resolved once with
`pip download --only-binary=:all:` for CPython 3.12 with pure-Python tags only, dependencies
included. The outcome is kept as a resolution record (`resolutions/<key>.json`: the wheels and
their sha256), so a later run with the same list needs neither pip nor the network: a pinned
resolution also keeps a durable workflow's retries on the same code. The wheels are extracted
into `sets/<key>/` (key = sha256 of the normalized requirements and the wheel hashes), made
read-only and renamed into place atomically; runs mount that directory read-only at /packages
and put it first on the guest's sys.path.

The guest is CPython for WASI: it cannot load C extensions, so a package that only ships
platform wheels is refused up front with `NotPurePythonError` naming it, instead of failing
inside the guest with an import error.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import sys
import tempfile
import zipfile
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

GUEST_PYTHON = "3.12"  # the sandbox's CPython (endure.sandbox.guests)
PACKAGES_MOUNT = "/packages"
RESOLVE_TIMEOUT_S = 180.0
MAX_REQUIREMENTS = 64
MAX_SET_BYTES = 512 * 1024 * 1024  # extracted size of one set: a zip bomb stops here
# Platforms a refused requirement is looked up for, to name the wheel that has C extensions.
_PROBE_PLATFORMS = (
    "manylinux_2_17_x86_64",
    "manylinux_2_28_x86_64",
    "musllinux_1_2_x86_64",
    "macosx_11_0_arm64",
    "win_amd64",
)
_NO_MATCH = re.compile(r"No matching distribution found for (\S+)")
_RECORD_VERSION = 1

log = logging.getLogger("endure.sandbox.packages")


class PackageError(Exception):
    """Requirements that cannot be made available to a sandbox run."""


class InvalidRequirementError(PackageError):
    """Not a PEP 508 requirement on an index package (URLs, paths and pip options are refused)."""


class NotPurePythonError(PackageError):
    """A resolved package ships only wheels with C extensions; the WASI guest cannot load them."""

    def __init__(self, package: str, version: str, tag: str) -> None:
        self.package, self.version, self.tag = package, version, tag
        super().__init__(
            f"{package} {version} has C extensions ({tag}); only pure-Python packages run in the sandbox"
        )


class ResolutionError(PackageError):
    """pip found no wheel set satisfying the requirements (unknown package, version, conflict)."""


class ResolutionTimeout(PackageError):
    """Resolving and downloading took longer than the cache's `resolve_timeout_s`."""


@dataclass(frozen=True)
class Wheel:
    """One resolved wheel of a set."""

    name: str
    version: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class PackageSet:
    """A resolved, extracted, read-only set of packages: what a run mounts."""

    key: str
    path: Path
    requirements: tuple[str, ...]
    wheels: tuple[Wheel, ...]


def normalize_requirements(requirements: Iterable[str]) -> list[str]:
    """Canonical, sorted, deduplicated PEP 508 strings: the cache key must not depend on spelling,
    and nothing may reach pip's command line that is not a plain requirement."""
    if isinstance(requirements, str):
        raise InvalidRequirementError("requirements must be a list of strings, not one string")
    out: set[str] = set()
    for raw in requirements:
        if not isinstance(raw, str) or not raw.strip():
            raise InvalidRequirementError(f"invalid requirement {raw!r}")
        try:
            req = Requirement(raw.strip())
        except InvalidRequirement as e:
            raise InvalidRequirementError(f"invalid requirement {raw!r}: {e}") from None
        if req.url:
            raise InvalidRequirementError(f"{raw!r}: direct URL requirements are not allowed")
        s: str = canonicalize_name(req.name)
        if req.extras:
            s += "[" + ",".join(sorted(canonicalize_name(e) for e in req.extras)) + "]"
        s += ",".join(sorted(str(sp) for sp in req.specifier))
        if req.marker is not None:
            s += f"; {req.marker}"
        out.add(s)
    if len(out) > MAX_REQUIREMENTS:
        raise InvalidRequirementError(f"more than {MAX_REQUIREMENTS} requirements")
    return sorted(out)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pure_tag_problem(filename: str) -> tuple[str, str, str] | None:
    """(name, version, tag) if the wheel is not pure Python (any ABI but none, any platform but any)."""
    name, version, _, tags = parse_wheel_filename(filename)
    bad = [t for t in tags if t.abi != "none" or t.platform != "any" or not t.interpreter.startswith("py")]
    if bad:
        return str(name), str(version), "-".join(filename.removesuffix(".whl").rsplit("-", 3)[-3:])
    return None


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _extract_wheel(wheel: Path, dest: Path, budget: list[int]) -> None:
    """Unpack one wheel as pip would into purelib; `*.data/{purelib,platlib}` land at the top."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            p = PurePosixPath(info.filename)
            if p.is_absolute() or "\\" in info.filename or any(part in ("", ".", "..") for part in p.parts):
                raise PackageError(f"{wheel.name}: unsafe path {info.filename!r} in wheel")
            parts = p.parts
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue  # scripts, headers, data: nothing a sandboxed import needs
                parts = parts[2:]
            budget[0] -= info.file_size
            if budget[0] < 0:
                raise PackageError(f"package set larger than {MAX_SET_BYTES} bytes extracted")
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)


def _make_read_only(root: Path) -> None:
    for d, _, files in os.walk(root):
        for f in files:
            os.chmod(os.path.join(d, f), 0o444)
        os.chmod(d, 0o555)


def _make_writable(root: Path) -> None:
    for d, _, files in os.walk(root):
        os.chmod(d, 0o755)
        for f in files:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(d, f), 0o644)


class PackageCache:
    """Resolve-once, content-addressed package sets under `root` (shared by processes: atomic renames).

    `resolutions` counts pip resolutions (a cache hit does not run pip at all). `precompile`, if
    set, is awaited with a freshly extracted set's directory before it is made read-only: the
    Sandbox writes CPython 3.12 bytecode there (the host's Python may be another version), so
    imports in a run do not spend the run's fuel on compiling.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        resolve_timeout_s: float = RESOLVE_TIMEOUT_S,
        pip_args: Iterable[str] = (),
        precompile: Callable[[Path], Awaitable[None]] | None = None,
    ) -> None:
        self.root = Path(root)
        self.precompile = precompile
        self.resolve_timeout_s = resolve_timeout_s
        self.pip_args = list(pip_args)
        self.resolutions = 0
        self._locks: dict[str, asyncio.Lock] = {}

    # -- lookup -----------------------------------------------------------------------------------
    @staticmethod
    def resolution_key(norm: list[str]) -> str:
        return _digest({"v": _RECORD_VERSION, "python": GUEST_PYTHON, "tags": "pure", "requirements": norm})

    def lookup(self, requirements: Iterable[str]) -> PackageSet | None:
        """The cached set for these requirements, without pip or network; None if not resolved yet."""
        return self._lookup(normalize_requirements(requirements))

    def _lookup(self, norm: list[str]) -> PackageSet | None:
        path = self.root / "resolutions" / f"{self.resolution_key(norm)}.json"
        try:
            rec = json.loads(path.read_text())
            wheels = tuple(Wheel(**w) for w in rec["wheels"])
            key = str(rec["set"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        set_dir = self.root / "sets" / key
        if not (set_dir / ".endure-set.json").is_file():
            return None
        return PackageSet(key, set_dir, tuple(norm), wheels)

    async def ensure(self, requirements: Iterable[str]) -> PackageSet | None:
        """The set for `requirements` (None for an empty list), resolving it with pip on a miss."""
        norm = normalize_requirements(requirements)
        if not norm:
            return None
        hit = self._lookup(norm)
        if hit is not None:
            return hit
        lock = self._locks.setdefault(self.resolution_key(norm), asyncio.Lock())
        async with lock:
            hit = self._lookup(norm)
            if hit is not None:
                return hit
            return await self._resolve(norm)

    # -- resolution -------------------------------------------------------------------------------
    def _pip(self, *args: str, reqs: Iterable[str]) -> list[str]:
        """A pip command line; the requirements come after "--", so none can act as an option."""
        return [
            sys.executable,
            "-m",
            "pip",
            *args,
            "--no-input",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            *self.pip_args,
            "--",
            *reqs,
        ]

    async def _run_pip(self, cmd: list[str], deadline: float) -> tuple[int, str]:
        loop = asyncio.get_running_loop()
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), max(0.1, deadline - loop.time()))
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise ResolutionTimeout(
                f"resolving packages took longer than {self.resolve_timeout_s:g}s; gave up"
            ) from None
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        return proc.returncode or 0, err.decode(errors="replace")

    async def _resolve(self, norm: list[str]) -> PackageSet:
        deadline = asyncio.get_running_loop().time() + self.resolve_timeout_s
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="resolve-", dir=self.root / "tmp"))
        try:
            wheels_dir = tmp / "wheels"
            self.resolutions += 1
            rc, err = await self._run_pip(
                self._pip(
                    "download",
                    "--only-binary=:all:",
                    "--python-version",
                    GUEST_PYTHON,
                    "--implementation",
                    "py",
                    "--abi",
                    "none",
                    "--platform",
                    "any",
                    "--dest",
                    str(wheels_dir),
                    reqs=norm,
                ),
                deadline,
            )
            if rc != 0:
                await self._explain_failure(norm, err, tmp, deadline)
            key, wheels, stage = await asyncio.to_thread(self._stage, norm, wheels_dir, tmp)
            if stage is not None and self.precompile is not None:
                try:
                    await self.precompile(stage)
                except Exception as e:  # the set still works, its imports just compile each run
                    log.warning("precompiling package set %s failed: %s", key[:12], e)
            return await asyncio.to_thread(self._publish, norm, key, wheels, stage)
        finally:
            await asyncio.to_thread(self._rmtree, tmp)

    async def _explain_failure(self, norm: list[str], err: str, tmp: Path, deadline: float) -> None:
        """pip found no pure-Python wheel: name the package that has C extensions, if that is why."""
        m = _NO_MATCH.search(err)
        lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
        last = next(
            (ln for ln in reversed(lines) if ln.startswith("ERROR:")), lines[-1] if lines else "pip failed"
        )
        if m is None:
            raise ResolutionError(f"cannot resolve {norm}: {last}")
        name = canonicalize_name(re.split(r"[\[<>=!~;( ]", m.group(1), maxsplit=1)[0])
        spec = next(
            (r for r in norm if canonicalize_name(re.split(r"[\[<>=!~;( ]", r, maxsplit=1)[0]) == name),
            str(name),
        )
        report = tmp / "probe.json"
        platforms = [a for p in _PROBE_PLATFORMS for a in ("--platform", p)]
        rc, _ = await self._run_pip(
            self._pip(
                "install",
                "--dry-run",
                "--ignore-installed",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                GUEST_PYTHON,
                *platforms,
                "--report",
                str(report),
                "--quiet",
                reqs=[spec],
            ),
            deadline,
        )
        if rc == 0:
            with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
                item = json.loads(report.read_text())["install"][0]
                fname = item["download_info"]["url"].rsplit("/", 1)[-1]
                problem = _pure_tag_problem(fname)
                if problem is not None:
                    raise NotPurePythonError(*problem)
        raise ResolutionError(f"no pure-Python wheel satisfies {spec!r} for Python {GUEST_PYTHON}: {last}")

    def _stage(self, norm: list[str], wheels_dir: Path, tmp: Path) -> tuple[str, list[Wheel], Path | None]:
        """Check and hash the downloaded wheels; extract them unless their set is already published."""
        wheels: list[Wheel] = []
        for f in sorted(wheels_dir.iterdir()) if wheels_dir.is_dir() else []:
            if not f.name.endswith(".whl"):
                raise ResolutionError(f"pip returned {f.name}, not a wheel")
            try:
                problem = _pure_tag_problem(f.name)
                name, version, _, _ = parse_wheel_filename(f.name)
            except InvalidWheelFilename as e:
                raise ResolutionError(str(e)) from None
            if problem is not None:
                raise NotPurePythonError(*problem)
            wheels.append(Wheel(str(name), str(version), f.name, _sha256_file(f)))
        if not wheels:
            raise ResolutionError(f"pip resolved {norm} to no wheels")
        key = _digest({"requirements": norm, "wheels": sorted(w.sha256 for w in wheels)})
        if (self.root / "sets" / key / ".endure-set.json").is_file():
            return key, wheels, None
        stage = tmp / "set"
        stage.mkdir()
        budget = [MAX_SET_BYTES]
        for w in wheels:
            _extract_wheel(wheels_dir / w.filename, stage, budget)
        return key, wheels, stage

    def _publish(self, norm: list[str], key: str, wheels: list[Wheel], stage: Path | None) -> PackageSet:
        """Make the staged set read-only and rename it into place, then write the resolution record."""
        sets = self.root / "sets"
        sets.mkdir(parents=True, exist_ok=True)
        final = sets / key
        if stage is not None:
            meta = {"requirements": norm, "wheels": [w.__dict__ for w in wheels]}
            (stage / ".endure-set.json").write_text(json.dumps(meta, indent=1))
            _make_read_only(stage)
            try:
                os.rename(stage, final)
            except OSError:
                if not (final / ".endure-set.json").is_file():  # not a concurrent twin: a real failure
                    raise
        rec = {"requirements": norm, "wheels": [w.__dict__ for w in wheels], "set": key}
        recs = self.root / "resolutions"
        recs.mkdir(parents=True, exist_ok=True)
        fd, tmp_rec = tempfile.mkstemp(dir=recs, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(rec, f, indent=1)
        os.replace(tmp_rec, recs / f"{self.resolution_key(norm)}.json")
        return PackageSet(key, final, tuple(norm), tuple(wheels))

    @staticmethod
    def _rmtree(path: Path) -> None:
        if path.exists():
            _make_writable(path)  # a staged set that lost the rename race is read-only
            shutil.rmtree(path, ignore_errors=True)


def is_read_only(path: Path) -> bool:
    """True if no file or directory under `path` has a write bit (a sanity check for tests and ops)."""
    for d, _, files in os.walk(path):
        for p in [d, *(os.path.join(d, f) for f in files)]:
            if os.lstat(p).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
                return False
    return True
