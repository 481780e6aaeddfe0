"""Sandbox workspaces through a real worker and the real Sandbox: files persist from run to run,
deletions stick, a replay rebuilds the workspace from the journal without running the guest,
limits raise typed errors, and an object-scope workspace persists across a key's invocations."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from pydantic import BaseModel
from sdk_fake_runtime import FakeRuntime, Session

from endure.proto import records_pb2
from endure.sdk import App, Context, ObjectContext, ObjectSharedContext, Service, VirtualObject
from endure.sdk.workspace import (
    WorkspaceError,
    WorkspaceFileNotFoundError,
    WorkspaceLimitError,
    WorkspaceLimits,
    WorkspaceReadOnlyError,
    replay_journal,
)

svc = Service("ws")
obj = VirtualObject("wsobj")

WRITE_A = "import os\nopen('a.txt', 'w').write(open('seed.txt').read() + '-a')\nos.remove('seed.txt')\n"
READ_ALL = "import os\nprint(sorted(os.listdir('.')))\nprint(open('a.txt').read())\n"


class Note(BaseModel):
    text: str


class Count(BaseModel):
    lines: int


@svc.handler()
async def flow(ctx: Context) -> dict[str, Any]:
    ws = ctx.sandbox.workspace()
    await ws.put("seed.txt", "seed")
    r1 = await ctx.sandbox.run_python(WRITE_A, workspace=ws)
    r2 = await ctx.sandbox.run_python(READ_ALL, workspace="default")  # the same workspace, by name
    tool = await ctx.run_tool("note", Note(text="hello"), workspace=ws)
    await ws.delete("a.txt")
    try:
        await ws.get("a.txt")
        missing = "no"
    except WorkspaceFileNotFoundError as exc:
        missing = exc.path
    return {"r1_files": r1.files and {k: v.decode() for k, v in r1.files.items()}, "r1_deleted": r1.deleted,
            "r2": r2.stdout, "tool": tool.lines, "notes": (await ws.get("notes.txt")).decode(),
            "missing": missing, "list": await ws.list()}


@svc.handler()
async def overlay(ctx: Context) -> list[Any]:
    ws = ctx.sandbox.workspace("js")
    await ws.put("kept.txt", "k")
    py = await ctx.sandbox.run_python("import os; print(sorted(os.listdir('.')))", files={"extra.txt": b"e"},
                                      workspace=ws)
    js = await ctx.sandbox.run_javascript("os.remove('extra.txt'); std.open('js.txt', 'w').puts('from js');",
                                          workspace=ws)
    return [py.stdout, js.deleted, await ws.list()]


SMALL = WorkspaceLimits(max_files=3, max_total_bytes=100, max_file_bytes=50)


@svc.handler()
async def limited(ctx: Context) -> list[Any]:
    ws = ctx.sandbox.workspace("small", limits=SMALL)
    caught: list[Any] = []
    await ws.put("keep.txt", "k" * 10)
    for attempt in (
        lambda: ws.put("big.txt", "x" * 51),
        lambda: ctx.sandbox.run_python("for i in range(3): open(f'f{i}', 'w').write('y')", workspace=ws),
        lambda: ctx.sandbox.run_python("open('a', 'w').write('a' * 45); open('b', 'w').write('b' * 46)",
                                       workspace=ws),
    ):
        try:
            await attempt()
            caught.append("no error")
        except WorkspaceLimitError as exc:
            caught.append([exc.limit, exc.value, exc.maximum, exc.code])
    caught.append(await ws.list())
    return caught


@obj.handler()
async def add(ctx: ObjectContext, n: int) -> dict[str, int]:
    ws = ctx.sandbox.workspace("proj", scope="object")
    code = f"import os\nopen('f{n}.txt', 'w').write(str({n}) * {n})\nif os.path.exists('f1.txt') and {n} > 2: os.remove('f1.txt')\n"
    await ctx.sandbox.run_python(code, workspace=ws)
    return await ws.list()


@obj.handler(kind="shared")
async def peek(ctx: ObjectSharedContext, path: str) -> list[str]:
    ws = ctx.sandbox.workspace("proj", scope="object")
    text = (await ws.get(path)).decode()
    try:
        await ws.put("nope.txt", "x")
        refused = "no"
    except WorkspaceReadOnlyError:
        refused = "read-only"
    return [text, refused]


@svc.handler()
async def wrong_scope(ctx: Context) -> str:
    try:
        ctx.sandbox.workspace("x", scope="object")
    except WorkspaceError as exc:
        return str(exc.code)
    return "no error"


def make_app() -> App:
    from endure.sandbox import Tool, ToolRegistry

    registry = ToolRegistry()
    registry.register(Tool(
        "note", "appends a note to notes.txt in the workspace", Note, Count,
        python="import json, sys\nd = json.load(sys.stdin)\nopen('notes.txt', 'a').write(d['text'] + '\\n')\n"
               "print(json.dumps({'lines': len(open('notes.txt').read().splitlines()) + len(open('a.txt').read())}))"))
    return App([svc, obj], tools=registry)


def envelope(entry: records_pb2.JournalEntry) -> dict[str, Any]:
    return json.loads(entry.value)["endure.workspace"]  # type: ignore[no-any-return]


def with_file(entry: records_pb2.JournalEntry, path: str, data: bytes) -> records_pb2.JournalEntry:
    """A copy of a recorded workspace entry whose manifest says `path` holds `data`."""
    doc = json.loads(entry.value)
    body = doc["endure.workspace"]
    sha = hashlib.sha256(data).hexdigest()
    body["files"][path] = sha
    body["sizes"] = {sha: len(data)}
    body["blobs"] = {sha: base64.b64encode(data).decode()}
    out = records_pb2.JournalEntry()
    out.CopyFrom(entry)
    out.value = b'{"endure.workspace":' + json.dumps(body).encode() + b',"value":' + json.dumps(doc["value"]).encode() + b"}"
    return out


async def run_to_end(s: Session, *args: Any, **kw: Any) -> tuple[list[records_pb2.JournalEntry], Any]:
    s.start(*args, **kw)
    frames, end = await s.until_done(timeout=60)
    assert end.WhichOneof("frame") == "end", end
    entries = [f.entry for f in frames]
    assert entries[-1].WhichOneof("kind") == "output"
    return entries, json.loads(entries[-1].output.value)


async def test_files_persist_between_runs_deletions_stick_and_replay_rebuilds(
    runtime: FakeRuntime, start_worker: Any
) -> None:
    await start_worker(make_app())
    s = await runtime.session()
    inv = "inv_ws_flow"
    entries, out = await run_to_end(s, "ws", "flow", invocation_id=inv)
    assert out == {"r1_files": {"a.txt": "seed-a"}, "r1_deleted": ["seed.txt"], "r2": "['a.txt']\nseed-a\n",
                   "tool": 1 + 6, "notes": "hello\n", "missing": "a.txt", "list": {"notes.txt": 6}}
    put, run1, run2, tool, delete = entries[:5]
    assert [e.name for e in entries[:5]] == ["workspace.put", "sandbox.python", "sandbox.python", "tool:note",
                                            "workspace.delete"]
    seed, a = (hashlib.sha256(b).hexdigest() for b in (b"seed", b"seed-a"))
    assert envelope(put)["files"] == {"seed.txt": seed} and list(envelope(put)["blobs"]) == [seed]
    assert envelope(run1)["files"] == {"a.txt": a} and list(envelope(run1)["blobs"]) == [a]
    assert envelope(run2)["files"] == {"a.txt": a} and envelope(run2)["blobs"] == {}  # nothing new: no blob
    assert run1.usage["sandbox.fuel"] > 0 and tool.usage["sandbox.fuel"] > 0
    assert sorted(envelope(delete)["files"]) == ["notes.txt"]
    # the journal alone (what `endure invocations files` reads) says the same
    ws = replay_journal(entries).state("invocation", "default")
    assert ws.sizes_by_path() == {"notes.txt": 6}

    # Replay of the whole journal: nothing runs again (an edited recorded stdout comes back).
    doc = json.loads(run2.value)
    doc["value"]["stdout"] = "recorded\n"
    edited = records_pb2.JournalEntry()
    edited.CopyFrom(run2)
    edited.value = json.dumps(doc).encode()
    s.start("ws", "flow", invocation_id=inv, attempt=2, journal=[put, run1, edited, tool, delete])
    frame = await s.expect_entry("output", 5)
    assert json.loads(frame.entry.output.value) == {**out, "r2": "recorded\n"}
    await s.expect("end")

    # A resume after step 1: run 2 really runs, on the files the journal says run 1 left (here
    # edited, so they can only come from the journal, not from running run 1 again).
    s.start("ws", "flow", invocation_id=inv, attempt=3, journal=[put, with_file(run1, "a.txt", b"journal")])
    frames, _ = await s.until_done(timeout=60)
    final = json.loads(frames[-1].entry.output.value)
    assert final["r2"] == "['a.txt']\njournal\n"
    assert final["r1_files"] == {"a.txt": "journal"} and final["tool"] == 1 + 7


async def test_limits_raise_typed_errors_and_the_workspace_keeps_its_state(
    runtime: FakeRuntime, start_worker: Any
) -> None:
    await start_worker(make_app())
    s = await runtime.session()
    entries, out = await run_to_end(s, "ws", "limited", invocation_id="inv_ws_limits")
    assert out == [["file_bytes", 51, 50, 413], ["files", 4, 3, 413], ["total_bytes", 101, 100, 413],
                   {"keep.txt": 10}]
    failures = [e.failure for e in entries if e.WhichOneof("result") == "failure"]
    assert [f.code for f in failures] == [413, 413, 413]
    assert "over its files limit: 4 > 3" in failures[1].message
    # replayed, the journaled failures raise the same typed errors
    s.start("ws", "limited", invocation_id="inv_ws_limits", attempt=2, journal=entries[:-1])
    frame = await s.expect_entry("output", len(entries) - 1)
    assert json.loads(frame.entry.output.value) == out
    await s.expect("end")


def state_after(entries: list[records_pb2.JournalEntry], state: dict[str, bytes]) -> dict[str, bytes]:
    """The key's state after a journal, as the runtime applies its set/clear entries."""
    out = dict(state)
    for e in entries:
        if e.WhichOneof("kind") == "set_state":
            out[e.name] = e.set_state.value
        elif e.WhichOneof("kind") == "clear_state":
            out.pop(e.name, None)
    return out


async def test_object_scope_persists_across_invocations_of_a_key(runtime: FakeRuntime, start_worker: Any) -> None:
    await start_worker(make_app())
    s = await runtime.session()
    keyed = {"key": "k1", "handler_kind": records_pb2.EXCLUSIVE}
    first, out1 = await run_to_end(s, "wsobj", "add", b"1", invocation_id="inv_obj_1", **keyed)
    assert out1 == {"f1.txt": 1}
    state = state_after(first, {})
    assert sorted(state) == ["endure.workspace/proj", "endure.workspace/proj/" + hashlib.sha256(b"1").hexdigest()]

    second, out2 = await run_to_end(s, "wsobj", "add", b"2", invocation_id="inv_obj_2", state=state, **keyed)
    assert out2 == {"f1.txt": 1, "f2.txt": 2}  # the first invocation's file is there
    # the blob the run needed came from the state into this journal (a journaled read), not the run entry
    run = next(e for e in second if e.WhichOneof("kind") == "run")
    assert list(envelope(run)["blobs"]) == [hashlib.sha256(b"22").hexdigest()]
    reads = [e.name for e in second if e.WhichOneof("kind") == "get_state"]
    assert reads == ["endure.workspace/proj", "endure.workspace/proj/" + hashlib.sha256(b"1").hexdigest()]
    state = state_after(second, state)

    third, out3 = await run_to_end(s, "wsobj", "add", b"3", invocation_id="inv_obj_3", state=state, **keyed)
    assert out3 == {"f2.txt": 2, "f3.txt": 3}  # the deletion of f1.txt sticks, its blob is cleared
    state = state_after(third, state)
    assert "endure.workspace/proj/" + hashlib.sha256(b"1").hexdigest() not in state

    # The worker died after the run entry was durable, before the state writes: a new attempt
    # replays the run and makes the same writes.
    cut = next(i for i, e in enumerate(third) if e.WhichOneof("kind") == "run") + 1
    redo, out3b = await run_to_end(s, "wsobj", "add", b"3", invocation_id="inv_obj_3", attempt=2,
                                   state=state_after(second, {}), journal=third[:cut], **keyed)
    assert out3b == out3
    assert [(e.name, e.set_state.value) for e in redo if e.WhichOneof("kind") == "set_state"] == [
        (e.name, e.set_state.value) for e in third[cut:] if e.WhichOneof("kind") == "set_state"]

    # a shared handler reads the workspace and may not change it
    _, peeked = await run_to_end(s, "wsobj", "peek", b'"f3.txt"', invocation_id="inv_obj_peek", state=state,
                                 key="k1", handler_kind=records_pb2.SHARED)
    assert peeked == ["333", "read-only"]


async def test_files_given_to_a_run_join_the_workspace_and_javascript_runs_on_it(
    runtime: FakeRuntime, start_worker: Any
) -> None:
    await start_worker(make_app())
    s = await runtime.session()
    _, out = await run_to_end(s, "ws", "overlay", invocation_id="inv_ws_overlay")
    assert out == ["['extra.txt', 'kept.txt']\n", ["extra.txt"], {"js.txt": 7, "kept.txt": 1}]


async def test_object_scope_needs_a_keyed_handler(runtime: FakeRuntime, start_worker: Any) -> None:
    await start_worker(make_app())
    s = await runtime.session()
    _, out = await run_to_end(s, "ws", "wrong_scope", invocation_id="inv_ws_scope")
    assert out == "400"
