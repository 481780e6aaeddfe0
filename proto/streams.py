"""The stream protocol, written once: limits and names, shared by the SDK (writer), the invoker
(StartFrame) and the state machine (which enforces them again on apply)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from endure.proto import worker_pb2 as wpb

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class InvalidStreamName(ValueError):
    """A stream name that is not 1-64 letters, digits, '_', '.', '-'."""


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidStreamName(f"a stream name is 1-64 letters, digits, '_', '.', '-', not {name!r}")
    return name


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """What one invocation may write to its streams (all of them together, except the chunk size)."""

    max_chunk_bytes: int = 64 * 1024
    max_bytes: int = 16 * 1024 * 1024
    max_events: int = 100_000
    max_chunks_per_s: int = 50_000

    def to_proto(self) -> wpb.StreamLimits:
        return wpb.StreamLimits(max_chunk_bytes=self.max_chunk_bytes, max_bytes=self.max_bytes,
                                max_events=self.max_events, max_chunks_per_s=self.max_chunks_per_s)

    @classmethod
    def of(cls, msg: wpb.StreamLimits) -> StreamLimits:
        """From a StartFrame's limits (unset fields: the defaults)."""
        d = cls()
        return cls(msg.max_chunk_bytes or d.max_chunk_bytes, msg.max_bytes or d.max_bytes,
                   msg.max_events or d.max_events, msg.max_chunks_per_s or d.max_chunks_per_s)
