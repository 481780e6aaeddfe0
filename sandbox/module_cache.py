"""On-disk cache of compiled wasm modules (CPython's takes seconds to compile).

Files are keyed by sha256(wasmtime version + engine settings + module sha256). Deserializing
is only safe for files we produced, so every entry carries an HMAC-SHA256 over its bytes with a
per-cache secret key (`.key`, mode 0600); a file that fails the check, or that wasmtime refuses,
is treated as absent and recompiled. Writers hold a lock per entry so concurrent pool
processes compile once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import wasmtime

from endure.sandbox.engine import engine_settings
from endure.sandbox.paths import default_cache_dir

MAC_SUFFIX = ".mac"
CWASM_SUFFIX = ".cwasm"


class ModuleCache:
    """Compile-or-load of wasm modules for one engine, backed by a directory."""

    def __init__(self, engine: wasmtime.Engine, cache_dir: Path | str | None = None) -> None:
        self.engine = engine
        self.dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._key = self._load_key()
        self._settings = json.dumps(engine_settings(), sort_keys=True)
        self._mem: dict[str, wasmtime.Module] = {}
        self._lock = threading.Lock()
        self.stats = {"hits": 0, "misses": 0, "rejected": 0}

    def _load_key(self) -> bytes:
        path = self.dir / ".key"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            key = path.read_bytes()
            if len(key) == 32:
                return key
            # unreadable/short key: replace it (existing entries then fail their MAC).
            key = secrets.token_bytes(32)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(key)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
            return key
        key = secrets.token_bytes(32)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        return key

    def entry_name(self, module_sha256: str) -> str:
        h = hashlib.sha256()
        h.update(self._settings.encode())
        h.update(b"\0")
        h.update(module_sha256.encode())
        return h.hexdigest()

    def _mac(self, path: Path) -> bytes:
        m = hmac.new(self._key, digestmod=hashlib.sha256)
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                m.update(chunk)
        return m.digest()

    @contextlib.contextmanager
    def _entry_lock(self, name: str) -> Iterator[None]:
        with open(self.dir / f"{name}.lock", "a+b") as lf:
            fcntl.flock(lf, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lf, fcntl.LOCK_UN)

    def _try_load(self, name: str) -> wasmtime.Module | None:
        cw = self.dir / f"{name}{CWASM_SUFFIX}"
        mac = self.dir / f"{name}{MAC_SUFFIX}"
        if not cw.exists() or not mac.exists():
            return None
        try:
            ok = hmac.compare_digest(mac.read_bytes(), self._mac(cw))
        except OSError:
            ok = False
        if not ok:
            self.stats["rejected"] += 1
            return None
        try:
            return wasmtime.Module.deserialize_file(self.engine, str(cw))
        except wasmtime.WasmtimeError:
            self.stats["rejected"] += 1
            return None

    def _store(self, name: str, module: wasmtime.Module) -> None:
        data = bytes(module.serialize())
        mac = hmac.new(self._key, data, hashlib.sha256).digest()
        for suffix, payload in ((CWASM_SUFFIX, data), (MAC_SUFFIX, mac)):
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
            os.replace(tmp, self.dir / f"{name}{suffix}")

    def load(
        self, wasm: bytes | None = None, path: Path | None = None, sha256: str | None = None
    ) -> wasmtime.Module:
        """The compiled module for `wasm` bytes or a file; compiles and caches on a miss.

        Raises wasmtime.WasmtimeError for an invalid module.
        """
        if wasm is None:
            assert path is not None
            wasm = Path(path).read_bytes()
        digest = sha256 or hashlib.sha256(wasm).hexdigest()
        with self._lock:
            mod = self._mem.get(digest)
            if mod is not None:
                return mod
        name = self.entry_name(digest)
        mod = self._try_load(name)
        if mod is None:
            with self._entry_lock(name):
                mod = self._try_load(name)  # another process may have compiled it meanwhile
                if mod is None:
                    self.stats["misses"] += 1
                    mod = wasmtime.Module(self.engine, wasm)
                    self._store(name, mod)
                else:
                    self.stats["hits"] += 1
        else:
            self.stats["hits"] += 1
        with self._lock:
            if len(self._mem) > 64:  # raw-wasm tools: keep the in-memory map bounded
                self._mem.pop(next(iter(self._mem)))
            self._mem[digest] = mod
        return mod
