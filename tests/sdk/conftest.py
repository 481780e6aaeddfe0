"""Fixtures for SDK unit tests: a fake runtime on loopback gRPC and in-process workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sdk_fake_runtime import FakeRuntime

from endure.sdk import App
from endure.sdk.worker import Worker


@pytest.fixture
async def runtime() -> AsyncIterator[FakeRuntime]:
    rt = FakeRuntime()
    await rt.start()
    yield rt
    await rt.stop()


@pytest.fixture
async def start_worker(runtime: FakeRuntime) -> AsyncIterator[Callable[..., Awaitable[Worker]]]:
    started: list[tuple[Worker, asyncio.Task[None]]] = []

    async def go(app: App, **kw: Any) -> Worker:
        kw.setdefault("shutdown_grace", 1.0)
        w = Worker(app, runtime.address, deployment_id="tests:app", **kw)
        t = asyncio.create_task(w.run())
        started.append((w, t))
        await asyncio.wait_for(w.registered.wait(), 5)
        return w

    yield go
    for w, _ in started:
        w.stop()
    for _, t in started:
        try:
            await asyncio.wait_for(t, 5)
        except Exception:
            t.cancel()
