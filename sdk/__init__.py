"""endure.sdk: write durable handlers (services, virtual objects, workflows) and serve them.

`run_worker` / `Worker` are loaded lazily so `python -m endure.sdk.worker` does not import the
worker module twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from endure.sdk.context import (
    CallFuture,
    Context,
    DurableFuture,
    DurablePromise,
    ObjectContext,
    ObjectSharedContext,
    WorkflowContext,
    WorkflowSharedContext,
)
from endure.sdk.definitions import App, HandlerDefinition, Service, VirtualObject, Workflow
from endure.sdk.errors import (
    CancelledError,
    JournalMismatchError,
    RegistrationError,
    SerdeError,
    StreamClosedError,
    StreamError,
    StreamLimitError,
    TerminalError,
)
from endure.sdk.replay import Divergence, Replayer, ReplayResult, format_divergence
from endure.sdk.retry import RetryPolicy
from endure.sdk.stream_events import (
    StreamChunk,
    StreamClosed,
    StreamReset,
    StreamResult,
    StreamView,
)
from endure.sdk.streams import StreamWriter

if TYPE_CHECKING:
    from endure.sdk.worker import Worker, run_worker

__all__ = [
    "App",
    "CallFuture",
    "CancelledError",
    "Context",
    "DurableFuture",
    "DurablePromise",
    "Divergence",
    "HandlerDefinition",
    "JournalMismatchError",
    "ObjectContext",
    "ObjectSharedContext",
    "RegistrationError",
    "ReplayResult",
    "Replayer",
    "RetryPolicy",
    "SerdeError",
    "Service",
    "StreamChunk",
    "StreamClosed",
    "StreamClosedError",
    "StreamError",
    "StreamLimitError",
    "StreamReset",
    "StreamResult",
    "StreamView",
    "StreamWriter",
    "TerminalError",
    "VirtualObject",
    "Worker",
    "Workflow",
    "WorkflowContext",
    "WorkflowSharedContext",
    "format_divergence",
    "run_worker",
]


def __getattr__(name: str) -> Any:
    if name in ("Worker", "run_worker"):
        from endure.sdk import worker

        return getattr(worker, name)
    raise AttributeError(f"module 'endure.sdk' has no attribute {name!r}")
