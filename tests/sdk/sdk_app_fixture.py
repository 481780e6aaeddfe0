"""An app for worker-process tests (imported by `python -m endure.sdk.worker sdk_app_fixture:app`)."""

from __future__ import annotations

import time
from datetime import timedelta

from endure.sdk import App, Context, Service

svc = Service("proc", inactivity_timeout=timedelta(seconds=30))


@svc.handler()
async def slow_then_sleep(ctx: Context) -> str:
    await ctx.run("slow", time.sleep, 0.5)
    await ctx.sleep(timedelta(hours=1))
    return "never"


@svc.handler()
async def echo(ctx: Context, text: str) -> str:
    return text


app = App([svc])
not_an_app = 42
