"""Per-run limits and the typed outcomes a run can end with.

Defaults are deliberately small: an agent's tool call that needs more must ask for it.
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
    """Resource limits of one run; every field has a safe default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fuel: int = Field(
        default=2_000_000_000, ge=1, le=10**13, description="wasm instruction budget (deterministic)"
    )
    memory_bytes: int = Field(default=256 * MiB, ge=64 * KiB, le=4 * GiB, description="linear memory cap")
    wall_time_ms: int = Field(default=10_000, ge=10, le=600_000, description="wall clock budget of the guest")
    stdout_bytes: int = Field(default=1 * MiB, ge=0, le=64 * MiB)
    stderr_bytes: int = Field(default=256 * KiB, ge=0, le=64 * MiB)
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
