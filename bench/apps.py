"""The handlers the end-to-end benchmarks drive (served by a worker the benchmark starts)."""

from __future__ import annotations

from datetime import timedelta

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


@bench.handler()
async def sleep100(ctx: Context, value: int) -> int:
    await ctx.sleep(timedelta(milliseconds=100))
    return value


@bench.handler()
async def fanout10(ctx: Context, value: int) -> int:
    results = await ctx.gather(*[ctx.call(noop, value + i) for i in range(10)])
    return sum(results)


@bench.handler()
async def tool(ctx: Context, value: int) -> int:
    result = await ctx.sandbox.run_python("print(1)")
    return value + int(result.stdout.strip() or 0)


counter = VirtualObject("counter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    total = (await ctx.get("total", int) or 0) + delta
    ctx.set("total", total)
    return total


app = App([bench, counter])
