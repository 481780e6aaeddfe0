"""A bounded pool of sandbox processes, driven from asyncio without blocking the event loop.

Each pool process (`endure.sandbox.worker`) runs one guest at a time. A process that dies
(guest escaped into a wasmtime crash, OOM kill, abort) or that overruns its hard deadline
(a guest blocked in a host call, which epochs cannot interrupt) is killed and replaced; the
run gets a typed result (CRASH or WALL_TIME) instead of an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import struct
import sys
from collections import deque
from pathlib import Path
from typing import Any

from endure.sandbox.limits import ErrorKind, LimitKind
from endure.sandbox.result import SandboxResult

log = logging.getLogger("endure.sandbox")

HARD_GRACE_S = 1.0  # beyond the run's wall-time limit before the process is killed
# The first process of a fresh cache builds the Python component (componentize-py, ~10 s) and
# compiles it (~10 s); on a busy 2-core box that can take minutes. The build itself gives up
# after 600 s (component.BUILD_TIMEOUT_S) and falls back to CPython 3.12.
WARM_TIMEOUT_S = 900.0
SETUP_TIMEOUT_S = 120.0  # boot/compile before the guest gets control (a new raw module compiles here)


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the guest): pool closed, worker could not start, ..."""


_warned_fallback = False


def _note_python_engine(info: dict[str, Any]) -> None:
    """Log, once per process, that Python runs fall back to the slow core path, why, and the fix."""
    global _warned_fallback
    reason = info.get("fallback")
    if reason and not _warned_fallback:
        _warned_fallback = True
        log.warning(
            "sandbox: Python runs use the slower CPython 3.12 core path (about 60 ms per run instead "
            "of a few ms) because the pre-initialized component is unavailable: %s",
            reason,
        )


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process, wid: int) -> None:
        self.proc = proc
        self.wid = wid
        self.stderr_tail: deque[bytes] = deque(maxlen=64)
        self._drain = asyncio.get_running_loop().create_task(self._drain_stderr())
        self.runs = 0
        self.guest_started = False
        self.python: dict[str, Any] = {}  # which Python engine this process runs (warm-up reply)

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        while True:
            line = await self.proc.stderr.readline()
            if not line:
                return
            self.stderr_tail.append(line[-1000:])

    def tail(self) -> str:
        return b"".join(self.stderr_tail).decode(errors="replace")[-2000:]

    async def _frame(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        hdr = await self.proc.stdout.readexactly(4)
        (n,) = struct.unpack(">I", hdr)
        return json.loads(await self.proc.stdout.readexactly(n))  # type: ignore[no-any-return]

    def alive(self) -> bool:
        return self.proc.returncode is None and self.proc.stdin is not None and not self.proc.stdin.is_closing()

    async def request(self, body: bytes, run_timeout_s: float | None = None) -> dict[str, Any]:
        """Send a request; wait up to SETUP_TIMEOUT_S until the guest starts, then run_timeout_s."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(struct.pack(">I", len(body)) + body)
        except RuntimeError as exc:  # asyncio already closed the pipe of a process that died
            raise BrokenPipeError(str(exc)) from exc
        await self.proc.stdin.drain()
        timeout = SETUP_TIMEOUT_S
        self.guest_started = False
        while True:
            msg = await asyncio.wait_for(self._frame(), timeout)
            if msg.get("event") == "started":
                self.guest_started = True
                if run_timeout_s is not None:
                    timeout = run_timeout_s
                continue
            return msg

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.proc.wait(), 5)
        self._drain.cancel()

    async def stop(self) -> None:
        """Polite shutdown: close stdin (the worker exits on EOF), then kill if needed."""
        if self.proc.stdin is not None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 3)
        except TimeoutError:
            pass
        await self.kill()


class WorkerPool:
    """`size` pool processes; callers beyond that wait their turn (bounded concurrency)."""

    def __init__(self, size: int = 2, cache_dir: Path | str | None = None, prestart: bool = True) -> None:
        if size < 1:
            raise ValueError("pool size must be >= 1")
        self.size = size
        self.cache_dir = str(cache_dir) if cache_dir is not None else None
        self.prestart = prestart
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()
        self._ids = itertools.count(1)
        self._req_ids = itertools.count(1)
        self._closed = False
        self._started = False
        self._bg: set[asyncio.Task[None]] = set()
        self.replaced = 0
        self.last_spawn_error: str | None = None
        # The warm-up report of the latest process: {"engine": "component"|"core", ...}, and that of
        # the process that built and compiled the Python component, if one of ours did.
        self.python_info: dict[str, Any] = {}
        self.python_build: dict[str, Any] | None = None

    async def _spawn(self) -> _Worker:
        cmd = [sys.executable, "-m", "endure.sandbox.worker"]
        if self.cache_dir:
            cmd += ["--cache-dir", self.cache_dir]
        if not self.prestart:
            cmd.append("--no-prestart")
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        w = _Worker(proc, next(self._ids))
        self._all.add(w)
        try:
            reply = await asyncio.wait_for(
                w.request(json.dumps({"id": 0, "op": "warm"}).encode()), WARM_TIMEOUT_S
            )
        except BaseException:
            await w.kill()
            self._all.discard(w)
            raise
        if not reply.get("ok"):
            await w.kill()
            self._all.discard(w)
            raise SandboxError(f"sandbox process failed to start: {reply.get('error')} {w.tail()}")
        w.python = dict(reply.get("python") or {})
        _note_python_engine(w.python)
        self.python_info = w.python
        if w.python.get("built"):
            self.python_build = w.python
        return w

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        # The first process compiles the guests (or loads them from the cache); the others then
        # only deserialize, instead of all compiling CPython at once.
        first = await self._spawn()
        self._idle.put_nowait(first)
        rest = await asyncio.gather(*(self._spawn() for _ in range(self.size - 1)))
        for w in rest:
            self._idle.put_nowait(w)

    def _replace_later(self) -> None:
        self.replaced += 1

        async def go() -> None:
            delay = 0.1
            while not self._closed:
                try:
                    w = await self._spawn()
                except Exception as exc:
                    self.last_spawn_error = repr(exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                if self._closed:
                    await w.stop()
                    self._all.discard(w)
                else:
                    self._idle.put_nowait(w)
                return

        t = asyncio.get_running_loop().create_task(go())
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    async def _retire(self, w: _Worker) -> None:
        self._all.discard(w)
        await w.kill()
        if not self._closed:
            self._replace_later()

    async def run(self, msg: dict[str, Any], hard_timeout_s: float) -> SandboxResult:
        """Send one run to a free pool process and wait for its result."""
        if self._closed:
            raise SandboxError("sandbox is closed")
        if not self._started:
            await self.start()
        w = await self._next_idle()
        msg = dict(msg, id=next(self._req_ids), op="run")
        body = json.dumps(msg).encode()
        healthy = False
        try:
            reply = await w.request(body, hard_timeout_s)
            healthy = True
        except TimeoutError:
            await self._retire(w)
            if not w.guest_started:
                return SandboxResult(
                    error_kind=ErrorKind.INTERNAL,
                    error=f"sandbox process did not start the guest within {SETUP_TIMEOUT_S:.0f}s; replaced",
                )
            return SandboxResult(
                limit_hit=LimitKind.WALL_TIME,
                error=f"wall time exceeded (guest blocked outside wasm for > {hard_timeout_s:.1f}s); pool process replaced",
                wall_ms=hard_timeout_s * 1000,
            )
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError):
            code = await w.proc.wait()
            tail = w.tail()
            await self._retire(w)
            return SandboxResult(
                error_kind=ErrorKind.CRASH,
                error=f"sandbox process died (exit {code}); replaced. {tail[-500:]}".strip(),
            )
        except BaseException:
            await self._retire(w)  # cancelled mid-run: the process state is unknown
            raise
        finally:
            if healthy:
                w.runs += 1
                self._idle.put_nowait(w)
        if not reply.get("ok"):
            return SandboxResult(error_kind=ErrorKind.INTERNAL, error=str(reply.get("error")))
        return SandboxResult.model_validate(reply["result"])

    async def _next_idle(self) -> _Worker:
        """A live idle process. One that died while idle (not during a run) is replaced and skipped,
        so its death costs the caller nothing; if none comes within SETUP_TIMEOUT_S (replacements
        keep failing to start), raise instead of waiting forever."""
        deadline = asyncio.get_running_loop().time() + SETUP_TIMEOUT_S
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                w = await asyncio.wait_for(self._idle.get(), max(left, 0.001))
            except TimeoutError:
                raise SandboxError(f"no sandbox process became available within {SETUP_TIMEOUT_S:.0f}s "
                                   f"(replacements failed to start: {self.last_spawn_error or 'unknown'})") from None
            if w.alive():
                return w
            await self._retire(w)

    async def crash_one_for_tests(self) -> None:
        """Make one idle process abort (test hook for crash recovery)."""
        w = await self._idle.get()
        assert w.proc.stdin is not None
        body = json.dumps({"id": -1, "op": "crash"}).encode()
        w.proc.stdin.write(struct.pack(">I", len(body)) + body)
        await w.proc.wait()
        await self._retire(w)

    async def close(self) -> None:
        self._closed = True
        for t in list(self._bg):
            t.cancel()
        await asyncio.gather(*(w.stop() for w in list(self._all)), return_exceptions=True)
        self._all.clear()
