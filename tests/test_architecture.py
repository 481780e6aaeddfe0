"""The architecture's boundaries, checked on the imports of every runtime module (DESIGN.md, "Nodes
and partitions"): no module outside `runtime/partition/` knows the store's keys, and the only way
from any part to a partition is the `Partition` interface, so none holds a processor either.

Imports are read with `ast` (not text search): `import a.b`, `from a import b`, `from a.b import c`
and relative imports all name the module they reach, and an import under `if TYPE_CHECKING:`
counts like any other (it still ties the module to the store's layout).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "runtime"
PACKAGE = "endure.runtime"

KEYS = "endure.runtime.partition.keys"
STORE = "endure.runtime.partition.store"
PROCESSOR = "endure.runtime.partition.processor"

# Outside runtime/partition/, every module is refused these ...
FORBIDDEN = (KEYS, STORE, PROCESSOR)
# ... but the node, which builds its partitions: it opens their stores and makes their processors.
# It still never reads a key.
ALLOWED = {"node.py": {STORE, PROCESSOR}}

def module_name(path: Path) -> str:
    rel = path.relative_to(RUNTIME).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join((PACKAGE, *parts))


def imported(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module name an import in source may reach: `from a import b` names both `a` and `a.b`
    (b may be a submodule); relative imports are resolved against module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base_parts = package[: len(package) - (node.level - 1)]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def reaches(name: str, target: str) -> bool:
    return name == target or name.startswith(target + ".")


def offenders(paths: list[Path]) -> list[tuple[str, str]]:
    """(module path under runtime/, forbidden module it imports) for every breach, sorted."""
    out = set()
    for path in paths:
        rel = path.relative_to(RUNTIME).as_posix()
        if rel.startswith("partition/"):
            continue
        names = imported(path.read_text(), module_name(path), path.name == "__init__.py")
        allowed = ALLOWED.get(rel, set())
        for target in FORBIDDEN:
            if target not in allowed and any(reaches(name, target) for name in names):
                out.add((rel, target))
    return sorted(out)


def runtime_modules() -> list[Path]:
    return sorted(RUNTIME.rglob("*.py"))


def test_the_walk_sees_the_runtime_and_the_parser_sees_every_form_of_import() -> None:
    rels = {p.relative_to(RUNTIME).as_posix() for p in runtime_modules()}
    assert {"node.py", "metrics.py", "invoker/invoker.py", "ingress/service.py", "admin/service.py"} <= rels
    src = ("import endure.runtime.partition.keys as k\n"
           "from endure.runtime.partition import store\n"
           "from ..partition.processor import PartitionProcessor\n"
           "from . import sibling\n"
           "if TYPE_CHECKING:\n    from endure.runtime.partition.store import PartitionStore\n")
    names = imported(src, "endure.runtime.ingress.service")
    assert {KEYS, STORE, PROCESSOR, f"{STORE}.PartitionStore", "endure.runtime.ingress.sibling"} <= names
    assert all(reaches(n, t) for n, t in [(KEYS, KEYS), (f"{STORE}.PartitionStore", STORE)])
    assert not reaches("endure.runtime.partition.keysmith", KEYS)
    assert imported("from .loglet import X\n", "endure.runtime.log", is_package=True) >= {"endure.runtime.log.loglet"}


def test_no_module_outside_partition_knows_the_store_keys_or_holds_a_processor() -> None:
    assert offenders(runtime_modules()) == []


def test_every_partition_implementation_has_every_method_of_the_interface() -> None:
    """A method added to `Partition` and missed by one implementation fails here, not as an
    AttributeError on the first cross-node call."""
    from endure.runtime.partition.api import LocalPartition, Partition
    from endure.runtime.partition.remote.client import RemotePartition
    from endure.runtime.peers import PeerPartition

    wanted = {name for name in vars(Partition) if not name.startswith("_")}
    assert "get_pinned_counts" in wanted and "append" in wanted
    for impl in (LocalPartition, RemotePartition, PeerPartition):
        missing = sorted(name for name in wanted if not hasattr(impl, name))
        assert not missing, f"{impl.__name__} lacks {missing}"
