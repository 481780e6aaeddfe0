"""The console's JSON API as plain functions: each reads through the admin service's methods (called
in process) and the `Partition` interface, and returns what the API sends (and the pages render).

Tenant scoping is applied here, once: a tenant principal's filters are pinned to its tenant, and
an invocation, object or promise of another tenant is NOT_FOUND, as at the ingress.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import grpc

from endure.proto import admin_pb2 as apb
from endure.proto import ids
from endure.proto import records_pb2 as pb
from endure.proto.deployments import ref_text
from endure.proto.journal import RULES
from endure.proto.worker_pb2 import ServiceKind
from endure.runtime.admin.deployments import DeploymentError
from endure.runtime.console.access import Principal
from endure.runtime.console.sources import ConsoleSources
from endure.runtime.log import LogUnavailable
from endure.runtime.partition.api import MAX_KEYS_READ, MAX_STREAM_READ
from endure.runtime.partition.remote import PartitionError
from endure.runtime.partition.waiters import TooManyWaiters

MAX_PAGE = 500  # invocations in one page
MAX_JOURNAL_PAGE = 1000  # journal entries in one page
PREVIEW_CHARS = 4096  # a result longer than this is cut in lists (the entry's own route has all of it)
DAY_MS = 86_400_000
ACTIONS = ("cancel", "kill", "pause", "resume", "purge")
TENANT_ACTIONS = ("cancel", "kill")  # what a tenant may do to its own invocations (as at the ingress)
FINAL = (pb.COMPLETED, pb.KILLED, pb.CANCELLED)
STATUS_NAMES = [pb.Status.Name(v).lower() for v in pb.Status.values() if v]
STATUS_FILTERS = ["in_flight", "failed", *STATUS_NAMES]
_WAITING_KINDS = frozenset(k for k, r in RULES.items() if r.waits_outside)
_HTTP = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.INVALID_ARGUMENT: 400,
         grpc.StatusCode.FAILED_PRECONDITION: 409, grpc.StatusCode.UNAVAILABLE: 503,
         grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.PERMISSION_DENIED: 403,
         grpc.StatusCode.RESOURCE_EXHAUSTED: 429}
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}


class ConsoleError(Exception):
    """A request the console cannot serve; `status` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Context:
    """What AdminService's methods use of a gRPC context, in process: the metadata passed on to the
    other nodes (their admin API takes the internal token), and abort as a ConsoleError."""

    def __init__(self, token: str | None) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def set_trailing_metadata(self, metadata: object) -> None:
        pass

    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise ConsoleError(_HTTP.get(code, 500), details)


def parse_time(text: str, now_ms: int | None = None) -> int:
    """Milliseconds since the epoch from "15m" / "2h" / "7d" ago, or an ISO date-time (UTC unless it
    names a zone); 0 for empty."""
    text = text.strip()
    if not text:
        return 0
    now = int(time.time() * 1000) if now_ms is None else now_ms
    relative = _RELATIVE.match(text)
    if relative:
        return now - int(float(relative.group(1)) * _UNIT_MS[relative.group(2)])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConsoleError(400, f"not a time: {text!r} (use 15m, 2h, 7d, or 2026-12-01T10:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConsoleError(400, f"{name} must be a whole number, got {raw!r}") from None
    return max(low, min(value, high))


def target_text(target: pb.Target) -> str:
    return f"{target.service}/{target.handler}" + (f" [{target.key}]" if target.key else "")


def failure_json(failure: pb.Failure) -> dict[str, Any]:
    return {"code": failure.code, "message": failure.message,
            "cause": pb.FailureCause.Name(failure.cause).removeprefix("FAILURE_").lower()}


def payload_json(value: bytes | None = None, failure: pb.Failure | None = None, void: bool = False,
                 limit: int | None = PREVIEW_CHARS) -> dict[str, Any] | None:
    """A result as the API shows it: text (JSON is text) or base64 bytes, cut at limit characters."""
    if failure is not None:
        return {"type": "failure", **failure_json(failure)}
    if void:
        return {"type": "void"}
    if value is None:
        return None
    try:
        text, encoding = value.decode("utf-8"), "text"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(value).decode(), "base64"
    cut = limit is not None and len(text) > limit
    return {"type": "value", "encoding": encoding, "size": len(value), "truncated": cut,
            "text": text[:limit] if cut else text}


def outcome(status: pb.InvocationStatus) -> str | None:
    """How a final invocation ended: ok, failed, cancelled or killed (None while it runs)."""
    if status.status not in FINAL:
        return None
    if status.status == pb.CANCELLED:
        return "cancelled"
    if status.status == pb.KILLED:
        return "killed"
    return "failed" if status.WhichOneof("result") == "failure" else "ok"


def summary_json(status: pb.InvocationStatus, partition: int, on_worker: bool) -> dict[str, Any]:
    return {
        "id": status.invocation_id, "service": status.target.service, "handler": status.target.handler,
        "key": status.target.key, "target": target_text(status.target),
        "status": pb.Status.Name(status.status).lower(), "outcome": outcome(status), "tenant": status.tenant,
        "created_at_ms": status.created_at_ms, "modified_at_ms": status.modified_at_ms,
        "completed_at_ms": status.completed_at_ms or None, "attempts": status.attempts,
        "journal_length": status.journal_length, "idempotency_key": status.idempotency_key,
        "deployment": ref_text(status.deployment) if status.HasField("deployment") else "",
        "partition": partition, "on_worker": on_worker, "has_streams": status.has_streams,
        "caller": status.caller.invocation_id or None,
    }


def entry_json(invocation_id: str, index: int, entry: pb.JournalEntry, previous_ms: int | None,
               limit: int | None = PREVIEW_CHARS) -> dict[str, Any]:
    """One journal entry: what it is, when, how long after the one before, and its result."""
    kind = entry.WhichOneof("kind") or ""
    which = entry.WhichOneof("result")
    value = entry.value if which == "value" else None
    failure = entry.failure if which == "failure" else None
    if kind == "output":
        out = entry.output
        value = out.value if out.WhichOneof("result") == "value" else None
        failure = out.failure if out.WhichOneof("result") == "failure" else None
    out_json: dict[str, Any] = {
        "index": index, "kind": kind, "name": entry.name, "appended_at_ms": entry.appended_at_ms,
        "since_previous_ms": entry.appended_at_ms - previous_ms if previous_ms is not None else None,
        "complete": which is not None or kind not in _WAITING_KINDS,
        "result": payload_json(value, failure, which == "void", limit),
    }
    if kind in ("call", "send"):
        call = getattr(entry, kind)
        out_json["target"] = target_text(call.target)
        out_json["child"] = call.invocation_id or None
        out_json["input"] = payload_json(call.input, limit=limit)
        if kind == "send" and call.execute_at_ms:
            out_json["execute_at_ms"] = call.execute_at_ms
    elif kind == "sleep":
        out_json["wake_at_ms"] = entry.sleep.wake_at_ms
    elif kind == "awakeable":
        out_json["awakeable_id"] = ids.awakeable_id(invocation_id, index)
    elif kind == "set_state":
        out_json["value"] = payload_json(entry.set_state.value, limit=limit)
    elif kind == "promise_complete":
        pc = entry.promise_complete
        out_json["value"] = payload_json(pc.value if pc.WhichOneof("result") == "value" else None,
                                         pc.failure if pc.WhichOneof("result") == "failure" else None, limit=limit)
    elif kind == "combinator":
        out_json["completed"] = list(entry.combinator.completed)
    elif kind == "meter":
        out_json["counters"] = dict(entry.meter.counters)
    if entry.usage:
        out_json["usage"] = dict(entry.usage)
    return out_json


def _wait_of(entry: dict[str, Any], status: pb.InvocationStatus) -> dict[str, Any] | None:
    """What a pending entry waits for, as the header shows it."""
    kind = entry["kind"]
    if entry["complete"]:
        return None
    if kind == "sleep":
        return {"kind": "timer", "index": entry["index"], "name": entry["name"], "due_at_ms": entry["wake_at_ms"]}
    if kind == "awakeable":
        return {"kind": "awakeable", "index": entry["index"], "name": entry["name"],
                "awakeable_id": entry["awakeable_id"]}
    if kind == "call":
        return {"kind": "call", "index": entry["index"], "target": entry["target"], "child": entry["child"]}
    if kind == "promise_get":
        return {"kind": "promise", "index": entry["index"], "name": entry["name"],
                "workflow": status.target.service, "key": status.target.key}
    return {"kind": kind, "index": entry["index"], "name": entry["name"]}


class ConsoleData:
    def __init__(self, sources: ConsoleSources) -> None:
        self.sources = sources
        self._admin = sources.admin
        self._partitions = sources.partitions

    def _ctx(self, who: Principal) -> Any:
        """A context for the admin service: calls it passes on to the other nodes carry the internal
        token (or else the admin's own; a tenant's key would not be taken there)."""
        return _Context(self.sources.peer_token or (who.token if who.admin else None))

    @staticmethod
    def require_admin(who: Principal) -> None:
        if not who.admin:
            raise ConsoleError(403, "this page is for the admin; sign in with the admin token")

    async def _read(self, call: Any) -> Any:
        """A partition read, its failures as HTTP statuses."""
        try:
            return await call
        except (PartitionError, LogUnavailable) as exc:
            raise ConsoleError(503, f"a partition cannot be read now: {exc}") from exc
        except DeploymentError as exc:
            raise ConsoleError(_HTTP.get(exc.code, 500), str(exc)) from exc

    # ------------------------------------------------------------------ invocations

    async def invocations(self, who: Principal, params: Mapping[str, str]) -> dict[str, Any]:
        """One page of invocations matching the filters (the URL's query), newest first, and the next
        page's token."""
        limit = _int(params, "limit", 50, 1, MAX_PAGE)
        tenant = who.tenant if who.tenant is not None else params.get("tenant", "").strip()
        query = params.get("q", "").strip()
        if query.startswith(ids.INVOCATION_PREFIX):  # an id: that one invocation, if it may be seen
            try:
                partition = ids.partition_of(query, len(self._partitions))
            except ids.InvalidId:
                return {"invocations": [], "next_page": None}
            status = await self._read(self._partitions[partition].get_status(query))
            visible = status is not None and (who.admin or status.tenant == who.tenant)
            items = [summary_json(status, partition, self.sources.invoker.is_active(query))] if visible else []
            return {"invocations": items, "next_page": None}
        request = apb.ListInvocationsRequest(
            service=params.get("service", "").strip(), handler=params.get("handler", "").strip(),
            key=params.get("key", "").strip(), tenant=tenant, deployment=params.get("deployment", "").strip(),
            idempotency_key=query, page_size=limit, page_token=params.get("page", ""), newest_first=True,
            created_after_ms=parse_time(params.get("since", "")), created_before_ms=parse_time(params.get("until", "")))
        status_filter = params.get("status", "").strip().lower().replace(" ", "_").replace("-", "_")
        if status_filter == "in_flight":
            request.in_flight = True
        elif status_filter == "failed":
            request.failed = True
        elif status_filter:
            if status_filter not in STATUS_NAMES:
                raise ConsoleError(400, f"unknown status {status_filter!r}; one of {', '.join(STATUS_FILTERS)}")
            request.status = pb.Status.Value(status_filter.upper())
        resp = await self._read(self._admin.ListInvocations(request, self._ctx(who)))
        return {"invocations": [summary_json(i.status, i.partition, i.on_worker) for i in resp.invocations],
                "next_page": resp.next_page_token or None}

    async def _describe(self, who: Principal, invocation_id: str, start: int = 0,
                        limit: int = 0) -> apb.InvocationDescription:
        desc = await self._read(self._admin.describe(invocation_id, start, limit))
        if desc is None or not (who.admin or desc.status.tenant == who.tenant):
            raise ConsoleError(404, f"no invocation {invocation_id}")
        return desc  # type: ignore[no-any-return]

    async def invocation(self, who: Principal, invocation_id: str, journal_from: int = 0,
                         journal_limit: int = 100) -> dict[str, Any]:
        """The invocation's header (status, attempts, pin, what it waits on, input and result) and
        one page of its journal."""
        journal_limit = max(1, min(journal_limit, MAX_JOURNAL_PAGE))
        before = 1 if journal_from > 0 else 0  # the entry before the page: the first one's duration
        desc = await self._describe(who, invocation_id, journal_from - before, journal_limit + before)
        s = desc.status
        entries = self._entries(invocation_id, list(desc.journal), journal_from, before)
        out = summary_json(s, desc.partition, desc.on_worker)
        out.update({
            "handler_kind": pb.HandlerKind.Name(s.handler_kind).lower(), "priority": pb.Priority.Name(s.priority).lower(),
            "input": payload_json(s.input), "result": self._result(s), "final": s.status in FINAL,
            "execute_at_ms": s.execute_at_ms or None, "retry_at_ms": s.retry_at_ms or None,
            "last_failure": failure_json(s.last_failure) if s.last_failure.message else None,
            "cancel_requested": s.cancel_requested, "waiting_for": desc.waiting_for,
            "first_deployment": ref_text(s.first_deployment) if s.HasField("first_deployment") else "",
            "moves": [{"at_ms": m.at_ms, "from": ref_text(m.from_deployment), "to": ref_text(m.to_deployment),
                       "reason": m.reason} for m in s.moves],
            "usage": dict(s.usage), "journal": entries,
            "journal_from": journal_from, "journal_next": journal_from + len(entries)
            if journal_from + len(entries) < s.journal_length else None,
        })
        out["waits"] = await self._waits(s, desc.partition, entries, desc.waiting_for)
        out["actions"] = self._actions(who, s)
        return out

    @staticmethod
    def _result(s: pb.InvocationStatus) -> dict[str, Any] | None:
        which = s.WhichOneof("result")
        return payload_json(s.value if which == "value" else None, s.failure if which == "failure" else None)

    @staticmethod
    def _entries(invocation_id: str, journal: Sequence[pb.JournalEntry], start: int, before: int,
                 limit: int | None = PREVIEW_CHARS) -> list[dict[str, Any]]:
        previous = journal[0].appended_at_ms if before and journal else None
        out = []
        for i, entry in enumerate(journal[before:]):
            out.append(entry_json(invocation_id, start + i, entry, previous, limit))
            previous = entry.appended_at_ms
        return out

    async def _waits(self, s: pb.InvocationStatus, partition: int, page: list[dict[str, Any]],
                     waiting_for: str) -> list[dict[str, Any]]:
        """What an unfinished invocation waits on: its pending entries (a suspended one names them;
        a running one waits on its last), and its place in the queues."""
        waits: list[dict[str, Any]] = []
        if s.status in FINAL:
            return waits
        if s.status in (pb.RUNNING, pb.SUSPENDED) and s.journal_length:
            indices = list(s.waiting_on) if s.waiting_on else [s.journal_length - 1]
            loaded = {e["index"]: e for e in page}
            for index in indices:
                entry = loaded.get(index)
                if entry is None:
                    got = await self._read(self._partitions[partition].get_journal(s.invocation_id, index, 1))
                    if not got:
                        continue
                    entry = entry_json(s.invocation_id, index, got[0], None)
                wait = _wait_of(entry, s)
                if wait is not None:
                    waits.append(wait)
        if s.status == pb.SCHEDULED:
            waits.append({"kind": "scheduled", "due_at_ms": s.execute_at_ms})
        elif s.status == pb.INBOXED:
            waits.append({"kind": "inbox", "target": target_text(s.target)})
        elif s.status == pb.BACKING_OFF:
            waits.append({"kind": "retry", "due_at_ms": s.retry_at_ms or None,
                          "after": failure_json(s.last_failure) if s.last_failure.message else None})
        elif s.status == pb.PAUSED:
            waits.append({"kind": "paused"})
        elif s.status == pb.PENDING:
            waits.append({"kind": "worker", "detail": self.sources.invoker.waiting_for(
                s.target.service, ref_text(s.deployment)) or "a free worker slot"})
        if waiting_for:
            waits.append({"kind": "deployment", "detail": waiting_for})
        return waits

    @staticmethod
    def _actions(who: Principal, s: pb.InvocationStatus) -> list[str]:
        """The actions that apply to the invocation now (and that who may take)."""
        allowed = ACTIONS if who.admin else TENANT_ACTIONS
        state = s.status
        possible = {"cancel": state not in FINAL, "kill": state not in FINAL,
                    "pause": state in (pb.RUNNING, pb.SUSPENDED, pb.BACKING_OFF), "resume": state == pb.PAUSED,
                    "purge": state in FINAL}
        return [a for a in ACTIONS if a in allowed and possible[a]]

    async def journal(self, who: Principal, invocation_id: str, start: int, limit: int) -> dict[str, Any]:
        """One page of the journal, from entry `start`."""
        limit = max(1, min(limit, MAX_JOURNAL_PAGE))
        start = max(0, start)
        before = 1 if start > 0 else 0
        desc = await self._describe(who, invocation_id, start - before, limit + before)
        entries = self._entries(invocation_id, list(desc.journal), start, before)
        length = desc.status.journal_length
        return {"id": invocation_id, "journal_length": length, "from": start, "entries": entries,
                "next": start + len(entries) if start + len(entries) < length else None}

    async def entry(self, who: Principal, invocation_id: str, index: int) -> dict[str, Any]:
        """One journal entry with its whole result (lists cut long ones)."""
        desc = await self._describe(who, invocation_id, max(0, index - 1), 2 if index > 0 else 1)
        journal = list(desc.journal)
        entries = self._entries(invocation_id, journal, index, 1 if index > 0 else 0, limit=None)
        if not entries:
            raise ConsoleError(404, f"{invocation_id} has no journal entry {index}")
        return entries[0]

    async def stream(self, who: Principal, invocation_id: str, after: int, wait_s: float) -> dict[str, Any]:
        """Stream events after seq `after` (every stream, in order); with wait_s, a long poll: waits
        that long for the first one or for the end (Partition.read_stream, as Subscribe reads)."""
        desc = await self._describe(who, invocation_id, 0, 1)
        try:
            read = await self._read(self._partitions[desc.partition].read_stream(
                invocation_id, max(0, after), MAX_STREAM_READ, max(0.0, min(wait_s, 25.0))))
        except TooManyWaiters as exc:
            raise ConsoleError(429, str(exc)) from exc
        events = []
        for e in read.events:
            item: dict[str, Any] = {"seq": e.seq, "stream": e.stream, "offset": e.offset,
                                    "provisional": e.provisional, "step": e.step}
            which = e.WhichOneof("event")
            if which == "data":
                if e.encoding == pb.CHUNK_BYTES:
                    item.update(type="data", encoding="base64", text=base64.b64encode(e.data).decode())
                else:
                    item.update(type="data", encoding="json" if e.encoding == pb.CHUNK_JSON else "text",
                                text=e.data.decode("utf-8", errors="replace"))
            elif which == "reset":
                item.update(type="reset", offsets=list(e.reset.offsets))
            else:
                item.update(type="close")
            events.append(item)
        last = events[-1]["seq"] if events else after
        return {"id": invocation_id, "events": events, "after": last, "finished": read.finished}

    async def act(self, who: Principal, invocation_id: str, action: str, deployment: str = "") -> dict[str, Any]:
        """Cancel, kill, pause, resume or purge: the admin API's action (a record in the log)."""
        if action not in ACTIONS:
            raise ConsoleError(404, f"no action {action!r}; one of {', '.join(ACTIONS)}")
        if action not in (ACTIONS if who.admin else TENANT_ACTIONS):
            raise ConsoleError(403, f"a tenant may only {' or '.join(TENANT_ACTIONS)} its invocations")
        desc = await self._describe(who, invocation_id, 0, 1)  # NOT_FOUND for another tenant's
        if action not in self._actions(who, desc.status):
            raise ConsoleError(409, f"cannot {action} {invocation_id}: it is {pb.Status.Name(desc.status.status).lower()}")
        ctx = self._ctx(who)
        ref = apb.InvocationRef(invocation_id=invocation_id)
        if action == "resume":
            await self._read(self._admin.ResumeInvocation(
                apb.ResumeRequest(invocation_id=invocation_id, deployment=deployment), ctx))
        else:
            await self._read(getattr(self._admin, f"{action.capitalize()}Invocation")(ref, ctx))
        return {"id": invocation_id, "action": action, "done": True}

    # ------------------------------------------------------------------ services and deployments

    async def services(self, who: Principal) -> dict[str, Any]:
        self.require_admin(who)
        ctx = self._ctx(who)
        listed = await self._read(self._admin.ListServices(apb.ListServicesRequest(), ctx))
        deployments = await self._read(self._admin.ListDeployments(apb.ListDeploymentsRequest(), ctx))
        services = []
        for info in listed.services:
            d = info.definition
            services.append({
                "name": d.name, "kind": ServiceKind.Name(d.kind).lower(),
                "deployment": f"{info.deployment_id}@{info.deployment_version}",
                "handlers": [{"name": h.name, "kind": pb.HandlerKind.Name(h.kind).lower(),
                              "input_schema": h.input_schema_json, "output_schema": h.output_schema_json,
                              "inactivity_timeout_ms": h.inactivity_timeout_ms} for h in d.handlers],
                "workers": [_worker(w) for w in info.workers],
            })
        return {"services": services, "deployments": [_deployment(d) for d in deployments.deployments]}

    async def deployments(self, who: Principal) -> dict[str, Any]:
        self.require_admin(who)
        listed = await self._read(self._admin.ListDeployments(apb.ListDeploymentsRequest(), self._ctx(who)))
        return {"deployments": [_deployment(d) for d in listed.deployments]}

    # ------------------------------------------------------------------ state

    def keyed_services(self) -> list[dict[str, str]]:
        """Virtual objects and workflows: what has keys, state and promises."""
        return [{"name": name, "kind": ServiceKind.Name(kind).lower()}
                for name, kind, _ref, _handlers in self.sources.registry.services()
                if kind in (ServiceKind.VIRTUAL_OBJECT, ServiceKind.WORKFLOW)]

    def _tenant(self, who: Principal, params: Mapping[str, str]) -> str:
        if who.tenant is not None:
            return who.tenant
        return params.get("tenant", "").strip() or (self.sources.configured_tenants[0]
                                                    if self.sources.auth and self.sources.configured_tenants
                                                    else "default")

    def _kind(self, service: str) -> str:
        for s in self.keyed_services():
            if s["name"] == service:
                return s["kind"]
        raise ConsoleError(404, f"no virtual object or workflow {service!r} is registered")

    async def object_keys(self, who: Principal, service: str, params: Mapping[str, str]) -> dict[str, Any]:
        """A page of the keys of a virtual object that have state (of a workflow: that have promises),
        over every partition; `page` continues where the last page stopped."""
        kind = self._kind(service)
        tenant = self._tenant(who, params)
        limit = _int(params, "limit", 50, 1, MAX_KEYS_READ)
        start, after = 0, None
        if params.get("page"):
            p, _, key = params["page"].partition(":")
            if not p.isdigit() or int(p) >= len(self._partitions):
                raise ConsoleError(400, f"bad page token {params['page']!r}")
            start, after = int(p), key
        keys: list[str] = []
        last_partition = start
        for partition in range(start, len(self._partitions)):
            want = limit - len(keys) + 1  # one more than fits: a next page only when there is one
            found = await self._read(self._partitions[partition].scan_object_keys(
                tenant, service, after if partition == start else None, want, promises=kind == "workflow"))
            for key in found:
                if len(keys) == limit:
                    return {"service": service, "kind": kind, "tenant": tenant, "keys": keys,
                            "next_page": f"{last_partition}:{keys[-1]}"}
                keys.append(key)
                last_partition = partition
        return {"service": service, "kind": kind, "tenant": tenant, "keys": keys, "next_page": None}

    async def object(self, who: Principal, service: str, key: str, params: Mapping[str, str]) -> dict[str, Any]:
        """One key's state (and a workflow's promises)."""
        kind = self._kind(service)
        tenant = self._tenant(who, params)
        part = self._partitions[ids.stable_hash64(key) % len(self._partitions)]
        state = await self._read(part.get_object_state(tenant, service, key))
        out: dict[str, Any] = {"service": service, "kind": kind, "tenant": tenant, "key": key,
                               "state": [{"name": n, "value": payload_json(v)} for n, v in state]}
        if kind == "workflow":
            promises = await self._read(part.get_promises(tenant, service, key))
            out["promises"] = [{"name": n, "resolved": p.WhichOneof("result") is not None,
                                "result": payload_json(p.value if p.WhichOneof("result") == "value" else None,
                                                       p.failure if p.WhichOneof("result") == "failure" else None),
                                "waiters": [{"id": w.invocation_id, "index": w.entry_index} for w in p.waiters]}
                               for n, p in promises]
        return out

    # ------------------------------------------------------------------ tenants

    async def tenants(self, who: Principal, days: int = 14) -> dict[str, Any]:
        """Each tenant's limits, queue depth, running attempts, refusals on this node and daily usage."""
        days = max(1, min(days, 366))
        ctx = self._ctx(who)
        limits = await self._read(self._admin.GetLimits(apb.GetLimitsRequest(), ctx))
        today = int(time.time() * 1000) // DAY_MS
        first_day = today - days + 1
        usage = await self._read(self._admin.GetUsage(
            apb.UsageRequest(tenant=who.tenant or "", since_ms=first_day * DAY_MS, by="day"), ctx))
        rejected_total, rejected = self.sources.rejected()
        by_day: dict[str, dict[str, dict[str, float]]] = {}
        for row in usage.rows:
            by_day.setdefault(row.tenant, {})[row.group] = dict(row.counters)
        names = set(self.sources.configured_tenants) | set(limits.tenants) | set(limits.backlog) | set(by_day)
        if not self.sources.auth:
            names.add("default")
        if who.tenant is not None:
            names = {who.tenant}
        day_names = [time.strftime("%Y-%m-%d", time.gmtime(d * 86_400)) for d in range(first_day, today + 1)]
        out = []
        for name in sorted(names):
            spec = limits.tenants.get(name)
            totals: dict[str, float] = {}
            for counters in by_day.get(name, {}).values():
                for counter, value in counters.items():
                    totals[counter] = max(totals.get(counter, 0), value) if counter.endswith("peak_memory_bytes") \
                        else totals.get(counter, 0) + value
            out.append({
                "name": name, "limits": _limits(spec) if spec is not None else _limits(apb.LimitSpec(weight=1.0)),
                "limited": spec is not None, "backlog": limits.backlog.get(name, 0),
                "running": limits.running.get(f"tenant:{name}", 0), "rejected": rejected.get(name, 0),
                "usage": [{"day": d, "counters": by_day.get(name, {}).get(d, {})} for d in day_names],
                "totals": totals,
            })
        targets = [{"name": n, "limits": _limits(s), "running": limits.running.get(f"handler:{n}", 0)}
                   for n, s in sorted(limits.targets.items())] if who.admin else []
        return {"tenants": out, "targets": targets, "days": day_names,
                "rejected_total": rejected_total if who.admin else None}

    async def set_limits(self, who: Principal, body: Mapping[str, Any]) -> dict[str, Any]:
        """Set (or clear) a tenant's or a target's limits: the admin API's SetLimits (every node)."""
        self.require_admin(who)
        request = apb.SetLimitsRequest(clear=bool(body.get("clear")))
        if body.get("tenant"):
            request.tenant = str(body["tenant"])
        elif body.get("target"):
            request.target = str(body["target"])
        else:
            raise ConsoleError(400, "name a tenant or a target (service or service/handler)")
        for name, cast in (("max_running", int), ("rate_per_s", float), ("burst", float), ("max_backlog", int),
                           ("weight", float)):
            raw = body.get(name)
            if raw is None or raw == "":
                continue
            try:
                setattr(request.limits, name, cast(raw))
            except (TypeError, ValueError):
                raise ConsoleError(400, f"{name} must be a number, got {raw!r}") from None
        await self._read(self._admin.SetLimits(request, self._ctx(who)))
        return await self.tenants(who)

    # ------------------------------------------------------------------ cluster

    async def cluster(self, who: Principal) -> dict[str, Any]:
        """Partitions (leader, epoch, applied LSN, apply lag) and nodes (addresses, health)."""
        self.require_admin(who)
        listed = await self._read(self._admin.ListPartitions(apb.ListPartitionsRequest(), self._ctx(who)))
        partitions = []
        for p in listed.partitions:
            answered = bool(p.leader_epoch or p.applied_lsn or p.log_tail)
            partitions.append({
                "partition": p.partition, "node": p.node, "leader": p.leader, "leader_epoch": p.leader_epoch,
                "applied_lsn": p.applied_lsn, "log_tail": p.log_tail, "trim_point": p.trim_point,
                "apply_lag": max(0, p.log_tail - 1 - p.applied_lsn) if answered else None,
                "timers_in_memory": p.timers_in_memory, "available": answered,
                "segments": [{"base_lsn": s.base_lsn, "loglet": s.loglet, "sealed": s.sealed} for s in p.segments],
            })
        available = {p["partition"]: p["available"] for p in partitions}
        nodes = []
        for n in self.sources.nodes():
            answering = sum(1 for p in n.partitions if available.get(p))
            health = "down" if not n.up else "ok" if answering == len(n.partitions) else "degraded"
            nodes.append({"node": n.node, "admin": n.admin, "ingress": n.ingress, "partitions": n.partitions,
                          "answering": answering, "health": health, "this": n.this})
        return {"partitions": partitions, "nodes": nodes}


def _worker(w: apb.WorkerInfo) -> dict[str, Any]:
    return {"id": w.worker_id, "name": w.name, "deployment": f"{w.deployment_id}@{w.deployment_version}",
            "concurrency": w.concurrency, "active": w.active}


def _deployment(d: apb.DeploymentInfo) -> dict[str, Any]:
    return {"ref": ref_text(d.deployment), "id": d.deployment.id,
            "version": d.deployment.version, "services": list(d.services), "latest_for": list(d.latest_for),
            "draining": d.draining, "registered_at_ms": d.registered_at_ms, "promoted_at_ms": d.promoted_at_ms or None,
            "workers": [_worker(w) for w in d.workers], "in_flight": d.in_flight, "waiting": d.waiting}


def _limits(spec: apb.LimitSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) if spec.HasField(name) else None
            for name in ("max_running", "rate_per_s", "burst", "max_backlog", "weight")}
