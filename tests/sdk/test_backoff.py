"""The shared backoff helper: bounds, growth, jitter range, max attempts, and the callers' formulas."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from endure.proto import worker_pb2 as wpb
from endure.runtime.invoker.invoker import _failure_backoff
from endure.sdk import RetryPolicy
from endure.sdk.backoff import NO_JITTER, Backoff, BackoffError, Jitter


def test_intervals_grow_by_the_factor_up_to_the_max() -> None:
    b = Backoff(0.1, factor=3.0, max_interval=2.0)
    assert [round(b.interval(n), 6) for n in range(1, 6)] == [0.1, 0.3, 0.9, 2.0, 2.0]
    assert b.interval(0) == b.interval(1) == 0.1  # before the first retry counts as the first
    assert Backoff(5.0).interval(40) == 5.0 * 2**39  # no max interval: unbounded growth
    assert Backoff(0.2, factor=1.0).interval(10) == 0.2  # constant


def test_jitter_stays_in_its_range_and_spreads() -> None:
    rng = random.Random(7)
    b = Backoff(1.0, max_interval=8.0, jitter=Jitter.symmetric(0.25))
    for retry in (1, 2, 5, 30):
        samples = [b.delay(retry, rng) for _ in range(2000)]
        base = b.interval(retry)
        assert all(0.75 * base <= d <= 1.25 * base for d in samples)
        assert max(samples) - min(samples) > 0.4 * base  # actually spread, not a constant
    below = Backoff(1.0, max_interval=4.0, jitter=Jitter.below(0.5))
    samples = [below.delay(9, rng) for _ in range(2000)]
    assert all(2.0 <= d <= 4.0 for d in samples)  # the max interval stays a hard bound
    assert Backoff(0.3, jitter=NO_JITTER).delay(2, rng) == 0.6


def test_max_attempts_counts_the_first_attempt() -> None:
    b = Backoff(0.01, max_attempts=3)
    assert not b.exhausted(1) and not b.exhausted(2) and b.exhausted(3)
    delays = b.iter()
    assert list(delays) == [0.01, 0.02]  # two retries after the first attempt, then stop
    assert delays.retries == 2
    delays.reset()
    assert next(delays) == 0.01
    unlimited = Backoff(0.01, max_interval=0.04).iter()
    assert [next(unlimited) for _ in range(5)] == [0.01, 0.02, 0.04, 0.04, 0.04]


@pytest.mark.parametrize("kwargs", [
    {"initial_interval": -1.0}, {"initial_interval": 1.0, "factor": 0.5},
    {"initial_interval": 1.0, "max_interval": -1.0}, {"initial_interval": 1.0, "max_attempts": 0},
])
def test_bad_settings_are_a_typed_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(BackoffError):
        Backoff(**kwargs)  # type: ignore[arg-type]
    assert issubclass(BackoffError, ValueError)


def test_bad_jitter_is_a_typed_error() -> None:
    with pytest.raises(BackoffError):
        Jitter(1.2, 0.8)
    with pytest.raises(BackoffError):
        Jitter.symmetric(1.5)


def test_step_policy_delays_keep_their_range() -> None:
    """ctx.run retries wait between half and all of the capped interval, as they always did."""
    policy = RetryPolicy(initial_interval=timedelta(milliseconds=100), max_interval=timedelta(seconds=1))
    for attempt, base in ((1, 0.1), (2, 0.2), (3, 0.4), (9, 1.0)):
        samples = [policy.delay(attempt) for _ in range(500)]
        assert all(base / 2 <= d <= base for d in samples), (attempt, min(samples), max(samples))


def test_handler_policy_as_registered_becomes_a_millisecond_backoff() -> None:
    b = _failure_backoff(wpb.RetryPolicy(initial_interval_ms=100, factor=0, max_interval_ms=0, max_attempts=0))
    assert (b.interval(3), b.max_interval, b.max_attempts) == (400, None, None)  # 0 = default / unlimited
    b = _failure_backoff(wpb.RetryPolicy(initial_interval_ms=20, max_interval_ms=50, max_attempts=3))
    assert b.interval(5) == 50 and b.exhausted(3) and not b.exhausted(2)
    assert all(37.5 <= b.delay(5) <= 62.5 for _ in range(200))
    bad = _failure_backoff(wpb.RetryPolicy(initial_interval_ms=20, factor=0.5))  # a worker's bad policy
    assert bad.interval(1) == 100  # the default, not a crash of the invoker
