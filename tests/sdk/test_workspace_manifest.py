"""The manifest and blob logic of workspaces (endure.sdk.workspace), without a worker: what a change
journals, how a journal is rebuilt into files, limits, paths, and the typed errors."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from endure.proto import records_pb2
from endure.sandbox import Limits
from endure.sdk.errors import TerminalError
from endure.sdk.workspace import (
    MiB,
    WorkspaceCorruptError,
    WorkspaceError,
    WorkspaceJournal,
    WorkspaceLimitError,
    WorkspaceLimits,
    WorkspacePathError,
    blob_key,
    build_change,
    check_name,
    is_envelope,
    manifest_key,
    normalize_path,
    replay_journal,
    run_limits,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_entry(value: bytes, name: str = "sandbox.python") -> records_pb2.JournalEntry:
    return records_pb2.JournalEntry(name=name, run=records_pb2.RunEntry(), value=value)


def state_entry(kind: str, key: str, value: object) -> records_pb2.JournalEntry:
    e = records_pb2.JournalEntry(name=key)
    raw = json.dumps(value).encode()
    if kind == "set_state":
        e.set_state.value = raw
    else:
        e.get_state.SetInParent()
        if value is None:
            e.void.SetInParent()
        else:
            e.value = raw
    return e


def test_a_change_journals_the_manifest_and_only_new_blobs() -> None:
    wj = WorkspaceJournal()
    ws = wj.state("invocation", "default")
    limits = WorkspaceLimits()
    first = build_change(wj, ws, limits, "put", changed={"a.txt": b"same", "b.txt": b"same"})
    assert is_envelope(first)
    body = json.loads(first)["endure.workspace"]
    assert body["files"] == {"a.txt": sha(b"same"), "b.txt": sha(b"same")}
    assert body["blobs"] == {sha(b"same"): base64.b64encode(b"same").decode()}  # one blob for both paths
    change = wj.apply_change(first)
    assert change.changed == ["a.txt", "b.txt"] and change.value is None
    assert ws.sizes_by_path() == {"a.txt": 4, "b.txt": 4} and ws.total_bytes() == 8

    # a run: inputs + added - deleted + changed; a blob already in the journal is not journaled again
    raw = build_change(wj, ws, limits, "run", added={"in.txt": b"input"}, deleted=["a.txt", "in.txt"],
                       changed={"c.txt": b"same", "d.txt": b"new"}, value=b'{"exit_code":0}')
    body = json.loads(raw)["endure.workspace"]
    assert sorted(body["files"]) == ["b.txt", "c.txt", "d.txt"]  # the added input the run deleted is gone
    assert list(body["blobs"]) == [sha(b"new")]
    change = wj.apply_change(raw)
    assert change.value == {"exit_code": 0}
    assert wj.materialize(ws) == {"b.txt": b"same", "c.txt": b"same", "d.txt": b"new"}
    assert ws.journaled_bytes == 4 + 3


def test_a_journal_rebuilds_every_workspace_in_order() -> None:
    wj = WorkspaceJournal()
    ws = wj.state("invocation", "default")
    one = build_change(wj, ws, WorkspaceLimits(), "put", changed={"x": b"1"})
    wj.apply_change(one)
    two = build_change(wj, ws, WorkspaceLimits(), "delete", deleted=["x"])
    other = WorkspaceJournal()
    notes = build_change(other, other.state("invocation", "notes"), WorkspaceLimits(), "put", changed={"n": b"n"})
    journal = [
        run_entry(b'{"endure.workspace" is not how a user value starts}'),  # not an envelope: ignored
        run_entry(one, "workspace.put"),
        records_pb2.JournalEntry(name="sandbox.python", run=records_pb2.RunEntry(),
                                 failure=records_pb2.Failure(code=413, message="over")),  # failed: no change
        run_entry(notes, "workspace.put"),
        run_entry(two, "workspace.delete"),
    ]
    rebuilt = replay_journal(journal)
    assert rebuilt.state("invocation", "default").files == {}
    assert rebuilt.state("invocation", "notes").sizes_by_path() == {"n": 1}
    assert rebuilt.blobs == {sha(b"1"): b"1", sha(b"n"): b"n"}  # a deleted file's blob stays fetchable
    assert replay_journal(journal[:2]).state("invocation", "default").files == {"x": sha(b"1")}


def test_object_scope_reads_and_writes_of_the_state_rebuild_it() -> None:
    files = {"f": sha(b"v")}
    journal = [
        state_entry("get_state", manifest_key("proj"), {"files": files, "sizes": {sha(b"v"): 1}}),
        state_entry("get_state", blob_key("proj", sha(b"v")), base64.b64encode(b"v").decode()),
        state_entry("set_state", "unrelated", {"files": {}}),
    ]
    wj = replay_journal(journal)
    ws = wj.state("object", "proj")
    assert ws.label == "object:proj" and wj.materialize(ws) == {"f": b"v"}
    assert replay_journal([state_entry("get_state", manifest_key("proj"), None)]).state("object", "proj").files == {}
    with pytest.raises(WorkspaceCorruptError):  # a blob must hash to its name
        replay_journal([state_entry("get_state", blob_key("proj", sha(b"v")), base64.b64encode(b"w").decode())])
    partial = replay_journal(journal[:1])
    with pytest.raises(WorkspaceCorruptError):  # a manifest without its blobs cannot be materialized
        partial.materialize(partial.state("object", "proj"))


@pytest.mark.parametrize(("change", "limit", "value", "maximum"), [
    ({f"f{i}": b"x" for i in range(4)}, "files", 4, 3),
    ({"big": b"x" * 11}, "file_bytes", 11, 10),
    ({"a": b"x" * 10, "b": b"y" * 10, "c": b"z" * 6}, "total_bytes", 26, 25),
])
def test_limits_are_checked_on_the_manifest_after_the_change(
    change: dict[str, bytes], limit: str, value: int, maximum: int
) -> None:
    wj = WorkspaceJournal()
    ws = wj.state("invocation", "w")
    with pytest.raises(WorkspaceLimitError) as info:
        build_change(wj, ws, WorkspaceLimits(max_files=3, max_file_bytes=10, max_total_bytes=25), "run",
                     changed=change)
    err = info.value
    assert (err.limit, err.value, err.maximum, err.code) == (limit, value, maximum, 413)
    assert isinstance(err, TerminalError) and ws.files == {}  # nothing applied


def test_the_journal_bytes_limit_counts_object_state_writes_twice() -> None:
    limits = WorkspaceLimits(max_journal_bytes=15)
    wj = WorkspaceJournal()
    build_change(wj, wj.state("invocation", "w"), limits, "put", changed={"a": b"x" * 10})
    with pytest.raises(WorkspaceLimitError) as info:
        build_change(wj, wj.state("object", "w"), limits, "put", changed={"a": b"x" * 10})
    assert (info.value.limit, info.value.value) == ("journal_bytes", 20)


def test_a_limit_failure_round_trips_through_its_journaled_message() -> None:
    err = WorkspaceLimitError("w.1", "object", "total_bytes", 70, 64, "a detail; with; semicolons")
    back = WorkspaceLimitError.from_failure(TerminalError(err.message, err.code))
    assert back is not None
    assert (back.workspace, back.scope, back.limit, back.value, back.maximum, back.detail) == (
        "w.1", "object", "total_bytes", 70, 64, "a detail; with; semicolons")
    assert WorkspaceLimitError.from_failure(TerminalError(err.message, 500)) is None
    assert WorkspaceLimitError.from_failure(TerminalError("payload too large", 413)) is None


def test_paths_and_names() -> None:
    assert normalize_path("/a//b/./c.txt") == "a/b/c.txt"
    for bad in ("", "/", "a/../b", "..", "a\0b"):
        with pytest.raises(WorkspacePathError):
            normalize_path(bad)
    assert check_name("my-ws_1.0") == "my-ws_1.0"
    for bad in ("", "a/b", "x" * 65, "it's"):
        with pytest.raises(WorkspaceError):
            check_name(bad)


def test_run_limits_make_room_for_a_full_workspace() -> None:
    widened = run_limits(Limits(), WorkspaceLimits())
    assert widened.max_files == 1001 and widened.max_files_bytes == 64 * MiB + 1
    assert widened.scratch_bytes == 128 * MiB and widened.scratch_files >= 2000
    generous = Limits(max_files=5000)
    assert run_limits(generous, WorkspaceLimits()).max_files == 5000  # never narrowed
