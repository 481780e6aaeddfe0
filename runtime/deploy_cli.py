"""`endure deployments ...` and `endure replay`: operate deployment versions, and check new code
against the journals of real invocations before it ships."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from endure.proto import admin_pb2 as apb
from endure.proto.deployments import ref_text, short
from endure.runtime.cli_common import ADMIN_OPT, JSON_OPT, admin_call, console, dump, fail, ms_text

deployments_app = typer.Typer(help="Deployment versions: list, promote, drain, remove, and check new code.",
                              no_args_is_help=True)


def _state(info: apb.DeploymentInfo) -> str:
    if info.draining:
        return "draining"
    return "latest" if info.latest_for else "active"


@deployments_app.command("list")
def deployments_list(admin: str = ADMIN_OPT, as_json: bool = JSON_OPT) -> None:
    """Every deployment version: its services, connected workers, and pinned in-flight invocations."""
    resp = admin_call(admin, "ListDeployments", apb.ListDeploymentsRequest())
    if as_json:
        typer.echo(json.dumps(dump(resp)))
        return
    table = Table("deployment", "state", "services", "latest for", "workers", "in flight", "waiting", "registered")
    for d in resp.deployments:
        table.add_row(short(ref_text(d.deployment)), _state(d), ", ".join(d.services), ", ".join(d.latest_for) or "-",
                      str(len(d.workers)), str(d.in_flight), str(d.waiting), ms_text(d.registered_at_ms))
    console.print(table)


def _print_info(info: apb.DeploymentInfo) -> None:
    console.print(f"[bold]{ref_text(info.deployment)}[/bold]  {_state(info)}", highlight=False)
    console.print(f"services: {', '.join(info.services)}; latest for: {', '.join(info.latest_for) or '-'}",
                  highlight=False)
    console.print(f"registered {ms_text(info.registered_at_ms)}"
                  + (f", promoted {ms_text(info.promoted_at_ms)}" if info.promoted_at_ms else ""), highlight=False)
    console.print(f"in flight: {info.in_flight} pinned, {info.waiting} waiting for a worker of it", highlight=False)
    for w in info.workers:
        console.print(f"  worker {w.name} ({w.worker_id}): {w.active}/{w.concurrency} running", highlight=False)
    if not info.workers:
        console.print("  no worker of it is connected", highlight=False)


@deployments_app.command("describe")
def deployments_describe(deployment: str = typer.Argument(..., help="ID@VERSION, or a version (prefix)"),
                         admin: str = ADMIN_OPT, as_json: bool = JSON_OPT) -> None:
    """One deployment version in full."""
    info = admin_call(admin, "DescribeDeployment", apb.DeploymentRequest(deployment=deployment))
    if as_json:
        typer.echo(json.dumps(dump(info)))
    else:
        _print_info(info)


@deployments_app.command("promote")
def deployments_promote(deployment: str = typer.Argument(..., help="ID@VERSION, or a version (prefix)"),
                        admin: str = ADMIN_OPT, as_json: bool = JSON_OPT) -> None:
    """Send new invocations of the version's services to it (a rollback: promote the old version)."""
    info = admin_call(admin, "PromoteDeployment", apb.DeploymentRequest(deployment=deployment))
    if as_json:
        typer.echo(json.dumps(dump(info)))
    else:
        typer.echo(f"promoted {ref_text(info.deployment)}: latest for {', '.join(info.latest_for) or 'no service'}")


@deployments_app.command("drain")
def deployments_drain(deployment: str = typer.Argument(..., help="ID@VERSION, or a version (prefix)"),
                      admin: str = ADMIN_OPT, as_json: bool = JSON_OPT) -> None:
    """Send no new invocation to the version; those pinned to it still finish there."""
    info = admin_call(admin, "DrainDeployment", apb.DeploymentRequest(deployment=deployment))
    if as_json:
        typer.echo(json.dumps(dump(info)))
    else:
        typer.echo(f"draining {ref_text(info.deployment)}: {info.in_flight} pinned invocation(s) still in flight")


@deployments_app.command("remove")
def deployments_remove(deployment: str = typer.Argument(..., help="ID@VERSION, or a version (prefix)"),
                       force: bool = typer.Option(False, "--force",
                                                  help="move pinned invocations to their service's latest version"),
                       admin: str = ADMIN_OPT, as_json: bool = JSON_OPT) -> None:
    """Forget a version. Refused while invocations are pinned to it, unless --force moves them."""
    resp = admin_call(admin, "RemoveDeployment", apb.RemoveDeploymentRequest(deployment=deployment, force=force))
    if as_json:
        typer.echo(json.dumps(dump(resp)))
        return
    moved = f"; moved {resp.moved} pinned invocation(s) to their service's latest version" if force else ""
    typer.echo(f"removed {ref_text(resp.removed)}{moved}")


# ---------------------------------------------------------------------- checking code against journals


def _load(app_ref: str) -> tuple[Any, str]:
    """The app at MODULE:APP and the version it would register as ("MODULE:APP@VERSION")."""
    from endure.sdk.worker import load_app

    try:
        app = load_app(app_ref)
        return app, f"{app_ref}@{app.deployment_version()}"
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        fail(f"cannot load {app_ref}: {exc}", 2)


def _replay(app: Any, described: apb.InvocationDescription) -> Any:
    from endure.sdk.replay import Replayer

    s = described.status
    return Replayer(app).replay(s.target, s.handler_kind, s.input, list(described.journal), headers=dict(s.headers),
                                invocation_id=s.invocation_id)


@deployments_app.command("check")
def deployments_check(app_ref: str = typer.Argument(..., metavar="MODULE:APP", help="the new code"),
                      admin: str = ADMIN_OPT, as_json: bool = JSON_OPT) -> None:
    """Replay every in-flight invocation of the app's services against the app, locally and with no
    side effects; list which would diverge. Exit status 0 when all replay cleanly."""
    from endure.sdk.replay import format_divergence

    app, version = _load(app_ref)
    rows: list[dict[str, Any]] = []
    for service in sorted(svc.name for svc in app.services):
        token = ""
        while True:
            page = admin_call(admin, "ListInvocations", apb.ListInvocationsRequest(
                service=service, in_flight=True, page_size=1000, page_token=token))
            for summary in page.invocations:
                described = admin_call(admin, "DescribeInvocation",
                                       apb.InvocationRef(invocation_id=summary.status.invocation_id))
                result = _replay(app, described)
                s = described.status
                pinned = ref_text(s.deployment)
                rows.append({"invocation_id": s.invocation_id, "target": f"{s.target.service}/{s.target.handler}",
                             "pinned_to": pinned, "ok": result.ok, "journal_length": result.journal_length,
                             "divergence_index": result.divergence.index if result.divergence else None,
                             "message": format_divergence(result, pinned or None, None)})
            token = page.next_page_token
            if not token:
                break
    failing = [r for r in rows if not r["ok"]]
    if as_json:
        typer.echo(json.dumps({"deployment": version, "checked": len(rows), "diverging": len(failing),
                               "invocations": rows}))
    else:
        table = Table("invocation", "target", "pinned to", "result")
        for r in rows:
            table.add_row(r["invocation_id"], r["target"], short(r["pinned_to"]) if r["pinned_to"] else "-",
                          ("" if r["ok"] else "[red]") + r["message"], )
        if rows:
            console.print(table)
        console.print(f"{len(rows) - len(failing)} of {len(rows)} in-flight invocation(s) replay cleanly on "
                      f"{version}" + (f"; {len(failing)} would not" if failing else ""), highlight=False)
    raise typer.Exit(1 if failing else 0)


def replay(invocation_id: str = typer.Argument(..., help="the invocation whose journal to replay"),
           app_ref: str = typer.Option(..., "--app", metavar="MODULE:APP", help="the code to replay it against"),
           admin: str = ADMIN_OPT, as_json: bool = JSON_OPT) -> None:
    """Replay one invocation's journal against the app, locally: no step runs, nothing is appended.
    Reports "replays cleanly" or the first divergence. Exit status 0 when it replays cleanly."""
    from endure.sdk.replay import format_divergence

    described = admin_call(admin, "DescribeInvocation", apb.InvocationRef(invocation_id=invocation_id))
    app, version = _load(app_ref)
    result = _replay(app, described)
    pinned = ref_text(described.status.deployment) or None
    text = format_divergence(result, pinned, version)
    if as_json:
        d = result.divergence
        typer.echo(json.dumps({"invocation_id": invocation_id, "ok": result.ok, "matched": result.matched,
                               "journal_length": result.journal_length, "complete": result.complete,
                               "divergence": None if d is None else {"index": d.index, "recorded": d.recorded,
                                                                     "actual": d.actual},
                               "error": result.error, "message": text}))
    else:
        console.print(text, highlight=False)
    raise typer.Exit(0 if result.ok else 1)
