"""The handlers the end-to-end benchmarks drive (served by a worker the benchmark starts)."""

from __future__ import annotations

from endure.sdk import App, Context, ObjectContext, Service, VirtualObject

bench = Service("bench")


@bench.handler()
async def noop(ctx: Context, value: int) -> int:
    return value


def _step(value: int) -> int:
    return value + 1


@bench.handler()
async def steps3(ctx: Context, value: int) -> int:
    value = await ctx.run("a", _step, value)
    value = await ctx.run("b", _step, value)
    return await ctx.run("c", _step, value)


counter = VirtualObject("counter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    total = (await ctx.get("total", int) or 0) + delta
    ctx.set("total", total)
    return total


app = App([bench, counter])
