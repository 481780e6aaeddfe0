"""Run a process's main loop under cProfile when asked, to find where its CPU goes.

`ENDURE_PROFILE=out.prof endure serve` profiles the runtime, `ENDURE_WORKER_PROFILE=out.prof
endure worker ...` a worker; `python -m endure.bench cpu` uses both and attributes the time per
invocation to the runtime's and the worker's parts.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_profiled(fn: Callable[[], T], env_var: str) -> T:
    """Call fn; under cProfile when env_var names a file, which gets the stats when fn returns.

    Only the calling thread is profiled: other threads (RocksDB's writer, gRPC's pollers) show in
    the process's CPU time, not here."""
    path = os.environ.get(env_var)
    if not path:
        return fn()
    import cProfile
    import time

    # CPU time of this (the event loop's) thread, not wall time: waiting for I/O is not cost.
    with cProfile.Profile(time.thread_time) as profiler:
        try:
            return fn()
        finally:
            profiler.create_stats()
            profiler.dump_stats(path)
