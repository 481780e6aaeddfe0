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
async def steps50(ctx: Context, value: int) -> int:
    """A long journal (50 run entries) for the replay bench's per-entry cost."""
    for i in range(50):
        value = await ctx.run(f"s{i}", _step, value)
    return value


@bench.handler()
async def steps_then_wait(ctx: Context, value: int) -> int:
    """Three steps, then parked on an awakeable nobody completes: an in-flight invocation whose
    journal `endure deployments check` replays (the replay bench)."""
    value = await ctx.run("a", _step, value)
    value = await ctx.run("b", _step, value)
    value = await ctx.run("c", _step, value)
    _, woken = ctx.awakeable(int)
    return value + await woken


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


async def _busy(ms: int) -> int:
    import asyncio

    await asyncio.sleep(ms / 1000)
    return ms


@bench.handler()
async def work(ctx: Context, ms: int) -> int:
    """One step that takes ms milliseconds (waiting, like an LLM call)."""
    return await ctx.run("work", _busy, ms)


counter = VirtualObject("counter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    total = (await ctx.get("total", int) or 0) + delta
    ctx.set("total", total)
    return total


app = App([bench, counter])


def _mark(folder: str, line: str) -> None:
    with open(f"{folder}/markers.txt", "a") as f:
        f.write(line + "\n")


async def _wait_at_gate(folder: str, tag: str) -> str:
    """Waits (on the event loop, no thread held) until the benchmark opens the gate."""
    import asyncio
    import os

    _mark(folder, f"waiting {tag} {os.getpid()}")
    while not os.path.exists(f"{folder}/gate"):  # noqa: ASYNC110, ASYNC240 - another process opens the gate
        await asyncio.sleep(0.01)
    return tag


@bench.handler()
async def hold(ctx: Context, job: list[str]) -> str:
    """job = [folder, tag]: one step, then a step that waits at the benchmark's gate."""
    folder, tag = job
    await ctx.run("begin", _mark, folder, f"begin {tag}")
    return await ctx.run("wait", _wait_at_gate, folder, tag)


@bench.handler()
async def stream_tokens(ctx: Context, n: int) -> int:
    """n chunks of 10 bytes, as fast as the writer takes them (the stream bench's throughput)."""
    s = ctx.stream("tokens")
    for i in range(n):
        await s.write(f"tok{i % 1000000:06d} ")
    return n


@bench.handler()
async def stream_paced(ctx: Context, spec: dict[str, float]) -> int:
    """spec["n"] chunks, each the time it was written, spec["gap_ms"] apart (the latency figures)."""
    import asyncio
    import time

    s = ctx.stream("ticks")
    n = int(spec["n"])
    for _ in range(n):
        await s.write(f"{time.time():.6f}")
        await asyncio.sleep(spec["gap_ms"] / 1000)
    return n


@bench.handler()
async def noop_stream(ctx: Context, value: int) -> int:
    """noop plus ten 10-byte chunks: what a stream adds to an invocation's CPU."""
    s = ctx.stream()
    for i in range(10):
        await s.write(f"chunk{i:04d} ")
    return value
