"""The worker process: SIGTERM drain of a real subprocess, reconnects, rejected registration."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import grpc
import pytest
from sdk_fake_runtime import FakeRuntime

from endure.sdk import App, Context, RegistrationError, Service
from endure.sdk.worker import Worker

HERE = Path(__file__).resolve().parent


async def spawn_worker(
    address: str, app: str = "sdk_app_fixture:app", *extra: str, env_extra: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("ENDURE_DEPLOYMENT_VERSION", None)
    env.update(env_extra or {})
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "endure.sdk.worker",
        app,
        "--runtime",
        address,
        "--concurrency",
        "4",
        "--shutdown-grace",
        "10",
        *extra,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_sigterm_lets_handlers_reach_suspension_then_exits(runtime: FakeRuntime) -> None:
    proc = await spawn_worker(runtime.address)
    try:
        s = await runtime.session(timeout=20)
        assert s.register.deployment_id == "sdk_app_fixture:app"
        assert s.register.concurrency == 4
        inv = s.start("proc", "slow_then_sleep")
        echo = s.start("proc", "echo", b'"hi"')
        out = await s.expect_entry("output", 0)
        assert (out.invocation_id, out.entry.output.value) == (echo, b'"hi"')
        await s.expect("end")
        await asyncio.sleep(0.1)  # inside the 0.5 s step
        proc.send_signal(signal.SIGTERM)
        assert proc.stderr is not None
        while b"stopping: draining 1 invocation" not in await asyncio.wait_for(proc.stderr.readline(), 60):
            pass
        late = s.start("proc", "echo", b'"late"')  # not taken after SIGTERM
        run = await s.expect_entry("run", 0, ack=True)
        assert run.invocation_id == inv and run.entry.name == "slow"
        await s.expect_entry("sleep", 1, ack=True)
        sus = await s.expect("suspend")
        assert sus.invocation_id == inv and list(sus.waiting_on) == [1]
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        await s.no_frame(0.1)
        assert s.drains == 1  # the worker told the runtime to send it nothing new
        assert [(r.invocation_id, r.reason) for r in s.releases] == [(late, "worker draining")]  # handed back
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_rejected_registration_exits_non_zero(runtime: FakeRuntime) -> None:
    runtime.reject = (grpc.StatusCode.FAILED_PRECONDITION, "conflicting schema for proc/echo")
    proc = await spawn_worker(runtime.address)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert "FAILED_PRECONDITION: conflicting schema for proc/echo" in err.decode()


async def test_bad_app_reference_exits_non_zero(runtime: FakeRuntime) -> None:
    proc = await spawn_worker(runtime.address, "sdk_app_fixture:not_an_app")
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2 and "not an endure.sdk.App" in err.decode()


async def test_deployment_version_option_and_env_reach_the_registration(runtime: FakeRuntime) -> None:
    for extra, env, expected in ((("--deployment-version", "v9+build.1"), {}, "v9+build.1"),
                                 ((), {"ENDURE_DEPLOYMENT_VERSION": "from-env"}, "from-env")):
        proc = await spawn_worker(runtime.address, "sdk_app_fixture:app", *extra, env_extra=env)
        try:
            s = await runtime.session(timeout=20)
            assert s.register.deployment_version == expected
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)


async def test_bad_deployment_version_exits_non_zero(runtime: FakeRuntime) -> None:
    proc = await spawn_worker(runtime.address, "sdk_app_fixture:app", "--deployment-version", "v 1")
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2 and "--deployment-version is 1-64 letters" in err.decode()


svc = Service("rc")


@svc.handler()
async def hang(ctx: Context) -> None:
    await ctx.sleep(3600)


@svc.handler()
async def ping(ctx: Context) -> str:
    return "pong"


async def test_reconnects_after_runtime_restart(runtime: FakeRuntime) -> None:
    w = Worker(App([svc]), runtime.address, deployment_id="t:app", reconnect_initial=0.02, reconnect_max=0.2)
    task = asyncio.create_task(w.run())
    try:
        s = await runtime.session()
        s.start("rc", "hang")
        await s.expect_entry("sleep", 0)
        assert w.active == 1
        port = runtime.port
        await runtime.stop()
        await runtime.start(port)
        s2 = await runtime.session(timeout=10)
        await asyncio.wait_for(w.registered.wait(), 5)
        assert w.connections == 2 and w.active == 0  # in-flight attempts were dropped locally
        assert s2.register.deployment_version == s.register.deployment_version
        s2.start("rc", "ping")
        out = await s2.expect_output(0)
        assert out.value == b'"pong"'
    finally:
        w.stop()
        await asyncio.wait_for(task, 5)


async def test_registration_error_raised_in_process(runtime: FakeRuntime) -> None:
    runtime.reject = (grpc.StatusCode.FAILED_PRECONDITION, "deployment t:app has another schema")
    w = Worker(App([svc]), runtime.address, deployment_id="t:app")
    with pytest.raises(RegistrationError, match="FAILED_PRECONDITION: deployment t:app has another schema"):
        await asyncio.wait_for(w.run(), 5)


async def test_waits_for_runtime_to_come_up(runtime: FakeRuntime) -> None:
    port = runtime.port
    await runtime.stop()
    w = Worker(
        App([svc]), f"127.0.0.1:{port}", deployment_id="t:app", reconnect_initial=0.02, reconnect_max=0.1
    )
    task = asyncio.create_task(w.run())
    try:
        await asyncio.sleep(0.2)
        assert not w.registered.is_set() and not task.done()
        await runtime.start(port)
        await runtime.session(timeout=5)
    finally:
        w.stop()
        await asyncio.wait_for(task, 5)
