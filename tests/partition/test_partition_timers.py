"""TimerService over a real store: fires durable timers once, across restarts and beyond its window."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from partition_testkit import Partition, entry, env, inv_id, invoke, of_type

from endure.proto import records_pb2 as pb
from endure.runtime.partition.effects import ArmTimer, CompleteEntry
from endure.runtime.partition.timer_service import TimerService, now_ms


class Firer:
    """The fire callback: records what fired and applies TimerFired records, like the leader's append."""

    def __init__(self, part: Partition) -> None:
        self.part = part
        self.fired: list[str] = []
        self.batches: list[list[str]] = []
        self.effects: list = []
        self._changed = asyncio.Event()

    async def __call__(self, timer_keys: list[str]) -> None:
        self.batches.append(list(timer_keys))
        self.fired.extend(timer_keys)
        self.effects += self.part.apply(*(env(timer_fired=pb.TimerFired(timer_key=k)) for k in timer_keys))
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


def started(part: Partition, **options: int) -> tuple[Firer, TimerService]:
    """A TimerService over the partition's store, started, firing into a new Firer."""
    firer = Firer(part)
    svc = TimerService(part.store, firer, **options)
    svc.start()
    return firer, svc


@pytest.fixture
def part(tmp_path):
    p = Partition(tmp_path / "store")
    yield p
    p.close()


class Sleeper:
    """One running invocation whose sleep entries make timer rows through the state machine."""

    def __init__(self, part: Partition, name: str = "sleeper") -> None:
        self.part = part
        self.id = inv_id(name)
        self.next = 0
        part.apply(invoke(self.id))

    def sleep(self, wake_at_ms: int) -> ArmTimer:
        eff = self.part.apply(entry(self.id, self.next, sleep=pb.SleepEntry(wake_at_ms=wake_at_ms)))
        self.next += 1
        (arm,) = of_type(eff, ArmTimer)
        return arm


async def test_timer_fires_once_across_a_restart(part):
    s = Sleeper(part)
    arm = s.sleep(now_ms() + 50)
    firer, svc = started(part)
    svc.arm(arm.key, arm.wake_at_ms)
    await firer.wait_for(lambda: arm.key in firer.fired)
    assert [(e.invocation_id, e.index) for e in of_type(firer.effects, CompleteEntry)] == [(s.id, 0)]
    await svc.stop()

    part.reopen()
    s2 = Sleeper(part, "sentinel")
    sentinel = s2.sleep(now_ms() + 30)
    firer2, svc2 = started(part)
    await firer2.wait_for(lambda: sentinel.key in firer2.fired)
    await svc2.stop()
    assert firer2.fired == [sentinel.key]  # the first timer's row went with its TimerFired
    assert part.timers() == {}


async def test_timer_armed_before_a_restart_fires_after_it(part):
    s = Sleeper(part)
    arm = s.sleep(now_ms() + 150)
    firer, svc = started(part)
    svc.arm(arm.key, arm.wake_at_ms)
    await svc.stop()  # the process dies before the timer is due
    assert firer.fired == []

    part.reopen()
    firer2, svc2 = started(part)
    await firer2.wait_for(lambda: arm.key in firer2.fired)
    assert now_ms() >= arm.wake_at_ms
    await svc2.stop()
    assert firer2.fired == [arm.key]
    assert part.store.journal(s.id)[0].HasField("void")


async def test_due_timers_fire_on_start(part):
    s = Sleeper(part)
    past = now_ms() - 10_000
    arms = [s.sleep(past + i) for i in range(5)]
    firer, svc = started(part)
    await firer.wait_for(lambda: len(firer.fired) == 5)
    await svc.stop()
    assert firer.fired == [a.key for a in arms]
    assert part.timers() == {}


async def test_window_smaller_than_the_timers_fires_all_in_order(part):
    s = Sleeper(part)
    now = now_ms()
    arms = [s.sleep(now - 5_000 + i) for i in range(10)]  # due
    arms += [s.sleep(now + 40 + 10 * i) for i in range(4)]  # soon
    firer, svc = started(part, window=3)
    assert svc.pending() <= 3
    # Timers armed while running, inside and beyond the loaded window.
    late = s.sleep(now + 120)
    svc.arm(late.key, late.wake_at_ms)
    early = s.sleep(now - 1_000)
    svc.arm(early.key, early.wake_at_ms)
    expected = sorted([a.key for a in arms] + [late.key, early.key])
    await firer.wait_for(lambda: len(firer.fired) >= len(expected))
    await svc.stop()
    assert sorted(firer.fired) == expected
    assert len(set(firer.fired)) == len(firer.fired)
    assert all(len(b) <= 512 for b in firer.batches)
    # Each timer fires only once it is due, and never before a timer due earlier was loaded.
    assert firer.fired[-5:] == [a.key for a in arms[-4:]] + [late.key]
    assert part.timers() == {}


async def test_failed_fire_is_retried(part):
    s = Sleeper(part)
    arm = s.sleep(now_ms() - 1)
    firer = Firer(part)
    calls = 0

    async def flaky(timer_keys: list[str]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("log unavailable")
        await firer(timer_keys)

    svc = TimerService(part.store, flaky)
    svc.start()
    await firer.wait_for(lambda: arm.key in firer.fired)
    await svc.stop()
    assert calls == 2 and firer.fired == [arm.key]
