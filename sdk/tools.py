"""Sandboxed code and tools as journaled steps (`ctx.sandbox.*`, `ctx.run_tool`).

`endure.sandbox` is imported only when a handler first uses it, and one `Sandbox` (a process pool)
is created per worker process on that first use. A sandbox run is journaled as a RunEntry whose
value is the result JSON and whose `usage` map is the SandboxResult's `usage()`, so a replay
returns the recorded result and never re-runs the guest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from endure.sdk import metrics
from endure.sdk.context import DurableFuture, _journal_cancelled_run
from endure.sdk.errors import TerminalError
from endure.sdk.invocation import WithUsage
from endure.sdk.serde import Serde, serde_for

if TYPE_CHECKING:
    from endure.sandbox import Sandbox
    from endure.sdk.context import Context

_sandbox: Sandbox | None = None
_registry: Any = None

# A tool that fails (bad input, guest error or limit, invalid output) fails its step terminally:
# the agent sees a TerminalError it can hand back to the model, and replays see the same failure.
TOOL_FAILURE_CODE = 422


def configure(registry: Any) -> None:
    """The ToolRegistry `ctx.run_tool` uses (the App's `tools`)."""
    global _registry
    _registry = registry


def get_sandbox() -> Sandbox:
    """The worker process's Sandbox, created on first use (its pool starts on the first run)."""
    global _sandbox
    if _sandbox is None:
        from endure.sandbox import Sandbox

        _sandbox = Sandbox(pool_size=2)
    return _sandbox


async def close_sandbox() -> None:
    """Shut the pool down at worker exit; a no-op if no handler used the sandbox."""
    global _sandbox
    sb, _sandbox = _sandbox, None
    if sb is not None:
        await sb.close()


def _result_serde() -> Serde[Any]:
    from endure.sandbox import SandboxResult

    return serde_for(SandboxResult)


def _journaled(
    ctx: Context, name: str, serde: Serde[Any], fn: Callable[[], Awaitable[Any]]
) -> DurableFuture[Any]:
    inv = ctx._inv
    i, rec = inv.begin("run", name)
    if rec is not None:
        return DurableFuture(inv, i, inv.completion(i, rec), serde, "run")
    if inv.cancel_pending:
        return _journal_cancelled_run(inv, i, name, serde)
    return DurableFuture(inv, i, inv.start_run(i, name, fn, (), None, serde), serde, "run")


def run_sandbox(ctx: Context, name: str, method: str, *args: Any, **kwargs: Any) -> DurableFuture[Any]:
    """Sandbox.<method>(*args, **kwargs) as a step whose value is the SandboxResult."""

    async def go() -> WithUsage:
        res = await getattr(get_sandbox(), method)(*args, **kwargs)
        metrics.METRICS.sandbox_run(method.removeprefix("run_"), str(res.limit_hit) if res.limit_hit else None)
        return WithUsage(res, res.usage())

    return _journaled(ctx, name, _result_serde(), go)


def run_tool(ctx: Context, tool: str, input: Any, name: str) -> DurableFuture[Any]:
    """A registered tool as a step whose value is the tool's validated output model."""
    if _registry is None:
        raise TerminalError(f"no ToolRegistry for tool {tool!r}: pass App(..., tools=registry)", 500)
    from endure.sandbox import ToolError

    try:
        spec = _registry.get(tool)
    except ToolError as exc:
        raise TerminalError(str(exc), 404) from exc

    async def go() -> WithUsage:
        try:
            out, res = await spec.call_with_result(get_sandbox(), input)
        except ToolError as exc:
            raise TerminalError(str(exc), TOOL_FAILURE_CODE) from exc
        return WithUsage(out, res.usage())

    return _journaled(ctx, name, serde_for(spec.output_model), go)
