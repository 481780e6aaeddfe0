"""A research workflow: fan out to sub-agents in parallel, gather their answers, wait out a
durable cool-down, then publish with saga compensation.

One `research` workflow per research id (the workflow key):

1. fans out one `researcher/investigate` call per angle of the question; each sub-agent asks
   the model inside `ctx.run` (never asked twice once its answer is durable) and meters tokens;
2. gathers the answers with `ctx.gather` (the completion order is journaled);
3. sleeps a durable cool-down (a rate-limit window): the worker may die or the handler may be
   suspended meanwhile, the timer lives in the runtime;
4. reserves budget, publishes the report and notifies subscribers. Each completed step pushes
   its compensation; when a later step fails with `TerminalError`, the compensations run in
   reverse order, each as its own journaled step, and the workflow fails with that error.

The side effects land in a ledger (a JSON-lines file standing in for the budget, publishing and
mailing systems) in `$ENDURE_TEST_DIR`, `$ENDURE_DEMO_DIR` or `<tmp>/endure-research`. Set
`fail_at` to one of the step names to watch compensation happen.

Run: `endure dev endure.examples.research:app`, then
`endure call research/run --key r1 --data '{"question": "Is durable execution worth it?"}'`,
`endure call research/status --key r1` (from another shell, while it runs), and
`endure call research/run --key r2 --data '{"question": "q", "fail_at": "notify subscribers"}'`
(undoes "publish report" then "reserve budget"; see the journal with `endure invocations describe`).
Without `ENDURE_LLM_URL` the model is the offline scripted stand-in of `llm.py`, not an LLM.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, NoReturn

from pydantic import BaseModel, Field

from endure.examples.llm import RESEARCH_ROLE, default_model
from endure.sdk import App, Context, Service, TerminalError, Workflow, WorkflowContext, WorkflowSharedContext

research = Workflow("research")
researcher = Service("researcher")
_model = default_model()

Step = Literal["reserve budget", "publish report", "notify subscribers"]


class Question(BaseModel):
    question: str
    angles: list[str] = Field(default_factory=lambda: ["background", "state of the art", "open problems"])
    cooldown_s: float = Field(default=1.0, ge=0, description="durable wait between research and publishing")
    budget: int = Field(default=10, ge=0, description="units reserved for publishing")
    fail_at: Step | None = Field(default=None, description="inject a terminal failure at this step")


class SubQuestion(BaseModel):
    research_id: str
    angle: str
    question: str


class Finding(BaseModel):
    angle: str
    answer: str
    tokens: int
    model: str


class Report(BaseModel):
    question: str
    findings: list[Finding]
    published_as: str
    notified: int


class Status(BaseModel):
    phase: str
    report: Report | None = None


# ---------------------------------------------------------------------- the outside world


def ledger_path() -> Path:
    """Where the side effects land (a stand-in for real systems; tests read it)."""
    folder = os.environ.get("ENDURE_TEST_DIR") or os.environ.get("ENDURE_DEMO_DIR")
    root = Path(folder) if folder else Path(tempfile.gettempdir()) / "endure-research"
    root.mkdir(parents=True, exist_ok=True)
    return root / "research-ledger.jsonl"


def record(research_id: str, action: str, **details: Any) -> None:
    """Append one side effect to the ledger; every call is one real execution of a step."""
    with open(ledger_path(), "a") as f:
        f.write(json.dumps({"research": research_id, "action": action, "pid": os.getpid(), **details}) + "\n")


def ask_model(sub: SubQuestion) -> dict[str, Any]:
    """One model call of a sub-agent (runs inside ctx.run, so at most once per durable answer)."""
    record(sub.research_id, "ask model", angle=sub.angle)
    reply = _model.complete([
        {"role": "system", "content": f"{RESEARCH_ROLE} Answer in two sentences."},
        {"role": "user", "content": f"{sub.angle}: {sub.question}"},
    ])
    return {"text": reply.text, "input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
            "model": reply.model}


def side_effect(research_id: str, action: str, fail_at: str | None, **details: Any) -> str:
    """A step of the publishing saga; `fail_at` makes it fail for good, before it changes anything."""
    if action == fail_at:
        raise TerminalError(f"{action} refused (injected failure)", code=503)
    record(research_id, action, **details)
    return f"{action}:{research_id}"


# ---------------------------------------------------------------------- the sub-agent


@researcher.handler()
async def investigate(ctx: Context, sub: SubQuestion) -> Finding:
    """One sub-agent: answers one angle of the question with the model and meters its tokens."""
    reply = await ctx.run("ask model", ask_model, sub)
    ctx.meter("llm.tokens.input", float(reply["input_tokens"]))
    ctx.meter("llm.tokens.output", float(reply["output_tokens"]))
    return Finding(angle=sub.angle, answer=str(reply["text"]), model=str(reply["model"]),
                   tokens=int(reply["input_tokens"]) + int(reply["output_tokens"]))


# ---------------------------------------------------------------------- the workflow


@research.main()
async def run(ctx: WorkflowContext, q: Question) -> Report:
    rid = ctx.key
    ctx.set("phase", "researching")
    calls = [ctx.call(investigate, SubQuestion(research_id=rid, angle=a, question=q.question)) for a in q.angles]
    try:
        findings: list[Finding] = await ctx.gather(*calls)
    except TerminalError as exc:  # a sub-agent failed for good: nothing to undo yet
        await _fail(ctx, f"a sub-agent failed: {exc.message}", exc.code)

    ctx.set("phase", "cooling down")
    await ctx.sleep(timedelta(seconds=q.cooldown_s), name="cool-down")

    ctx.set("phase", "publishing")
    undo: list[tuple[str, Callable[[], str]]] = []  # compensations of the completed steps
    try:
        await ctx.run("reserve budget", lambda: side_effect(rid, "reserve budget", q.fail_at, amount=q.budget))
        undo.append(("release budget", lambda: side_effect(rid, "release budget", None, amount=q.budget)))

        page = await ctx.run("publish report", lambda: side_effect(rid, "publish report", q.fail_at))
        undo.append(("unpublish report", lambda: side_effect(rid, "unpublish report", None, page=page)))

        await ctx.run("notify subscribers", lambda: side_effect(rid, "notify subscribers", q.fail_at))
    except TerminalError as exc:
        ctx.set("phase", "compensating")
        undone = []
        for name, compensate in reversed(undo):
            await ctx.run(name, compensate)  # journaled: a crash mid-compensation never undoes twice
            undone.append(name)
        await _fail(ctx, f"{exc.message}; undid {', '.join(undone) or 'nothing'}", exc.code)

    report = Report(question=q.question, findings=findings, published_as=page, notified=1)
    await ctx.promise("report", Report).resolve(report)
    ctx.set("phase", "done")  # after the promise: a status that says "done" always has the report
    return report


async def _fail(ctx: WorkflowContext, message: str, code: int) -> NoReturn:
    """End the workflow failed: status readers and `report` waiters see why."""
    ctx.set("phase", "failed")
    await ctx.promise("report").reject(message, code)
    raise TerminalError(message, code)


@research.handler()
async def status(ctx: WorkflowSharedContext) -> Status:
    """Where the workflow is, and its report once published (never blocks)."""
    phase = await ctx.get("phase", str) or "not started"
    report = await ctx.promise("report", Report).peek() if phase == "done" else None
    return Status(phase=phase, report=report)


@research.handler()
async def report(ctx: WorkflowSharedContext) -> Report:
    """Waits for the published report (fails with the workflow's error if it failed)."""
    return await ctx.promise("report", Report).get()


app = App([research, researcher])
