"""Handlers for the harness tests (tenants, limits, metering, tracing).

Steps leave markers in ENDURE_TEST_DIR ("start TAG TIME"); gated steps wait (on the event loop)
for a file the test creates, so the test decides when work may finish.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from endure.sdk import App, Context, ObjectContext, ObjectSharedContext, Service, VirtualObject

DIR = Path(os.environ.get("ENDURE_TEST_DIR", "."))

h = Service("h")
obj = VirtualObject("hobj")


def mark(line: str) -> None:
    with open(DIR / "markers.txt", "a") as f:
        f.write(line + "\n")


async def wait_gate(tag: str) -> str:
    mark(f"start {tag} {time.time():.6f}")
    while not (DIR / f"gate-{tag}").exists() and not (DIR / "gate-all").exists():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    return tag


@h.handler()
async def gated(ctx: Context, tag: str) -> str:
    return await ctx.run("wait", wait_gate, tag)


@h.handler()
async def stamp(ctx: Context, tag: str) -> str:
    await ctx.run("stamp", mark, f"start {tag} {time.time():.6f}")
    return tag


@h.handler()
async def metered(ctx: Context, tag: str) -> int:
    """Three metered steps; the second waits at the gate (the test kills processes meanwhile)."""
    await ctx.run("one", mark, f"one {tag}")
    ctx.meter("llm.tokens.input", 10)
    await ctx.run("two", wait_gate, tag)
    ctx.meter("llm.tokens.input", 10)
    await ctx.run("three", mark, f"three {tag}")
    ctx.meter("llm.tokens.input", 10)
    return 30


@h.handler()
async def awakeable(ctx: Context) -> str:
    awakeable_id, fut = ctx.awakeable(str)
    await ctx.run("publish", mark, f"awakeable {awakeable_id}")
    return await fut


@obj.handler()
async def put(ctx: ObjectContext, value: str) -> None:
    ctx.set("value", value)


@obj.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> str | None:
    return await ctx.get("value", str)


app = App([h, obj])
