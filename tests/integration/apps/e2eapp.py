"""Handlers for the end-to-end matrix (tests/integration/test_e2e_*.py): one App with every
Context operation, so one worker process serves a whole test module.

Side effects a test must count (a step ran, an attempt started) are appended to marker files in
ENDURE_TEST_DIR; a step can wait at a gate file the test creates, so crash points are
deterministic. Behaviour that must change between attempts is chosen by a mode file.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from endure.sdk import (
    App,
    CancelledError,
    Context,
    ObjectContext,
    ObjectSharedContext,
    RetryPolicy,
    Service,
    TerminalError,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
)

DIR = Path(os.environ.get("ENDURE_TEST_DIR", "."))
FAST = RetryPolicy(initial_interval=timedelta(milliseconds=20), max_interval=timedelta(milliseconds=50))


def mark(name: str) -> None:
    with open(DIR / "markers.txt", "a") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())


def wait_gate(gate: str) -> None:
    while not (DIR / gate).exists():  # the test opens the gate; runs in a thread off the event loop
        time.sleep(0.01)


def gated_step(tag: str, name: str, gate: str | None = None) -> str:
    mark(f"{tag}:{name}:start")
    if gate:
        wait_gate(gate)
    mark(f"{tag}:{name}:done")
    return name


def mode(tag: str) -> str:
    path = DIR / f"mode-{tag}"
    return path.read_text().strip() if path.exists() else ""


class Pair(BaseModel):
    a: int
    b: int


svc = Service("e2e")


# ---------------------------------------------------------------------- plain handlers


@svc.handler()
async def echo(ctx: Context, value: Any) -> Any:
    return value


@svc.handler()
async def add(ctx: Context, pair: Pair) -> int:
    return pair.a + pair.b


@svc.handler()
async def noop(ctx: Context) -> str:
    return "ok"


@svc.handler()
async def once(ctx: Context, tag: str) -> str:
    """Counts its executions (not journaled), for idempotency checks."""
    mark(f"{tag}:once")
    return f"done {tag}"


@svc.handler()
async def sleeper(ctx: Context, ms: int) -> str:
    await ctx.sleep(timedelta(milliseconds=ms))
    return f"slept {ms}"


@svc.handler(inactivity_timeout=timedelta(milliseconds=10))
async def park(ctx: Context, ms: int) -> str:
    """Sleeps suspended (frees its worker slot at once): many can wait without holding slots."""
    await ctx.sleep(timedelta(milliseconds=ms))
    return "parked"


@svc.handler()
async def identity(ctx: Context) -> dict[str, str]:
    return {"invocation_id": ctx.invocation_id}


# ---------------------------------------------------------------------- ctx.run


def _double(x: int) -> int:
    mark("run_sync")
    return 2 * x


async def _triple(x: int) -> int:
    mark("run_async")
    await asyncio.sleep(0)
    return 3 * x


def _refuse(tag: str) -> int:
    mark(f"{tag}:refuse")
    raise TerminalError("step refused", 418)


@svc.handler()
async def runs(ctx: Context, x: int) -> list[int]:
    a = await ctx.run("double", _double, x)
    b = await ctx.run("triple", _triple, x)
    return [a, b]


@svc.handler()
async def run_terminal(ctx: Context, tag: str) -> str:
    try:
        await ctx.run("refuse", _refuse, tag)
    except TerminalError as exc:
        after = await ctx.run("after", lambda: "after")
        return f"caught {exc.code} {exc.message} {after}"
    return "not raised"


@svc.handler()
async def run_terminal_uncaught(ctx: Context, tag: str) -> int:
    return await ctx.run("refuse", _refuse, tag)


# ---------------------------------------------------------------------- calls, sends, combinators


@svc.handler()
async def caller(ctx: Context, n: int) -> dict[str, Any]:
    by_name = await ctx.call("e2e", "echo", {"n": n})
    typed = await ctx.call(add, Pair(a=n, b=1))
    return {"by_name": by_name, "typed": typed}


@svc.handler()
async def object_caller(ctx: Context, args: dict[str, str]) -> list[str]:
    """Calls the object e2eobj/<key> (whose partition may live on another node)."""
    return await ctx.call("e2eobj", "append", args["item"], key=args["key"])


@svc.handler()
async def sender(ctx: Context, ms: int) -> dict[str, str]:
    now_id = ctx.send("e2e", "echo", "now")
    later_id = ctx.send(echo, "later", delay=timedelta(milliseconds=ms))
    return {"now": now_id, "later": later_id}


@svc.handler()
async def fanout(ctx: Context, n: int) -> list[int]:
    futures = [ctx.call(add, Pair(a=i, b=i)) for i in range(n)]
    return await ctx.gather(*futures)


@svc.handler()
async def race(ctx: Context) -> dict[str, Any]:
    slow = ctx.sleep(timedelta(seconds=60))
    fast = ctx.call("e2e", "echo", "fast")
    name, value = await ctx.select(slow=slow, fast=fast)
    both = await ctx.gather(ctx.call("e2e", "echo", 1), ctx.call("e2e", "echo", 2))
    return {"winner": name, "value": value, "both": both}


# ---------------------------------------------------------------------- determinism across replay


@svc.handler()
async def deterministic(ctx: Context, tag: str) -> dict[str, Any]:
    now = ctx.now().isoformat()
    rnd = ctx.random().random()
    uid = str(ctx.uuid())
    mark(f"{tag}:det:{now}|{rnd}|{uid}|{ctx.invocation_id}")  # every attempt writes what it saw
    await ctx.run("gated", gated_step, tag, "gated", f"gate-{tag}")
    return {"now": now, "random": rnd, "uuid": uid, "invocation_id": ctx.invocation_id}


# ---------------------------------------------------------------------- awakeables


@svc.handler()
async def human(ctx: Context) -> str:
    _, fut = ctx.awakeable()
    try:
        value = await fut
    except TerminalError as exc:
        return f"rejected {exc.code}: {exc.message}"
    return f"approved {value}"


# ---------------------------------------------------------------------- retries and failures


@svc.handler(retry=FAST)
async def flaky(ctx: Context, tag: str) -> int:
    mark(f"{tag}:attempt")
    path = DIR / f"count-{tag}"
    count = int(path.read_text()) if path.exists() else 0
    path.write_text(str(count + 1))
    if count < 2:
        raise RuntimeError(f"transient failure {count + 1}")
    return count + 1


@svc.handler(retry=FAST)
async def terminal(ctx: Context, tag: str) -> None:
    mark(f"{tag}:attempt")
    raise TerminalError("bad request: no retry", 400)


@svc.handler(retry=RetryPolicy(initial_interval=timedelta(milliseconds=20), max_attempts=3))
async def exhaust_fail(ctx: Context, tag: str) -> None:
    mark(f"{tag}:attempt")
    raise RuntimeError("always broken")


@svc.handler(retry=RetryPolicy(initial_interval=timedelta(milliseconds=20), max_attempts=2, on_exhausted="pause"))
async def exhaust_pause(ctx: Context, tag: str) -> str:
    mark(f"{tag}:attempt")
    if mode(tag) != "fixed":
        raise RuntimeError("broken until fixed")
    return "fixed"


@svc.handler(retry=FAST)
async def evolving(ctx: Context, tag: str) -> str:
    """v1: step 'a' then a failing step 'b' (retried); v2: a changed handler whose first step is
    'x' (a journal mismatch on replay); fixed: steps 'a' and 'b' succeed."""
    current = mode(tag)
    if current == "v2":
        await ctx.run("x", lambda: "x")
        return "v2"
    a = await ctx.run("a", lambda: "a")

    def b() -> str:
        if current != "fixed":
            raise RuntimeError("step b is broken in v1")
        return "b"

    return a + await ctx.run("b", b)


class Opaque:
    pass


@svc.handler()
async def bad_output(ctx: Context) -> int:
    return Opaque()  # type: ignore[return-value]


# ---------------------------------------------------------------------- cancellation


@svc.handler()
async def cancellable(ctx: Context, tag: str) -> str:
    try:
        await ctx.sleep(timedelta(seconds=120), name="long")
    except CancelledError:
        await ctx.run("compensate", mark, f"{tag}:compensated")
        raise
    return "woke"


@svc.handler()
async def own_conflict(ctx: Context, tag: str) -> str:
    """Fails on its own with the text of a cancellation: it must not look like one."""
    await ctx.run("step", mark, f"{tag}:ran")
    raise TerminalError("cancelled", 409)


@svc.handler()
async def cancel_parent(ctx: Context, tag: str) -> str:
    try:
        return await ctx.call("e2e", "cancellable", f"{tag}-child")
    except CancelledError:
        await ctx.run("compensate", mark, f"{tag}:compensated")
        raise


# ---------------------------------------------------------------------- soak


def _soak_step(tag: str, i: int) -> str:
    mark(f"{tag}:step{i}:start")
    return f"s{i}"


@svc.handler(retry=FAST)
async def multistep(ctx: Context, tag: str) -> list[str]:
    """Five acknowledged steps with timers between them; `ack` is marked after each step's result
    is durable (on replays too), so a `start` after an `ack` means an acknowledged step re-ran."""
    out = []
    for i in range(5):
        out.append(await ctx.run(f"step{i}", _soak_step, tag, i))
        mark(f"{tag}:step{i}:ack")
        await ctx.sleep(timedelta(milliseconds=30))
    return out


# ---------------------------------------------------------------------- a virtual object

obj = VirtualObject("e2eobj")


@obj.handler()
async def put(ctx: ObjectContext, values: dict[str, Any]) -> list[str]:
    for name, value in values.items():
        ctx.set(name, value)
    return await ctx.state_keys()


@obj.handler()
async def clear(ctx: ObjectContext, name: str) -> list[str]:
    ctx.clear(name)
    return await ctx.state_keys()


@obj.handler()
async def clear_all(ctx: ObjectContext) -> list[str]:
    ctx.clear_all()
    return await ctx.state_keys()


@obj.handler(kind="shared")
async def dump(ctx: ObjectSharedContext) -> dict[str, Any]:
    out = {}
    for name in await ctx.state_keys():
        out[name] = await ctx.get(name)
    return {"key": ctx.key, "state": out}


@obj.handler()
async def append(ctx: ObjectContext, item: str) -> list[str]:
    items = await ctx.get("items", list[str]) or []
    await ctx.run("between", lambda: None)  # a durable round trip between the read and the write
    items.append(item)
    ctx.set("items", items)
    return items


@obj.handler(kind="shared")
async def items(ctx: ObjectSharedContext) -> list[str]:
    return await ctx.get("items", list[str]) or []


@obj.handler()
async def hold(ctx: ObjectContext) -> str:
    """Exclusive: holds the key until its awakeable is resolved."""
    _, fut = ctx.awakeable()
    return f"released {await fut}"


# ---------------------------------------------------------------------- a workflow

flow = Workflow("e2eflow")


@flow.main()
async def run(ctx: WorkflowContext, email: str) -> dict[str, Any]:
    mark(f"{ctx.key}:run")
    ctx.set("email", email)
    approval = ctx.promise("approval")
    before = await approval.peek()
    try:
        approved = await approval.get()
    except TerminalError as exc:
        return {"before": before, "rejected": exc.message}
    confirmed = await ctx.promise("confirmed").get()
    after = await approval.peek()
    return {"before": before, "approved": approved, "confirmed": confirmed, "after": after, "key": ctx.key}


@flow.handler()
async def approve(ctx: WorkflowSharedContext, who: str) -> str:
    await ctx.promise("approval").resolve(who)
    return f"approved by {who}"


@flow.handler()
async def peek(ctx: WorkflowSharedContext) -> Any:
    return await ctx.promise("approval").peek()


app = App([svc, obj, flow])
