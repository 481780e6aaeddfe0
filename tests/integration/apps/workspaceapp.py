"""A two-run sandbox workspace flow for crash tests: run 1 leaves files, a gated step lets the test
kill the worker, run 2 (on whichever worker resumes) reads what run 1 left."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from endure.sdk import App, Context, ObjectContext, ObjectSharedContext, Service, VirtualObject

DIR = Path(os.environ.get("ENDURE_TEST_DIR", "."))

flow = Service("wsflow")

RUN1 = (
    "import os\n"
    "os.makedirs('data', exist_ok=True)\n"
    "open('data/step1.txt', 'w').write(os.urandom(8).hex())\n"  # differs on every execution
    "open('scratch.tmp', 'w').write('temporary')\n"
    "os.remove('seed.txt')\n"
)
RUN2 = (
    "import os\n"
    "seen = open('data/step1.txt').read()\n"
    "print(seen, sorted(os.listdir('.')))\n"
    "open('step2.txt', 'w').write(seen + '+two')\n"
    "os.remove('scratch.tmp')\n"
)


def gate(tag: str) -> str:
    with open(DIR / "markers.txt", "a") as f:
        f.write(f"{tag}:gate:start\n")
    while not (DIR / f"gate-{tag}").exists():  # the test opens it, in a thread off the event loop
        time.sleep(0.01)
    return "open"


@flow.handler()
async def two_runs(ctx: Context, tag: str) -> dict[str, Any]:
    ws = ctx.sandbox.workspace()
    await ws.put("seed.txt", "seed")
    await ctx.sandbox.run_python(RUN1, workspace=ws)
    await ctx.run("gate", gate, tag)
    second = await ctx.sandbox.run_python(RUN2, workspace=ws)
    return {"stdout": second.stdout, "files": await ws.list()}


notes = VirtualObject("wsnotes")
APPEND = "import sys\nopen('notes.txt', 'a').write(sys.argv[1] + '\\n')\nprint(open('notes.txt').read(), end='')\n"


@notes.handler()
async def add(ctx: ObjectContext, text: str) -> str:
    """Append a line to the key's notes: the workspace lives in the object's state."""
    ws = ctx.sandbox.workspace("proj", scope="object")
    res = await ctx.sandbox.run_python(APPEND, workspace=ws, args=[text])
    return res.stdout


@notes.handler(kind="shared")
async def sizes(ctx: ObjectSharedContext) -> dict[str, int]:
    return await ctx.sandbox.workspace("proj", scope="object").list()


app = App([flow, notes])
