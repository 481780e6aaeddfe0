"""One sandbox run inside a pool process: fresh Store + instance, WASI wiring, limits, metering.

Isolation per run: a new Store and instance (from a shared InstancePre), a fresh scratch
directory preopened as the guest's only filesystem at "/", stdout/stderr captured in memory
with caps, env vars only as given, no inherited stdio, sockets or clocks beyond WASI's.

Python runs are pre-started: while the pool process is idle, a new CPython instance boots in
a thread up to `os.sched_yield()` in a bootstrap, which we shadow with a host function that
blocks until a script arrives. The hand-off resets fuel and the epoch deadline, so limits and
metering cover only the user's script. Each interpreter serves exactly one run.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import select
import shutil
import stat
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import wasmtime

from endure.sandbox.engine import TICK_S, get_engine, get_ticker
from endure.sandbox.guests import js_guest, python_guest
from endure.sandbox.limits import ErrorKind, LimitKind, Limits
from endure.sandbox.module_cache import ModuleCache
from endure.sandbox.network import GUEST_IO_MOUNT, Channel, HttpClient, HttpExchange, NetworkPolicy
from endure.sandbox.result import SandboxResult

GUEST_ROOT = "/"
# -E: PYTHON* variables from the run's env do not steer the interpreter. (`-S` would save only ~2%
# of boot and drop the `exit()` builtin that scripts use.)
PY_FLAGS = ["-E"]
STARTUP_FUEL = 20_000_000_000  # interpreter boot budget, before the user's limits apply
# Boot is bounded by fuel; its epoch deadline stays far away because other runs in this process
# may force the epoch forward (see RunState.kill) while an interpreter boots in the background.
STARTUP_TICKS = 1 << 40
WATCH_EVERY_TICKS = 5  # scratch quota check every 50 ms

PY_BOOT = r"""
import os, sys
compile("x = 1", "<warm>", "exec")  # parser warm-up happens while idle
os.sched_yield()  # endure: the host blocks here until this interpreter's script arrives
def _endure_tb(e, src):
    # A small traceback printer: importing `traceback` costs ~50 ms of interpreter time.
    w = sys.stderr.write
    lines = src.decode("utf-8", "replace").splitlines()
    tb = e.__traceback__.tb_next if e.__traceback__ else None
    if tb is not None:
        w("Traceback (most recent call last):\n")
    while tb is not None:
        co = tb.tb_frame.f_code
        w('  File "%s", line %d, in %s\n' % (co.co_filename, tb.tb_lineno, co.co_name))
        if co.co_filename == "main.py" and 0 < tb.tb_lineno <= len(lines):
            w("    %s\n" % lines[tb.tb_lineno - 1].strip())
        tb = tb.tb_next
    t = type(e)
    name = t.__qualname__ if t.__module__ == "builtins" else "%s.%s" % (t.__module__, t.__qualname__)
    if isinstance(e, SyntaxError):
        w('  File "%s", line %s\n    %s\n' % (e.filename, e.lineno, (e.text or "").strip()))
        w("%s: %s\n" % (name, e.msg))
    else:
        msg = str(e)
        w("%s: %s\n" % (name, msg) if msg else "%s\n" % name)
def _endure_main():
    def rd(n):
        out = bytearray()
        while len(out) < n:
            c = os.read(0, n - len(out))
            if not c:
                break
            out += c
        return bytes(out)
    n, nargs, npath = int(rd(12)), int(rd(6)), int(rd(6))
    sys.argv = ["main.py"] + [rd(int(rd(12))).decode() for _ in range(nargs)]
    paths = [rd(int(rd(12))).decode() for _ in range(npath)]
    if paths:  # read-only mounts (packages, endure's guest modules): nothing to cache bytecode in
        sys.path[0:0] = paths
        sys.dont_write_bytecode = True
    src = rd(n)
    g = {"__name__": "__main__", "__builtins__": __builtins__}
    code = 0
    try:
        exec(compile(src, "main.py", "exec"), g)
    except SystemExit as e:
        c = e.code
        if c is None:
            code = 0
        elif isinstance(c, int):
            code = c & 0xFF
        else:
            print(c, file=sys.stderr)
            code = 1
    except BaseException as e:
        _endure_tb(e, src)
        code = 1
    g.clear()
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except BaseException:
            pass
    os._exit(code)
_endure_main()
"""

JS_WRAPPER = """import * as std from 'qjs:std'; import * as os from 'qjs:os'; import * as bjson from 'qjs:bjson';
globalThis.std = std; globalThis.os = os; globalThis.bjson = bjson;
try {
  await std.evalScript(%s, {async: true});
  await new Promise((r) => os.setTimeout(r, 0));
} finally { std.out.flush(); std.err.flush(); }
"""


@dataclass
class RunRequest:
    """What the pool process is asked to run (decoded from the pipe)."""

    kind: str  # "python" | "javascript" | "wasm"
    code: str = ""
    module: bytes | None = None
    args: list[str] = field(default_factory=list)
    stdin: bytes = b""
    files: dict[str, bytes] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    env: dict[str, str] = field(default_factory=dict)
    # (host_dir, guest_dir) pairs preopened read-only; `sys_path` dirs go first on the guest's sys.path.
    mounts: list[tuple[str, str]] = field(default_factory=list)
    sys_path: list[str] = field(default_factory=list)
    network: NetworkPolicy | None = None  # Python runs only: HTTP through the host (network.py)


class Capture:
    """A capped stdout/stderr sink: past the cap the write fails (EIO) and the run is stopped."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.buf = bytearray()
        self.truncated = False
        self.on_overflow: Callable[[], None] | None = None

    def __call__(self, data: bytes) -> int | None:
        room = self.cap - len(self.buf)
        if len(data) <= room:
            self.buf += data
            return None
        if room > 0:
            self.buf += data[:room]
        if not self.truncated:
            self.truncated = True
            if self.on_overflow is not None:
                self.on_overflow()
        return -errno.EIO

    def reset(self, cap: int) -> None:
        self.cap = cap
        self.buf = bytearray()
        self.truncated = False

    def text(self) -> str:
        return self.buf.decode("utf-8", errors="replace")


def _safe_relpath(name: str) -> PurePosixPath:
    p = PurePosixPath(name.lstrip("/"))
    if not p.parts or any(part in ("", ".", "..") for part in p.parts):
        raise ValueError(f"bad file name for the sandbox: {name!r}")
    return p


class RunState:
    """Everything about one run that host functions and the watchdog need."""

    def __init__(self, limits: Limits, scratch: Path) -> None:
        self.limits = limits
        self.scratch = scratch
        self.stdout = Capture(limits.stdout_bytes)
        self.stderr = Capture(limits.stderr_bytes)
        self.stdout.on_overflow = self.stderr.on_overflow = self.output_overflow
        self.killed_by: LimitKind | None = None
        self.t0 = 0.0
        self.t1 = 0.0
        self.fuel_budget = limits.fuel
        self.fuel_left: int | None = None
        self.peak_memory = 0
        self.deadline_ticks = max(1, math.ceil(limits.wall_time_ms / 1000 / TICK_S))
        self.finished = False
        self._tick = 0
        self.on_start: Callable[[], None] | None = None
        self.channel: Channel | None = None  # the run's HTTP channel (its dir counts to the quotas)
        self.http_client: HttpClient | None = None  # the component path's client (no channel dir)

    def http_log(self) -> list[HttpExchange]:
        """The run's HTTP exchanges, from whichever channel it had."""
        client = self.channel.client if self.channel is not None else self.http_client
        return client.log if client is not None else []

    def wall_deadline(self) -> float:
        """When this run's wall time ends (time.monotonic), for host calls the epoch cannot cut."""
        return time.monotonic() - (time.perf_counter() - self.t0) + self.limits.wall_time_ms / 1000

    def started(self) -> None:
        """The guest gets control now: tell the pool, whose hard deadline starts here."""
        cb, self.on_start = self.on_start, None
        if cb is not None:
            cb()

    def kill(self, why: LimitKind) -> None:
        """Make the running guest trap at its next epoch check (this engine runs one guest at a time)."""
        if self.killed_by is None:
            self.killed_by = why
        get_ticker().force(self.deadline_ticks)

    def output_overflow(self) -> None:
        self.kill(LimitKind.OUTPUT)

    def watchdog(self) -> bool:
        """Scratch-dir quotas while running; forces the epoch so the guest traps (FILES)."""
        if self.finished:
            return True
        self._tick += 1
        if self._tick % WATCH_EVERY_TICKS:
            return False
        count, size = 0, 0
        for top in [self.scratch] + ([self.channel.dir] if self.channel is not None else []):
            for root, dirs, files in os.walk(top):
                count += len(files) + len(dirs)
                for f in files:
                    try:
                        size += os.lstat(os.path.join(root, f)).st_size
                    except OSError:
                        pass
        if count > self.limits.scratch_files or size > self.limits.scratch_bytes:
            self.kill(LimitKind.FILES)
            return True
        return False


def _check_mounts(mounts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Mounts are built by the host, but a bad one must not shadow "/" or reach outside a directory."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for host, guest in mounts:
        g = PurePosixPath(guest)
        if not g.is_absolute() or g == PurePosixPath("/") or any(p in (".", "..") for p in g.parts[1:]):
            raise ValueError(f"bad guest mount point {guest!r}")
        if str(g) in seen:
            raise ValueError(f"guest mount point {guest!r} given twice")
        if not os.path.isdir(host):
            raise ValueError(f"mount source {host!r} is not a directory")
        seen.add(str(g))
        out.append((host, str(g)))
    return out


def _write_inputs(scratch: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        rel = _safe_relpath(name)
        dest = scratch.joinpath(*rel.parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)


def collect_files(scratch: Path, inputs: dict[str, bytes], limits: Limits) -> tuple[dict[str, bytes], bool]:
    """New or changed regular files in the scratch dir, within the caps; symlinks are never followed."""
    files, truncated, _ = collect_changes(scratch, inputs, limits)
    return files, truncated


def collect_changes(
    scratch: Path, inputs: dict[str, bytes], limits: Limits
) -> tuple[dict[str, bytes], bool, list[str]]:
    """What a run changed: new or changed regular files (within the caps), whether the caps cut
    some, and the input files that are gone (removed, or now a directory, symlink, fifo...) so a
    workspace can drop them. One walk that never follows symlinks."""
    out: dict[str, bytes] = {}
    total = 0
    truncated = False
    normalized_inputs = {str(_safe_relpath(k)): v for k, v in inputs.items()}
    stack = [scratch]
    paths: list[tuple[str, os.stat_result]] = []
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            st = os.lstat(e.path)
            if stat.S_ISDIR(st.st_mode):
                stack.append(Path(e.path))
            elif stat.S_ISREG(st.st_mode):
                paths.append((os.path.relpath(e.path, scratch).replace(os.sep, "/"), st))
            # symlinks, fifos, sockets: skipped, never followed
    present = {rel for rel, _ in paths}
    deleted = sorted(name for name in normalized_inputs if name not in present)
    for rel, st in sorted(paths):
        if len(out) >= limits.max_files or total + st.st_size > limits.max_files_bytes:
            if normalized_inputs.get(rel) is None or st.st_size != len(normalized_inputs[rel]):
                truncated = True
            continue
        try:
            fd = os.open(scratch / rel, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        with os.fdopen(fd, "rb") as f:
            data = f.read(limits.max_files_bytes - total + 1)
        if normalized_inputs.get(rel) == data:
            continue  # an input the guest left unchanged
        if total + len(data) > limits.max_files_bytes:
            truncated = True
            continue
        out[rel] = data
        total += len(data)
    return out, truncated, deleted


def _classify(
    exc: BaseException, state: RunState
) -> tuple[int | None, LimitKind | None, ErrorKind | None, str | None]:
    """Map a wasmtime exception to (exit_code, limit_hit, error_kind, message)."""
    if isinstance(exc, wasmtime.ExitTrap):
        return exc.code, None, None, None
    msg = str(exc).split("\n")[0] if not isinstance(exc, wasmtime.Trap) else exc.message.split("\n")[0]
    code = getattr(exc, "trap_code", None) if isinstance(exc, wasmtime.Trap) else None
    full = str(exc)
    if code == wasmtime.TrapCode.OUT_OF_FUEL or "all fuel consumed" in full:
        return None, LimitKind.FUEL, None, "fuel exhausted"
    if code == wasmtime.TrapCode.INTERRUPT or "wasm trap: interrupt" in full:
        if state.killed_by is not None:
            return None, state.killed_by, None, f"{state.killed_by.value} quota exceeded while running"
        return None, LimitKind.WALL_TIME, None, "wall time exceeded"
    if code == wasmtime.TrapCode.STACK_OVERFLOW or "call stack exhausted" in full:
        return None, None, ErrorKind.STACK_OVERFLOW, "wasm call stack exhausted"
    if isinstance(exc, wasmtime.Trap) or "wasm backtrace" in full:
        return None, None, ErrorKind.TRAP, msg
    return None, None, ErrorKind.INTERNAL, msg


def _memory_of(store: wasmtime.Store, instance: wasmtime.Instance) -> int:
    try:
        mem = instance.exports(store).get("memory")
        if isinstance(mem, wasmtime.Memory):
            return mem.data_len(store)
    except Exception:
        pass
    return 0


class PyInstance:
    """One single-use CPython interpreter, booted ahead of time and parked at the hand-off."""

    def __init__(
        self,
        runner: Runner,
        memory_bytes: int,
        env: dict[str, str],
        mounts: list[tuple[str, str]] | None = None,
        channel: bool = False,
    ) -> None:
        self.runner = runner
        self.memory_bytes = memory_bytes
        self.env = dict(env)
        self.mounts = _check_mounts(list(mounts or []))
        self.work = Path(tempfile.mkdtemp(prefix="run-", dir=runner.base))
        self.scratch = self.work / "root"
        self.scratch.mkdir()
        self.io_dir: Path | None = None
        if channel:  # endure_http's request/response files (network.py), outside the scratch dir
            self.io_dir = self.work / "io"
            self.io_dir.mkdir()
        # stdin is a FIFO: wasmtime reads stdin files eagerly, so the script (written at the
        # hand-off) must arrive through a pipe that we still hold open.
        self.stdin_path = self.work / "stdin"
        os.mkfifo(self.stdin_path, 0o600)
        self.stdin_fd: int | None = os.open(self.stdin_path, os.O_RDWR | os.O_NONBLOCK)
        self.ready = threading.Event()
        self.go = threading.Event()
        self.done = threading.Event()
        self.handed = False
        self.state: RunState | None = None
        self.exc: BaseException | None = None
        self.stdout = Capture(1 << 20)
        self.stderr = Capture(1 << 20)
        self.store = wasmtime.Store(runner.engine)
        self.store.set_limits(memory_size=memory_bytes)
        self.store.set_fuel(STARTUP_FUEL)
        self.store.set_epoch_deadline(STARTUP_TICKS)
        wasi = wasmtime.WasiConfig()
        wasi.argv = ["python", *PY_FLAGS, "-c", PY_BOOT]
        wasi.env = list(self.env.items())
        wasi.stdin_file = str(self.stdin_path)
        wasi.stdout_custom = self.stdout
        wasi.stderr_custom = self.stderr
        wasi.preopen_dir(str(self.scratch), GUEST_ROOT)
        for host, guest in self.mounts:
            # fs_mutable=False: wasmtime grants read-only dir and file perms (no create, write,
            # rename, unlink, truncate or utime); host file modes would not stop a root host.
            wasi.preopen_dir(host, guest, fs_mutable=False)
        if self.io_dir is not None:
            wasi.preopen_dir(str(self.io_dir), GUEST_IO_MOUNT)
        self.store.set_wasi(wasi)
        self.instance: wasmtime.Instance | None = None
        self.thread = threading.Thread(target=self._main, name="endure-py", daemon=True)
        self.thread.endure_py = self  # type: ignore[attr-defined]
        self.thread.start()

    def _main(self) -> None:
        try:
            self.instance = self.runner.python_pre().instantiate(self.store)
            start = self.instance.exports(self.store)["_start"]
            assert isinstance(start, wasmtime.Func)
            start(self.store)
        except BaseException as e:  # classified by the runner
            self.exc = e
        finally:
            if self.state is not None:
                self.state.t1 = time.perf_counter()
                self.state.finished = True
                try:
                    self.state.fuel_left = self.store.get_fuel()
                except Exception:
                    self.state.fuel_left = None
                if self.instance is not None:
                    self.state.peak_memory = _memory_of(self.store, self.instance)
            self.done.set()
            self.ready.set()

    def handoff(self, caller: wasmtime.Caller) -> int:
        """Host side of the bootstrap's os.sched_yield(): park until the script arrives. Later
        calls are endure_http's requests (or a plain yield, when no request file is there)."""
        if self.handed:
            if self.state is not None and self.state.channel is not None:
                self.state.channel.serve()
            return 0
        self.ready.set()
        self.go.wait()
        self.handed = True
        st = self.state
        assert st is not None
        wasmtime.Store.set_fuel(caller, st.fuel_budget)  # type: ignore[arg-type]
        wasmtime.Store.set_epoch_deadline(caller, st.deadline_ticks)  # type: ignore[arg-type]
        st.t0 = time.perf_counter()
        get_ticker().add(st.watchdog)
        st.started()
        return 0

    def run(self, req: RunRequest) -> SandboxResult:
        """Give this interpreter its one script and wait for the outcome."""
        self.ready.wait()
        if self.done.is_set():
            err = f"python guest failed to start: {self.exc}; {self.stderr.text()[-2000:]}"
            self.cleanup()
            kind = LimitKind.MEMORY if "memory" in err.lower() else None
            return SandboxResult(error=err, error_kind=None if kind else ErrorKind.INTERNAL, limit_hit=kind)
        state = RunState(req.limits, self.scratch)
        state.on_start = self.runner.on_start
        if self.io_dir is not None:
            client = HttpClient(req.network, state.wall_deadline) if req.network is not None else None
            state.channel = Channel(self.io_dir, client)
        self.stdout.reset(req.limits.stdout_bytes)
        self.stderr.reset(req.limits.stderr_bytes)
        self.stdout.on_overflow = self.stderr.on_overflow = state.output_overflow
        try:
            _write_inputs(self.scratch, req.files)
        except (ValueError, OSError) as e:
            self.cleanup(kill=True)
            return SandboxResult(error=str(e), error_kind=ErrorKind.INTERNAL)
        src = req.code.encode()
        payload = bytearray(b"%012d%06d%06d" % (len(src), len(req.args), len(req.sys_path)))
        for a in [*req.args, *req.sys_path]:
            ab = a.encode()
            payload += b"%012d" % len(ab) + ab
        payload += src + req.stdin
        self.state = state
        self.go.set()
        self._feed(bytes(payload))
        self.done.wait()
        state.stdout, state.stderr = self.stdout, self.stderr
        res = self.runner.finish(state, self.exc, req, exit_code=0 if self.exc is None else None)
        self.cleanup()
        return res

    def _feed(self, data: bytes) -> None:
        """Write the script + stdin into the FIFO, then close it (EOF); stop if the guest ends first."""
        fd = self.stdin_fd
        assert fd is not None
        view = memoryview(data)
        try:
            while view and not self.done.is_set():
                try:
                    n = os.write(fd, view[: 1 << 16])
                    view = view[n:]
                except BlockingIOError:
                    select.select([], [fd], [], 0.02)
        except OSError:
            pass
        finally:
            self._close_stdin()

    def _close_stdin(self) -> None:
        if self.stdin_fd is not None:
            os.close(self.stdin_fd)
            self.stdin_fd = None

    def cleanup(self, kill: bool = False) -> None:
        if kill and not self.done.is_set():
            self.state = self.state or RunState(Limits(), self.scratch)
            self.go.set()  # the guest then reads an empty script and exits
            self._close_stdin()
            self.done.wait(5)
        self._close_stdin()
        shutil.rmtree(self.work, ignore_errors=True)


class Runner:
    """Per-process sandbox executor: the engine, the module cache, linkers and InstancePres."""

    def __init__(self, cache_dir: Path | str | None = None, prestart: bool = True) -> None:
        self.engine = get_engine()
        get_ticker()
        self.cache = ModuleCache(self.engine, cache_dir)
        self.base = Path(tempfile.mkdtemp(prefix="endure-sbx-"))
        self.prestart_enabled = prestart
        self.linker = wasmtime.Linker(self.engine)
        self.linker.define_wasi()
        self.py_linker = wasmtime.Linker(self.engine)
        self.py_linker.define_wasi()
        self.py_linker.allow_shadowing = True
        i32 = wasmtime.ValType.i32()
        self.py_linker.define_func(
            "wasi_snapshot_preview1",
            "sched_yield",
            wasmtime.FuncType([], [i32]),
            self._sched_yield,
            access_caller=True,
        )
        self._py_pre: wasmtime.InstancePre | None = None
        self._js_pre: wasmtime.InstancePre | None = None
        self._wasm_pre: dict[str, wasmtime.InstancePre] = {}
        self._next_py: PyInstance | None = None
        self.default_limits = Limits()
        # Called (from the guest's thread) when a run's guest gets control; the worker uses it
        # to start the pool's hard deadline only after boot/compile work.
        self.on_start: Callable[[], None] | None = None

    # -- guests -------------------------------------------------------------------------------
    @staticmethod
    def _sched_yield(caller: wasmtime.Caller) -> int:
        inst: PyInstance | None = getattr(threading.current_thread(), "endure_py", None)
        if inst is None:
            return 0
        return inst.handoff(caller)

    def python_pre(self) -> wasmtime.InstancePre:
        if self._py_pre is None:
            g = python_guest()
            mod = self.cache.load(path=g.path, sha256=g.sha256)
            self._py_pre = self.py_linker.instantiate_pre(mod)
        return self._py_pre

    def js_pre(self) -> wasmtime.InstancePre:
        if self._js_pre is None:
            g = js_guest()
            mod = self.cache.load(path=g.path, sha256=g.sha256)
            self._js_pre = self.linker.instantiate_pre(mod)
        return self._js_pre

    def warm(self) -> None:
        """Load (compile or deserialize) both guests and park the first interpreter."""
        self.python_pre()
        self.js_pre()
        if self.prestart_enabled and self._next_py is None:
            self._next_py = PyInstance(self, self.default_limits.memory_bytes, {})

    def close(self) -> None:
        if self._next_py is not None:
            self._next_py.cleanup(kill=True)
            self._next_py = None
        shutil.rmtree(self.base, ignore_errors=True)

    # -- runs -----------------------------------------------------------------------------------
    # Set by the pool process's warm-up when the pre-initialized Python component is loaded
    # (component_runner.warm_runner); Python requests then go there instead of CPython 3.12.
    python_component: Callable[[RunRequest], SandboxResult] | None = None

    def run(self, req: RunRequest) -> SandboxResult:
        if req.kind == "python":
            return self.run_python(req)
        if req.kind == "javascript":
            return self.run_javascript(req)
        if req.kind == "wasm":
            return self.run_wasm(req)
        return SandboxResult(error=f"unknown guest kind {req.kind!r}", error_kind=ErrorKind.INTERNAL)

    def run_python(self, req: RunRequest) -> SandboxResult:
        # Network runs too: the component's HTTP channel is its `http-call` import. Without the
        # component, the 3.12 path's channel is the shadowed `sched_yield` and its files.
        if self.python_component is not None:
            return self.python_component(req)
        inst = self._next_py
        if (
            inst is not None
            and inst.memory_bytes == req.limits.memory_bytes
            and inst.env == req.env
            and not req.mounts
            and req.network is None
        ):
            self._next_py = None
        else:
            try:
                inst = PyInstance(self, req.limits.memory_bytes, req.env, req.mounts, req.network is not None)
            except (ValueError, OSError, wasmtime.WasmtimeError) as e:
                return SandboxResult(error=str(e), error_kind=ErrorKind.INTERNAL)
        try:
            return inst.run(req)
        finally:
            if self.prestart_enabled and self._next_py is None:
                self._next_py = PyInstance(self, self.default_limits.memory_bytes, {})

    def _fresh_store(self, req: RunRequest, argv: list[str]) -> tuple[wasmtime.Store, RunState, Path]:
        work = Path(tempfile.mkdtemp(prefix="run-", dir=self.base))
        scratch = work / "root"
        scratch.mkdir()
        state = RunState(req.limits, scratch)
        _write_inputs(scratch, req.files)
        stdin = work / "stdin"
        stdin.write_bytes(req.stdin)
        store = wasmtime.Store(self.engine)
        store.set_limits(memory_size=req.limits.memory_bytes)
        store.set_fuel(req.limits.fuel)
        store.set_epoch_deadline(state.deadline_ticks)
        wasi = wasmtime.WasiConfig()
        wasi.argv = argv
        wasi.env = list(req.env.items())
        wasi.stdin_file = str(stdin)
        wasi.stdout_custom = state.stdout
        wasi.stderr_custom = state.stderr
        wasi.preopen_dir(str(scratch), GUEST_ROOT)
        store.set_wasi(wasi)
        return store, state, work

    def _run_fresh(
        self,
        req: RunRequest,
        pre: wasmtime.InstancePre,
        argv: list[str],
        body: Callable[[wasmtime.Store, wasmtime.Instance], int],
    ) -> SandboxResult:
        try:
            store, state, work = self._fresh_store(req, argv)
        except (ValueError, OSError) as e:
            return SandboxResult(error=str(e), error_kind=ErrorKind.INTERNAL)
        exc: BaseException | None = None
        code: int | None = None
        instance: wasmtime.Instance | None = None
        try:
            state.on_start = self.on_start
            state.started()
            state.t0 = time.perf_counter()
            get_ticker().add(state.watchdog)
            instance = pre.instantiate(store)
            code = body(store, instance)
        except BaseException as e:
            exc = e
        finally:
            state.t1 = time.perf_counter()
            state.finished = True
            try:
                state.fuel_left = store.get_fuel()
            except Exception:
                state.fuel_left = None
            if instance is not None:
                state.peak_memory = _memory_of(store, instance)
        try:
            return self.finish(state, exc, req, exit_code=code)
        finally:
            del store
            shutil.rmtree(work, ignore_errors=True)

    def run_javascript(self, req: RunRequest) -> SandboxResult:
        try:
            pre = self.js_pre()
        except Exception as e:
            return SandboxResult(error=str(e), error_kind=ErrorKind.INTERNAL)
        wrapper = JS_WRAPPER % json.dumps(req.code)

        def body(store: wasmtime.Store, inst: wasmtime.Instance) -> int:
            ex = inst.exports(store)
            ex["_initialize"](store)  # type: ignore[operator]
            mem = ex["memory"]
            assert isinstance(mem, wasmtime.Memory)
            malloc = ex["malloc"]

            def cstr(s: str) -> int:
                b = s.encode() + b"\0"
                p = malloc(store, len(b))  # type: ignore[operator]
                if not p:
                    raise MemoryError("guest malloc failed")
                mem.write(store, b, p)
                return int(p)

            argv = ["qjs", "-m", "-e", wrapper]
            ptrs = [cstr(a) for a in argv]
            arr = malloc(store, 4 * len(ptrs))  # type: ignore[operator]
            mem.write(store, struct.pack(f"<{len(ptrs)}I", *ptrs), arr)
            rc = ex["qjs_init_argv"](store, len(ptrs), arr)  # type: ignore[operator]
            return 0 if rc == 0 else 1

        return self._run_fresh(req, pre, ["qjs", *req.args], body)

    def run_wasm(self, req: RunRequest) -> SandboxResult:
        wasm = req.module or b""
        digest = hashlib.sha256(wasm).hexdigest()
        pre = self._wasm_pre.get(digest)
        if pre is None:
            try:
                mod = self.cache.load(wasm=wasm, sha256=digest)
            except wasmtime.WasmtimeError as e:
                return SandboxResult(
                    error=f"invalid module: {str(e).splitlines()[0]}", error_kind=ErrorKind.INVALID_MODULE
                )
            try:
                pre = self.linker.instantiate_pre(mod)
            except wasmtime.WasmtimeError as e:
                return SandboxResult(
                    error=f"cannot link module: {str(e).splitlines()[0]}", error_kind=ErrorKind.LINK_ERROR
                )
            if len(self._wasm_pre) > 64:
                self._wasm_pre.pop(next(iter(self._wasm_pre)))
            self._wasm_pre[digest] = pre

        def body(store: wasmtime.Store, inst: wasmtime.Instance) -> int:
            ex = inst.exports(store)
            start = ex.get("_start")
            if not isinstance(start, wasmtime.Func):
                raise LookupError("module exports no _start function (not a WASI command)")
            start(store)
            return 0

        return self._run_fresh(req, pre, ["main.wasm", *req.args], body)

    def finish(
        self, state: RunState, exc: BaseException | None, req: RunRequest, exit_code: int | None
    ) -> SandboxResult:
        """Build the result: classify the ending, collect files, meter."""
        limit: LimitKind | None = None
        kind: ErrorKind | None = None
        error: str | None = None
        if exc is not None:
            if isinstance(exc, LookupError):
                kind, error = ErrorKind.LINK_ERROR, str(exc)
            elif isinstance(exc, (wasmtime.WasmtimeError, wasmtime.Trap)):
                exit_code, limit, kind, error = _classify(exc, state)
                if kind is ErrorKind.INTERNAL and "memory" in (error or "").lower():
                    kind, limit = None, LimitKind.MEMORY  # instantiation beyond the memory cap
            else:
                kind, error = ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}"
        files, files_trunc, deleted = collect_changes(state.scratch, req.files, req.limits)
        if limit is None and exit_code not in (0, None):
            limit = _memory_limit_hit(state, req)
        if limit is None and (state.stdout.truncated or state.stderr.truncated):
            limit = LimitKind.OUTPUT
        if limit is None and files_trunc:
            limit = LimitKind.FILES
        fuel_used = state.fuel_budget - state.fuel_left if state.fuel_left is not None else state.fuel_budget
        return SandboxResult(
            exit_code=exit_code,
            stdout=state.stdout.text(),
            stderr=state.stderr.text(),
            stdout_truncated=state.stdout.truncated,
            stderr_truncated=state.stderr.truncated,
            files=files,
            files_truncated=files_trunc,
            deleted=deleted,
            fuel_used=max(0, fuel_used),
            wall_ms=round((state.t1 - state.t0) * 1000, 3) if state.t0 else 0.0,
            peak_memory_bytes=state.peak_memory,
            limit_hit=limit,
            error=error,
            error_kind=kind,
            http=state.http_log(),
        )


_OOM_MARKERS = ("MemoryError", "out of memory", "Cannot allocate memory")


def _memory_limit_hit(state: RunState, req: RunRequest) -> LimitKind | None:
    """wasmtime's C API cannot trap on a refused memory.grow, so infer it: the guest failed
    with an out-of-memory error, or died with its memory within 1/16 of the cap."""
    err = state.stderr.text()
    if any(m in err for m in _OOM_MARKERS):
        return LimitKind.MEMORY
    if state.peak_memory and state.peak_memory >= req.limits.memory_bytes - req.limits.memory_bytes // 16:
        return LimitKind.MEMORY
    return None


def decode_request(msg: dict[str, Any]) -> RunRequest:
    """Pipe JSON -> RunRequest (bytes travel as latin-1-free base64)."""
    import base64

    return RunRequest(
        kind=msg["kind"],
        code=msg.get("code", ""),
        module=base64.b64decode(msg["module"]) if msg.get("module") is not None else None,
        args=list(msg.get("args", [])),
        stdin=base64.b64decode(msg.get("stdin", "")),
        files={k: base64.b64decode(v) for k, v in (msg.get("files") or {}).items()},
        limits=Limits.model_validate(msg.get("limits") or {}),
        env=dict(msg.get("env") or {}),
        mounts=[(str(h), str(g)) for h, g in msg.get("mounts") or []],
        sys_path=[str(p) for p in msg.get("sys_path") or []],
        network=NetworkPolicy.model_validate(msg["network"]) if msg.get("network") else None,
    )
