"""Per-run limits and the typed outcomes a run can end with.

The defaults fit real agent work (see `Limits`) and stop runaway code within seconds; a tool
call that needs more must ask for it.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


class LimitKind(StrEnum):
    """Which limit stopped or truncated a run (None on the result = none was hit)."""

    FUEL = "fuel"
    MEMORY = "memory"
    WALL_TIME = "wall_time"
    OUTPUT = "output"
    FILES = "files"


class ErrorKind(StrEnum):
    """Why a run did not produce an exit status, when it was not a limit."""

    TRAP = "trap"  # the guest trapped (unreachable, out-of-bounds, ...)
    STACK_OVERFLOW = "stack_overflow"  # wasm call stack exhausted (e.g. a recursion bomb)
    INVALID_MODULE = "invalid_module"  # malformed or truncated .wasm
    LINK_ERROR = "link_error"  # imports that do not exist / are not granted
    CRASH = "crash"  # the pool process died; it was replaced
    INTERNAL = "internal"  # a bug on our side; message in `error`


class Limits(BaseModel):
    """Resource limits of one run; every field has a safe default.

    The defaults are calibrated on `endure.sandbox.reference.AGENT_SCRIPT`: import a dozen-plus
    stdlib modules, load a 5000-row CSV input file into sqlite3, group-by query, print a table,
    write a JSON file. On the Python component it takes about 0.5 G fuel, 130 ms and the 23 MiB
    snapshot (1.5 G fuel, 350 ms on the CPython 3.12 fallback): 1/400 of the fuel and 1/80 of
    the wall time allowed.

    Wall time (10 s) is the main bound: it stops a busy loop, a slow query or a guest sleeping in
    a host call, whatever the machine. Fuel is the deterministic backstop: 200 G instructions is
    about 400 times the reference script and about 20 s of a pure-Python busy loop on a 2-core box
    (8-10 G fuel/s), so on such a machine wall time ends a runaway loop first, and
    fuel still bounds the work the same way everywhere, also when a caller raises wall_time_ms.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fuel: int = Field(
        default=200_000_000_000,
        ge=1,
        le=10**13,
        description="wasm instruction budget, deterministic: the backstop behind wall time "
        "(200 G, about 400x the reference agent script; a Python busy loop burns 8-10 G per second)",
    )
    memory_bytes: int = Field(
        default=256 * MiB,
        ge=64 * KiB,
        le=4 * GiB,
        description="linear memory cap of the guest; the Python component's snapshot alone takes "
        "23 MiB, so below about 24 MiB Python cannot start (a MEMORY result)",
    )
    wall_time_ms: int = Field(
        default=10_000,
        ge=10,
        le=600_000,
        description="wall clock budget of the guest, the main bound (10 s); a guest blocked in a "
        "host call (sleep) is stopped by killing its pool process 1 s after this",
    )
    stdout_bytes: int = Field(
        default=1 * MiB, ge=0, le=64 * MiB, description="captured stdout; the run stops when it is exceeded"
    )
    stderr_bytes: int = Field(
        default=256 * KiB, ge=0, le=64 * MiB, description="captured stderr; the run stops when it is exceeded"
    )
    max_files: int = Field(default=64, ge=0, le=10_000, description="files returned from the scratch dir")
    max_files_bytes: int = Field(
        default=8 * MiB, ge=0, le=1 * GiB, description="total size of returned files"
    )
    scratch_bytes: int = Field(
        default=64 * MiB, ge=0, le=8 * GiB, description="hard disk quota of the scratch dir while running"
    )
    scratch_files: int = Field(
        default=1_000, ge=0, le=100_000, description="hard file-count quota while running"
    )
