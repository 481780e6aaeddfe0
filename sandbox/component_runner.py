"""Python runs on the pre-initialized component: one fresh Store and instance per script.

The snapshot already holds a booted CPython 3.14 with the common stdlib imported, so a run is an
instantiation (copy-on-write pages of the compiled file) and one call: `print(1)` takes a few
milliseconds instead of an interpreter boot. Every limit of the core path applies the same way:
fuel and the epoch deadline on the Store, `store.set_limits` for memory, the host-side capped
stdout/stderr, the scratch-dir watchdog, and input/output files and the result classification
shared with `Runner` (runner.py), which this module calls rather than copies.

Extra request fields: `mounts`, a list of [host_dir, guest_dir] preopened read-only, and
`sys_path`, directories put in front of the guest's `sys.path` (pure-Python packages only: the
component cannot load native extensions at run time).

HTTP (`network`): the component imports `http-call` (component.py's WIT), which endure_http calls
with the same framed request the 3.12 path's file channel carries; it is served here by
network.serve_call under the run's policy (refused without one) and logged into the result.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

import wasmtime
from wasmtime import component

from endure.sandbox.component import (
    EXPORT,
    HTTP_IMPORT,
    ComponentStore,
    ComponentUnavailableError,
    LoadedComponent,
)
from endure.sandbox.engine import get_ticker
from endure.sandbox.limits import ErrorKind
from endure.sandbox.network import HttpClient, serve_call
from endure.sandbox.result import SandboxResult
from endure.sandbox.runner import GUEST_ROOT, Runner, RunRequest, RunState, _write_inputs

ENGINE_ENV = "ENDURE_SANDBOX_PYTHON"  # "component" (default) or "core": the CPython 3.12 path
_PAGE = os.sysconf("SC_PAGE_SIZE")


class MountError(ValueError):
    """A read-only mount the request asked for cannot be granted."""


def _resident_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


def request_mounts(req: RunRequest) -> list[tuple[str, str]]:
    """The request's read-only mounts, checked: existing host dirs, absolute guest paths below "/"."""
    out: list[tuple[str, str]] = []
    for item in getattr(req, "mounts", None) or []:
        host, guest = (str(x) for x in item)
        g = PurePosixPath(guest)
        if not g.is_absolute() or g == PurePosixPath("/") or any(p in ("..", ".") for p in g.parts):
            raise MountError(f"bad guest path for a mount: {guest!r} (absolute, below '/', no '..')")
        if not os.path.isdir(host):
            raise MountError(f"mount source is not a directory: {host!r}")
        out.append((os.path.realpath(host), str(g)))
    return out


def attach_extras(req: RunRequest, msg: dict[str, Any]) -> RunRequest:
    """Copy `mounts` / `sys_path` from the pipe message when decode_request does not (yet) know them."""
    if not hasattr(req, "mounts"):
        req.mounts = [list(m) for m in msg.get("mounts") or []]  # type: ignore[attr-defined]
    if not hasattr(req, "sys_path"):
        req.sys_path = [str(p) for p in msg.get("sys_path") or []]  # type: ignore[attr-defined]
    return req


class ComponentRunner:
    """Runs Python requests of one pool process on a loaded component."""

    def __init__(self, runner: Runner, loaded: LoadedComponent) -> None:
        self.runner = runner
        self.engine = runner.engine
        self.loaded = loaded
        self.component = loaded.component
        self.linker = component.Linker(self.engine)
        self.linker.add_wasip2()
        self._state: RunState | None = None  # the run in progress (one at a time per process)
        with self.linker.root() as root:
            root.add_func(HTTP_IMPORT, self._http_call)

    def _http_call(self, store: object, request: str) -> str:
        """The guest's `http-call`: bytes travel as latin-1 strings (see component.WIT)."""
        st = self._state
        client = st.http_client if st is not None else None
        try:
            data = request.encode("latin-1")
        except UnicodeEncodeError:
            data = b"\xff"  # not a framing a guest can send through endure_http: answered as malformed
        return serve_call(client, data).decode("latin-1")

    def warm(self) -> None:
        """One throw-away run, so the first user run does not fault in the compiled code."""
        on_start, self.runner.on_start = self.runner.on_start, None
        try:
            self.run(RunRequest(kind="python", code="pass"))
        finally:
            self.runner.on_start = on_start

    def run(self, req: RunRequest) -> SandboxResult:
        work = Path(tempfile.mkdtemp(prefix="run-", dir=self.runner.base))
        try:
            return self._run(req, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _run(self, req: RunRequest, work: Path) -> SandboxResult:
        scratch = work / "root"
        scratch.mkdir()
        state = RunState(req.limits, scratch)
        if req.network is not None:
            state.http_client = HttpClient(req.network, state.wall_deadline)
        try:
            mounts = request_mounts(req)
            _write_inputs(scratch, req.files)
            stdin = work / "stdin"
            stdin.write_bytes(req.stdin)
        except (ValueError, OSError) as e:
            return SandboxResult(error=str(e), error_kind=ErrorKind.INTERNAL)
        store = wasmtime.Store(self.engine)
        store.set_limits(memory_size=req.limits.memory_bytes)
        store.set_fuel(req.limits.fuel)
        store.set_epoch_deadline(state.deadline_ticks)
        wasi = wasmtime.WasiConfig()
        wasi.argv = ["main.py", *req.args]
        wasi.env = list(req.env.items())
        wasi.stdin_file = str(stdin)
        wasi.stdout_custom = state.stdout
        wasi.stderr_custom = state.stderr
        wasi.preopen_dir(str(scratch), GUEST_ROOT)
        for host, guest in mounts:
            wasi.preopen_dir(host, guest, False)  # read-only dirs and files
        store.set_wasi(wasi)
        sys_path = [str(p) for p in getattr(req, "sys_path", None) or []]
        exc: BaseException | None = None
        code: int | None = None
        state.on_start = self.runner.on_start
        state.started()
        rss0 = _resident_bytes()
        state.t0 = time.perf_counter()
        get_ticker().add(state.watchdog)
        self._state = state
        try:
            inst = self.linker.instantiate(store, self.component)
            func = inst.get_func(store, EXPORT)
            if func is None:
                raise LookupError(f"the Python component exports no {EXPORT!r} function")
            code = int(func(store, req.code, list(req.args), sys_path))
        except BaseException as e:
            exc = e
        finally:
            self._state = None
            state.t1 = time.perf_counter()
            state.finished = True
            try:
                state.fuel_left = store.get_fuel()
            except Exception:
                state.fuel_left = None
            # The host cannot see a component's memory; the pages this run made resident are a
            # floor of its growth, the snapshot's size a floor of its total.
            grown = _resident_bytes() - rss0
            state.peak_memory = min(req.limits.memory_bytes, max(self.loaded.initial_memory_bytes, grown))
        try:
            return self.runner.finish(state, exc, req, exit_code=code)
        finally:
            del store


def python_engine_choice() -> str:
    return "core" if os.environ.get(ENGINE_ENV, "component").strip().lower() == "core" else "component"


def warm_runner(runner: Runner) -> dict[str, Any]:
    """The pool process's warm-up: load (on a cache miss build) the component and route Python to it.

    When it cannot be had, the core CPython 3.12 path warms up as before and the reply says why,
    so that the pool logs it once.
    """
    if python_engine_choice() == "core":
        runner.warm()
        return {"engine": "core", "reason": f"{ENGINE_ENV}=core"}
    try:
        loaded = ComponentStore(runner.engine, runner.cache.dir).load()
    except ComponentUnavailableError as e:
        runner.warm()
        return {"engine": "core", "fallback": str(e)}
    cr = ComponentRunner(runner, loaded)
    runner.prestart_enabled = False  # no CPython 3.12 interpreters parked in the background
    runner.python_component = cr.run
    runner.js_pre()
    cr.warm()
    return {
        "engine": "component",
        "built": loaded.built,
        "build_s": round(loaded.build_s, 3),
        "compile_s": round(loaded.compile_s, 3),
        "load_s": round(loaded.load_s, 3),
        "initial_memory_bytes": loaded.initial_memory_bytes,
    }
