"""The three benchmark handlers written with Restate's Python SDK, served over HTTP/2 by hypercorn.

`python -m endure.bench.compare.restate_app --port P` serves them on 127.0.0.1:P (one process,
uvloop); the benchmark then registers the deployment with the Restate server's admin API.
"""

from __future__ import annotations

import argparse
import asyncio

import restate

bench = restate.Service("bench")


@bench.handler()
async def noop(ctx: restate.Context, value: int) -> int:
    return value


def _step(value: int) -> int:
    return value + 1


@bench.handler()
async def steps3(ctx: restate.Context, value: int) -> int:
    # A sync function, run off the event loop by the SDK (as Endure's ctx.run does).
    value = await ctx.run_typed("a", _step, restate.RunOptions(), value)
    value = await ctx.run_typed("b", _step, restate.RunOptions(), value)
    return await ctx.run_typed("c", _step, restate.RunOptions(), value)


counter = restate.VirtualObject("counter")


@counter.handler()
async def add(ctx: restate.ObjectContext, delta: int) -> int:
    total = (await ctx.get("total", type_hint=int) or 0) + delta
    ctx.set("total", total)
    return total


app = restate.app([bench, counter])


def main() -> None:
    import uvloop
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.h2_max_concurrent_streams = 2**31 - 1
    config.keep_alive_timeout = 3600
    # hypercorn closes a connection after 1000 requests by default; the server then sees a broken
    # pipe mid-invocation and retries it after a backoff (stalls of seconds). Restate's SDK docs set
    # the same three limits to the maximum.
    config.keep_alive_max_requests = 2**31 - 1
    config.loglevel = "WARNING"
    uvloop.install()
    asyncio.run(serve(app, config))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
