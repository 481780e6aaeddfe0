"""Default locations, importable without loading wasmtime (the asyncio side never needs it)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """$ENDURE_CACHE_DIR/wasm, else ~/.cache/endure/wasm."""
    env = os.environ.get("ENDURE_CACHE_DIR")
    if env:
        return Path(env) / "wasm"
    return Path.home() / ".cache" / "endure" / "wasm"
