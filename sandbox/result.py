"""The outcome of one sandbox run; journaled as a step result, so it must round-trip JSON."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from endure.sandbox.limits import ErrorKind, LimitKind
from endure.sandbox.network import HttpExchange, NetErrorKind


class SandboxResult(BaseModel):
    """Exit status, capped output, returned (new or changed) and deleted files, metering and the limit
    hit (if any)."""

    # bytes travel as base64 in JSON (journal, pool pipe) and stay raw bytes in Python.
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    files: dict[str, bytes] = Field(default_factory=dict)
    files_truncated: bool = False
    # Input files the run removed (or turned into something that is not a regular file): with
    # `files`, what a workspace needs to know the run's outcome as a whole.
    deleted: list[str] = Field(default_factory=list)
    fuel_used: int = 0
    wall_ms: float = 0.0
    peak_memory_bytes: int = 0
    limit_hit: LimitKind | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    # The guest's HTTP requests through the host (runs with a NetworkPolicy), refused ones included.
    http: list[HttpExchange] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the guest exited 0 without hitting a limit or an error."""
        return self.exit_code == 0 and self.limit_hit is None and self.error is None

    def usage(self) -> dict[str, float]:
        """Metering figures for the invocation's bill."""
        out = {
            "sandbox.fuel": float(self.fuel_used),
            "sandbox.wall_ms": float(self.wall_ms),
            "sandbox.peak_memory_bytes": float(self.peak_memory_bytes),
        }
        if self.http:
            sent = [h for h in self.http if h.error is not NetErrorKind.DENIED]  # attempted on the wire
            out["sandbox.http_requests"] = float(len(sent))
            out["sandbox.http_bytes"] = float(sum(h.bytes + h.sent for h in sent))
        return out
