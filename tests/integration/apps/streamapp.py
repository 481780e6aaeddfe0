"""Handlers for the live-stream tests (tests/integration/test_streams.py).

A step can wait at a gate file the test creates, so a `kill -9` lands at a known point; attempts
and step executions are counted in marker files under ENDURE_TEST_DIR.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from pathlib import Path

from endure.sdk import App, Context, RetryPolicy, Service

DIR = Path(os.environ.get("ENDURE_TEST_DIR", "."))
talk = Service("talk")
FAST = RetryPolicy(initial_interval=timedelta(milliseconds=20), max_interval=timedelta(milliseconds=50))


def mark(name: str) -> None:
    with open(DIR / "markers.txt", "a") as f:
        f.write(name + "\n")


def count(name: str) -> int:
    path = DIR / "markers.txt"
    return path.read_text().split("\n").count(name) if path.exists() else 0


async def gate(name: str) -> None:
    while not (DIR / f"gate-{name}").exists():  # noqa: ASYNC110 - a file another process creates
        await asyncio.sleep(0.01)


def publish(tag: str, awakeable_id: str) -> str:
    (DIR / f"aw-{tag}").write_text(awakeable_id)
    return awakeable_id


@talk.handler()
async def tokens(ctx: Context, n: int) -> str:
    s = ctx.stream("tokens")
    for i in range(n):
        await s.write(f"t{i} ")
    s.close()
    return "done"


@talk.handler()
async def hold(ctx: Context, tag: str) -> str:
    """Writes 'a', waits on an awakeable (its id in a file), writes 'b'."""
    s = ctx.stream()
    await s.write("a")
    aid, fut = ctx.awakeable()
    await ctx.run("publish", publish, tag, aid)
    await fut
    await s.write("b")
    return f"held {tag}"


@talk.handler()
async def agent(ctx: Context, tag: str) -> str:
    """Progress at handler level around a streaming step that waits at a gate mid-way."""
    progress = ctx.stream("progress")
    await progress.write({"phase": "start"})
    tokens = ctx.stream("tokens")

    async def model() -> str:
        mark(f"{tag}:model")
        await tokens.write("Hel")
        await tokens.write("lo ")
        await gate(f"{tag}-model")
        await tokens.write("world")
        return "Hello world"

    text = await ctx.run("model", model)
    await progress.write({"phase": "middle"})
    await gate(f"{tag}-between")
    await progress.write({"phase": "end"})
    return text


@talk.handler()
async def flaky(ctx: Context, tag: str) -> str:
    """A streaming step that fails on its first execution and succeeds on the second."""
    tokens = ctx.stream("tokens")

    async def model() -> str:
        mark(f"{tag}:try")
        first = count(f"{tag}:try") == 1
        for word in (["partial", "output"] if first else ["final", "answer"]):
            await tokens.write(word + " ")
        if first:
            raise RuntimeError("the model connection dropped")
        return "final answer"

    return await ctx.run("model", model, retry=FAST)


@talk.handler()
async def big(ctx: Context, size: int) -> str:
    await ctx.stream().write("x" * size)
    return "written"


@talk.handler()
async def paced(ctx: Context, n: int) -> int:
    """n chunks, each carrying the time it was written (for latency), 5 ms apart."""
    s = ctx.stream("ticks")
    for _ in range(n):
        await s.write({"t": time.time()})
        await asyncio.sleep(0.005)
    return n


app = App([talk], name="streamapp")
