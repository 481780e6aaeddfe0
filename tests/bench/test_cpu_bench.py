"""The CPU breakdown's attribution: functions land in the part where they are defined, and a real
cProfile dump divides into µs per invocation that add up to the profiled total."""

from __future__ import annotations

import cProfile
import time
from pathlib import Path

from endure.bench.cpu_bench import _RUNTIME_PARTS, _WORKER_PARTS, attribute, part_of


def test_functions_are_attributed_by_their_defining_file() -> None:
    site = "/venv/lib/python3.11/site-packages"
    assert part_of("/src/runtime/ingress/service.py", "_call", _RUNTIME_PARTS) == "ingress"
    assert part_of("/src/runtime/partition/state_machine/entries.py", "on_append_entry", _RUNTIME_PARTS) == "apply"
    assert part_of("/src/runtime/partition/store.py", "get", _RUNTIME_PARTS) == "apply"
    assert part_of("/src/runtime/partition/processor.py", "_run", _RUNTIME_PARTS).startswith("partition")
    assert part_of("/src/runtime/invoker/invoker.py", "on_frames", _RUNTIME_PARTS).startswith("invoker")
    assert part_of(f"{site}/grpc/aio/_call.py", "_write", _WORKER_PARTS) == "gRPC (Python)"
    assert part_of("/src/sdk/worker.py", "_writer", _WORKER_PARTS) == "worker protocol"
    assert part_of("/src/sdk/context.py", "run", _WORKER_PARTS).startswith("SDK")
    assert part_of("~", "<method 'SerializeToString' of 'google._upb._message.Message' objects>",
                   _RUNTIME_PARTS) == "protobuf (C)"
    assert part_of("~", "<method 'write' of 'builtins.Rdict' objects>", _RUNTIME_PARTS) == "RocksDB"
    assert part_of("~", "<built-in method builtins.len>", _RUNTIME_PARTS) == "other (C builtins)"


def _busy(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_real_profile_divides_into_us_per_invocation(tmp_path: Path) -> None:
    path = tmp_path / "p.prof"
    with cProfile.Profile(time.thread_time) as profiler:
        _busy(0.05)
    profiler.dump_stats(str(path))
    parts, top = attribute(path, _RUNTIME_PARTS, invocations=10, top=3)
    total = parts.pop("total (profiled)")
    assert abs(sum(parts.values()) - total) < 1.0  # rounded to 0.1 µs per part
    assert total >= 0.05 / 10 * 1e6 * 0.9  # 50 ms over 10 invocations: at least ~5000 µs each
    assert top and top[0][1] > 0 and "_busy" in " ".join(name for name, _ in top)
