"""A worker told of peer nodes at registration opens one stream to each: same app, one shared slot
pool, reconnect with backoff per peer, a drain on every stream when it stops."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from sdk_fake_runtime import FakeRuntime

from endure.sdk import App, Context, Service
from endure.sdk import worker as worker_module
from endure.sdk.worker import Worker

svc = Service("peers")


@svc.handler()
async def hang(ctx: Context) -> None:
    await ctx.sleep(3600)


@svc.handler()
async def ping(ctx: Context) -> str:
    return "pong"


@pytest.fixture
async def peer() -> AsyncIterator[FakeRuntime]:
    rt = FakeRuntime()
    await rt.start()
    yield rt
    await rt.stop()


def new_worker(address: str, concurrency: int = 8) -> Worker:
    return Worker(App([svc]), address, deployment_id="t:app", concurrency=concurrency, shutdown_grace=1.0,
                  reconnect_initial=0.02, reconnect_max=0.1)


async def stop(w: Worker, task: asyncio.Task[None]) -> None:
    w.stop()
    await asyncio.wait_for(task, 5)


async def test_serves_the_peer_it_is_told_of_and_drains_both(runtime: FakeRuntime, peer: FakeRuntime) -> None:
    runtime.peers = [peer.address]
    w = new_worker(runtime.address)
    task = asyncio.create_task(w.run())
    a = await runtime.session()
    b = await peer.session()
    assert b.register == a.register  # the same app, the same registration
    b.start("peers", "ping")
    assert (await b.expect_output(0)).value == b'"pong"'
    a.start("peers", "ping")
    assert (await a.expect_output(0)).value == b'"pong"'
    assert set(w.sessions) == {runtime.address, peer.address}
    await stop(w, task)
    assert a.drains == 1 and b.drains == 1 and w.drain_acked
    await asyncio.wait_for(a.closed.wait(), 5)
    await asyncio.wait_for(b.closed.wait(), 5)


async def test_one_slot_pool_across_sessions(runtime: FakeRuntime, peer: FakeRuntime) -> None:
    runtime.peers = [peer.address]
    w = new_worker(runtime.address, concurrency=1)
    task = asyncio.create_task(w.run())
    try:
        a = await runtime.session()
        b = await peer.session()
        held = a.start("peers", "hang")
        await a.expect_entry("sleep", 0)
        b.start("peers", "ping")
        await b.no_frame(0.3)  # the one slot is taken by the node A's attempt
        assert w.active == 1
        a.abort(held)  # the slot is free: B's queued start runs
        assert (await b.expect_output(0)).value == b'"pong"'
    finally:
        await stop(w, task)


async def test_a_peer_down_at_first_is_connected_when_it_comes_up(runtime: FakeRuntime, peer: FakeRuntime) -> None:
    port = peer.port
    await peer.stop()
    runtime.peers = [f"127.0.0.1:{port}"]
    w = new_worker(runtime.address)
    task = asyncio.create_task(w.run())
    try:
        a = await runtime.session()
        a.start("peers", "ping")  # the unreachable peer blocks nothing
        assert (await a.expect_output(0)).value == b'"pong"'
        await asyncio.sleep(0.3)
        await peer.start(port)
        b = await peer.session(timeout=5)
        b.start("peers", "ping")
        assert (await b.expect_output(0)).value == b'"pong"'
    finally:
        await stop(w, task)


async def test_peers_named_later_get_a_session(runtime: FakeRuntime, peer: FakeRuntime) -> None:
    w = new_worker(runtime.address)
    task = asyncio.create_task(w.run())
    try:
        a = await runtime.session()
        assert set(w.sessions) == {runtime.address}
        runtime.peers = [peer.address]
        a.close()  # the stream drops; the next registration answer names the peer
        await peer.session(timeout=5)
        assert await runtime.session(timeout=5)
    finally:
        await stop(w, task)


async def test_a_peer_that_refuses_does_not_stop_the_worker(runtime: FakeRuntime, peer: FakeRuntime) -> None:
    peer.reject = (grpc.StatusCode.FAILED_PRECONDITION, "another schema")
    runtime.peers = [peer.address]
    w = new_worker(runtime.address)
    task = asyncio.create_task(w.run())
    try:
        a = await runtime.session()
        await asyncio.sleep(0.3)  # the peer refused a few times, with backoff
        assert not task.done()
        a.start("peers", "ping")
        assert (await a.expect_output(0)).value == b'"pong"'
        peer.reject = None
        await peer.session(timeout=5)
    finally:
        await stop(w, task)


async def test_the_number_of_peers_is_bounded(runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "MAX_PEERS", 2)
    runtime.peers = [f"127.0.0.1:{p}" for p in (1, 2, 3, 4)]  # nothing listens there
    w = new_worker(runtime.address)
    task = asyncio.create_task(w.run())
    try:
        await runtime.session()
        await asyncio.wait_for(w.registered.wait(), 5)
        assert list(w.sessions) == [runtime.address, "127.0.0.1:1", "127.0.0.1:2"]
    finally:
        await stop(w, task)


async def test_a_peer_that_never_answers_does_not_hold_the_exit(
    runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "_STOP_MARGIN", 0.5)
    with socket.socket() as silent:  # accepts TCP connections (backlog) but never speaks HTTP/2
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        runtime.peers = [f"127.0.0.1:{silent.getsockname()[1]}"]
        w = Worker(App([svc]), runtime.address, deployment_id="t:app", shutdown_grace=0.5)
        task = asyncio.create_task(w.run())
        await runtime.session()
        await asyncio.wait_for(w.registered.wait(), 5)
        await asyncio.sleep(0.2)  # the peer session is connecting
        started = time.monotonic()
        w.stop()
        await asyncio.wait_for(task, 5)
        assert time.monotonic() - started < 0.5 + 0.5 + 1.0
