"""ctx.sandbox.run_python(network=...): the guest's HTTP log is journaled with the step, with usage,
and a replay returns the recorded result without fetching again."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sdk_fake_runtime import FakeRuntime, entry

from endure.sdk import App, Context, Service

HITS: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *a: object) -> None:
        pass

    def do_GET(self) -> None:
        HITS.append(self.path)
        body = b'{"n": 7}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def base_url() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    HITS.clear()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


svc = Service("sbxnet")


@svc.handler()
async def fetch(ctx: Context, base: str) -> str:
    code = f"import endure_http as h\nprint(h.get('{base}/n').json()['n'] * 6)"
    res = await ctx.sandbox.run_python(code, network={"allow": [base + "/"]})
    return res.stdout.strip()


async def test_http_log_journaled_and_replayed_without_fetching(
    runtime: FakeRuntime, start_worker, base_url: str
) -> None:
    await start_worker(App([svc]))
    s = await runtime.session()
    inv = s.start("sbxnet", "fetch", input=json.dumps(base_url).encode())
    entries, end = await s.until_done(timeout=60)
    assert end.WhichOneof("frame") == "end"
    step, out = (e.entry for e in entries)
    recorded = json.loads(step.value)
    assert recorded["stdout"] == "42\n"
    assert [(h["method"], h["url"], h["status"], h["bytes"]) for h in recorded["http"]] == [
        ("GET", f"{base_url}/n", 200, 8)
    ]
    assert step.usage["sandbox.http_requests"] == 1 and step.usage["sandbox.http_bytes"] == 8
    assert json.loads(out.output.value) == "42" and HITS == ["/n"]

    recorded["stdout"] = "recorded\n"
    s.start(
        "sbxnet",
        "fetch",
        input=json.dumps(base_url).encode(),
        invocation_id=inv,
        attempt=2,
        journal=[entry("run", "sandbox.python", value=json.dumps(recorded).encode())],
    )
    out2 = await s.expect_output(1)
    assert json.loads(out2.value) == "recorded"
    assert HITS == ["/n"]  # the replay did not fetch again


@svc.handler()
async def needs_c_extensions(ctx: Context) -> str:
    res = await ctx.sandbox.run_python("import numpy", requirements=["numpy"])
    return res.stdout


async def test_requirements_that_cannot_run_in_the_sandbox_fail_the_step_terminally(
        runtime: FakeRuntime, start_worker) -> None:
    await start_worker(App([svc]))
    s = await runtime.session()
    s.start("sbxnet", "needs_c_extensions")
    entries, end = await s.until_done(timeout=120)
    [step] = [e.entry for e in entries if e.entry.HasField("run")]
    assert step.failure.code == 422 and "NotPurePythonError" in step.failure.message and "numpy" in step.failure.message


@svc.handler()
async def fetch_without_a_policy(ctx: Context, base: str) -> str:
    code = f"import endure_http as h\nprint(h.get('{base}/n').json()['n'])"
    res = await ctx.sandbox.run_python(code)
    return res.stdout.strip() or res.stderr.strip().splitlines()[-1]


async def test_the_tenants_grant_reaches_runs_that_ask_for_no_network(
        runtime: FakeRuntime, start_worker, base_url: str) -> None:
    await start_worker(App([svc]))
    s = await runtime.session()
    s.start("sbxnet", "fetch_without_a_policy", input=json.dumps(base_url).encode(), sandbox_network=[base_url + "/"])
    _, end = await s.until_done(timeout=60)
    assert end.WhichOneof("frame") == "end"
    assert HITS == ["/n"]
    s.start("sbxnet", "fetch_without_a_policy", input=json.dumps(base_url).encode())  # no grant: no network
    entries, _ = await s.until_done(timeout=60)
    assert "ModuleNotFoundError" in json.loads(entries[-1].entry.output.value) and HITS == ["/n"]
