"""A coding agent: a virtual object per session that writes Python, runs it sandboxed, fixes it,
and asks a human to approve the result.

Every model call and every sandbox run is a journaled step, so a crash never repeats them; the
conversation lives in the object's durable state; the human's approval is an awakeable that
`endure awakeables resolve` (or any client) completes, however long it takes. The model's tokens
(stream "tokens") and the sandbox's output (stream "sandbox") reach clients live.

Run: `endure dev endure.examples.coding_agent:app`, then
`endure call coding_agent/solve --key s1 --data '{"prompt": "sort [3,1,2] and print it"}' --follow`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel

from endure.examples.llm import default_model, extract_code
from endure.sdk import App, ObjectContext, ObjectSharedContext, StreamWriter, TerminalError, VirtualObject

agent = VirtualObject("coding_agent")
_model = default_model()


class Task(BaseModel):
    prompt: str
    max_attempts: int = 3
    needs_approval: bool = True


class Solution(BaseModel):
    code: str
    output: str
    attempts: int
    approved: bool
    model: str


def _trace(step: str) -> None:
    """Leave a line per executed step (the demo counts them to show nothing re-ran)."""
    folder = os.environ.get("ENDURE_DEMO_DIR")
    if folder:
        with open(Path(folder) / "executed.txt", "a") as f:
            f.write(f"{step}\tpid={os.getpid()}\n")


def ask_model(step: str, messages: list[dict[str, str]], tokens: StreamWriter | None = None) -> dict[str, object]:
    _trace(step)
    reply = _model.complete(messages)
    if tokens is not None:  # the reply as it would stream from the model, token by token
        for token in re.findall(r"\S+\s*|\s+", reply.text):
            tokens.write_nowait(token)
    return {"text": reply.text, "input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
            "model": reply.model}


def notify_reviewer(step: str, awakeable_id: str, code: str) -> str:
    _trace(step)
    print(f"[coding_agent] approval needed: endure awakeables resolve {awakeable_id} --data true", flush=True)
    return awakeable_id


@agent.handler()
async def solve(ctx: ObjectContext, task: Task) -> Solution:
    history: list[dict[str, str]] = await ctx.get("history", list[dict[str, str]]) or []
    history.append({"role": "system", "content": "Write one Python program in a ```python block."})
    history.append({"role": "user", "content": task.prompt})
    code, output = "", ""
    tokens, sandbox = ctx.stream("tokens"), ctx.stream("sandbox")
    for attempt in range(1, task.max_attempts + 1):
        reply = await ctx.run(f"model#{attempt}", ask_model, f"model#{attempt}", history, tokens)
        ctx.meter("llm.tokens.input", float(reply["input_tokens"]))  # type: ignore[arg-type]
        ctx.meter("llm.tokens.output", float(reply["output_tokens"]))  # type: ignore[arg-type]
        history.append({"role": "assistant", "content": str(reply["text"])})
        code = extract_code(str(reply["text"]))
        result = await ctx.sandbox.run_python(code, name=f"sandbox#{attempt}")
        await sandbox.write(result.stdout if result.ok else (result.stderr or result.error or "failed"))
        if result.ok:
            output = result.stdout
            break
        problem = result.stderr or result.error or f"hit the {result.limit_hit} limit"
        history.append({"role": "user", "content": f"The program failed:\n{problem}\nFix it."})
    else:
        ctx.set("history", history)
        raise TerminalError(f"no working program after {task.max_attempts} attempts", code=422)
    ctx.set("history", history)

    approved = True
    if task.needs_approval:
        approval_id, approval = ctx.awakeable(bool)
        ctx.set("pending_approval", approval_id)
        await ctx.run("notify reviewer", notify_reviewer, "notify reviewer", approval_id, code)
        approved = bool(await approval)
        ctx.clear("pending_approval")
    return Solution(code=code, output=output, attempts=attempt, approved=approved, model=str(reply["model"]))


@agent.handler(kind="shared")
async def pending_approval(ctx: ObjectSharedContext) -> str | None:
    """The awakeable id a reviewer should resolve, if the agent waits for one."""
    return await ctx.get("pending_approval", str)


@agent.handler(kind="shared")
async def history(ctx: ObjectSharedContext) -> list[dict[str, str]]:
    return await ctx.get("history", list[dict[str, str]]) or []


app = App([agent])
