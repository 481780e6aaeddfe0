"""Build, compile and cache the pre-initialized Python component that `run_python` runs.

componentize-py turns `guest_app.py` (CPython 3.14 with a few dozen stdlib modules already
imported) into a WebAssembly component snapshot; wasmtime compiles it once (about 10 s) and the
result is serialized into the sandbox cache dir. After that a pool process only deserializes it
(a memory map) and every run instantiates the snapshot in a few milliseconds, instead of booting
an interpreter.

Cache entries are keyed by a hash of the WIT world, the app source, the componentize-py version
and the engine settings (wasmtime version included), and carry an HMAC with the module cache's
secret, since deserializing is only safe for files we wrote. Concurrent pool processes build
once: the builder holds a lock file and publishes with atomic renames. A failed build leaves a
marker so that every new pool process does not retry a long failing build; `prepare(force=True)`
ignores it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import wasmtime
from wasmtime import component

from endure.sandbox.engine import engine_settings
from endure.sandbox.limits import ErrorKind
from endure.sandbox.module_cache import ModuleCache
from endure.sandbox.paths import default_cache_dir

COMPONENTIZE_PY = "componentize-py==0.25.1"
WORLD = "python-runner"
APP_MODULE = "endure_guest"  # the name guest_app.py gets inside the component
EXPORT = "run"
HTTP_IMPORT = "http-call"
BUILD_TIMEOUT_S = 600.0
RETRY_FAILED_AFTER_S = 600.0  # a failed build is retried by a new process only after this

WIT = """package endure:sandbox@0.1.0;

/// One Python script per fresh instance of a pre-initialized CPython.
world python-runner {
  /// endure_http's request to the host (endure.sandbox.network.serve_call), refused without a
  /// NetworkPolicy. The bytes are carried as a string of their latin-1 decoding: wasmtime-py
  /// converts a list<u8> element by element in Python (seconds per MiB), a string in one copy.
  import http-call: func(request: string) -> string;
  /// Runs `code` as `__main__` with `sys.argv = ["main.py", ...args]` and `sys-path` in front
  /// of `sys.path`. Output goes to the WASI stdout/stderr; the result is the exit status
  /// (0, the SystemExit code, or 1 after an uncaught exception's traceback on stderr).
  export run: func(code: string, args: list<string>, sys-path: list<string>) -> s32;
}
"""

# componentize-py has no `python -m` entry point; this is what its console script does.
_CLI = "import sys; from componentize_py import script; sys.argv[0] = 'componentize-py'; sys.exit(script())"


class ComponentUnavailableError(RuntimeError):
    """The Python component cannot be built or loaded; `run_python` falls back to CPython 3.12 WASI."""

    kind = ErrorKind.INTERNAL

    def __init__(self, why: str, fix: str) -> None:
        super().__init__(f"{why}; {fix}")
        self.why = why
        self.fix = fix


@dataclass(frozen=True)
class LoadedComponent:
    """A compiled component ready to instantiate, and what we know about it."""

    component: component.Component
    key: str
    path: Path
    initial_memory_bytes: int  # linear memory of the snapshot, before the script runs
    built: bool  # True when this call built and compiled it (a cache miss)
    build_s: float = 0.0
    compile_s: float = 0.0
    load_s: float = 0.0


def app_source() -> str:
    return Path(__file__).with_name("guest_app.py").read_text(encoding="utf-8")


def componentize_py_version() -> str | None:
    try:
        return metadata.version("componentize-py")
    except metadata.PackageNotFoundError:
        return None


def build_key(cpy_version: str) -> str:
    """What the compiled file depends on: a change to any of it makes a new entry."""
    h = hashlib.sha256()
    for part in (WIT, app_source(), cpy_version, json.dumps(engine_settings(), sort_keys=True)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as lf:
        fcntl.flock(lf, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lf, fcntl.LOCK_UN)


def componentize(out: Path, cpy_version: str, timeout_s: float = BUILD_TIMEOUT_S) -> float:
    """Run componentize-py on the app in a clean temp dir; returns the seconds it took.

    It runs in a child process with a minimal environment: the snapshot holds whatever the app
    saw at build time, and the host's environment must not be part of it.
    """
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="endure-componentize-") as tmp:
        wit_dir = Path(tmp) / "wit"
        app_dir = Path(tmp) / "app"
        wit_dir.mkdir()
        app_dir.mkdir()
        (wit_dir / "world.wit").write_text(WIT, encoding="utf-8")
        (app_dir / f"{APP_MODULE}.py").write_text(app_source(), encoding="utf-8")
        cmd = [sys.executable, "-c", _CLI, "-q", "-d", str(wit_dir), "-w", WORLD]
        cmd += ["componentize", "-p", str(app_dir), APP_MODULE, "-o", str(out)]
        env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": tmp, "LANG": "C.UTF-8"}
        try:
            proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ComponentUnavailableError(
                f"componentize-py {cpy_version} did not finish within {timeout_s:.0f}s",
                "run `python -m endure.sandbox prepare` on a less busy machine",
            ) from None
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).decode(errors="replace").strip()[-1500:]
            raise ComponentUnavailableError(
                f"componentize-py {cpy_version} failed (exit {proc.returncode}): {tail}",
                f"check that '{COMPONENTIZE_PY}' is installed and works, then run "
                "`python -m endure.sandbox prepare --force`",
            )
    return time.perf_counter() - t0


_MIN_PAGES = re.compile(r"minimum size of (\d+) pages")


def probe_initial_memory(engine: wasmtime.Engine, comp: component.Component) -> int:
    """The snapshot's linear memory size: instantiating under a 64 KiB cap fails and says it.

    The component API gives the host no view of the guest's memory, and this figure is the
    floor of every run's memory use (and the smallest `memory_bytes` that can work).
    """
    store = wasmtime.Store(engine)
    store.set_limits(memory_size=64 * 1024)
    store.set_fuel(10**9)
    store.set_epoch_deadline(1 << 40)
    store.set_wasi(wasmtime.WasiConfig())
    linker = component.Linker(engine)
    linker.add_wasip2()
    with linker.root() as root:  # never called: instantiation stops at the memory cap
        root.add_func(HTTP_IMPORT, lambda _store, _request: "")
    try:
        linker.instantiate(store, comp)
    except wasmtime.WasmtimeError as e:
        m = _MIN_PAGES.search(str(e))
        if m:
            return int(m.group(1)) * 65536
    return 0


class ComponentStore:
    """The component's entries in one cache dir (the module cache's dir and secret)."""

    def __init__(self, engine: wasmtime.Engine, cache_dir: Path | str | None = None) -> None:
        self.engine = engine
        self.dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.modules = ModuleCache(engine, self.dir)  # creates the dir and its secret key

    def _paths(self, key: str) -> dict[str, Path]:
        base = f"python-component-{key}"
        return {s: self.dir / f"{base}.{s}" for s in ("cwasm", "mac", "json", "lock", "failed")}

    def _mac(self, path: Path) -> bytes:
        return self.modules._mac(path)  # same secret as the module cache's entries

    def _try_load(self, key: str) -> LoadedComponent | None:
        p = self._paths(key)
        if not (p["cwasm"].is_file() and p["mac"].is_file() and p["json"].is_file()):
            return None
        t0 = time.perf_counter()
        try:
            if not hmac.compare_digest(p["mac"].read_bytes(), self._mac(p["cwasm"])):
                return None
            meta = json.loads(p["json"].read_text())
            comp = component.Component.deserialize_file(self.engine, str(p["cwasm"]))
        except (OSError, ValueError, wasmtime.WasmtimeError):
            return None
        initial = int(meta.get("initial_memory_bytes", 0))
        return LoadedComponent(comp, key, p["cwasm"], initial, built=False, load_s=time.perf_counter() - t0)

    def _failure(self, key: str) -> str | None:
        marker = self._paths(key)["failed"]
        try:
            if time.time() - marker.stat().st_mtime < RETRY_FAILED_AFTER_S:
                return marker.read_text(errors="replace")
        except OSError:
            pass
        return None

    def load(self, *, build: bool = True, force: bool = False) -> LoadedComponent:
        """The compiled component from the cache, built and compiled first on a miss.

        Raises ComponentUnavailableError (with why and how to fix) when it cannot be had.
        """
        version = componentize_py_version()
        if version is None:
            raise ComponentUnavailableError(
                "componentize-py is not installed",
                f"pip install '{COMPONENTIZE_PY}' (or endure[sandbox]), then run "
                "`python -m endure.sandbox prepare`",
            )
        key = build_key(version)
        if not force and (hit := self._try_load(key)) is not None:
            return hit
        p = self._paths(key)
        with _locked(p["lock"]):
            if not force and (hit := self._try_load(key)) is not None:
                return hit  # another process built it while we waited
            if not build:
                raise ComponentUnavailableError(
                    "the Python component is not built yet", "run `python -m endure.sandbox prepare`"
                )
            if not force and (failed := self._failure(key)) is not None:
                raise ComponentUnavailableError(
                    f"an earlier build failed: {failed}",
                    "fix it, then run `python -m endure.sandbox prepare --force`",
                )
            try:
                return self._build(key, version)
            except ComponentUnavailableError as e:
                _atomic_write(p["failed"], e.why.encode())
                raise

    def _build(self, key: str, version: str) -> LoadedComponent:
        p = self._paths(key)
        with tempfile.TemporaryDirectory(prefix=".build-", dir=self.dir) as tmp:
            wasm = Path(tmp) / "runner.wasm"
            build_s = componentize(wasm, version)
            t0 = time.perf_counter()
            try:
                comp = component.Component(self.engine, wasm.read_bytes())
            except wasmtime.WasmtimeError as e:
                raise ComponentUnavailableError(
                    f"wasmtime could not compile the component: {str(e).splitlines()[0]}",
                    "check the wasmtime and componentize-py versions, then run "
                    "`python -m endure.sandbox prepare --force`",
                ) from None
            data = bytes(comp.serialize())
            compile_s = time.perf_counter() - t0
        initial = probe_initial_memory(self.engine, comp)
        meta = {
            "key": key,
            "componentize_py": version,
            "engine": engine_settings(),
            "initial_memory_bytes": initial,
            "build_s": round(build_s, 3),
            "compile_s": round(compile_s, 3),
            "bytes": len(data),
        }
        _atomic_write(p["json"], json.dumps(meta).encode())
        _atomic_write(p["cwasm"], data)
        _atomic_write(p["mac"], hmac.new(self.modules._key, data, hashlib.sha256).digest())
        with contextlib.suppress(OSError):
            p["failed"].unlink()
        # Run from the file like every later process does (a memory map instead of a copy).
        loaded = self._try_load(key)
        if loaded is None:
            raise ComponentUnavailableError(
                "the freshly written component did not load back", f"check the cache dir {self.dir}"
            )
        return LoadedComponent(
            loaded.component,
            key,
            p["cwasm"],
            initial,
            built=True,
            build_s=build_s,
            compile_s=compile_s,
            load_s=loaded.load_s,
        )
