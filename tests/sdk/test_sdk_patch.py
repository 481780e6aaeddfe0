"""ctx.patched / ctx.deprecate_patch against real journals recorded through Invocation."""

from __future__ import annotations

import asyncio

import pytest
from sdk_journal_recorder import RecordingSink, record

from endure.proto import records_pb2, worker_pb2
from endure.sdk import App, Context, Service
from endure.sdk.invocation import Invocation

runs: dict[str, int] = {}


def step(name: str) -> str:
    runs[name] = runs.get(name, 0) + 1
    return name


# Three versions of one handler: before the change, with patched(), with deprecate_patch().
before = Service("order")


@before.handler(name="place")
async def place_v1(ctx: Context) -> str:
    await ctx.run("reserve", lambda: step("reserve"))
    return await ctx.run("charge_old", lambda: step("charge_old"))


patched = Service("order")


@patched.handler(name="place")
async def place_v2(ctx: Context) -> str:
    await ctx.run("reserve", lambda: step("reserve"))
    if ctx.patched("new-charge"):
        return await ctx.run("charge_new", lambda: step("charge_new"))
    return await ctx.run("charge_old", lambda: step("charge_old"))


deprecated = Service("order")


@deprecated.handler(name="place")
async def place_v3(ctx: Context) -> str:
    await ctx.run("reserve", lambda: step("reserve"))
    ctx.deprecate_patch("new-charge")
    return await ctx.run("charge_new", lambda: step("charge_new"))


other_id = Service("order")


@other_id.handler(name="place")
async def place_other(ctx: Context) -> str:
    await ctx.run("reserve", lambda: step("reserve"))
    if ctx.patched("another-change"):
        return "new"
    return await ctx.run("charge_old", lambda: step("charge_old"))


V1, V2, V3, OTHER = App([before]), App([patched]), App([deprecated]), App([other_id])


@pytest.fixture(autouse=True)
def _reset() -> None:
    runs.clear()


async def test_journal_from_before_the_patch_replays_the_old_path() -> None:
    old = await record(V1, "order", "place")
    assert old.kinds() == ["run 'reserve'", "run 'charge_old'", "output ''"]
    runs.clear()
    # Resumed on the new code before its output was journaled: patched() sees run 'charge_old'.
    again = await record(V2, "order", "place", journal=old.journal[:2])
    assert again.outcome == "end" and again.output() == b'"charge_old"'
    assert [e.entry.WhichOneof("kind") for e in again.new_entries] == ["output"]  # no marker recorded
    assert runs == {}  # both steps replayed from the journal


async def test_new_invocation_takes_the_new_path_and_records_the_marker() -> None:
    rec = await record(V2, "order", "place")
    assert rec.outcome == "end" and rec.output() == b'"charge_new"'
    assert rec.kinds() == ["run 'reserve'", "patch 'new-charge'", "run 'charge_new'", "output ''"]
    marker = rec.new_entries[1]
    assert marker.index == 1 and marker.entry.HasField("patch") and not marker.entry.HasField("value")
    assert runs == {"reserve": 1, "charge_new": 1}


async def test_marker_is_emitted_without_waiting_for_an_ack() -> None:
    """The marker goes out like a set_state: the next step runs without an ack of index 1."""
    loop = asyncio.get_running_loop()
    acked: list[int] = []

    class NoAckForMarker(RecordingSink):
        def send(self, frame: worker_pb2.WorkerFrame) -> None:
            if frame.WhichOneof("frame") == "entry" and frame.entry.entry.HasField("patch"):
                acked.append(frame.entry.index)
                self.journal.append(frame.entry.entry)
                self.new_entries.append(frame.entry)
                self.frames.append(frame)
                return
            super().send(frame)

    defn = V2.lookup("order", "place")
    start = worker_pb2.StartFrame(invocation_id="inv", attempt=1, handler_kind=records_pb2.SERVICE,
                                  target=records_pb2.Target(service="order", handler="place"))
    sink = NoAckForMarker(loop, {})
    inv = Invocation(sink, start, defn, loop)
    sink.inv = inv
    inv.start()
    await asyncio.wait_for(sink.ended.wait(), 5)
    assert acked == [1]
    assert [f.WhichOneof("frame") for f in sink.frames][-1] == "end"


async def test_journal_with_the_marker_replays_the_new_path() -> None:
    new = await record(V2, "order", "place")
    runs.clear()
    again = await record(V2, "order", "place", journal=new.journal[:3])
    assert again.outcome == "end" and again.output() == b'"charge_new"'
    assert [e.entry.WhichOneof("kind") for e in again.new_entries] == ["output"]
    assert runs == {}


async def test_deprecate_patch_consumes_the_marker_or_skips_it() -> None:
    with_marker = (await record(V2, "order", "place")).journal
    runs.clear()
    replayed = await record(V3, "order", "place", journal=with_marker[:3])
    assert replayed.outcome == "end" and replayed.output() == b'"charge_new"' and runs == {}

    fresh = await record(V3, "order", "place")
    assert fresh.kinds() == ["run 'reserve'", "run 'charge_new'", "output ''"]  # never records a marker
    runs.clear()
    again = await record(V3, "order", "place", journal=fresh.journal[:2])
    assert again.outcome == "end" and again.output() == b'"charge_new"' and runs == {}


async def test_marker_the_code_does_not_ask_about_is_a_divergence() -> None:
    with_marker = (await record(V2, "order", "place")).journal
    rec = await record(V1, "order", "place", journal=with_marker[:3])
    fail = rec.mismatch()
    assert "entry 1" in fail.failure.message
    assert "patch 'new-charge'" in fail.failure.message and "run 'charge_old'" in fail.failure.message


async def test_patched_with_another_id_takes_the_old_path_and_then_diverges() -> None:
    with_marker = (await record(V2, "order", "place")).journal
    rec = await record(OTHER, "order", "place", journal=with_marker[:3])
    assert "patch 'new-charge'" in rec.mismatch().failure.message  # patched() consumed nothing


async def test_change_id_is_validated() -> None:
    loop = asyncio.get_running_loop()
    sink = RecordingSink(loop, {})
    inv = Invocation(sink, worker_pb2.StartFrame(invocation_id="inv"), None, loop)
    sink.inv = inv
    ctx = Context(inv)
    with pytest.raises(ValueError, match="empty"):
        ctx.patched("")
    with pytest.raises(ValueError, match="at most 128"):
        ctx.deprecate_patch("x" * 129)
    with pytest.raises(TypeError, match="str, not int"):
        ctx.patched(7)  # type: ignore[arg-type]
    assert ctx.patched("x" * 128) is True  # the longest id is fine
    assert [e.name for e in sink.journal] == ["x" * 128]
