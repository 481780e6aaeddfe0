"""`python -m endure.sandbox prepare [--cache-dir DIR] [--force]`: build and compile the Python
component into the cache ahead of time (an image build, a deploy step), so no pool process pays
the ~20 s on its first start. Prints one JSON line; exits 1 with the reason and the fix when the
component cannot be built (run_python then uses the CPython 3.12 fallback).
"""

from __future__ import annotations

import argparse
import json
import sys


def prepare(cache_dir: str | None, force: bool) -> dict[str, object]:
    """Build (or find in the cache) the component; the summary that the CLI prints."""
    from endure.sandbox.component import ComponentStore
    from endure.sandbox.engine import get_engine

    store = ComponentStore(get_engine(), cache_dir)
    loaded = store.load(force=force)
    return {
        "ok": True,
        "path": str(loaded.path),
        "key": loaded.key,
        "built": loaded.built,
        "build_s": round(loaded.build_s, 3),
        "compile_s": round(loaded.compile_s, 3),
        "load_s": round(loaded.load_s, 3),
        "initial_memory_bytes": loaded.initial_memory_bytes,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m endure.sandbox", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="build and compile the Python component into the cache")
    p.add_argument("--cache-dir", default=None, help="default: $ENDURE_CACHE_DIR/wasm or ~/.cache/endure/wasm")
    p.add_argument("--force", action="store_true", help="rebuild even if cached or an earlier build failed")
    opts = ap.parse_args(argv)
    from endure.sandbox.component import ComponentUnavailableError

    try:
        out = prepare(opts.cache_dir, opts.force)
    except ComponentUnavailableError as e:
        print(json.dumps({"ok": False, "why": e.why, "fix": e.fix}))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
