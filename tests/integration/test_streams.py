"""Issue 15, end to end: live streams through a real runtime and worker processes. Chunks arrive in
order and the result follows; a subscriber resumes from an offset; `kill -9` of the worker inside a
step and between steps, and of the runtime, leave the client's view consistent and complete; a
retried step's partial output is voided by a reset; limits give a clear error; another tenant's
invocation is NOT_FOUND (tests/integration/test_harness_e2e.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cluster import Cluster, wait_until  # noqa: I001 - tests/integration is on sys.path

from endure.sdk.client import (
    Client,
    InvocationError,
    StreamChunk,
    StreamClosed,
    StreamReset,
    StreamResult,
    StreamView,
)

APP = "streamapp:app"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, env={"ENDURE_TEST_DIR": str(tmp_path)})
    try:
        c.start_runtime()
        c.start_worker(APP, name="w1")
        yield c
    finally:
        c.stop()


def open_gate(cluster: Cluster, name: str) -> None:
    (cluster.root / f"gate-{name}").touch()


def markers(cluster: Cluster) -> list[str]:
    path = cluster.root / "markers.txt"
    return path.read_text().split() if path.exists() else []


def awakeable(cluster: Cluster, tag: str) -> str:
    path = cluster.root / f"aw-{tag}"
    return str(wait_until(lambda: path.exists() and path.read_text(), 60, f"awakeable {tag}"))


def offsets_are_exact(events: list[object]) -> None:
    """Per stream, the offsets seen are 0, 1, 2, ... with no gap and no repeat."""
    seen: dict[str, list[int]] = {}
    for e in events:
        if isinstance(e, (StreamChunk, StreamReset, StreamClosed)):
            seen.setdefault(e.stream, []).append(e.offset)
    for stream, offsets in seen.items():
        assert offsets == list(range(len(offsets))), (stream, offsets)


async def test_chunks_arrive_in_order_and_the_result_follows(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        events = [e async for e in client.stream("talk/tokens", 200)]
    chunks = [e for e in events if isinstance(e, StreamChunk)]
    assert [c.data for c in chunks] == [f"t{i} " for i in range(200)]
    assert all(c.stream == "tokens" and not c.provisional for c in chunks)
    assert isinstance(events[-2], StreamClosed) and isinstance(events[-1], StreamResult)
    assert events[-1].value == "done"
    offsets_are_exact(events)


async def test_a_subscriber_reconnects_from_an_offset_and_gets_exactly_the_rest(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("talk/hold", "r1")
        aid = awakeable(cluster, "r1")
        first = []
        async for event in client.subscribe(inv):
            first.append(event)
            if isinstance(event, StreamChunk):
                break  # the subscriber goes away after the first chunk
        assert [(e.offset, e.data) for e in first if isinstance(e, StreamChunk)] == [(0, "a")]
        await client.resolve_awakeable(aid, "go")
        rest = [e async for e in client.subscribe(inv, stream="default", from_offset=1)]
        assert [(e.offset, e.data) for e in rest if isinstance(e, StreamChunk)] == [(1, "b")]
        assert isinstance(rest[-1], StreamResult) and rest[-1].value == "held r1"
        everything = [e async for e in client.subscribe(inv)]  # a finished invocation, from the start
        assert [e.data for e in everything if isinstance(e, StreamChunk)] == ["a", "b"]


async def test_kill9_of_the_worker_inside_a_step_voids_its_output_and_keeps_the_rest_exact(
        cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("talk/agent", "k1")
        seen: list[object] = []
        async for event in client.subscribe(inv):
            seen.append(event)
            if [e.data for e in seen if isinstance(e, StreamChunk) and e.stream == "tokens"] == ["Hel", "lo "]:
                break  # the step streamed, and waits at its gate
        assert all(e.provisional for e in seen if isinstance(e, StreamChunk) and e.stream == "tokens")
        cluster.workers[0].kill9()
        wait_until(lambda: "w1" not in cluster.connected_workers(), 30, "w1 gone")
        open_gate(cluster, "k1-model")
        cluster.start_worker(APP, name="w2")
        wait_until(lambda: markers(cluster).count("k1:model") == 2, 60, "the step ran again on w2")
        # Between steps: progress 'middle' is durable; kill w2 there too, and let w3 finish.
        async for event in client.subscribe(inv, stream="progress"):
            if isinstance(event, StreamChunk) and event.data == {"phase": "middle"}:
                break
        cluster.workers[-1].kill9()
        wait_until(lambda: "w2" not in cluster.connected_workers(), 30, "w2 gone")
        open_gate(cluster, "k1-between")
        cluster.start_worker(APP, name="w3")
        events = [e async for e in client.subscribe(inv)]
    offsets_are_exact(events)
    view = StreamView()
    for e in events:
        view.apply(e)
    assert view.text("tokens") == "Hello world"  # the first execution's "Hel", "lo " are void
    [reset] = [e for e in events if isinstance(e, StreamReset)]
    assert reset.stream == "tokens" and list(reset.offsets) == [0, 1]
    progress = [e.data for e in events if isinstance(e, StreamChunk) and e.stream == "progress"]
    assert progress == [{"phase": "start"}, {"phase": "middle"}, {"phase": "end"}]  # replays wrote none twice
    assert isinstance(events[-1], StreamResult) and events[-1].value == "Hello world"
    assert markers(cluster).count("k1:model") == 2  # the journaled step did not run on w3


async def test_kill9_of_the_runtime_mid_stream_then_subscribing_again(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("talk/hold", "rt")
        aid = awakeable(cluster, "rt")
    assert cluster.runtime is not None
    cluster.runtime.kill9()
    cluster.start_runtime()
    cluster.wait_for_workers(1)
    async with Client(cluster.ingress) as client:
        before = []
        async for event in client.subscribe(inv):
            before.append(event)
            break
        assert isinstance(before[0], StreamChunk) and (before[0].offset, before[0].data) == (0, "a")
        await client.resolve_awakeable(aid, "go")
        events = [e async for e in client.subscribe(inv)]
    assert [(e.offset, e.data) for e in events if isinstance(e, StreamChunk)] == [(0, "a"), (1, "b")]
    assert isinstance(events[-1], StreamResult) and events[-1].value == "held rt"


async def test_a_retried_steps_partial_output_is_reset(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        events = [e async for e in client.stream("talk/flaky", "f1")]
    chunks = [e for e in events if isinstance(e, StreamChunk)]
    assert [c.data for c in chunks] == ["partial ", "output ", "final ", "answer "]
    assert all(c.provisional for c in chunks)
    [reset] = [e for e in events if isinstance(e, StreamReset)]
    assert list(reset.offsets) == [0, 1]
    assert events.index(reset) < events.index(chunks[2])  # the reset comes before the new output
    view = StreamView()
    for e in events:
        view.apply(e)
    assert view.text("tokens") == "final answer "
    assert isinstance(events[-1], StreamResult) and events[-1].value == "final answer"


async def test_limits_exceeded_fail_the_handler_with_a_clear_error(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        with pytest.raises(InvocationError) as err:
            [e async for e in client.stream("talk/big", 70 * 1024)]
        assert err.value.code == 413 and "65536" in err.value.message, err.value.message
        assert await client.call("talk/big", 1000, timeout=30) == "written"


async def test_unknown_invocations_and_bad_stream_names_get_precise_errors(cluster: Cluster) -> None:
    from endure.sdk.client import RequestError

    async with Client(cluster.ingress) as client:
        inv = await client.send("talk/tokens", 3)
        with pytest.raises(RequestError) as bad:
            [e async for e in client.subscribe(inv, stream="no spaces")]
        assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(RequestError) as missing:
            [e async for e in client.subscribe("inv_1234567890abcdef1234567890")]
        assert missing.value.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)


def test_the_cli_follows_a_call_and_tails_an_invocation(cluster: Cluster) -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, **cluster.env, ENDURE_INGRESS=cluster.ingress, ENDURE_ADMIN=cluster.admin)

    def endure(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "endure.runtime.cli", *args], env=env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    followed = endure("call", "talk/tokens", "--data", "5", "--follow").stdout
    assert followed.startswith("t0 t1 t2 t3 t4 ") and '"done"' in followed, followed
    inv = json.loads(endure("send", "talk/tokens", "--data", "3", "--json").stdout)["invocation_id"]
    lines = [json.loads(line) for line in endure("invocations", "tail", inv, "--json").stdout.splitlines()]
    chunks = [e for e in lines if e["event"] == "chunk"]
    assert [c["data"] for c in chunks][:3] == ["t0 ", "t1 ", "t2 "], lines
    assert "t2 " in endure("invocations", "tail", inv, "--stream", "tokens", "--from", "2").stdout
