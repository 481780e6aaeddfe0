"""What every `endure` subcommand module shares: the console, common options, admin calls."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NoReturn

import grpc
import typer
from google.protobuf.json_format import MessageToDict
from rich.console import Console

from endure.proto import admin_pb2_grpc as apb_grpc

console = Console()

INGRESS_OPT = typer.Option("127.0.0.1:7070", "--ingress", envvar="ENDURE_INGRESS", help="ingress HOST:PORT")
ADMIN_OPT = typer.Option("127.0.0.1:7071", "--admin", envvar="ENDURE_ADMIN", help="admin HOST:PORT")
JSON_OPT = typer.Option(False, "--json", help="print JSON for scripts")


def fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def admin_stub(address: str) -> tuple[grpc.Channel, apb_grpc.AdminStub]:
    channel = grpc.insecure_channel(address)
    return channel, apb_grpc.AdminStub(channel)


def admin_call(address: str, method: str, request: Any) -> Any:
    """One admin RPC; an RPC error ends the command with its status and message."""
    channel, stub = admin_stub(address)
    try:
        return getattr(stub, method)(request, timeout=30)
    except grpc.RpcError as exc:
        fail(f"{exc.code().name}: {exc.details()}")
    finally:
        channel.close()


def ms_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if ms else "-"


def dump(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)
