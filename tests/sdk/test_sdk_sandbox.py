"""ctx.sandbox / ctx.run_tool: journaled with usage, replayed without rerunning the guest."""

from __future__ import annotations

import json

from pydantic import BaseModel
from sdk_fake_runtime import FakeRuntime, entry

from endure.sdk import App, Context, Service, TerminalError
from endure.sdk import tools as sdk_tools


class In(BaseModel):
    x: int


class Out(BaseModel):
    y: int


svc = Service("sbx")


@svc.handler()
async def compute(ctx: Context) -> list[str]:
    res = await ctx.sandbox.run_python("print(6 * 7)")
    out = await ctx.run_tool("double", In(x=21))
    try:
        await ctx.run_tool("double", {"x": "not an int"})
        failed = "no"
    except TerminalError as exc:
        failed = str(exc.code)
    return [res.stdout.strip(), str(out.y), failed]


def make_app() -> App:
    from endure.sandbox import Tool, ToolRegistry

    registry = ToolRegistry()
    registry.register(
        Tool(
            "double",
            "doubles x",
            In,
            Out,
            python="import json, sys\nd = json.load(sys.stdin)\nprint(json.dumps({'y': d['x'] * 2}))",
        )
    )
    return App([svc], tools=registry)


async def test_sandbox_steps_journaled_with_usage_and_replayed(runtime: FakeRuntime, start_worker) -> None:
    assert sdk_tools._sandbox is None  # created on first use only
    await start_worker(make_app())
    s = await runtime.session()
    inv = s.start("sbx", "compute")
    entries, end = await s.until_done(timeout=60)
    assert end.WhichOneof("frame") == "end"
    py, tool, bad, out = (e.entry for e in entries)
    assert py.name == "sandbox.python" and json.loads(py.value)["stdout"] == "42\n"
    assert py.usage["sandbox.fuel"] > 0 and "sandbox.wall_ms" in py.usage
    assert (
        tool.name == "tool:double" and json.loads(tool.value) == {"y": 42} and tool.usage["sandbox.fuel"] > 0
    )
    assert bad.failure.code == 422 and "invalid input" in bad.failure.message
    assert json.loads(out.output.value) == ["42", "42", "422"]

    # Replay with (edited) recorded results: the guest does not run again.
    recorded = json.loads(py.value)
    recorded["stdout"] = "recorded\n"
    journal = [
        entry("run", "sandbox.python", value=json.dumps(recorded).encode()),
        entry("run", "tool:double", value=b'{"y": 7}'),
        bad,
    ]
    s.start("sbx", "compute", invocation_id=inv, attempt=2, journal=journal)
    out2 = await s.expect_output(3)
    assert json.loads(out2.value) == ["recorded", "7", "422"]
