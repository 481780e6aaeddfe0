"""Sandboxed tool execution as journaled steps (`ctx.sandbox.*`, `ctx.run_tool`).

`endure.sandbox` is imported only when a handler first uses it, and one `Sandbox` (a process pool)
is created per worker process on that first use. A sandbox run is journaled as a RunEntry whose
value is the SandboxResult JSON and whose `usage` map is `result.usage()`, so a replay returns the
recorded result and never re-runs the guest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from endure.proto import records_pb2
from endure.sdk.context import ACK, COMPLETION, DurableFuture
from endure.sdk.errors import TerminalError
from endure.sdk.serde import Serde, serde_for

if TYPE_CHECKING:
    from endure.sdk.context import Context

_sandbox: Any = None
_registry: Any = None
_result_serde: Serde[Any] | None = None


def configure(registry: Any) -> None:
    """The ToolRegistry `ctx.run_tool` uses (the App's `tools`)."""
    global _registry
    _registry = registry


def get_sandbox() -> Any:
    """The worker process's Sandbox, created on first use."""
    global _sandbox
    if _sandbox is None:
        from endure.sandbox import Sandbox

        _sandbox = Sandbox(pool_size=2)
    return _sandbox


async def close_sandbox() -> None:
    """Shut the pool down (worker exit); a no-op if no handler used the sandbox."""
    global _sandbox
    sb, _sandbox = _sandbox, None
    if sb is None:
        return
    for name in ("aclose", "close", "shutdown"):
        fn = getattr(sb, name, None)
        if fn is not None:
            res = fn()
            if hasattr(res, "__await__"):
                await res
            return


def _serde() -> Serde[Any]:
    global _result_serde
    if _result_serde is None:
        from endure.sandbox import SandboxResult

        _result_serde = serde_for(SandboxResult)
    return _result_serde


def _usage(result: Any) -> dict[str, float]:
    fn = getattr(result, "usage", None)
    return dict(fn()) if callable(fn) else {}


def _journaled(ctx: Context, name: str, fn: Any, args: tuple[Any, ...]) -> DurableFuture[Any]:
    inv = ctx._inv
    serde = _serde()
    i, rec = inv.begin("run", name)
    if rec is not None:
        return DurableFuture(inv, i, inv.completion(i, rec), serde, COMPLETION)
    if inv.cancel_pending:
        inv.cancel_pending = False
        failure = records_pb2.Failure(code=409, message="cancelled")
        entry = records_pb2.JournalEntry(name=name, run=records_pb2.RunEntry(), failure=failure)
        return DurableFuture(inv, i, inv.emit_and_ack(i, entry, failure), serde, ACK)
    fut = inv.start_run(i, name, fn, args, None, serde, _usage)
    return DurableFuture(inv, i, fut, serde, ACK)


def run_sandbox(
    ctx: Context, name: str, method: str, code: str, files: dict[str, Any] | None, limits: Any
) -> DurableFuture[Any]:
    async def go() -> Any:
        return await getattr(get_sandbox(), method)(code, files, limits)

    return _journaled(ctx, name, go, ())


def run_sandbox_raw(
    ctx: Context, name: str, method: str, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> DurableFuture[Any]:
    async def go() -> Any:
        return await getattr(get_sandbox(), method)(module, *args, **kwargs)

    return _journaled(ctx, name, go, ())


def run_tool(ctx: Context, tool: str, input: Any, name: str) -> DurableFuture[Any]:
    async def go() -> Any:
        if _registry is None:
            raise TerminalError(f"no ToolRegistry for tool {tool!r}: pass App(..., tools=registry)", 500)
        res = _registry.call(get_sandbox(), tool, input)
        if hasattr(res, "__await__"):
            res = await res
        return res

    return _journaled(ctx, name, go, ())
