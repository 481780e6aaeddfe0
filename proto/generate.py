"""Regenerate the protobuf and gRPC modules in this folder from its `.proto` files.

Run from the project root: `python proto/generate.py`. The `.proto` files import each other as
`endure/proto/x.proto`, so the generated modules import `endure.proto.x_pb2` and work under the
package-dir mapping. `tests/test_proto_fresh.py` regenerates into a temporary folder and fails
when the checked-in modules differ.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out_dir: Path) -> list[Path]:
    """Generate every module for PROTO_DIR's .proto files into out_dir; return their paths."""
    from grpc_tools import protoc  # imported here: only the generator needs grpcio-tools

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "src"
        pkg = root / "endure" / "proto"
        pkg.mkdir(parents=True)
        sources = sorted(PROTO_DIR.glob("*.proto"))
        for src in sources:
            shutil.copy(src, pkg / src.name)
        gen = Path(tmp) / "gen"
        gen.mkdir()
        include = str(Path(protoc.__file__).parent / "_proto")
        args = [
            "grpc_tools.protoc",
            f"-I{root}",
            f"-I{include}",
            f"--python_out={gen}",
            f"--pyi_out={gen}",
            f"--grpc_python_out={gen}",
            *[f"endure/proto/{s.name}" for s in sources],
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed: " + " ".join(args))
        written = []
        for f in sorted((gen / "endure" / "proto").iterdir()):
            if f.name.endswith(GENERATED_SUFFIXES):
                text = f.read_text()
                if f.name.endswith("_pb2_grpc.py") and "class " not in text:
                    continue  # no services in this .proto: skip the empty stub module
                target = out_dir / f.name
                target.write_text(text)
                written.append(target)
        return written


def main() -> int:
    try:
        import grpc_tools  # noqa: F401 - checked before the old modules are removed
    except ImportError:
        print("grpcio-tools is not installed: pip install -e '.[test]'", file=sys.stderr)
        return 1
    for old in PROTO_DIR.iterdir():
        if old.name.endswith(GENERATED_SUFFIXES):
            old.unlink()
    for path in generate(PROTO_DIR):
        print(path.relative_to(PROTO_DIR.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
