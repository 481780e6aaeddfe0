"""Sandboxed code and tools as journaled steps (`ctx.sandbox.*`, `ctx.run_tool`).

`endure.sandbox` is imported only when a handler first uses it, and one `Sandbox` (a process pool)
is created per worker process on that first use. A sandbox run is journaled as a RunEntry whose
value is the result JSON and whose `usage` map is the SandboxResult's `usage()`, so a replay
returns the recorded result and never re-runs the guest. With `workspace=`, the step runs on the
workspace's files and journals its changes (endure.sdk.workspace).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from endure.sdk import metrics
from endure.sdk.context import DurableFuture, _journal_cancelled_run
from endure.sdk.errors import TerminalError
from endure.sdk.invocation import WithUsage
from endure.sdk.serde import Serde, serde_for
from endure.sdk.workspace import Workspace, sandbox_result, step_value

if TYPE_CHECKING:
    from endure.sandbox import Sandbox, SandboxResult
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


def run_sandbox(
    ctx: Context,
    name: str,
    method: str,
    first: Any,
    *,
    files: Mapping[str, bytes] | None = None,
    limits: Any = None,
    workspace: Workspace | str | None = None,
    **kwargs: Any,
) -> DurableFuture[Any] | Coroutine[Any, Any, SandboxResult]:
    """Sandbox.<method>(first, files=, limits=, **kwargs) as a step whose value is the SandboxResult;
    with a workspace, a coroutine that runs it on the workspace's files (endure.sdk.workspace)."""
    if workspace is not None:
        ws = ctx.sandbox._workspaces.resolve(workspace)
        serde = _result_serde()

        async def body(inputs: dict[str, bytes], widen: Callable[[Any], Any]) -> tuple[bytes, Any, dict[str, float]]:
            res = await _call(method, first, files=inputs, limits=widen(limits), **kwargs)
            return serde.dumps(res.model_copy(update={"files": {}})), res, res.usage()

        async def on_workspace() -> SandboxResult:
            change = await ws.run(name, body, files)
            return sandbox_result(change, ctx.sandbox._workspaces.journal.blobs)

        return on_workspace()

    async def go() -> WithUsage:
        res = await _call(method, first, files=files, limits=limits, **kwargs)
        return WithUsage(res, res.usage())

    return _journaled(ctx, name, _result_serde(), go)


async def _call(method: str, first: Any, **kwargs: Any) -> SandboxResult:
    from endure.sandbox.packages import PackageError, ResolutionTimeout

    try:
        res: SandboxResult = await getattr(get_sandbox(), method)(first, **kwargs)
    except ResolutionTimeout:
        raise  # the index was slow: the attempt is retried
    except PackageError as exc:  # the same requirements fail the same way again: not worth a retry
        raise TerminalError(f"{type(exc).__name__}: {exc}", code=TOOL_FAILURE_CODE) from exc
    metrics.METRICS.sandbox_run(method.removeprefix("run_"), str(res.limit_hit) if res.limit_hit else None)
    return res


class _OnFiles:
    """The Sandbox as a tool sees it on a workspace: every run gets the workspace's files and
    widened limits, and its result is kept for the step."""

    def __init__(self, files: dict[str, bytes], widen: Callable[[Any], Any]) -> None:
        self.files = files
        self.widen = widen
        self.result: SandboxResult | None = None

    async def _run(self, method: str, first: Any, limits: Any, kwargs: dict[str, Any]) -> SandboxResult:
        kwargs.pop("files", None)
        res = await _call(method, first, files=self.files, limits=self.widen(limits), **kwargs)
        self.result = res
        return res

    async def run_python(self, code: str, limits: Any = None, **kw: Any) -> SandboxResult:
        return await self._run("run_python", code, limits, kw)

    async def run_javascript(self, code: str, limits: Any = None, **kw: Any) -> SandboxResult:
        return await self._run("run_javascript", code, limits, kw)

    async def run_wasm(self, module: Any, limits: Any = None, **kw: Any) -> SandboxResult:
        return await self._run("run_wasm", module, limits, kw)


def run_tool(
    ctx: Context, tool: str, input: Any, name: str, workspace: Workspace | str | None = None
) -> DurableFuture[Any] | Coroutine[Any, Any, Any]:
    """A registered tool as a step whose value is the tool's validated output model; with a
    workspace, a coroutine that runs it on the workspace's files."""
    if _registry is None:
        raise TerminalError(f"no ToolRegistry for tool {tool!r}: pass App(..., tools=registry)", 500)
    from endure.sandbox import ToolError

    try:
        spec = _registry.get(tool)
    except ToolError as exc:
        raise TerminalError(str(exc), 404) from exc
    out_serde = serde_for(spec.output_model)

    if workspace is not None:
        ws = ctx.sandbox._workspaces.resolve(workspace)

        async def body(inputs: dict[str, bytes], widen: Callable[[Any], Any]) -> tuple[bytes, Any, dict[str, float]]:
            sb = _OnFiles(inputs, widen)
            try:
                out, res = await spec.call_with_result(sb, input)
            except ToolError as exc:
                raise TerminalError(str(exc), TOOL_FAILURE_CODE) from exc
            return out_serde.dumps(out), res, res.usage()

        async def on_workspace() -> Any:
            return step_value(await ws.run(name, body, None), out_serde)

        return on_workspace()

    async def go() -> WithUsage:
        try:
            out, res = await spec.call_with_result(get_sandbox(), input)
        except ToolError as exc:
            raise TerminalError(str(exc), TOOL_FAILURE_CODE) from exc
        return WithUsage(out, res.usage())

    return _journaled(ctx, name, out_serde, go)
