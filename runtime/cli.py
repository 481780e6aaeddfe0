"""The `endure` command: one entry point for the runtime, workers, and the operator's tools."""

from __future__ import annotations

from importlib.metadata import version

import typer

app = typer.Typer(
    name="endure",
    help="Endure: durable execution for cloud AI agents.",
    no_args_is_help=True,
    add_completion=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"endure {version('endure')}")
        raise typer.Exit()


@app.callback()
def _root(
    version_: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Endure: durable execution for cloud AI agents."""


def main() -> None:
    app()
