"""`endure demo`: the point of Endure in one run.

Starts a runtime and a worker, gives the coding agent a task, kill -9s the worker in the middle
of it, starts another worker, approves the result as the human reviewer, and prints the journal
with how many times each step's code actually ran: finished steps are never re-run.
"""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import grpc
from rich.console import Console
from rich.table import Table

from endure.proto import admin_pb2 as apb
from endure.proto import admin_pb2_grpc as apb_grpc
from endure.proto import journal
from endure.proto import records_pb2 as pb
from endure.runtime.launcher import Child, Launcher, LaunchError, serve_argv, worker_argv
from endure.sdk.client import Client, StreamChunk, StreamReset

APP = "endure.examples.coding_agent:app"
console = Console(width=max(Console().width, 110))


class _Procs:
    """The demo's runtime and workers, through the one launcher: they die with the demo."""

    def __init__(self, root: Path) -> None:
        self.root = root
        env = {**os.environ, "ENDURE_DEMO_DIR": str(root), "ENDURE_LOG_LEVEL": "WARNING"}
        self.launcher = Launcher(env, log_dir=root)

    def runtime(self) -> tuple[str, str]:
        try:
            ready = self.launcher.start_runtime(serve_argv(self.root / "data", log_level="WARNING")).ready
        except LaunchError as exc:
            raise RuntimeError(f"the runtime did not start; see {self.root / 'runtime.log'}") from exc
        return ready.ingress, ready.admin

    def worker(self, admin: str, name: str) -> Child:
        return self.launcher.start_worker(worker_argv(APP, admin, name=name, log_level="WARNING"), name=name,
                                          keep_lines=False)

    def close(self) -> None:
        self.launcher.stop(grace=10)


def _journal(admin: str, invocation_id: str) -> apb.InvocationDescription:
    with grpc.insecure_channel(admin) as channel:
        return apb_grpc.AdminStub(channel).DescribeInvocation(apb.InvocationRef(invocation_id=invocation_id),
                                                              timeout=10)


def _result_text(entry: pb.JournalEntry) -> str:
    """A step's result for the table: its value, or which outcome it had (a failure named by its
    typed cause: cancelled, killed)."""
    which = entry.WhichOneof("result")
    if which == "value":
        return entry.value.decode(errors="replace")
    if which == "failure" and journal.is_cancellation(entry.failure):
        return "cancelled"
    if which == "failure" and journal.is_kill(entry.failure):
        return "killed"
    return which or ""


def _wait(predicate: object, what: str, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


async def _follow(client: Client, inv: str) -> None:
    """Print the agent's streams as they arrive (the subscription survives the worker's kill -9)."""
    async for event in client.subscribe(inv):
        if isinstance(event, StreamChunk):
            style = "cyan" if event.stream == "tokens" else "green"
            console.print(f"[{style}]{event.data}[/{style}]", end="", highlight=False, soft_wrap=True)
            if event.stream == "sandbox":
                console.print()
        elif isinstance(event, StreamReset):
            console.print(f"\n[yellow](a step ran again: {len(event.offsets)} chunks of its output are void)[/yellow]")


async def _run(root: Path) -> int:
    procs = _Procs(root)
    try:
        console.print("[bold]1.[/bold] starting the runtime (RocksDB in a temp folder) and worker 1")
        ingress, admin = procs.runtime()
        first = procs.worker(admin, "worker-1")
        async with Client(ingress) as client:
            for _ in range(600):  # until worker 1 has registered the agent
                try:
                    await client.call("coding_agent/pending_approval", key="demo")
                    break
                except Exception:
                    await asyncio.sleep(0.05)
            console.print("[bold]2.[/bold] the coding agent gets a task: sort [3,1,2] and print it; its model "
                          "tokens and sandbox output stream live:")
            inv = await client.send("coding_agent/solve", {"prompt": "sort [3, 1, 2] and print it"}, key="demo")
            live = asyncio.ensure_future(_follow(client, inv))

            def waiting_for_reviewer() -> bool:
                return any(e.name == "notify reviewer" for e in _journal(admin, inv).journal)

            # Kill at a fixed point (the agent has written, tested and fixed its code and now waits for a
            # human), so every step before it is durable and the demo shows the same thing on every run.
            _wait(waiting_for_reviewer, "the agent to finish its steps and ask for approval")
            first.kill()
            first.wait()
            done = len(_journal(admin, inv).journal)
            console.print(f"[bold]3.[/bold] kill -9 worker 1 while the agent waits for its reviewer ({done} journal "
                          "entries durable)")
            console.print("[bold]4.[/bold] starting worker 2; the agent resumes from its journal")
            procs.worker(admin, "worker-2")
            approval = None
            while approval is None:
                approval = await client.call("coding_agent/pending_approval", key="demo")
                if approval is None:
                    await asyncio.sleep(0.05)
            console.print(f"[bold]5.[/bold] the human reviewer approves ({approval})")
            await client.resolve_awakeable(approval, True)
            solution = await client.attach(inv, timeout=120)
            await asyncio.wait_for(live, 30)
        console.print(f"\nresult: {solution}\n")
        description = _journal(admin, inv)
        executed = collections.Counter(line.split("\t")[0] for line in (root / "executed.txt").read_text().splitlines())
        table = Table("#", "step", "kind", "result", "times its code ran", title=f"journal of {inv}")
        for i, entry in enumerate(description.journal):
            kind = entry.WhichOneof("kind") or ""
            result = _result_text(entry)
            result = result.replace("\n", " ")[:48]
            runs = str(executed.get(entry.name, "")) if kind == "run" else ""
            if entry.name.startswith("sandbox"):
                runs = "1 (in Wasmtime)" if journal.has_result(entry) else ""
            table.add_row(str(i), entry.name, kind, result, runs)
        console.print(table)
        reran = [step for step, n in executed.items() if n > 1]
        if reran:
            console.print(f"[yellow]steps that ran twice (their results were not yet durable when the worker "
                          f"died: at-least-once): {', '.join(reran)}[/yellow]")
        else:
            console.print("[green]no finished step ran again: worker 2 replayed them from the journal[/green]")
        return 0
    finally:
        procs.close()


def main(keep: bool = False) -> int:
    root = Path(tempfile.mkdtemp(prefix="endure-demo-"))
    try:
        return asyncio.run(_run(root))
    finally:
        if keep:
            console.print(f"logs and data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
