"""Stream tables of the partition state machine on a real store: offsets per stream and one order
over all of them, replayed handler writes stored once, provisional step output voided by a reset
when another execution of the step journals or writes, limits, metering and purge."""

from __future__ import annotations

import pytest
from partition_testkit import T0, Partition, end, env, inv_id, invoke, of_type, output

from endure.proto import records_pb2 as pb
from endure.proto.streams import StreamLimits
from endure.runtime.partition import keys
from endure.runtime.partition.effects import StreamAppended
from endure.runtime.partition.state_machine import StateMachine, StateMachineConfig


@pytest.fixture
def part(tmp_path):
    p = Partition(tmp_path / "store")
    yield p
    p.close()


def write(inv: str, *chunks: pb.StreamChunk) -> pb.Envelope:
    return env(stream_write=pb.StreamWrite(invocation_id=inv, chunks=chunks))


def text(stream: str, data: str, seq: int = 0, step: int = 0, token: str = "") -> pb.StreamChunk:
    return pb.StreamChunk(stream=stream, data=data.encode(), encoding=pb.CHUNK_TEXT, seq=seq, step=step,
                          try_token=token)


def events(part: Partition, inv: str) -> list[pb.StreamEvent]:
    out = []
    for _, raw in part.table(keys.stream_events_prefix(inv)):
        e = pb.StreamEvent()
        e.ParseFromString(raw)
        out.append(e)
    return out


def run_entry(inv: str, index: int, token: str) -> pb.Envelope:
    return env(append_entry=pb.AppendEntry(invocation_id=inv, index=index, step_try_token=token,
                                           entry=pb.JournalEntry(name="llm", run=pb.RunEntry(), value=b'"ok"')))


def test_offsets_per_stream_one_order_and_replayed_writes_stored_once(part):
    inv = inv_id("s1")
    part.apply(invoke(inv))
    [appended] = of_type(part.apply(write(inv, text("tokens", "a", 0), text("progress", "p", 0),
                                          text("tokens", "b", 1))), StreamAppended)
    assert appended.seq == 3
    part.apply(write(inv, text("tokens", "a", 0), text("tokens", "b", 1), text("tokens", "c", 2)))  # a replay
    got = [(e.stream, e.offset, e.seq, e.data) for e in events(part, inv)]
    assert got == [("tokens", 0, 1, b"a"), ("progress", 0, 2, b"p"), ("tokens", 1, 3, b"b"), ("tokens", 2, 4, b"c")]
    assert part.status(inv).has_streams
    assert part.status(inv).usage["stream.bytes"] == 4.0


def test_a_step_rerun_voids_its_earlier_provisional_chunks(part):
    inv = inv_id("s2")
    part.apply(invoke(inv))
    part.apply(write(inv, text("tokens", "Hel", step=1, token="t1"), text("tokens", "lo", step=1, token="t1")))
    # The step failed and runs again (another execution): its first output is void.
    part.apply(write(inv, text("tokens", "Hi", step=1, token="t2")))
    part.apply(run_entry(inv, 0, "t2"))
    got = events(part, inv)
    assert [(e.offset, e.provisional, e.WhichOneof("event")) for e in got] == [
        (0, True, "data"), (1, True, "data"), (2, False, "reset"), (3, True, "data")]
    assert list(got[2].reset.offsets) == [0, 1] and got[2].step == 1
    state = part.store.get_proto(keys.stream_state(inv, "tokens"), pb.StreamState)
    assert state is not None and not state.open  # journaled: t2's chunks stand


def test_a_step_journaled_by_an_execution_that_wrote_nothing_voids_the_others(part):
    inv = inv_id("s3")
    part.apply(invoke(inv))
    part.apply(write(inv, text("tokens", "partial", step=1, token="t1")))
    part.apply(run_entry(inv, 0, "t2"))  # a later execution produced the result without streaming
    [reset] = [e for e in events(part, inv) if e.HasField("reset")]
    assert list(reset.reset.offsets) == [0]


def test_an_invocation_that_ends_mid_step_voids_the_steps_open_chunks(part):
    inv = inv_id("s4")
    part.apply(invoke(inv))
    part.apply(write(inv, text("tokens", "x", step=1, token="t1"), text("tokens", "done", seq=0)))
    part.apply(env(kill=pb.Kill(invocation_id=inv)))
    kinds = [(e.WhichOneof("event"), list(e.reset.offsets)) for e in events(part, inv)]
    assert kinds == [("data", []), ("data", []), ("reset", [0])]


def test_close_limits_and_late_writes_are_refused_without_a_trace(tmp_path):
    part = Partition(tmp_path / "s")
    part.sm = StateMachine(StateMachineConfig(0, 4, stream_limits=StreamLimits(max_chunk_bytes=8, max_events=3)))
    inv = inv_id("s5")
    part.apply(invoke(inv))
    part.apply(write(inv, text("t", "ok", 0), pb.StreamChunk(stream="t", seq=1, close=True)))
    for bad in (write(inv, text("t", "after close", 2)), write(inv, text("u", "123456789")),
                write(inv, text("u", "a", 0), text("u", "b", 1)), write(inv, text("bad name!", "x"))):
        before = part.rows(without_lsn=True)
        rejected = part.sm.rejected
        part.apply(bad)
        assert part.sm.rejected == rejected + 1 and part.rows(without_lsn=True) == before
    part.apply(output(inv, 0), end(inv))
    before = part.rows(without_lsn=True)
    part.apply(write(inv, text("t", "late", 5)))  # the invocation is final
    assert part.rows(without_lsn=True) == before
    part.close()


def test_purge_drops_the_stream_rows(tmp_path):
    part = Partition(tmp_path / "s", retention_ms=1000)
    inv = inv_id("s6")
    part.apply(invoke(inv), write(inv, text("t", "a", 0)), output(inv, 0), end(inv))
    [key] = [k for k in part.timers() if k.endswith("/purge")]
    part.apply(env(ts=T0 + 2000, timer_fired=pb.TimerFired(timer_key=key)))
    for prefix in (keys.STREAM_EVENT, keys.STREAM_STATE, keys.STREAM_TOTALS):
        assert part.table(prefix) == []
    part.close()
