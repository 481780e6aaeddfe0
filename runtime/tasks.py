"""Small asyncio helpers shared by the runtime's long-running parts."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None, again_after: float = 0.5) -> None:
    """Cancel the given background tasks and wait until they have finished unwinding.

    A task that is still running `again_after` seconds later is cancelled again: on Python 3.11
    `asyncio.wait_for` (in our code or a library's, nats-py's requests say) drops a cancellation
    that arrives just as the awaited future completes, and the task would run on forever.
    """
    live = [t for t in tasks if t is not None]
    while live:
        for task in live:
            task.cancel()
        await asyncio.wait(live, timeout=again_after)
        live = [t for t in live if not t.done()]
    for task in tasks:
        if task is not None and not task.cancelled():
            task.exception()  # retrieved: a task that failed as it stopped is not reported later
