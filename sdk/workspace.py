"""Sandbox workspaces: files that persist from one sandbox run to the next, durable with the steps.

    ws = ctx.sandbox.workspace()                       # scope: this invocation
    await ws.put("data.csv", csv)
    await ctx.sandbox.run_python(code, workspace=ws)   # sees data.csv; what it writes stays
    files = await ws.list()                            # {path: size}

Durability is content-addressed and lives in the journal, so a replay or a resume on another
worker sees exactly what the acknowledged steps left, and never what a run whose step did not
become durable wrote:

- A workspace is a manifest {path: sha256} (plus each blob's size). Each step that changes it
  (a sandbox run or tool with `workspace=`, `put`, `delete`) is a run entry whose value is an
  envelope `{"endure.workspace": {name, scope, op, files, sizes, blobs, changed}, "value": ...}`:
  the manifest after the step and only the blobs (base64 contents) not already in an earlier
  entry of this journal; `value` is the step's own result (a SandboxResult without the file
  contents, which `changed` and the blobs give back, or a tool's output).
- Before a run, the worker materializes the workspace from the manifest and the blobs of the
  journal replayed so far, and passes it as the run's input `files`; after it, the manifest is
  inputs + changed files - deleted files (`SandboxResult.files` / `.deleted`). Replaying an entry
  applies its envelope and never runs the guest again.
- `WorkspaceJournal.apply` turns journal entries into workspaces; the SDK feeds it the entries of
  its own operations in journal order and `endure invocations files` feeds it a whole journal, so
  both see the same files.
- Scope "object" (a virtual object's or workflow's handler): the workspace lives in the key's state,
  under `endure.workspace/<name>` (the manifest) and `endure.workspace/<name>/<sha256>` (one blob
  each). The first operation of an invocation reads the manifest with a journaled `ctx.get`; a run
  or `get` first reads the blobs this journal lacks the same way (so the journal alone rebuilds
  every file it used). After a change, before the step's result reaches the handler, an exclusive
  handler writes the new blobs and the manifest with `ctx.set` (and clears blobs nothing refers
  to). Those writes are derived from the step's journaled envelope, so a worker that dies between
  the step and the writes makes them on replay, in the same journal positions. Shared handlers
  may read an object workspace, not change it (`WorkspaceReadOnlyError`).

Limits (`WorkspaceLimits`, per workspace, `WorkspaceLimitError` naming the limit and numbers):
total size 64 MiB, 1,000 files, 16 MiB per file, and 32 MiB of contents journaled per invocation
(a journal travels in one 64 MiB gRPC message when an invocation resumes). A change past a limit
fails its step (journaled, so a replay fails the same way) and the workspace keeps its state.

A workspace's operations of one invocation run one after another, in the order the handler
awaits them; a run with `workspace=` takes its journal position when awaited (it is not a
DurableFuture and cannot go into `ctx.gather`). Only regular files are kept (no empty directories,
no symlinks).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from endure.proto import records_pb2
from endure.sdk.errors import TerminalError
from endure.sdk.serde import ANY, Serde

if TYPE_CHECKING:
    from endure.sandbox import Limits, SandboxResult
    from endure.sdk.context import Context

MiB = 1 << 20
GiB = 1 << 30

Scope = Literal["invocation", "object"]
SCOPES: tuple[Scope, ...] = ("invocation", "object")
ENVELOPE_KEY = "endure.workspace"
_ENVELOPE_PREFIX = b'{"' + ENVELOPE_KEY.encode() + b'":'
STATE_PREFIX = "endure.workspace/"
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# A limit failure's message, parsed back into a WorkspaceLimitError when the failure is replayed.
_LIMIT_MESSAGE = re.compile(
    r"workspace '(?P<workspace>[A-Za-z0-9_.-]+)' \((?P<scope>\w+)\) over its (?P<limit>\w+) limit: "
    r"(?P<value>\d+) > (?P<maximum>\d+)(?:; (?P<detail>.*))?$", re.S)
LIMIT_CODE = 413


# ---------------------------------------------------------------------- errors


class WorkspaceError(TerminalError):
    """A workspace operation that retrying the same code would get wrong again."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message, code)


class WorkspaceLimitError(WorkspaceError):
    """A change would take a workspace past one of its limits; the workspace kept its state.

    `limit` is "total_bytes", "files", "file_bytes" or "journal_bytes"; `value` what the change
    would have made it (a lower bound when the run's returned files were cut), `maximum` the limit.
    """

    def __init__(self, workspace: str, scope: str, limit: str, value: int, maximum: int, detail: str = "") -> None:
        message = f"workspace {workspace!r} ({scope}) over its {limit} limit: {value} > {maximum}"
        super().__init__(message + (f"; {detail}" if detail else ""), LIMIT_CODE)
        self.workspace = workspace
        self.scope = scope
        self.limit = limit
        self.value = value
        self.maximum = maximum
        self.detail = detail

    @classmethod
    def from_failure(cls, failure: TerminalError) -> WorkspaceLimitError | None:
        """The typed error a journaled limit failure stands for (None: it is not one)."""
        found = _LIMIT_MESSAGE.match(failure.message) if failure.code == LIMIT_CODE else None
        if found is None:
            return None
        g = found.groupdict()
        return cls(g["workspace"], g["scope"], g["limit"], int(g["value"]), int(g["maximum"]), g["detail"] or "")


class WorkspaceFileNotFoundError(WorkspaceError):
    """`get` or `delete` of a path the workspace does not hold."""

    def __init__(self, workspace: str, path: str) -> None:
        super().__init__(f"workspace {workspace!r} has no file {path!r}", 404)
        self.workspace = workspace
        self.path = path


class WorkspacePathError(WorkspaceError):
    """A path no sandbox can hold: absolute escapes, `..`, empty parts, or a file under a file."""


class WorkspaceReadOnlyError(WorkspaceError):
    """A change to an object workspace from a handler that may not write the key's state."""


class WorkspaceCorruptError(WorkspaceError):
    """A journal or state entry of a workspace that does not decode, or a blob whose hash is wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 500)


# ---------------------------------------------------------------------- limits and paths


class WorkspaceLimits(BaseModel):
    """The limits of one workspace; each change is checked against them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_total_bytes: int = Field(default=64 * MiB, ge=0, le=1 * GiB, description="sum of the files' sizes")
    max_files: int = Field(default=1_000, ge=0, le=10_000, description="number of files")
    max_file_bytes: int = Field(default=16 * MiB, ge=0, le=1 * GiB, description="size of one file")
    max_journal_bytes: int = Field(
        default=32 * MiB, ge=0, le=1 * GiB,
        description="contents this workspace journals in one invocation (blobs of its entries, loads "
                    "and state writes included): the journal travels in one gRPC message on a resume")


def check_name(name: str) -> str:
    """A workspace name: 1-64 of [A-Za-z0-9_.-] (it is part of state keys and messages)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise WorkspaceError(f"workspace name {name!r}: 1-64 characters of [A-Za-z0-9_.-]")
    return name


def normalize_path(path: str) -> str:
    """The path as the sandbox names it ("/a//b" -> "a/b"); refuses what it would refuse."""
    if not isinstance(path, str) or "\0" in path:
        raise WorkspacePathError(f"bad workspace path {path!r}")
    p = PurePosixPath(path.lstrip("/"))
    if not p.parts or any(part in ("", ".", "..") for part in p.parts):
        raise WorkspacePathError(f"bad workspace path {path!r}")
    return str(p)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _conflict(files: Iterable[str], path: str) -> str | None:
    """A path that cannot coexist with `path` on a filesystem (one is a directory of the other)."""
    for other in files:
        if other != path and (other.startswith(path + "/") or path.startswith(other + "/")):
            return other
    return None


# ---------------------------------------------------------------------- the journal's view


@dataclass
class WorkspaceState:
    """One workspace as the journal so far leaves it."""

    name: str
    scope: Scope
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256
    sizes: dict[str, int] = field(default_factory=dict)  # sha256 -> size, for the blobs of `files`
    journaled_bytes: int = 0  # contents of this workspace's entries in this journal

    @property
    def label(self) -> str:
        """How `endure invocations files` names it: "NAME", or "object:NAME"."""
        return self.name if self.scope == "invocation" else f"object:{self.name}"

    def sizes_by_path(self) -> dict[str, int]:
        return {p: self.sizes[h] for p, h in sorted(self.files.items())}

    def total_bytes(self) -> int:
        return sum(self.sizes[h] for h in self.files.values())


@dataclass
class Change:
    """One applied change entry: which workspace, what it wrote, and the step's own result."""

    workspace: WorkspaceState
    op: str
    changed: list[str]
    value: Any  # the step's result (JSON), None for put / delete


def is_envelope(value: bytes) -> bool:
    return value.startswith(_ENVELOPE_PREFIX)


def manifest_key(name: str) -> str:
    return STATE_PREFIX + name


def blob_key(name: str, sha: str) -> str:
    return f"{STATE_PREFIX}{name}/{sha}"


class WorkspaceJournal:
    """The workspaces of one invocation and the blobs its journal holds, rebuilt entry by entry.

    The one reconstruction both the worker (its own operations' entries, as it replays or makes
    them) and `endure invocations files` (a whole journal from DescribeInvocation) use."""

    def __init__(self) -> None:
        self.workspaces: dict[tuple[Scope, str], WorkspaceState] = {}
        self.blobs: dict[str, bytes] = {}

    def state(self, scope: Scope, name: str) -> WorkspaceState:
        found = self.workspaces.get((scope, name))
        if found is None:
            found = self.workspaces[(scope, name)] = WorkspaceState(name, scope)
        return found

    def apply(self, entry: records_pb2.JournalEntry) -> Change | None:
        """Apply one journal entry (any kind; those that are not a workspace's change nothing)."""
        kind = entry.WhichOneof("kind")
        if kind == "run":
            if entry.WhichOneof("result") == "value" and is_envelope(entry.value):
                return self.apply_change(entry.value)
            return None
        if kind in ("get_state", "set_state") and entry.name.startswith(STATE_PREFIX):
            if kind == "set_state":
                raw: bytes | None = entry.set_state.value
            else:
                raw = entry.value if entry.WhichOneof("result") == "value" else None
            try:
                value = json.loads(raw) if raw else None
            except ValueError as exc:
                raise WorkspaceCorruptError(f"state {entry.name!r}: {exc}") from exc
            self.apply_state(entry.name, value)
        return None

    def apply_change(self, raw: bytes) -> Change:
        """Apply a change entry's value (the envelope); returns what it changed."""
        try:
            doc = json.loads(raw)
            body = doc[ENVELOPE_KEY]
            scope, name = body["scope"], body["name"]
            if scope not in SCOPES:
                raise ValueError(f"unknown scope {scope!r}")
            files = {str(p): str(h) for p, h in body["files"].items()}
            sizes = {str(h): int(n) for h, n in body["sizes"].items()}
            blobs = {str(h): base64.b64decode(b, validate=True) for h, b in body["blobs"].items()}
            changed = [str(p) for p in body.get("changed", [])]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise WorkspaceCorruptError(f"workspace entry does not decode: {exc}") from exc
        ws = self.state(scope, name)
        for sha, data in blobs.items():
            self._add_blob(sha, data)
            ws.journaled_bytes += len(data)
        ws.files = files
        ws.sizes = {h: sizes[h] for h in set(files.values()) if h in sizes}
        if len(ws.sizes) != len(set(files.values())):
            raise WorkspaceCorruptError(f"workspace {name!r}: an entry's manifest lacks sizes")
        return Change(ws, str(body.get("op", "")), changed, doc.get("value"))

    def apply_state(self, key: str, value: Any) -> None:
        """Apply a read or write of an object workspace's state key (value decoded, None: absent)."""
        rest = key[len(STATE_PREFIX):]
        name, _, sha = rest.partition("/")
        if sha:
            if value is None:
                return
            try:
                data = base64.b64decode(value, validate=True)
            except (ValueError, TypeError) as exc:
                raise WorkspaceCorruptError(f"state {key!r}: {exc}") from exc
            self._add_blob(sha, data)
            self.state("object", name).journaled_bytes += len(data)
            return
        ws = self.state("object", name)
        if value is None:
            ws.files, ws.sizes = {}, {}
            return
        try:
            ws.files = {str(p): str(h) for p, h in value["files"].items()}
            ws.sizes = {str(h): int(n) for h, n in value["sizes"].items()}
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise WorkspaceCorruptError(f"state {key!r}: {exc}") from exc

    def _add_blob(self, sha: str, data: bytes) -> None:
        if digest(data) != sha:
            raise WorkspaceCorruptError(f"blob {sha[:12]}… does not hash to its name")
        self.blobs.setdefault(sha, data)

    def materialize(self, ws: WorkspaceState) -> dict[str, bytes]:
        """The workspace's files, from the blobs this journal holds."""
        missing = sorted({h for h in ws.files.values() if h not in self.blobs})
        if missing:
            raise WorkspaceCorruptError(f"workspace {ws.name!r}: {len(missing)} blob(s) are not in the journal")
        return {p: self.blobs[h] for p, h in ws.files.items()}


def replay_journal(entries: Iterable[records_pb2.JournalEntry]) -> WorkspaceJournal:
    """The workspaces a journal leaves, entry by entry, as the worker rebuilds them."""
    wj = WorkspaceJournal()
    for entry in entries:
        wj.apply(entry)
    return wj


def build_change(
    wj: WorkspaceJournal,
    ws: WorkspaceState,
    limits: WorkspaceLimits,
    op: str,
    *,
    added: Mapping[str, bytes] = {},  # noqa: B006 - read only
    deleted: Iterable[str] = (),
    changed: Mapping[str, bytes] = {},  # noqa: B006 - read only
    value: bytes | None = None,
) -> bytes:
    """The envelope of one change: manifest = files + added - deleted + changed, and the blobs this
    journal does not hold yet. Raises WorkspaceLimitError (the workspace then keeps its state)."""
    files = dict(ws.files)
    sizes = dict(ws.sizes)
    new: dict[str, bytes] = {}

    def write(path: str, data: bytes) -> None:
        sha = digest(data)
        files[path] = sha
        sizes[sha] = len(data)
        if sha not in wj.blobs:
            new[sha] = data

    for path, data in added.items():
        write(path, data)
    for path in deleted:
        files.pop(path, None)
    for path, data in changed.items():
        write(path, data)
    shas = set(files.values())
    sizes = {h: sizes[h] for h in shas}
    new = {h: d for h, d in new.items() if h in shas}
    check_limits(ws, limits, files, sizes, new)
    body = {"name": ws.name, "scope": ws.scope, "op": op, "files": dict(sorted(files.items())),
            "sizes": dict(sorted(sizes.items())),
            "blobs": {h: base64.b64encode(d).decode("ascii") for h, d in sorted(new.items())},
            "changed": sorted(changed)}
    head = _ENVELOPE_PREFIX + json.dumps(body, separators=(",", ":")).encode()
    return head + b',"value":' + (value if value is not None else b"null") + b"}"


def check_limits(
    ws: WorkspaceState, limits: WorkspaceLimits, files: Mapping[str, str], sizes: Mapping[str, int],
    new: Mapping[str, bytes],
) -> None:
    """Raise WorkspaceLimitError if the manifest `files` (with `new` blobs to journal) is too much."""
    def over(limit: str, value: int, maximum: int, detail: str = "") -> WorkspaceLimitError:
        return WorkspaceLimitError(ws.name, ws.scope, limit, value, maximum, detail)

    if len(files) > limits.max_files:
        raise over("files", len(files), limits.max_files)
    for path, sha in sorted(files.items()):
        if sizes[sha] > limits.max_file_bytes:
            raise over("file_bytes", sizes[sha], limits.max_file_bytes, path)
    total = sum(sizes[h] for h in files.values())
    if total > limits.max_total_bytes:
        raise over("total_bytes", total, limits.max_total_bytes)
    journaled = sum(len(d) for d in new.values())
    if ws.scope == "object":  # its new blobs are written to the key's state too
        journaled += sum(sizes[h] for h in set(files.values()) - set(ws.files.values()))
    if ws.journaled_bytes + journaled > limits.max_journal_bytes:
        raise over("journal_bytes", ws.journaled_bytes + journaled, limits.max_journal_bytes)


def run_limits(limits: Limits, ws: WorkspaceLimits) -> Limits:
    """A run's limits widened so a full workspace fits: its scratch quota holds the workspace (twice,
    for rewrites), and every changed file of a workspace within limits is returned; a run whose
    returned files are cut is past a workspace limit."""
    return limits.model_copy(update={
        "max_files": min(10_000, max(limits.max_files, ws.max_files + 1)),
        "max_files_bytes": min(GiB, max(limits.max_files_bytes, ws.max_total_bytes + 1)),
        "scratch_bytes": min(8 * GiB, max(limits.scratch_bytes, 2 * ws.max_total_bytes)),
        "scratch_files": min(100_000, max(limits.scratch_files, 2 * ws.max_files + 64)),
    })


# ---------------------------------------------------------------------- handler side


class _Envelope(Serde[bytes]):
    """A step whose function returns the journaled bytes itself."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(Any)

    def dumps(self, value: Any) -> bytes:
        return value  # type: ignore[no-any-return]

    def loads(self, data: bytes) -> bytes:
        return data


_ENVELOPE = _Envelope()

if TYPE_CHECKING:
    # What a workspace step runs: given the input files and a widening of the run's limits, run the
    # sandbox and return (the step's own result as JSON, the SandboxResult, its metering).
    RunBody = Callable[[dict[str, bytes], Callable[[Limits | None], Limits]],
                       Awaitable[tuple[bytes, SandboxResult, dict[str, float]]]]


class Workspaces:
    """The workspaces of one invocation attempt (`ctx.sandbox`): one journal view, one lock."""

    __slots__ = ("ctx", "journal", "lock", "opened", "loaded")

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.journal = WorkspaceJournal()
        self.lock = asyncio.Lock()
        self.opened: dict[tuple[Scope, str], Workspace] = {}
        self.loaded: set[str] = set()  # object workspaces whose manifest this attempt has read

    def open(self, name: str, scope: Scope, limits: WorkspaceLimits | None) -> Workspace:
        from endure.sdk.context import ObjectSharedContext

        check_name(name)
        if scope not in SCOPES:
            raise WorkspaceError(f"workspace scope is 'invocation' or 'object', not {scope!r}")
        if scope == "object" and not isinstance(self.ctx, ObjectSharedContext):
            raise WorkspaceError("scope='object' needs a virtual object's or workflow's handler (a key's state)")
        found = self.opened.get((scope, name))
        if found is None:
            found = self.opened[(scope, name)] = Workspace(self, name, scope, limits or WorkspaceLimits())
        elif limits is not None and limits != found.limits:
            raise WorkspaceError(f"workspace {name!r} is already open with other limits")
        return found

    def resolve(self, ws: Workspace | str) -> Workspace:
        if isinstance(ws, Workspace):
            if ws._owner is not self:
                raise WorkspaceError(f"workspace {ws.name!r} belongs to another invocation")
            return ws
        return self.open(ws, "invocation", None)


class Workspace:
    """Files kept from run to run (see the module docstring): pass it as `workspace=` to
    `ctx.sandbox.run_*` / `ctx.run_tool`, or read and change it from handler code."""

    __slots__ = ("_owner", "name", "scope", "limits")

    def __init__(self, owner: Workspaces, name: str, scope: Scope, limits: WorkspaceLimits) -> None:
        self._owner = owner
        self.name = name
        self.scope: Scope = scope
        self.limits = limits

    def __repr__(self) -> str:
        return f"Workspace({self.name!r}, scope={self.scope!r})"

    @property
    def _state(self) -> WorkspaceState:
        return self._owner.journal.state(self.scope, self.name)

    # ------------------------------------------------------------------ reading

    async def list(self) -> dict[str, int]:
        """{path: size} of the files now in the workspace, sorted by path."""
        async with self._owner.lock:
            await self._load()
            return self._state.sizes_by_path()

    async def get(self, path: str) -> bytes:
        """One file's contents; WorkspaceFileNotFoundError if the workspace does not hold it."""
        path = normalize_path(path)
        async with self._owner.lock:
            await self._load()
            sha = self._state.files.get(path)
            if sha is None:
                raise WorkspaceFileNotFoundError(self.name, path)
            await self._load_blobs([sha])
            return self._owner.journal.blobs[sha]

    # ------------------------------------------------------------------ changing

    async def put(self, path: str, data: bytes | str) -> None:
        """Write one file (a journaled step); WorkspaceLimitError if it does not fit."""
        path = normalize_path(path)
        blob = data.encode() if isinstance(data, str) else bytes(data)
        async with self._owner.lock:
            self._check_writable()
            await self._load()
            other = _conflict(self._state.files, path)
            if other is not None:
                raise WorkspacePathError(f"workspace {self.name!r}: {path!r} and {other!r} cannot both be files")

            async def step() -> bytes:
                return build_change(self._owner.journal, self._state, self.limits, "put", changed={path: blob})

            await self._step("workspace.put", step)

    async def delete(self, path: str) -> None:
        """Remove one file (a journaled step); WorkspaceFileNotFoundError if there is none."""
        path = normalize_path(path)
        async with self._owner.lock:
            self._check_writable()
            await self._load()
            if path not in self._state.files:
                raise WorkspaceFileNotFoundError(self.name, path)

            async def step() -> bytes:
                return build_change(self._owner.journal, self._state, self.limits, "delete", deleted=[path])

            await self._step("workspace.delete", step)

    async def run(self, step_name: str, body: RunBody, files: Mapping[str, bytes] | None) -> Change:
        """A sandbox run on the workspace as one journaled step (what `workspace=` does)."""
        added = {normalize_path(p): bytes(d) for p, d in (files or {}).items()}
        async with self._owner.lock:
            self._check_writable()
            await self._load()
            for path in added:
                other = _conflict([*self._state.files, *added], path)
                if other is not None:
                    raise WorkspacePathError(f"workspace {self.name!r}: {path!r} and {other!r} cannot both be files")
            await self._load_blobs(sorted(set(self._state.files.values())))

            async def step() -> Any:
                from endure.sandbox import LimitKind
                from endure.sdk.invocation import WithUsage

                ws = self._state
                inputs = {**self._owner.journal.materialize(ws), **added}
                value, res, usage = await body(inputs, self._widen)
                if res.files_truncated or res.limit_hit is LimitKind.FILES:
                    raise self._cut(inputs, res)
                deleted = [p for p in res.deleted if p in inputs]
                envelope = build_change(self._owner.journal, ws, self.limits, "run", added=added,
                                        deleted=deleted, changed=res.files, value=value)
                return WithUsage(envelope, usage)

            return await self._step(step_name, step)

    def _widen(self, limits: Limits | None) -> Limits:
        from endure.sdk import tools

        return run_limits(limits or tools.get_sandbox().default_limits, self.limits)

    def _cut(self, inputs: Mapping[str, bytes], res: SandboxResult) -> WorkspaceLimitError:
        """The limit error of a run whose changed files the sandbox did not all return: the run's
        limits were widened past this workspace's, so the files it left are past one of them."""
        detail = "the run wrote more than the sandbox returns; the value is a lower bound"
        paths = (set(inputs) - set(res.deleted)) | set(res.files)
        if len(paths) > self.limits.max_files:
            return WorkspaceLimitError(self.name, self.scope, "files", len(paths), self.limits.max_files, detail)
        total = sum(len(inputs[p]) for p in paths - set(res.files)) + sum(len(d) for d in res.files.values())
        return WorkspaceLimitError(self.name, self.scope, "total_bytes", max(total, self.limits.max_total_bytes + 1),
                                   self.limits.max_total_bytes, detail)

    # ------------------------------------------------------------------ internals

    def _check_writable(self) -> None:
        from endure.sdk.context import ObjectContext

        if self.scope == "object" and not isinstance(self._owner.ctx, ObjectContext):
            raise WorkspaceReadOnlyError(
                f"workspace {self.name!r} is in the object's state: a shared handler may read it, not change it")

    async def _load(self) -> None:
        """Object scope: read the manifest from the key's state once per attempt (journaled)."""
        owner = self._owner
        if self.scope != "object" or self.name in owner.loaded:
            return
        key = manifest_key(self.name)
        value = await owner.ctx.get(key)  # type: ignore[attr-defined]
        owner.journal.apply_state(key, value)
        owner.loaded.add(self.name)

    async def _load_blobs(self, shas: Iterable[str]) -> None:
        """Object scope: read (journaled) the blobs this journal lacks, in sha order."""
        if self.scope != "object":
            return
        owner = self._owner
        for sha in sorted(set(shas) - owner.journal.blobs.keys()):
            key = blob_key(self.name, sha)
            value = await owner.ctx.get(key)  # type: ignore[attr-defined]
            if value is None:  # a shared handler reading a lazily loaded state while it changes
                raise WorkspaceCorruptError(f"workspace {self.name!r}: blob {sha[:12]}… is missing from the "
                                            "state (changed by an exclusive handler while this one read it?)")
            owner.journal.apply_state(key, value)

    async def _step(self, step_name: str, fn: Callable[[], Awaitable[Any]]) -> Change:
        """One change as a run entry: replayed from the journal or executed, then applied (and, for
        object scope, written to the key's state) before the caller sees its result."""
        from endure.sdk.context import DurableFuture, _journal_cancelled_run

        owner = self._owner
        inv = owner.ctx._inv
        i, rec = inv.begin("run", step_name)
        if rec is not None:
            fut: DurableFuture[bytes] = DurableFuture(inv, i, inv.completion(i, rec), None, "run")
        elif inv.cancel_pending:
            fut = _journal_cancelled_run(inv, i, step_name, _ENVELOPE)
        else:
            fut = DurableFuture(inv, i, inv.start_run(i, step_name, fn, (), None, _ENVELOPE), None, "run")
        try:
            raw = await fut
        except TerminalError as exc:
            typed = WorkspaceLimitError.from_failure(exc)
            if typed is not None:
                raise typed from None
            raise
        before = dict(self._state.files)
        change = owner.journal.apply_change(raw)
        if change.workspace is not self._state:
            raise WorkspaceCorruptError(f"entry {i} belongs to workspace {change.workspace.label!r}, "
                                        f"not {self.name!r}")
        if self.scope == "object":
            self._write_state(before)
        return change

    def _write_state(self, before: Mapping[str, str]) -> None:
        """Make the key's state what the journaled change says: new blobs, the manifest, and no blob
        nothing refers to (deterministic from the change, so a replay writes the same)."""
        ctx: Any = self._owner.ctx
        ws = self._state
        if dict(before) == ws.files:
            return
        old, new = set(before.values()), set(ws.files.values())
        for sha in sorted(new - old):
            key = blob_key(self.name, sha)
            value = base64.b64encode(self._owner.journal.blobs[sha]).decode("ascii")
            ctx.set(key, value)
        for sha in sorted(old - new):
            ctx.clear(blob_key(self.name, sha))
        doc = {"files": dict(sorted(ws.files.items())), "sizes": dict(sorted(ws.sizes.items()))}
        ctx.set(manifest_key(self.name), doc)


def sandbox_result(change: Change, blobs: Mapping[str, bytes]) -> SandboxResult:
    """A workspace run's SandboxResult, its changed files' contents back from the blobs."""
    from endure.sandbox import SandboxResult

    res = SandboxResult.model_validate(change.value)
    ws = change.workspace
    res.files = {p: blobs[ws.files[p]] for p in change.changed if p in ws.files}
    return res


def step_value(change: Change, serde: Serde[Any]) -> Any:
    """A workspace tool step's own result, decoded by the tool's output serde."""
    if serde is ANY:
        return change.value
    return serde.loads(json.dumps(change.value).encode())
