"""One exponential backoff with jitter, for every retry loop of the runtime and the SDK.

Modelled on Restate's `RetryPolicy` (types/src/retries.rs): an initial interval that grows by a
factor per retry up to a max interval, an optional max number of attempts, and jitter. Delays are
in the unit of `initial_interval` (seconds, unless a caller says otherwise). Retry number 1 is the
first retry (the wait after the first failed attempt); with `max_attempts` (which counts the first
attempt) retry number n is `exhausted` once n >= max_attempts, and an iterator of delays stops there.

Jitter multiplies the capped delay by a uniform factor in [low, high], so the cap applies before
jitter: `Jitter.symmetric(0.2)` spreads 0.8x..1.2x, `Jitter.below(0.5)` 0.5x..1x, `NO_JITTER` 1x.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


class BackoffError(ValueError):
    """A backoff or jitter was configured with values that cannot give sensible delays."""


@dataclass(frozen=True, slots=True)
class Jitter:
    """A delay is multiplied by a uniform random factor in [low, high]."""

    low: float = 1.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.high:
            raise BackoffError(f"jitter needs 0 <= low <= high, got [{self.low}, {self.high}]")

    @classmethod
    def symmetric(cls, fraction: float) -> Jitter:
        """Up to `fraction` of the delay either way: many retriers spread around the mean."""
        return cls(1.0 - fraction, 1.0 + fraction)

    @classmethod
    def below(cls, fraction: float) -> Jitter:
        """Up to `fraction` of the delay less, never more: the max interval stays a hard bound."""
        return cls(1.0 - fraction, 1.0)

    def apply(self, delay: float, rng: random.Random | None = None) -> float:
        if self.low == self.high:
            return delay * self.low
        uniform = rng.uniform if rng is not None else random.uniform  # the module's generator by default
        return delay * uniform(self.low, self.high)


NO_JITTER = Jitter()


@dataclass(frozen=True, slots=True)
class Backoff:
    """initial_interval * factor ** (retry - 1), capped at max_interval, then jittered."""

    initial_interval: float
    factor: float = 2.0
    max_interval: float | None = None
    max_attempts: int | None = None  # counts the first attempt; None = retry forever
    jitter: Jitter = NO_JITTER

    def __post_init__(self) -> None:
        if self.initial_interval < 0:
            raise BackoffError(f"initial interval must be >= 0, got {self.initial_interval}")
        if self.factor < 1.0:
            raise BackoffError(f"factor must be >= 1, got {self.factor}")
        if self.max_interval is not None and self.max_interval < 0:
            raise BackoffError(f"max interval must be >= 0, got {self.max_interval}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise BackoffError(f"max attempts must be >= 1 (or None), got {self.max_attempts}")

    def exhausted(self, retry: int) -> bool:
        """True when retry number `retry` would exceed max_attempts (the first attempt counts)."""
        return self.max_attempts is not None and retry >= self.max_attempts

    def interval(self, retry: int) -> float:
        """The delay before retry number `retry` without jitter (retries below 1 count as 1)."""
        delay = self.initial_interval * self.factor ** max(0, retry - 1)
        if self.max_interval is not None:
            delay = min(delay, self.max_interval)
        return delay

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """The jittered wait before retry number `retry` (check `exhausted` first, or use `iter`)."""
        return self.jitter.apply(self.interval(retry), rng)

    def iter(self, rng: random.Random | None = None) -> BackoffIter:
        """The delays of successive retries, like Restate's RetryIter."""
        return BackoffIter(self, rng)


class BackoffIter(Iterator[float]):
    """Successive retry delays of one Backoff; stops after max_attempts; `reset()` starts over."""

    __slots__ = ("policy", "retries", "_rng")

    def __init__(self, policy: Backoff, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.retries = 0  # delays handed out since the last reset
        self._rng = rng

    def __next__(self) -> float:
        retry = self.retries + 1
        if self.policy.exhausted(retry):
            raise StopIteration
        self.retries = retry
        return self.policy.delay(retry, self._rng)

    def reset(self) -> None:
        """A success: the next delay is the initial one again."""
        self.retries = 0
