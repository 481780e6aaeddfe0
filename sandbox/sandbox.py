"""The public Sandbox: run untrusted Python, JavaScript or WASI modules with hard limits."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from endure.sandbox.limits import Limits
from endure.sandbox.paths import default_cache_dir
from endure.sandbox.pool import HARD_GRACE_S, SandboxError, WorkerPool
from endure.sandbox.result import SandboxResult


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Sandbox:
    """A pool of sandbox processes; each run gets a fresh wasm instance and scratch directory.

    `env_allowlist` names the environment variables a run may set through `env=`; nothing is
    inherited from the host.
    """

    def __init__(
        self,
        pool_size: int = 2,
        cache_dir: Path | str | None = None,
        default_limits: Limits | None = None,
        env_allowlist: Iterable[str] = (),
        prestart: bool = True,
    ) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
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
    ) -> SandboxResult:
        """Run `code` in CPython 3.14 (a pre-initialized component; CPython 3.12 WASI when it cannot be
        built); the scratch dir is "/" and the cwd."""
        msg, lim = self._common(files, limits, stdin, env, args)
        msg.update(kind="python", code=code)
        return await self.pool.run(msg, lim.wall_time_ms / 1000 + HARD_GRACE_S)

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
