"""Retry policies: for a handler (sent to the runtime at registration) and for a `ctx.run` step
(applied in-process before the step's failure is journaled)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from endure.proto import worker_pb2
from endure.sdk.backoff import Backoff, Jitter


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by attempts and/or total duration.

    `max_attempts` counts attempts including the first (None = unlimited); `on_exhausted` decides
    whether an invocation whose retries ran out fails or pauses (handler policies only).
    """

    initial_interval: timedelta = timedelta(milliseconds=100)
    factor: float = 2.0
    max_interval: timedelta = timedelta(seconds=10)
    max_attempts: int | None = None
    max_duration: timedelta | None = None
    on_exhausted: Literal["fail", "pause"] = "fail"

    def __post_init__(self) -> None:
        if self.factor < 1.0:
            raise ValueError("RetryPolicy.factor must be >= 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be >= 1 (or None for unlimited)")
        if self.on_exhausted not in ("fail", "pause"):
            raise ValueError("RetryPolicy.on_exhausted must be 'fail' or 'pause'")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1 = first retry), with full jitter on
        the upper half so many failing steps do not retry in lockstep."""
        return self._backoff().delay(attempt)

    def _backoff(self) -> Backoff:
        """This policy as the shared backoff helper: a delay falls in [interval / 2, interval]."""
        return Backoff(
            initial_interval=self.initial_interval.total_seconds(),
            factor=self.factor,
            max_interval=self.max_interval.total_seconds(),
            max_attempts=self.max_attempts,
            jitter=_STEP_JITTER,
        )

    def to_proto(self) -> worker_pb2.RetryPolicy:
        return worker_pb2.RetryPolicy(
            initial_interval_ms=_ms(self.initial_interval),
            factor=self.factor,
            max_interval_ms=_ms(self.max_interval),
            max_attempts=self.max_attempts or 0,
            max_duration_ms=_ms(self.max_duration) if self.max_duration is not None else 0,
            pause_on_exhaustion=self.on_exhausted == "pause",
        )


_STEP_JITTER = Jitter.below(0.5)


def _ms(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds() * 1000))
