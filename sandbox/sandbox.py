"""The public Sandbox: run untrusted Python, JavaScript or WASI modules with hard limits."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any

from endure.sandbox.limits import Limits, MiB
from endure.sandbox.network import GUEST_LIB_MOUNT, NetworkPolicy, guest_lib_dir
from endure.sandbox.packages import PACKAGES_MOUNT, PackageCache
from endure.sandbox.paths import default_cache_dir
from endure.sandbox.pool import HARD_GRACE_S, SandboxError, WorkerPool
from endure.sandbox.result import SandboxResult


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# Compiles a package set (mounted read-only) into /out; unchecked-hash pycs, since a published set
# never changes. Package code is compiled, never run.
_PRECOMPILE = r"""
import importlib.util, os, sys
from importlib._bootstrap_external import _code_to_hash_pyc
top = sys.argv[1]
for d, dirs, files in os.walk(top):
    dirs[:] = [x for x in dirs if x != "__pycache__"]
    for f in files:
        if f.endswith(".py"):
            src = os.path.join(d, f)
            out = "/out/" + importlib.util.cache_from_source(os.path.relpath(src, top))
            with open(src, "rb") as fh:
                source = fh.read()
            try:
                code = compile(source, src, "exec", dont_inherit=True)
            except (SyntaxError, ValueError):
                continue  # e.g. a Python 2 only module nobody imports
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with open(out, "wb") as fh:  # buffered: a WASI write may be partial, this loops
                fh.write(_code_to_hash_pyc(code, importlib.util.source_hash(source), False))
"""
_PRECOMPILE_LIMITS = Limits(
    fuel=10**12,
    memory_bytes=512 * MiB,
    wall_time_ms=300_000,
    max_files=10_000,
    max_files_bytes=512 * MiB,
    scratch_bytes=1024 * MiB,
    scratch_files=100_000,
)


def _store_bytecode(stage: Path, files: dict[str, bytes]) -> None:
    """Place the precompile run's /out/**/__pycache__/*.pyc next to their sources in the stage."""
    root = stage.resolve()
    for rel, data in files.items():
        p = PurePosixPath(rel)
        if p.parts[0] != "out" or p.suffix != ".pyc" or ".." in p.parts or p.parent.name != "__pycache__":
            continue
        dest = stage.joinpath(*p.parts[1:])
        if not dest.parent.parent.is_dir() or not dest.parent.parent.resolve().is_relative_to(root):
            continue
        dest.parent.mkdir(exist_ok=True)
        dest.write_bytes(data)


class Sandbox:
    """A pool of sandbox processes; each run gets a fresh wasm instance and scratch directory.

    `env_allowlist` names the environment variables a run may set through `env=`; nothing is
    inherited from the host. `packages` resolves `requirements=` of Python runs (default: a
    PackageCache under `cache_dir/packages`).
    """

    def __init__(
        self,
        pool_size: int = 2,
        cache_dir: Path | str | None = None,
        default_limits: Limits | None = None,
        env_allowlist: Iterable[str] = (),
        prestart: bool = True,
        packages: PackageCache | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.packages = packages or PackageCache(self.cache_dir / "packages")
        if self.packages.precompile is None:
            self.packages.precompile = self.precompile_packages
        self.default_limits = default_limits or Limits()
        self.env_allowlist = frozenset(env_allowlist)
        self.pool = WorkerPool(pool_size, self.cache_dir, prestart=prestart)

    async def start(self) -> None:
        """Start the pool processes and load (or compile, first time) the guests."""
        await self.pool.start()

    async def prepare(self, force: bool = False) -> dict[str, Any]:
        """Build and compile the Python component into the cache now (about 20 s the first time).

        The pool's first process does the same on a fresh cache; this lets a deploy step or a test
        session pay it before any pool starts. Runs in a child process (it needs wasmtime and
        componentize-py, and a lot of memory for a moment). Raises SandboxError with the reason
        and the fix when it cannot be built.
        """
        cmd = [sys.executable, "-m", "endure.sandbox", "prepare", "--cache-dir", str(self.cache_dir)]
        if force:
            cmd.append("--force")
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        try:
            report: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise SandboxError(f"sandbox prepare failed (exit {proc.returncode}): {err.decode()[-1000:]}") from None
        if not report.get("ok"):
            raise SandboxError(f"sandbox prepare failed: {report.get('why')}; {report.get('fix')}")
        return report

    async def close(self) -> None:
        await self.pool.close()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _common(
        self,
        files: Mapping[str, bytes] | None,
        limits: Limits | None,
        stdin: bytes,
        env: Mapping[str, str] | None,
        args: list[str] | None,
    ) -> tuple[dict[str, Any], Limits]:
        lim = limits or self.default_limits
        env = dict(env or {})
        bad = sorted(set(env) - self.env_allowlist)
        if bad:
            raise SandboxError(f"environment variables not in the sandbox allow-list: {bad}")
        for k, v in env.items():
            if "=" in k or "\0" in k or "\0" in v:
                raise SandboxError(f"invalid environment variable {k!r}")
        files = dict(files or {})
        for name, data in files.items():
            if not isinstance(data, bytes | bytearray):
                raise TypeError(f"file {name!r}: content must be bytes")
        msg: dict[str, Any] = {
            "limits": lim.model_dump(),
            "stdin": _b64(bytes(stdin)),
            "files": {k: _b64(bytes(v)) for k, v in files.items()},
            "env": env,
            "args": [str(a) for a in (args or [])],
        }
        return msg, lim

    async def run_python(
        self,
        code: str,
        files: Mapping[str, bytes] | None = None,
        limits: Limits | None = None,
        stdin: bytes = b"",
        *,
        args: list[str] | None = None,
        env: Mapping[str, str] | None = None,
        requirements: Iterable[str] | None = None,
        network: NetworkPolicy | Mapping[str, Any] | None = None,
    ) -> SandboxResult:
        """Run `code` in CPython 3.14 (a pre-initialized component; CPython 3.12 WASI when it cannot be
        built); the scratch dir is "/" and the cwd.

        `requirements` (PEP 508 strings, e.g. ["attrs>=23", "six"]) are resolved on the host with
        their dependencies (pure-Python wheels only; a package with C extensions raises
        NotPurePythonError), cached, and mounted read-only at /packages, first on sys.path.

        `network` grants HTTP(S) to an allow-list: the guest imports `endure_http` (or the `requests`
        shim) and the host performs the requests; each is logged in the result's `http`. Without
        it the guest has no network at all.
        """
        msg, lim = self._common(files, limits, stdin, env, args)
        msg.update(kind="python", code=code)
        mounts: list[list[str]] = []
        sys_path: list[str] = []
        if requirements:
            pset = await self.packages.ensure(requirements)
            if pset is not None:
                mounts.append([str(pset.path), PACKAGES_MOUNT])
                sys_path.append(PACKAGES_MOUNT)
        if network is not None:
            policy = NetworkPolicy.model_validate(network)  # a policy passes as it is, a dict is checked
            lib = await guest_lib_dir(self.cache_dir, self.precompile_packages)
            mounts.append([str(lib), GUEST_LIB_MOUNT])
            sys_path.append(GUEST_LIB_MOUNT)
            msg["network"] = policy.model_dump(mode="json")
        if mounts:
            msg.update(mounts=mounts, sys_path=sys_path)
        return await self.pool.run(msg, lim.wall_time_ms / 1000 + HARD_GRACE_S)

    async def precompile_packages(self, stage: Path, mount: str = PACKAGES_MOUNT) -> None:
        """Write CPython 3.12 bytecode into a staged package set (the PackageCache's precompile hook),
        compiled as if at `mount`, where runs will see it (tracebacks name that path)."""
        msg, lim = self._common(None, _PRECOMPILE_LIMITS, b"", None, [mount])
        msg.update(kind="python", code=_PRECOMPILE, mounts=[[str(stage), mount]])
        res = await self.pool.run(msg, lim.wall_time_ms / 1000 + HARD_GRACE_S)
        if not res.ok:
            raise SandboxError(f"precompile run failed: {res.error or res.stderr[-500:] or res.limit_hit}")
        await asyncio.to_thread(_store_bytecode, stage, res.files)

    async def run_javascript(
        self,
        code: str,
        files: Mapping[str, bytes] | None = None,
        limits: Limits | None = None,
        stdin: bytes = b"",
        *,
        args: list[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> SandboxResult:
        """Run `code` in QuickJS-NG (WASI); `std`, `os`, `bjson` are globals, top-level await works."""
        msg, lim = self._common(files, limits, stdin, env, args)
        msg.update(kind="javascript", code=code)
        return await self.pool.run(msg, lim.wall_time_ms / 1000 + HARD_GRACE_S)

    async def run_wasm(
        self,
        module: bytes | Path | str,
        args: list[str] | None = None,
        stdin: bytes = b"",
        files: Mapping[str, bytes] | None = None,
        limits: Limits | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> SandboxResult:
        """Run a WASI preview1 command module (`_start`); compiled once, then cached."""
        if isinstance(module, Path | str):
            wasm = await asyncio.to_thread(Path(module).read_bytes)
        else:
            wasm = bytes(module)
        msg, lim = self._common(files, limits, stdin, env, args)
        msg.update(kind="wasm", module=_b64(wasm))
        return await self.pool.run(msg, lim.wall_time_ms / 1000 + HARD_GRACE_S)
