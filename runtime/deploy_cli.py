"""`endure deployments ...` and `endure replay`: operate deployment versions, and check new code
against the journals of real invocations before it ships."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from endure.proto import admin_pb2 as apb
from endure.proto.deployments import ref_text, short
from endure.runtime.cli_common import ADMIN_OPT, JSON_OPT, admin_call, console, dump, ms_text

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
