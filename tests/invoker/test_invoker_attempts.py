"""The invoker's per-invocation state machine: legal moves, refused moves, and the invoker's use
of it (start, end, a lost worker, a draining worker), with a real PartitionStore and real sessions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from endure.proto import ids
from endure.proto import records_pb2 as pb
from endure.proto import worker_pb2 as wpb
from endure.runtime.invoker.attempts import AttemptState, IllegalTransition, InvocationMachine
from endure.runtime.invoker.invoker import Invoker, InvokerConfig
from endure.runtime.invoker.scheduler import Runnable
from endure.runtime.invoker.session import WorkerSession
from endure.runtime.partition import keys
from endure.runtime.partition.api import LocalPartition
from endure.runtime.partition.effects import StartInvocation
from endure.runtime.partition.store import PartitionStore


def test_moves_follow_the_lifecycle_and_refuse_the_rest() -> None:
    m = InvocationMachine(Runnable(0, "inv1", "svc", "t", pb.NORMAL, "h"))
    assert m.state is AttemptState.QUEUED
    with pytest.raises(IllegalTransition) as err:
        m.move(AttemptState.RUNNING)  # never without a worker slot
    assert (err.value.current, err.value.target) == (AttemptState.QUEUED, AttemptState.RUNNING)
    assert m.state is AttemptState.QUEUED  # a refused move changes nothing
    session = WorkerSession(wpb.Register(deployment_id="d", deployment_version="v1", concurrency=2))
    m.start(7, session)
    assert (m.state, m.number, m.session) == (AttemptState.STARTING, 7, session)
    m.move(AttemptState.RUNNING)
    assert m.is_running(7, session) and not m.is_running(6, session)
    assert m.leave_worker(AttemptState.LOST) is session and m.session is None
    with pytest.raises(IllegalTransition):
        m.leave_worker(AttemptState.ENDED)  # it holds no slot any more
    m.move(AttemptState.WAITING_FOR_RETRY)
    m.move(AttemptState.QUEUED)
    m.move(AttemptState.ENDED)
    for target in AttemptState:
        with pytest.raises(IllegalTransition):
            m.move(target)  # ENDED is final


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PartitionStore]:
    s = PartitionStore(tmp_path / "p0")
    yield s
    s.close()


def running_invocation(store: PartitionStore) -> str:
    inv = ids.new_invocation_id()
    tx = store.transaction()
    tx.put_proto(keys.status(inv), pb.InvocationStatus(
        invocation_id=inv, target=pb.Target(service="svc", handler="h"), status=pb.RUNNING, tenant="t"))
    tx.commit(1)
    return inv


def make_invoker(store: PartitionStore, config: InvokerConfig | None = None) -> tuple[Invoker, list[list[pb.Envelope]]]:
    appended: list[list[pb.Envelope]] = []

    async def append(envs: list[pb.Envelope]) -> range:
        appended.append(list(envs))
        return range(1, 1 + len(envs))

    async def wait_applied(_lsn: int) -> None:
        return None

    processor = SimpleNamespace(store=store, applied_lsn=1, is_leader=True, epoch=1, append=append,
                                wait_applied=wait_applied)
    partition = LocalPartition(processor)  # type: ignore[arg-type]
    invoker = Invoker(SimpleNamespace(handler=lambda *_: None, latest=lambda *_: "d@v1"), {0: partition},  # type: ignore[arg-type]
                      config or InvokerConfig(lost_worker_backoff_s=0.0))
    return invoker, appended


def worker(name: str, concurrency: int = 4) -> WorkerSession:
    return WorkerSession(wpb.Register(deployment_id="d", deployment_version="v1", worker_name=name, concurrency=concurrency,
                                      services=[wpb.ServiceDef(name="svc")]))


def sent(session: WorkerSession) -> list[wpb.RuntimeFrame]:
    frames = list(session._out)
    session._out.clear()
    return frames


async def test_an_attempt_runs_ends_and_is_forgotten(store: PartitionStore) -> None:
    invoker, appended = make_invoker(store)
    inv = running_invocation(store)
    invoker.on_effects(0, [StartInvocation(inv, "svc", "t", pb.NORMAL, "h")])
    assert invoker.state(inv) is AttemptState.QUEUED and invoker.queued() == 1
    w = worker("w1")
    invoker.add_session(w)
    [start] = [f.start for f in sent(w) if f.HasField("start")]
    assert invoker.state(inv) is AttemptState.RUNNING and invoker.running() == 1 and w.active == 1
    invoker.on_frames(w, [wpb.WorkerFrame(end=wpb.EndFrame(invocation_id=inv, attempt=start.attempt + 1))])
    assert invoker.state(inv) is AttemptState.RUNNING  # another attempt's frame: fenced
    invoker.on_frames(w, [wpb.WorkerFrame(end=wpb.EndFrame(invocation_id=inv, attempt=start.attempt))])
    assert invoker.state(inv) is AttemptState.ENDED and invoker.running() == 0 and w.active == 0
    await asyncio.gather(*invoker._tasks)
    # The first attempt's first record pins the invocation to the worker's version.
    assert [e.WhichOneof("body") for e in appended[0]] == ["end"]
    assert appended[0][0].end.pin == pb.DeploymentRef(id="d", version="v1")


async def test_a_lost_worker_loses_its_attempts_and_they_start_again_elsewhere(store: PartitionStore) -> None:
    invoker, _ = make_invoker(store)
    inv = running_invocation(store)
    w1 = worker("w1")
    invoker.add_session(w1)
    invoker.on_effects(0, [StartInvocation(inv, "svc", "t", pb.NORMAL, "h")])
    first = [f.start.attempt for f in sent(w1) if f.HasField("start")]
    invoker.remove_session(w1)
    assert invoker.state(inv) is AttemptState.LOST and not invoker.is_active(inv) and invoker.running() == 0
    w2 = worker("w2")
    invoker.add_session(w2)
    await asyncio.gather(*invoker._tasks)
    again = [f.start.attempt for f in sent(w2) if f.HasField("start")]
    assert invoker.state(inv) is AttemptState.RUNNING and len(again) == 1 and again[0] > first[0]


async def test_a_refused_move_is_logged_not_raised(store: PartitionStore, caplog: pytest.LogCaptureFixture) -> None:
    invoker, _ = make_invoker(store)
    inv = running_invocation(store)
    invoker.on_effects(0, [StartInvocation(inv, "svc", "t", pb.NORMAL, "h")])
    machine = invoker._machines[inv]
    with caplog.at_level(logging.ERROR, "endure.invoker"):
        assert not invoker._move(machine, AttemptState.RUNNING)
    assert "no move from queued to running" in caplog.text
    assert invoker.state(inv) is AttemptState.QUEUED and invoker.queued() == 1


async def test_a_draining_worker_gets_no_start_and_its_attempts_move_at_once(store: PartitionStore) -> None:
    """DrainFrame: DrainedFrame back and no StartFrame after it; a released attempt and one the
    worker still held when its stream ended start on another worker with no lost-worker backoff."""
    invoker, _ = make_invoker(store)
    invoker._lost_backoff = type(invoker._lost_backoff)(3600.0)  # a lost-worker backoff would stall this
    held, released, fresh = (running_invocation(store) for _ in range(3))
    w1 = worker("w1")
    invoker.add_session(w1)
    invoker.on_effects(0, [StartInvocation(i, "svc", "t", pb.NORMAL, "h") for i in (held, released)])
    starts = {f.start.invocation_id: f.start.attempt for f in sent(w1) if f.HasField("start")}
    invoker.on_frames(w1, [wpb.WorkerFrame(drain=wpb.DrainFrame())])
    assert [f.drained.running for f in sent(w1)] == [2]
    w2 = worker("w2", concurrency=1)  # one slot: `fresh` must wait for it, never go to w1
    invoker.add_session(w2)
    invoker.on_effects(0, [StartInvocation(fresh, "svc", "t", pb.NORMAL, "h")])
    assert [f.start.invocation_id for f in sent(w2)] == [fresh]
    assert sent(w1) == [] and invoker.state(fresh) is AttemptState.RUNNING
    invoker.on_frames(w2, [wpb.WorkerFrame(end=wpb.EndFrame(invocation_id=fresh, attempt=1 + max(starts.values())))])
    invoker.on_frames(w1, [wpb.WorkerFrame(release=wpb.ReleaseFrame(
        invocation_id=released, attempt=starts[released], reason="worker draining"))])
    assert invoker.state(released) is AttemptState.LOST
    await asyncio.wait_for(asyncio.gather(*invoker._tasks), 5)
    assert [f.start.invocation_id for f in sent(w2)] == [released]
    invoker.on_frames(w2, [wpb.WorkerFrame(end=wpb.EndFrame(invocation_id=released, attempt=invoker._machines[
        released].number))])
    invoker.remove_session(w1)  # its stream ended with `held` still on it
    await asyncio.wait_for(asyncio.gather(*invoker._tasks), 5)
    assert [f.start.invocation_id for f in sent(w2)] == [held]
    assert sent(w1) == [] and invoker.stats["released"] == 2 and invoker.stats["lost"] == 0


async def test_a_start_carries_its_tenants_sandbox_network_grant_and_the_stream_limits(store: PartitionStore) -> None:
    from endure.proto.streams import StreamLimits

    config = InvokerConfig(lost_worker_backoff_s=0.0, stream_limits=StreamLimits(max_events=7),
                           tenant_network={"t": ("https://api.example.com/",), "other": ("http://x/",)})
    invoker, _ = make_invoker(store, config)
    inv = running_invocation(store)
    invoker.on_effects(0, [StartInvocation(inv, "svc", "t", pb.NORMAL, "h")])
    w = worker("w1")
    invoker.add_session(w)
    [start] = [f.start for f in sent(w) if f.HasField("start")]
    assert list(start.sandbox_network) == ["https://api.example.com/"] and start.stream_limits.max_events == 7
