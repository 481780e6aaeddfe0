"""The offline Replayer against journals recorded by running the handlers through Invocation."""

from __future__ import annotations

import asyncio

import pytest
from sdk_journal_recorder import RecordingSink, record

from endure.proto import records_pb2, worker_pb2
from endure.sdk import (
    App,
    Context,
    ObjectContext,
    Replayer,
    ReplayResult,
    Service,
    VirtualObject,
    format_divergence,
)
from endure.sdk.invocation import Invocation
from endure.sdk.replay import ReplayInLoopError

runs: dict[str, int] = {}


def bump(name: str, value: object) -> object:
    runs[name] = runs.get(name, 0) + 1
    return value


pricing = Service("pricing")


@pricing.handler()
async def quote(ctx: Context, n: int) -> int:
    return n * 10


def cart_v1() -> VirtualObject:
    cart = VirtualObject("cart")

    @cart.handler()
    async def checkout(ctx: ObjectContext, n: int) -> str:
        items = (await ctx.get("items", type_hint=int)) or 0
        await ctx.run("reserve", lambda: bump("reserve", n))
        price = await ctx.call(quote, n)
        charged = await ctx.run("charge", lambda: bump("charge", price))
        await ctx.sleep(1, name="cooldown")
        ctx.set("items", items + n)
        ctx.send(quote, 1)
        shipped = await ctx.run("ship", lambda: bump("ship", "shipped"))
        return f"{items + n}:{charged}:{shipped}"

    return cart


def cart_v2() -> VirtualObject:
    """v1 with a sleep inserted before the charge: old journals diverge at entry 3."""
    cart = VirtualObject("cart")

    @cart.handler()
    async def checkout(ctx: ObjectContext, n: int) -> str:
        items = (await ctx.get("items", type_hint=int)) or 0
        await ctx.run("reserve", lambda: bump("reserve", n))
        price = await ctx.call(quote, n)
        await ctx.sleep(5)
        charged = await ctx.run("charge", lambda: bump("charge", price))
        return f"{items}:{charged}"

    return cart


V1 = App([cart_v1(), pricing])
V2 = App([cart_v2(), pricing])
TARGET = records_pb2.Target(service="cart", handler="checkout", key="alice")
DONE = {"call 'pricing/quote'": b"30", "sleep 'cooldown'": None}

# A handler changed with ctx.patched, and the code before the change.
before = Service("order")


@before.handler(name="place")
async def place_v1(ctx: Context) -> str:
    await ctx.run("reserve", lambda: bump("reserve", 1))
    return str(await ctx.run("charge_old", lambda: bump("charge_old", "old")))


after = Service("order")


@after.handler(name="place")
async def place_v2(ctx: Context) -> str:
    await ctx.run("reserve", lambda: bump("reserve", 1))
    if ctx.patched("new-charge"):
        return str(await ctx.run("charge_new", lambda: bump("charge_new", "new")))
    return str(await ctx.run("charge_old", lambda: bump("charge_old", "old")))


broken = Service("broken")


@broken.handler()
async def explode(ctx: Context) -> str:
    await ctx.run("first", lambda: bump("first", 1))
    raise ValueError("boom")


@broken.handler()
async def forever(ctx: Context) -> str:
    await ctx.run("first", lambda: bump("first", 1))
    await asyncio.sleep(3600)  # not durable: nothing in the journal ends it
    return "never"


@pytest.fixture(autouse=True)
def _reset() -> None:
    runs.clear()


async def checkout_journal() -> list[records_pb2.JournalEntry]:
    rec = await record(V1, "cart", "checkout", b"3", key="alice", state={"items": b"2"}, completions=DONE)
    assert rec.outcome == "end" and rec.output() == b'"5:30:shipped"'
    assert rec.kinds() == ["get_state 'items'", "run 'reserve'", "call 'pricing/quote'", "run 'charge'",
                           "sleep 'cooldown'", "set_state 'items'", "send 'pricing/quote'", "run 'ship'",
                           "output ''"]
    runs.clear()
    return rec.journal


async def test_clean_replay_of_a_multistep_journal_runs_no_step() -> None:
    journal = await checkout_journal()
    result = await Replayer(V1).replay_async(TARGET, records_pb2.EXCLUSIVE, b"3", journal)
    assert result == ReplayResult(ok=True, matched=9, journal_length=9, complete=True,
                                  message="replays cleanly (9 entries)")
    assert runs == {}  # ctx.run functions were not called


def test_sync_replay_creates_its_own_loop() -> None:
    journal = asyncio.run(checkout_journal())
    result = Replayer(V1).replay(TARGET, records_pb2.EXCLUSIVE, b"3", journal)
    assert result.ok and result.complete and result.matched == 9
    assert runs == {}


async def test_sync_replay_inside_a_running_loop_says_to_await() -> None:
    with pytest.raises(ReplayInLoopError, match="replay_async"):
        Replayer(V1).replay(TARGET, records_pb2.EXCLUSIVE, b"3", [])


async def test_divergence_names_the_index_and_both_operations() -> None:
    journal = await checkout_journal()
    result = await Replayer(V2).replay_async(TARGET, records_pb2.EXCLUSIVE, b"3", journal)
    assert not result.ok and not result.complete and result.matched == 3
    d = result.divergence
    assert d is not None and (d.index, d.recorded, d.actual) == (3, "run 'charge'", "sleep ''")
    assert result.message == "diverges at entry 3: the journal has run 'charge', the code did sleep ''"
    assert runs == {}
    text = format_divergence(result, "shop:app@v1", "shop:app@v2")
    assert text == ("journal written by shop:app@v1, replayed against shop:app@v2: "
                    "diverges at entry 3: the journal has run 'charge', the code did sleep ''")


async def test_journal_that_stops_midway_reports_the_next_operation_without_running_it() -> None:
    journal = await checkout_journal()
    result = await Replayer(V1).replay_async(TARGET, records_pb2.EXCLUSIVE, b"3", journal[:7])
    assert result.ok and not result.complete and result.matched == 7 and result.journal_length == 7
    assert result.next_operation == "run 'ship'"
    assert result.message == "replays cleanly (7 entries); the journal ends there and the code goes on to run 'ship'"
    assert runs == {}  # 'ship' past the end did not execute

    ended = await Replayer(V1).replay_async(TARGET, records_pb2.EXCLUSIVE, b"3", journal[:8])
    assert ended.ok and not ended.complete and ended.next_operation == "output ''"
    assert "the code finishes next" in ended.message


async def test_replay_only_attempt_emits_nothing_past_the_journal() -> None:
    """set_state / send past the end are not sent as if live: the attempt stops at the first one."""
    journal = await checkout_journal()
    loop = asyncio.get_running_loop()
    sink = RecordingSink(loop, {})
    start = worker_pb2.StartFrame(invocation_id="inv", attempt=1, target=TARGET, input=b"3",
                                  handler_kind=records_pb2.EXCLUSIVE, journal=journal[:5])
    inv = Invocation(sink, start, V1.lookup("cart", "checkout"), loop, replay_only=True)
    sink.inv = inv
    inv.start()
    assert inv.task is not None
    await asyncio.wait_for(inv.task, 5)
    assert sink.frames == [] and inv.done
    assert inv.past_end == ("set_state", "items") and inv.state == {}


async def test_handler_blocked_on_an_incomplete_entry_ends_the_replay() -> None:
    journal = await checkout_journal()
    pending = records_pb2.JournalEntry()
    pending.CopyFrom(journal[4])
    pending.ClearField("void")  # the cooldown sleep has not fired yet
    result = await Replayer(V1).replay_async(TARGET, records_pb2.EXCLUSIVE, b"3", [*journal[:4], pending],
                                             timeout=5)
    assert result.ok and not result.complete and result.waiting_on == (4,) and result.matched == 5
    assert result.message == ("replays cleanly (5 entries); the code then waits on entry 4 (sleep 'cooldown'), "
                              "which the journal has not completed")
    # The same wait with more entries after it in the journal: the code cannot have written them.
    later = await Replayer(V1).replay_async(TARGET, records_pb2.EXCLUSIVE, b"3",
                                            [*journal[:4], pending, journal[5]], timeout=5)
    assert not later.ok and later.divergence is not None and later.divergence.index == 5
    assert later.divergence.recorded == "set_state 'items'"


async def test_journals_from_before_and_after_a_patch_both_replay_cleanly() -> None:
    old = (await record(App([before]), "order", "place")).journal
    new = (await record(App([after]), "order", "place")).journal
    assert [e.WhichOneof("kind") for e in new] == ["run", "patch", "run", "output"]
    runs.clear()
    target = records_pb2.Target(service="order", handler="place")
    replayer = Replayer(App([after]))
    for journal in (old, new):
        result = await replayer.replay_async(target, records_pb2.SERVICE, b"", journal)
        assert result.ok and result.complete and result.matched == len(journal), result.message
    # The old code does not ask about the marker: a divergence at the marker.
    result = await Replayer(App([before])).replay_async(target, records_pb2.SERVICE, b"", new)
    assert result.divergence is not None
    assert (result.divergence.index, result.divergence.recorded) == (1, "patch 'new-charge'")
    assert runs == {}


async def test_unknown_handler_bad_input_and_wrong_kind_are_errors() -> None:
    replayer = Replayer(V1)
    unknown = await replayer.replay_async(records_pb2.Target(service="cart", handler="nope"),
                                          records_pb2.EXCLUSIVE, b"3", [])
    assert not unknown.ok and unknown.error == "no handler cart/nope in this app"
    assert unknown.message == "cannot replay: no handler cart/nope in this app"
    bad = await replayer.replay_async(TARGET, records_pb2.EXCLUSIVE, b'"three"', [])
    assert not bad.ok and bad.error is not None and "input does not decode for cart/checkout" in bad.error
    kind = await replayer.replay_async(TARGET, records_pb2.SHARED, b"3", [])
    assert kind.error == "the journal was written by a SHARED handler; cart/checkout is EXCLUSIVE in this app"


async def test_handler_raising_mid_replay_is_an_error_not_a_crash() -> None:
    rec = await record(App([broken]), "broken", "explode")
    assert rec.outcome == "fail"
    runs.clear()
    target = records_pb2.Target(service="broken", handler="explode")
    result = await Replayer(App([broken])).replay_async(target, records_pb2.SERVICE, b"", rec.journal)
    assert not result.ok and result.divergence is None
    assert result.error == "the handler raised ValueError: boom after replaying 1 of 1 entries"
    assert runs == {}


async def test_handler_awaiting_something_outside_the_journal_times_out() -> None:
    journal = [records_pb2.JournalEntry(name="first", run=records_pb2.RunEntry(), value=b"1")]
    target = records_pb2.Target(service="broken", handler="forever")
    result = await Replayer(App([broken])).replay_async(target, records_pb2.SERVICE, b"", journal, timeout=0.3)
    assert not result.ok and result.error is not None and "did not finish replaying within 0.3s" in result.error
    assert runs == {}
