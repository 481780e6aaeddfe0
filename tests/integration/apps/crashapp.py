"""Handlers for crash tests: each step leaves a marker file, and a step can wait at a gate file.

The test decides when a gate opens (it creates the file), so "kill the worker during step 2" is
deterministic: the test waits for step 2's marker, kills, then opens the gate for the next worker.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from endure.sdk import App, Context, Service

DIR = Path(os.environ.get("ENDURE_TEST_DIR", "."))

steps = Service("steps")


def mark(name: str) -> None:
    with open(DIR / "markers.txt", "a") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())


def step(invocation: str, name: str, gate: str | None = None) -> str:
    mark(f"{invocation}:{name}:start")
    if gate:
        while not (DIR / gate).exists():  # waits on the test's signal, in a thread off the event loop
            time.sleep(0.01)
    mark(f"{invocation}:{name}:done")
    return name


@steps.handler()
async def three(ctx: Context, tag: str) -> list[str]:
    a = await ctx.run("step1", step, tag, "step1")
    b = await ctx.run("step2", step, tag, "step2", f"gate-{tag}")
    c = await ctx.run("step3", step, tag, "step3")
    return [a, b, c]


app = App([steps])
