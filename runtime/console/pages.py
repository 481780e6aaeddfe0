"""The console's HTML, rendered on the server from what `data` returns: plain functions over strings,
every value escaped. The page script (static/console.js) only fetches fragments rendered here
(the invocation header, journal pages) and the JSON of live streams, so there is one template."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from endure.runtime.console.access import Principal
from endure.runtime.console.data import STATUS_FILTERS

NAV = [("invocations", "Invocations", False), ("services", "Services", True), ("state", "State", False),
       ("tenants", "Tenants", False), ("cluster", "Cluster", True)]  # (path, title, admin only)
JOURNAL_PAGE = 200  # entries per journal page on the invocation page


def h(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def ms_text(ms: int | None) -> str:
    if not ms:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{int(ms) % 1000:03d}"


def when(ms: int | None) -> str:
    if not ms:
        return '<span class="muted">—</span>'
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{int(ms) % 1000:03d}Z"
    return f'<time datetime="{iso}">{h(ms_text(ms))}</time>'


def duration_text(ms: float | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    if s < 86400:
        return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"
    return f"{int(s // 86400)} d {int(s % 86400 // 3600)} h"


def number(value: float | None) -> str:
    if value is None:
        return "—"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def badge(status: str, outcome: str | None = None) -> str:
    label = status.replace("_", " ")
    css = outcome or status
    if outcome in ("failed",):
        label += " · failed"
    return f'<span class="badge st-{h(css)}" data-testid="status">{h(label)}</span>'


def link_inv(invocation_id: str | None, text: str | None = None) -> str:
    if not invocation_id:
        return ""
    return f'<a class="mono" href="/invocations/{quote(invocation_id)}">{h(text or invocation_id)}</a>'


def payload(p: Mapping[str, Any] | None, *, entry: str = "", open_: bool = False) -> str:
    """A result or value: inline when short, else collapsed (with the whole text one click away when
    the API cut it)."""
    if p is None:
        return ""
    if p["type"] == "failure":
        return (f'<span class="failure">{h(p["cause"] if p["cause"] != "error" else "failed")} ({h(p["code"])}): '
                f'{h(p["message"])}</span>')
    if p["type"] == "void":
        return '<span class="muted">done</span>'
    text: str = p["text"]
    if p["encoding"] == "base64":
        text = f"(bytes, base64) {text}"
    if len(text) <= 100 and "\n" not in text:
        return f'<code class="value">{h(text)}</code>'
    pretty = text
    if not p["truncated"] and p["encoding"] == "text":
        try:
            pretty = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    more = (f' <button type="button" class="small" data-full="{h(entry)}">load all {number(p["size"])} bytes</button>'
            if p["truncated"] and entry else "")
    return (f'<details class="value"{" open" if open_ else ""}><summary><code>{h(text[:80])}…</code> '
            f'<span class="muted">{number(p["size"])} bytes</span></summary><pre>{h(pretty)}</pre>{more}</details>')


def layout(who: Principal, active: str, title: str, body: str, *, signed_in: bool = True,
           page: str = "") -> str:
    nav = "".join(f'<a href="/{path}"{" class=active" if path == active else ""}>{h(name)}</a>'
                  for path, name, admin_only in NAV if signed_in and (not admin_only or who.admin))
    user = ""
    if signed_in:
        label = "admin" if who.admin else f"tenant {who.tenant}"
        out = ('<form method="post" action="/logout" class="inline"><button type="submit" class="link">sign out'
               '</button></form>') if who.token else ""
        user = f'<span class="who" data-testid="who">{h(label)}</span>{out}'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{h(title)} · Endure</title><link rel="stylesheet" href="/static/console.css">
<script src="/static/console.js" defer></script></head>
<body data-page="{h(page or active)}">
<header class="top"><a class="brand" href="/">Endure</a><nav>{nav}</nav><div class="user">{user}</div></header>
<main>{body}</main>
<dialog id="confirm"><form method="dialog"><p id="confirm-text"></p>
<menu><button value="cancel" type="submit">Back</button><button value="ok" type="submit" class="danger" id="confirm-ok">
Confirm</button></menu></form></dialog>
<div id="flash" role="status" hidden></div>
</body></html>"""


def login_page(error: str, next_url: str) -> str:
    message = f'<p class="error">{h(error)}</p>' if error else ""
    body = f"""<section class="card login"><h1>Sign in</h1>
<p>The admin token shows every tenant; a tenant's API key shows that tenant's own invocations and state.</p>
{message}<form method="post" action="/login"><input type="hidden" name="next" value="{h(next_url)}">
<label>Admin token or API key <input type="password" name="token" autocomplete="current-password" autofocus
required></label><button type="submit">Sign in</button></form></section>"""
    return layout(Principal("?"), "", "Sign in", body, signed_in=False, page="login")


def error_page(who: Principal, status: int, message: str) -> str:
    body = f'<section class="card"><h1>{status}</h1><p class="error">{h(message)}</p></section>'
    return layout(who, "", f"Error {status}", body)


# ---------------------------------------------------------------------- invocations


def _query(params: Mapping[str, str], **changes: str | None) -> str:
    merged = {k: v for k, v in params.items() if v}
    for k, v in changes.items():
        if v is None:
            merged.pop(k, None)
        else:
            merged[k] = v
    return urlencode(merged)


def invocations_page(who: Principal, data: Mapping[str, Any], params: Mapping[str, str],
                     services: Sequence[str]) -> str:
    def field(name: str, label: str, placeholder: str = "", datalist: str = "") -> str:
        extra = f' list="{datalist}"' if datalist else ""
        return (f'<label>{h(label)}<input name="{name}" value="{h(params.get(name, ""))}" '
                f'placeholder="{h(placeholder)}"{extra}></label>')

    current = params.get("status", "")
    options = '<option value="">any</option>' + "".join(
        f'<option value="{s}"{" selected" if s == current else ""}>{h(s.replace("_", " "))}</option>'
        for s in STATUS_FILTERS)
    tenant = field("tenant", "Tenant", "any") if who.admin else ""
    datalist = '<datalist id="services">' + "".join(f'<option value="{h(s)}">' for s in services) + "</datalist>"
    form = f"""<form class="filters" method="get" action="/invocations" data-testid="filters">
{field("q", "Search", "invocation id or idempotency key")}
<label>Status<select name="status">{options}</select></label>
{field("service", "Service", "any", "services")}{field("handler", "Handler", "any")}{field("key", "Key", "any")}
{tenant}{field("deployment", "Deployment", "ID@VERSION")}{field("since", "Created after", "1h, 7d or 2026-12-01T10:00")}
{field("until", "Created before", "UTC")}<input type="hidden" name="limit" value="{h(params.get("limit", ""))}">
<div class="buttons"><button type="submit">Filter</button><a class="button secondary" href="/invocations">Clear</a></div>
{datalist}</form>"""
    rows = []
    for inv in data["invocations"]:
        rows.append(f"""<tr data-id="{h(inv["id"])}"><td class="id" title="{h(inv["id"])}">{link_inv(inv["id"])}</td>
<td><span class="target">{h(inv["service"])}/<b>{h(inv["handler"])}</b></span>{f' <span class="key">{h(inv["key"])}</span>' if inv["key"] else ""}</td>
<td>{badge(inv["status"], inv["outcome"])}</td><td>{h(inv["tenant"])}</td><td class="num">{inv["attempts"]}</td>
<td class="num">{inv["journal_length"]}</td><td>{when(inv["created_at_ms"])}</td><td>{when(inv["modified_at_ms"])}</td>
<td class="mono small" title="{h(inv["deployment"])}">{h(inv["deployment"])}</td></tr>""")
    table = ('<div class="scroll"><table class="list" data-testid="invocations"><thead><tr><th>Invocation</th><th>Target</th><th>Status</th>'
             '<th>Tenant</th><th>Attempts</th><th>Journal</th><th>Created (UTC)</th><th>Modified</th>'
             '<th>Deployment</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table></div>"
             if rows else '<p class="empty" data-testid="no-invocations">No invocation matches these filters.</p>')
    pager = []
    if params.get("page"):
        pager.append(f'<a class="button secondary" href="/invocations?{h(_query(params, page=None))}">« First page</a>')
    if data["next_page"]:
        pager.append(f'<a class="button" rel="next" data-testid="next-page" '
                     f'href="/invocations?{h(_query(params, page=data["next_page"]))}">Next page »</a>')
    count = f'<span class="muted">{len(data["invocations"])} on this page</span>'
    body = (f'<h1>Invocations</h1>{form}<div class="pager">{count}{"".join(pager)}</div>{table}'
            f'<div class="pager">{"".join(pager)}</div>')
    return layout(who, "invocations", "Invocations", body)


def _wait_html(w: Mapping[str, Any]) -> str:
    kind = w["kind"]
    if kind == "timer":
        return f'a timer <b>{h(w["name"])}</b> (entry #{w["index"]}), due {when(w["due_at_ms"])}'
    if kind == "awakeable":
        return f'an awakeable (entry #{w["index"]}) <code class="mono">{h(w["awakeable_id"])}</code>'
    if kind == "call":
        return f'a call to <b>{h(w["target"])}</b> (entry #{w["index"]}): {link_inv(w["child"])}'
    if kind == "promise":
        return f'the promise <b>{h(w["name"])}</b> of workflow {h(w["workflow"])} [{h(w["key"])}]'
    if kind == "scheduled":
        return f"its start, scheduled for {when(w['due_at_ms'])}"
    if kind == "inbox":
        return f"its turn in the inbox of {h(w['target'])}"
    if kind == "retry":
        after = f' after <span class="failure">({w["after"]["code"]}) {h(w["after"]["message"])}</span>' if w["after"] else ""
        return f"a retry at {when(w['due_at_ms'])}{after}"
    if kind == "paused":
        return "an operator: it is paused (resume it to go on)"
    if kind in ("worker", "deployment"):
        return h(w["detail"])
    return f'{h(kind)} <b>{h(w.get("name", ""))}</b>'


def invocation_header(data: Mapping[str, Any]) -> str:
    """The invocation page's header: re-fetched while the invocation runs (live updates)."""
    d = data
    facts = [("Tenant", h(d["tenant"])), ("Attempts", f'<span data-testid="attempts">{d["attempts"]}</span>'),
             ("Journal entries", f'<span data-testid="journal-length">{d["journal_length"]}</span>'),
             ("Pinned deployment", f'<span class="mono">{h(d["deployment"]) or "—"}</span>'),
             ("Partition", str(d["partition"])), ("On a worker", "yes" if d["on_worker"] else "no"),
             ("Created", when(d["created_at_ms"])), ("Modified", when(d["modified_at_ms"])),
             ("Completed", when(d["completed_at_ms"]))]
    if d["idempotency_key"]:
        facts.append(("Idempotency key", f'<span class="mono">{h(d["idempotency_key"])}</span>'))
    if d["caller"]:
        facts.append(("Called by", link_inv(d["caller"])))
    if d["first_deployment"] and d["first_deployment"] != d["deployment"]:
        facts.append(("First pinned to", f'<span class="mono">{h(d["first_deployment"])}</span>'))
    if d["cancel_requested"] and not d["final"]:
        facts.append(("Cancel", "requested"))
    grid = "".join(f"<div><dt>{label}</dt><dd>{value}</dd></div>" for label, value in facts)
    waits = ""
    if d["waits"]:
        waits = ('<div class="waits" data-testid="waits"><h3>Waiting for</h3><ul>'
                 + "".join(f'<li data-kind="{h(w["kind"])}">{_wait_html(w)}</li>' for w in d["waits"]) + "</ul></div>")
    failure = ""
    if d["last_failure"] and not d["final"]:
        f = d["last_failure"]
        failure = f'<p class="failure">Last attempt failed ({f["code"]}): {h(f["message"])}</p>'
    moves = "".join(f'<li>{when(m["at_ms"])} moved from <span class="mono">{h(m["from"])}</span> to '
                    f'<span class="mono">{h(m["to"])}</span> ({h(m["reason"])})</li>' for m in d["moves"])
    moves = f'<ul class="moves">{moves}</ul>' if moves else ""
    io = f'<div class="io"><div><h3>Input</h3>{payload(d["input"]) or "<span class=muted>none</span>"}</div>'
    if d["final"]:
        io += f'<div><h3>Result</h3><div data-testid="result">{payload(d["result"]) or "—"}</div></div>'
    io += "</div>"
    buttons = "".join(f'<button type="button" class="action {"danger" if a in ("kill", "purge", "cancel") else ""}" '
                      f'data-action="{a}" data-testid="action-{a}">{a.capitalize()}</button>' for a in d["actions"])
    actions = f'<div class="actions">{buttons}</div>' if buttons else ""
    key = f' <span class="key">{h(d["key"])}</span>' if d["key"] else ""
    live = "" if d["final"] else '<span class="live" title="updates live">● live</span>'
    return f"""<section id="inv-header" class="card" data-id="{h(d["id"])}" data-final="{str(d["final"]).lower()}"
data-status="{h(d["status"])}" data-journal-length="{d["journal_length"]}" data-has-streams="{str(d["has_streams"]).lower()}">
<div class="title"><h1 class="mono" data-testid="invocation-id">{h(d["id"])}</h1>{badge(d["status"], d["outcome"])}{live}</div>
<p class="target-line"><span class="target">{h(d["service"])}/<b>{h(d["handler"])}</b></span>{key}
<span class="muted">{h(d["handler_kind"])} handler, {h(d["priority"])} priority</span></p>
{actions}<dl class="facts">{grid}</dl>{waits}{failure}{moves}{io}</section>"""


def journal_items(invocation_id: str, entries: Sequence[Mapping[str, Any]]) -> str:
    """Journal entries as timeline items (a page of them: the script appends later pages)."""
    out = []
    for e in entries:
        ref = f"{invocation_id}/{e['index']}"
        detail = []
        if e["kind"] in ("call", "send"):
            arrow = "→" if e["kind"] == "call" else "⇢"
            detail.append(f'{arrow} <b>{h(e["target"])}</b> {link_inv(e.get("child"))}')
            if e["kind"] == "send":
                detail.append("one-way" + (f", at {when(e['execute_at_ms'])}" if e.get("execute_at_ms") else ""))
        elif e["kind"] == "sleep":
            detail.append(f"until {when(e['wake_at_ms'])}")
        elif e["kind"] == "awakeable":
            detail.append(f'<code class="mono">{h(e["awakeable_id"])}</code>')
        elif e["kind"] in ("set_state", "promise_complete") and e.get("value"):
            detail.append(payload(e["value"], entry=ref))
        elif e["kind"] == "combinator":
            detail.append("completed in order: " + ", ".join(f"#{i}" for i in e["completed"]))
        elif e["kind"] == "meter":
            detail.append(", ".join(f"{h(k)} {number(v)}" for k, v in e["counters"].items()))
        if e.get("usage"):
            detail.append('<span class="muted">' + ", ".join(f"{h(k)} {number(v)}" for k, v in e["usage"].items())
                          + "</span>")
        result = payload(e["result"], entry=ref)
        if not e["complete"]:
            result = '<span class="badge st-pending">pending</span>'
        delta = f'<span class="delta">+{duration_text(e["since_previous_ms"])}</span>' if e["since_previous_ms"] is not None else ""
        out.append(f"""<li class="entry kind-{h(e["kind"])}" data-index="{e["index"]}" data-complete="{str(e["complete"]).lower()}">
<div class="entry-head"><span class="idx">#{e["index"]}</span><span class="kind">{h(e["kind"].replace("_", " "))}</span>
<span class="name">{h(e["name"])}</span>{when(e["appended_at_ms"])}{delta}</div>
<div class="entry-body">{"".join(f'<div class="detail">{d}</div>' for d in detail)}<div class="result">{result}</div></div></li>""")
    return "".join(out)


def invocation_page(who: Principal, data: Mapping[str, Any]) -> str:
    shown = len(data["journal"])
    more = ""
    if data["journal_next"] is not None:
        more = (f'<button type="button" id="journal-more" data-next="{data["journal_next"]}" data-testid="journal-more">'
                f'Load more entries</button>')
    streams = (f'<section id="streams" class="card" data-id="{h(data["id"])}" '
               f'{"" if data["has_streams"] else "hidden"}><h2>Live streams</h2><div class="streams"></div></section>')
    body = f"""<p class="crumbs"><a href="/invocations">Invocations</a> / <span class="mono">{h(data["id"])}</span></p>
{invocation_header(data)}{streams}
<section class="card"><h2>Journal <span class="muted" id="journal-count">{shown} of {data["journal_length"]} shown</span></h2>
<ol id="journal" class="timeline" data-id="{h(data["id"])}" data-testid="journal">{journal_items(data["id"], data["journal"])}</ol>
{more}</section>"""
    return layout(who, "invocations", data["id"], body, page="invocation")


# ---------------------------------------------------------------------- services


def services_page(who: Principal, data: Mapping[str, Any]) -> str:
    cards = []
    for s in data["services"]:
        handlers = "".join(
            f"""<tr><td><b>{h(hd["name"])}</b></td><td>{h(hd["kind"])}</td><td>{_schema(hd["input_schema"])}</td>
<td>{_schema(hd["output_schema"])}</td></tr>""" for hd in s["handlers"])
        workers = "".join(
            f"""<li><span class="mono">{h(w["name"])}</span> <meter min="0" max="{max(1, w["concurrency"])}" value="{w["active"]}">
</meter> {w["active"]} / {w["concurrency"]} running <span class="muted mono">{h(w["deployment"])}</span></li>"""
            for w in s["workers"]) or '<li class="muted">no worker connected</li>'
        cards.append(f"""<section class="card service" data-service="{h(s["name"])}"><h2>{h(s["name"])}
<span class="muted">{h(s["kind"].replace("_", " "))}</span></h2>
<p>latest deployment <span class="mono">{h(s["deployment"])}</span></p>
<table class="list"><thead><tr><th>Handler</th><th>Kind</th><th>Input schema</th><th>Output schema</th></tr></thead>
<tbody>{handlers}</tbody></table><h3>Workers</h3><ul class="workers">{workers}</ul></section>""")
    rows = "".join(
        f"""<tr><td class="mono">{h(d["ref"])}</td><td>{h(", ".join(d["services"]))}</td><td>{h(", ".join(d["latest_for"])) or "—"}</td>
<td>{"draining" if d["draining"] else "active"}</td><td class="num">{len(d["workers"])}</td>
<td class="num" data-testid="in-flight">{d["in_flight"]}</td><td class="num">{d["waiting"]}</td><td>{when(d["registered_at_ms"])}</td></tr>"""
        for d in data["deployments"])
    deployments = (f'<section class="card"><h2>Deployments</h2><table class="list" data-testid="deployments"><thead><tr>'
                   f'<th>Version</th><th>Services</th><th>Latest for</th><th>State</th><th>Workers</th><th>In flight</th>'
                   f'<th>Waiting</th><th>Registered</th></tr></thead><tbody>{rows}</tbody></table></section>')
    empty = '' if data["services"] else '<p class="empty">No service is registered yet: start a worker.</p>'
    body = f'<h1>Services and deployments</h1>{empty}{"".join(cards)}{deployments}'
    return layout(who, "services", "Services", body)


def _schema(text: str) -> str:
    if not text:
        return '<span class="muted">any JSON</span>'
    try:
        pretty = json.dumps(json.loads(text), indent=2)
    except ValueError:
        pretty = text
    short = text if len(text) <= 60 else text[:57] + "…"
    return f'<details><summary><code>{h(short)}</code></summary><pre>{h(pretty)}</pre></details>'


# ---------------------------------------------------------------------- state


def state_page(who: Principal, keyed: Sequence[Mapping[str, str]], params: Mapping[str, str],
               keys: Mapping[str, Any] | None, obj: Mapping[str, Any] | None) -> str:
    service = params.get("service", "")
    options = "".join(f'<option value="{h(s["name"])}"{" selected" if s["name"] == service else ""}>'
                      f'{h(s["name"])} ({h(s["kind"].replace("_", " "))})</option>' for s in keyed)
    tenant = (f'<label>Tenant<input name="tenant" value="{h(params.get("tenant", ""))}" placeholder="default"></label>'
              if who.admin else "")
    form = f"""<form class="filters" method="get" action="/state"><label>Object or workflow<select name="service">
<option value="">choose…</option>{options}</select></label>{tenant}
<label>Key<input name="key" value="{h(params.get("key", ""))}" placeholder="any key"></label>
<div class="buttons"><button type="submit">Show</button></div></form>"""
    left = ""
    if keys is not None:
        what = "with promises" if keys["kind"] == "workflow" else "with state"
        items = "".join(f'<li><a href="/state?{h(_query(params, key=k, page=None))}">{h(k)}</a></li>'
                        for k in keys["keys"]) or f'<li class="muted">no key {what}</li>'
        more = (f'<a class="button secondary" href="/state?{h(_query(params, page=keys["next_page"], key=None))}">'
                f'More keys »</a>' if keys["next_page"] else "")
        left = (f'<section class="card keys"><h2>Keys {what}</h2><p class="muted">tenant {h(keys["tenant"])}</p>'
                f'<ul data-testid="keys">{items}</ul>{more}</section>')
    right = ""
    if obj is not None:
        rows = "".join(f'<tr><td class="mono">{h(s["name"])}</td><td>{payload(s["value"])}</td></tr>'
                       for s in obj["state"])
        state = (f'<table class="list" data-testid="state"><thead><tr><th>Name</th><th>Value</th></tr></thead>'
                 f'<tbody>{rows}</tbody></table>' if rows else '<p class="muted">no state</p>')
        promises = ""
        if obj["kind"] == "workflow":
            prow = "".join(
                f"""<tr><td class="mono">{h(p["name"])}</td><td>{payload(p["result"]) if p["resolved"] else '<span class="badge st-pending">pending</span>'}</td>
<td>{" ".join(link_inv(w["id"]) for w in p["waiters"]) or "—"}</td></tr>""" for p in obj["promises"])
            promises = ('<h3>Promises</h3>' + (f'<table class="list" data-testid="promises"><thead><tr><th>Name</th>'
                        f'<th>Result</th><th>Waiting</th></tr></thead><tbody>{prow}</tbody></table>'
                        if prow else '<p class="muted">no promise</p>'))
        right = (f'<section class="card object"><h2>{h(obj["service"])} <span class="key">{h(obj["key"])}</span></h2>'
                 f'<p class="muted">tenant {h(obj["tenant"])}</p><h3>State</h3>{state}{promises}</section>')
    empty = "" if keyed else '<p class="empty">No virtual object or workflow is registered.</p>'
    body = f'<h1>State</h1>{empty}{form}<div class="columns">{left}{right}</div>'
    return layout(who, "state", "State", body)


# ---------------------------------------------------------------------- tenants


def usage_chart(tenant: Mapping[str, Any], counter: str) -> str:
    """Daily usage of one counter as an inline SVG bar chart."""
    values = [float(day["counters"].get(counter, 0)) for day in tenant["usage"]]
    width, height, pad, top = 560, 150, 30, 16
    n = max(1, len(values))
    peak = max(values) if values and max(values) > 0 else 1.0
    slot = (width - pad) / n
    bars = []
    for i, (day, value) in enumerate(zip(tenant["usage"], values, strict=True)):
        bar = (height - pad - top) * value / peak
        x = pad + i * slot + slot * 0.15
        y = height - pad - bar
        bars.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{max(bar, 0.5):.1f}" '
                    f'class="bar"><title>{h(day["day"])}: {number(value)} {h(counter)}</title></rect>')
        if i % max(1, n // 7) == 0 or i == n - 1:
            bars.append(f'<text x="{pad + i * slot + slot / 2:.1f}" y="{height - 10}" class="axis" '
                        f'text-anchor="middle">{h(day["day"][5:])}</text>')
    axis = (f'<line x1="{pad}" y1="{height - pad}" x2="{width}" y2="{height - pad}" class="axis-line"/>'
            f'<text x="{pad - 4}" y="{top + 4}" class="axis" text-anchor="end">{number(peak)}</text>'
            f'<text x="{pad - 4}" y="{height - pad}" class="axis" text-anchor="end">0</text>')
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{h(counter)} per day" '
            f'data-testid="usage-chart">{axis}{"".join(bars)}</svg>')


def tenants_page(who: Principal, data: Mapping[str, Any], counter: str) -> str:
    counters = sorted({c for t in data["tenants"] for c in t["totals"]} | {"invocations"})
    pick = "".join(f'<option value="{h(c)}"{" selected" if c == counter else ""}>{h(c)}</option>' for c in counters)
    picker = (f'<form class="filters inline" method="get" action="/tenants"><label>Chart<select name="counter">{pick}'
              f'</select></label><button type="submit">Show</button></form>')
    cards = []
    for t in data["tenants"]:
        lim = t["limits"]

        def limit_field(name: str, label: str, lim: Mapping[str, Any] = lim) -> str:
            value = "" if lim[name] is None else lim[name]
            disabled = "" if who.admin else " disabled"
            return (f'<label>{h(label)}<input name="{name}" value="{h(value)}" placeholder="unlimited" '
                    f'inputmode="decimal"{disabled}></label>')

        buttons = ('<div class="buttons"><button type="submit">Save limits</button>'
                   '<button type="button" class="secondary" data-clear-limits>Clear</button></div>') if who.admin else ""
        totals = "".join(f"<tr><td>{h(k)}</td><td class=num>{number(v)}</td></tr>" for k, v in sorted(t["totals"].items()))
        cards.append(f"""<section class="card tenant" data-tenant="{h(t["name"])}"><h2>{h(t["name"])}</h2>
<div class="stats"><div><span class="big" data-testid="backlog">{t["backlog"]}</span> queued</div>
<div><span class="big">{t["running"]}</span> running</div>
<div><span class="big" data-testid="rejected">{t["rejected"]}</span> rejected <span class="muted">(this node)</span></div></div>
<div class="columns"><div><h3>{h(counter)} per day (UTC)</h3>{usage_chart(t, counter)}</div>
<div><h3>Limits</h3><form class="limits" data-tenant="{h(t["name"])}">
{limit_field("max_running", "Max running")}{limit_field("rate_per_s", "Starts / s")}{limit_field("burst", "Burst")}
{limit_field("max_backlog", "Max queued")}{limit_field("weight", "Weight")}{buttons}</form></div></div>
<details><summary>Usage over {len(data["days"])} days</summary><table class="list"><tbody>{totals or "<tr><td class=muted>none</td></tr>"}</tbody></table></details>
</section>""")
    targets = ""
    if data["targets"]:
        rows = "".join(f'<tr><td class="mono">{h(tg["name"])}</td>'
                       + "".join(f'<td class="num">{number(tg["limits"][k]) if tg["limits"][k] is not None else "—"}</td>'
                                 for k in ("max_running", "rate_per_s", "burst", "max_backlog"))
                       + f'<td class="num">{tg["running"]}</td></tr>' for tg in data["targets"])
        targets = (f'<section class="card"><h2>Handler limits</h2><table class="list"><thead><tr><th>Target</th>'
                   f'<th>Max running</th><th>Starts / s</th><th>Burst</th><th>Max queued</th><th>Running</th></tr></thead>'
                   f'<tbody>{rows}</tbody></table></section>')
    total = (f'<p class="muted">{data["rejected_total"]} requests refused for overload on this node since it started.</p>'
             if data["rejected_total"] is not None else "")
    body = f'<h1>Tenants</h1>{picker}{total}{"".join(cards)}{targets}'
    return layout(who, "tenants", "Tenants", body)


# ---------------------------------------------------------------------- cluster


def cluster_page(who: Principal, data: Mapping[str, Any]) -> str:
    nodes = "".join(
        f"""<tr><td>node {n["node"]}{" (this one)" if n["this"] else ""}</td><td><span class="badge health-{h(n["health"])}">{h(n["health"])}</span></td>
<td class="mono">{h(n["admin"]) or "—"}</td><td class="mono">{h(n["ingress"]) or "—"}</td>
<td>{h(", ".join(str(p) for p in n["partitions"]))}</td><td class="num">{n["answering"]} / {len(n["partitions"])}</td></tr>"""
        for n in data["nodes"])
    parts = "".join(
        f"""<tr><td class="num">{p["partition"]}</td><td>{h(p["node"]) or "—"}</td><td>{"yes" if p["leader"] else "no"}</td>
<td class="num">{p["leader_epoch"]}</td><td class="num">{p["applied_lsn"]}</td><td class="num">{p["log_tail"]}</td>
<td class="num{" warn" if (p["apply_lag"] or 0) > 1000 else ""}">{p["apply_lag"] if p["apply_lag"] is not None else "unavailable"}</td>
<td class="num">{p["trim_point"]}</td><td class="num">{p["timers_in_memory"]}</td>
<td class="small mono">{h(" → ".join(f'{s["base_lsn"]}{" (sealed)" if s["sealed"] else ""}' for s in p["segments"]))}</td></tr>"""
        for p in data["partitions"])
    body = f"""<h1>Cluster</h1><section class="card"><h2>Nodes</h2><table class="list" data-testid="nodes"><thead><tr>
<th>Node</th><th>Health</th><th>Admin</th><th>Ingress</th><th>Partitions</th><th>Answering</th></tr></thead><tbody>{nodes}</tbody>
</table></section><section class="card"><h2>Partitions</h2><table class="list" data-testid="partitions"><thead><tr>
<th>Partition</th><th>Node</th><th>Leader</th><th>Epoch</th><th>Applied LSN</th><th>Log tail</th><th>Apply lag</th>
<th>Trim point</th><th>Timers</th><th>Segments</th></tr></thead><tbody>{parts}</tbody></table></section>"""
    return layout(who, "cluster", "Cluster", body)
