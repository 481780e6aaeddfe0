"""Handlers for the web console tests (tests/integration/test_console.py).

A step can wait at a gate file the test creates (under ENDURE_TEST_DIR), so the test decides when
a running invocation moves on while the browser watches it.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel

from endure.sdk import (
    App,
    Context,
    ObjectContext,
    Service,
    TerminalError,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
)

DIR = Path(os.environ.get("ENDURE_TEST_DIR", "."))


class Order(BaseModel):
    item: str
    qty: int


shop = Service("shop")


@shop.handler()
async def checkout(ctx: Context, order: Order) -> str:
    price = await ctx.run("quote", lambda: 3 * order.qty)
    await ctx.sleep(timedelta(milliseconds=20))
    receipt = await ctx.run("charge", lambda: f"paid {price} for {order.item}")
    await ctx.call(cart_add, order.item, key="alice")
    return receipt


@shop.handler()
async def refund(ctx: Context, order: Order) -> str:
    await ctx.run("look up", lambda: order.item)
    raise TerminalError(f"no refunds for {order.item}", 409)


@shop.handler()
async def nap(ctx: Context, tag: str) -> str:
    """Sleeps an hour: what a test cancels."""
    await ctx.run("before", lambda: tag)
    await ctx.sleep(timedelta(hours=1))
    return "woke"


async def _gate(name: str) -> str:
    while not (DIR / f"gate-{name}").exists():  # noqa: ASYNC110 - a file the test creates
        await asyncio.sleep(0.02)
    return name


@shop.handler()
async def gated(ctx: Context, tag: str) -> str:
    """One step, then one that waits at the gate, then one more: the page shows them appear."""
    await ctx.run("first", lambda: f"{tag} started")
    tokens = ctx.stream("tokens")
    await tokens.write(f"thinking about {tag}… ")
    await ctx.run("wait", _gate, tag)
    await tokens.write("done.")
    await ctx.run("after gate", lambda: f"{tag} went on")
    return f"{tag} finished"


cart = VirtualObject("cart")


@cart.handler()
async def fill(ctx: ObjectContext, n: int) -> int:
    """A journal of n state entries (each is one entry; none waits for an acknowledgement)."""
    for i in range(n):
        ctx.set(f"s{i % 10}", i)
    return n


@cart.handler()
async def cart_add(ctx: ObjectContext, item: str) -> list[str]:
    items = await ctx.get("items", list[str]) or []
    items.append(item)
    ctx.set("items", items)
    ctx.set("updated_by", ctx.invocation_id)
    return items


signup = Workflow("signup")


@signup.main()
async def run(ctx: WorkflowContext, email: str) -> str:
    ctx.set("email", email)
    return f"confirmed {await ctx.promise('confirmed', str).get()}"


@signup.handler()
async def confirm(ctx: WorkflowSharedContext, code: str) -> str:
    await ctx.promise("confirmed", str).resolve(code)
    return code


app = App([shop, cart, signup])
