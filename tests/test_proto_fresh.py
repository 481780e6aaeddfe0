"""The checked-in protobuf modules match their .proto files (regenerate: `python proto/generate.py`)."""

from __future__ import annotations

import runpy
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent.parent / "proto"


def test_generated_modules_are_fresh(tmp_path: Path) -> None:
    generate = runpy.run_path(str(PROTO_DIR / "generate.py"))["generate"]
    fresh = {p.name: p.read_text() for p in generate(tmp_path)}
    checked_in = {
        p.name: p.read_text()
        for p in PROTO_DIR.iterdir()
        if p.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"))
    }
    assert sorted(fresh) == sorted(checked_in), "run `python proto/generate.py`"
    stale = [name for name in fresh if fresh[name] != checked_in[name]]
    assert not stale, f"stale generated modules {stale}: run `python proto/generate.py`"
