"""The `endure` command: one entry point for the runtime, workers, and the operator's tools."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich import box
from rich.table import Column, Table

from endure.proto import admin_pb2 as apb
from endure.proto import journal
from endure.proto import records_pb2 as pb
from endure.proto import worker_pb2 as wpb
from endure.proto.deployments import ref_text
from endure.runtime.cli_common import ADMIN_OPT, INGRESS_OPT, JSON_OPT, console
from endure.runtime.cli_common import admin_call as _admin_call
from endure.runtime.cli_common import dump as _dump
from endure.runtime.cli_common import fail as _fail
from endure.runtime.cli_common import ms_text as _ms
from endure.runtime.deploy_cli import deployments_app, replay
from endure.runtime.launcher import ExitedEarly, Launcher, NotReady, die_with_parent, serve_argv, worker_argv

T = TypeVar("T")

app = typer.Typer(
    name="endure",
    help="Endure: durable execution for cloud AI agents.",
    no_args_is_help=True,
    add_completion=False,
)
invocations_app = typer.Typer(help="List, inspect and act on invocations.", no_args_is_help=True)
app.add_typer(invocations_app, name="invocations")
app.add_typer(deployments_app, name="deployments")
app.command("replay")(replay)


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


def _setup_logging(level: str) -> None:
    from endure.sdk.logs import setup_logging

    setup_logging(level, os.environ.get("ENDURE_LOG_FORMAT", "text"))


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)


# ---------------------------------------------------------------------- runtime and workers


@app.command()
def serve(
    data_dir: Path | None = typer.Option(None, "--data-dir", help="RocksDB folder (default .endure)"),
    partitions: int | None = typer.Option(None, "--partitions", help="partition count, fixed at creation"),
    ingress: str | None = typer.Option(None, "--ingress", help="client API HOST:PORT (default 127.0.0.1:7070)"),
    admin: str | None = typer.Option(None, "--admin", help="admin + worker HOST:PORT (default 127.0.0.1:7071)"),
    metrics: str | None = typer.Option(None, "--metrics", help="Prometheus HOST:PORT (default 127.0.0.1:9464; 'off')"),
    console: str | None = typer.Option(None, "--console", help="web console HOST:PORT (default 127.0.0.1:7072; "
                                       "'off'); with --processes N node 0 serves it"),
    config: Path | None = typer.Option(None, "--config", help="TOML config file"),
    log_level: str = typer.Option("INFO", "--log-level", envvar="ENDURE_LOG_LEVEL"),
    processes: str = typer.Option("auto", "--processes", envvar="ENDURE_PROCESSES",
                                  help="node processes: a count, or 'auto' (a new data dir: one per core, "
                                       "at most one per partition; else what it was created with); fixed "
                                       "when the data dir is created"),
    cluster_nats: str | None = typer.Option(None, "--cluster-nats", envvar="ENDURE_CLUSTER_NATS",
                                            help="cluster mode: NATS JetStream URLs, comma-separated"),
    cluster_node_id: int | None = typer.Option(None, "--cluster-node-id", envvar="ENDURE_CLUSTER_NODE_ID",
                                               help="cluster mode: this node's id, unique in the cluster"),
    cluster_snapshots: str | None = typer.Option(None, "--cluster-snapshots", envvar="ENDURE_CLUSTER_SNAPSHOTS",
                                                 help='cluster mode: "dir:PATH" or "s3://BUCKET/PREFIX"'),
    node_id: int | None = typer.Option(None, "--node-id", hidden=True),  # set by the supervisor
    nodes: int | None = typer.Option(None, "--nodes", hidden=True),
) -> None:
    """Run the runtime: ingress, admin API, worker endpoint and the partitions, until SIGTERM."""
    from endure.runtime.config import ConfigError, load_config
    from endure.runtime.data_format import DataFormatError
    from endure.runtime.datadir import DataDirLocked
    from endure.runtime.node import Node
    from endure.runtime.placement import PlacementError
    from endure.runtime.ready import ReadyLine

    _setup_logging(log_level)
    try:
        cluster = {k: v for k, v in (("nats", cluster_nats), ("node_id", cluster_node_id),
                                     ("snapshots", cluster_snapshots)) if v is not None}
        cfg = load_config(config, {"data_dir": data_dir, "partitions": partitions, "ingress": ingress,
                                   "admin": admin, "metrics": metrics, "console": console,
                                   "node_id": node_id, "nodes": nodes,
                                   "cluster": cluster or None})
        os.environ.pop("ENDURE_INTERNAL_TOKEN", None)  # read: not for this process's own children
        if nodes is None and cfg.cluster is None:  # a cluster node is one process (no supervisor)
            from endure.runtime.supervisor import resolve_processes

            count = resolve_processes(processes, cfg.partitions, cfg.data_dir)
            if count > 1:
                _supervise(cfg, count, config, log_level)
                return
    except PlacementError as exc:  # one line on stderr, whatever the terminal's width
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except ConfigError as exc:
        _fail(str(exc), 2)

    async def main() -> None:
        node = Node(cfg)
        try:
            await node.start()
        except (DataFormatError, PlacementError) as exc:  # one line on stderr, whatever the terminal's width
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        except ConfigError as exc:
            _fail(str(exc), 2)
        except DataDirLocked as exc:
            # One line on stderr, not RocksDB's traceback: launchers (endure dev) pass it through.
            typer.echo(f"endure serve: {exc}", err=True)
            raise typer.Exit(1) from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)  # kill -USR1: where every task waits, in the log
        ready = ReadyLine(f"127.0.0.1:{node.ingress_port}", f"127.0.0.1:{node.admin_port}",
                          f"127.0.0.1:{node.metrics_port}" if node.metrics_port else "", node.console_address)
        print(ready.format(), flush=True)
        await stop.wait()
        logging.getLogger("endure.node").info("shutting down")
        await node.stop()

    from endure.sdk.profiling import run_profiled

    run_profiled(lambda: _run(main()), "ENDURE_PROFILE")  # ENDURE_PROFILE=out.prof: where the CPU goes


def _dump_tasks() -> None:
    """Log where every asyncio task waits (its coroutine chain): what a stuck node is waiting for."""
    lines = []
    for task in asyncio.all_tasks():
        chain, coro = [], task.get_coro()
        while coro is not None and len(chain) < 20:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None:
                chain.append(f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno} {frame.f_code.co_name}")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        lines.append(f"{task.get_name()}: " + " > ".join(chain))
    logging.getLogger("endure.node").warning("asyncio tasks:\n%s", "\n".join(sorted(lines)))


def _supervise(cfg: Any, count: int, config: Path | None, log_level: str) -> None:
    """`endure serve --processes N` with N > 1: the supervisor (endure.runtime.supervisor)."""
    from endure.runtime.datadir import DataDirLocked
    from endure.runtime.supervisor import NodeFailed, SupervisorOptions, run_supervisor

    try:
        code = run_supervisor(cfg, SupervisorOptions(count, config_file=config, log_level=log_level))
    except DataDirLocked as exc:
        typer.echo(f"endure serve: {exc}", err=True)
        raise typer.Exit(1) from None
    except NodeFailed as exc:  # the node printed its own error on stderr
        typer.echo(f"endure serve: node {exc.node} did not start (exit {exc.returncode})", err=True)
        raise typer.Exit(2 if exc.returncode == 2 else 1) from None
    raise typer.Exit(code)


@app.command()
def worker(
    app_ref: str = typer.Argument(..., metavar="MODULE:APP", help="the endure.sdk.App to serve"),
    runtime: str = typer.Option("127.0.0.1:7071", "--runtime", envvar="ENDURE_RUNTIME",
                                help="the runtime's worker endpoint HOST:PORT"),
    concurrency: int = typer.Option(64, "--concurrency", help="invocations run at once"),
    name: str | None = typer.Option(None, "--name", help="worker name shown by the runtime"),
    shutdown_grace: float = typer.Option(30.0, "--shutdown-grace",
                                         help="seconds SIGTERM waits for handlers to reach a suspension point"),
    log_level: str = typer.Option("INFO", "--log-level", envvar="ENDURE_LOG_LEVEL"),
    log_format: str = typer.Option("text", "--log-format", envvar="ENDURE_LOG_FORMAT",
                                   help="text, or json: one JSON object per line"),
    metrics: str | None = typer.Option(None, "--metrics", envvar="ENDURE_WORKER_METRICS",
                                       help="serve Prometheus metrics on HOST:PORT (off by default)"),
    deployment_version: str | None = typer.Option(None, "--deployment-version", help="default: App(version=), $ENDURE_DEPLOYMENT_VERSION, or a hash of the code"),
    stream_flush_ms: float = typer.Option(25.0, "--stream-flush-ms", envvar="ENDURE_STREAM_FLUSH_MS",
                                          help="send stream writes this long after the first one waits"),
    stream_flush_bytes: int = typer.Option(4096, "--stream-flush-bytes", envvar="ENDURE_STREAM_FLUSH_BYTES",
                                           help="... or once this many bytes of data wait"),
) -> None:
    """Run a worker process that serves MODULE:APP's handlers."""
    from endure.sdk.worker import WorkerOptions
    from endure.sdk.worker import serve as serve_worker

    sys.path.insert(0, os.getcwd())
    raise typer.Exit(serve_worker(WorkerOptions(
        app=app_ref, runtime=runtime, concurrency=concurrency, name=name, shutdown_grace=shutdown_grace,
        log_level=log_level, log_format=log_format, metrics=metrics, deployment_version=deployment_version,
        stream_flush_ms=stream_flush_ms, stream_flush_bytes=stream_flush_bytes)))


@app.command()
def dev(
    app_ref: str = typer.Argument(..., metavar="MODULE:APP", help="the endure.sdk.App to serve"),
    data_dir: Path = typer.Option(Path(".endure"), "--data-dir"),
    ingress: str = typer.Option("127.0.0.1:7070", "--ingress"),
    admin: str = typer.Option("127.0.0.1:7071", "--admin"),
    metrics: str = typer.Option("127.0.0.1:9464", "--metrics", help="Prometheus HOST:PORT, or 'off'"),
    console: str = typer.Option("127.0.0.1:7072", "--console", help="web console HOST:PORT, or 'off'"),
) -> None:
    """Runtime and one worker in one command, for a laptop. Ctrl-C stops both."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops both children like Ctrl-C, not just this process

    signal.signal(signal.SIGTERM, _interrupt)
    launcher = Launcher(env)
    try:
        code = _dev_session(launcher, app_ref, data_dir, ingress, admin, metrics, console)
    except KeyboardInterrupt:
        code = 0
    finally:
        launcher.stop(grace=15)
    if code:
        raise typer.Exit(code)


def _dev_session(launcher: Launcher, app_ref: str, data_dir: Path, ingress: str, admin: str, metrics: str,
                 console: str) -> int:
    """Start the runtime, then its worker; return the exit status once either exits on its own."""
    out = sys.stdout.buffer
    try:
        # One node: the inner loop starts fastest that way (`endure serve` adopts a data dir's count).
        runtime = launcher.start_runtime(serve_argv(data_dir, ingress=ingress, admin=admin, metrics=metrics,
                                                    console=console, processes=1), echo=out)
    except ExitedEarly as exc:
        # The runtime said why on the stderr it shares with us (one line for a taken data dir).
        if exc.returncode < 0:
            typer.echo(f"endure dev: the runtime was killed by signal {-exc.returncode}", err=True)
        return exc.returncode if exc.returncode > 0 else 1
    except NotReady as exc:
        typer.echo(f"endure dev: the runtime did not become ready: {exc}", err=True)
        return 1
    if runtime.ready.console:
        typer.echo(f"endure dev: web console on http://{runtime.ready.console}/")
    # Only now, and to the address this runtime printed: never to another runtime on that port.
    worker_proc = launcher.start_worker(worker_argv(app_ref, runtime.ready.admin), echo=out, keep_lines=False)
    while runtime.alive() and worker_proc.alive():
        time.sleep(0.2)  # supervising: a child that exits on its own ends the session
    code = next((c.returncode or 0 for c in (runtime, worker_proc) if not c.alive()), 0)
    return code if code >= 0 else 1


@app.command()
def demo(keep: bool = typer.Option(False, "--keep", help="keep the demo's data and logs")) -> None:
    """Run a runtime, two workers and the coding agent; kill -9 a worker mid-task; show the journal."""
    from endure.examples.demo import main as demo_main

    raise typer.Exit(demo_main(keep))


# ---------------------------------------------------------------------- invoking


def _parse_data(data: str | None) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError as exc:
        _fail(f"--data is not valid JSON: {exc}", 2)


def _print_result(result: Any, as_json: bool) -> None:
    typer.echo(json.dumps(result, indent=None if as_json else 2))


class _EventPrinter:
    """Stream events as they arrive: text and bytes chunks raw on stdout, JSON chunks one per line,
    resets as a note on stderr, then the result as `call` prints it; `--json`: one object per event."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.at_line_start = True

    def _raw(self, data: bytes) -> None:
        if data:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            self.at_line_start = data.endswith(b"\n")

    def end_line(self) -> None:
        """What a chunk left unfinished ends before anything else is printed."""
        if not self.at_line_start:
            self._raw(b"\n")

    def print(self, event: Any) -> None:
        from endure.sdk.client import StreamChunk, StreamClosed, StreamReset, StreamResult

        if self.as_json:
            typer.echo(json.dumps(_event_json(event)))
        elif isinstance(event, StreamChunk):
            if event.is_json:
                self.end_line()
                self._raw(json.dumps(event.data).encode() + b"\n")
            else:
                self._raw(event.data if isinstance(event.data, bytes) else str(event.data).encode())
        elif isinstance(event, StreamReset):
            self.end_line()
            offsets = ", ".join(map(str, event.offsets))
            typer.echo(f"[stream {event.stream!r}: step {event.step} runs again; what it wrote at offsets "
                       f"{offsets} is void]", err=True)
        elif isinstance(event, StreamResult):
            self.end_line()
            _print_result(event.value, False)
        elif not isinstance(event, StreamClosed):  # a close needs no words
            raise TypeError(f"not a stream event: {event!r}")


def _event_json(event: Any) -> dict[str, Any]:
    import base64

    from endure.sdk.client import StreamChunk, StreamClosed, StreamReset, StreamResult

    if isinstance(event, StreamChunk):
        out: dict[str, Any] = {"event": "chunk", "stream": event.stream, "offset": event.offset}
        if isinstance(event.data, bytes):
            out["data_base64"] = base64.b64encode(event.data).decode()
        else:
            out["data"] = event.data
        out["encoding"] = "json" if event.is_json else "bytes" if isinstance(event.data, bytes) else "text"
        if event.provisional:
            out["provisional"] = True
        if event.step:
            out["step"] = event.step
        return out
    if isinstance(event, StreamReset):
        return {"event": "reset", "stream": event.stream, "offset": event.offset, "step": event.step,
                "offsets": list(event.offsets)}
    if isinstance(event, StreamClosed):
        return {"event": "closed", "stream": event.stream, "offset": event.offset}
    if isinstance(event, StreamResult):
        return {"event": "result", "invocation_id": event.invocation_id, "value": event.value}
    raise TypeError(f"not a stream event: {event!r}")


def _follow(events: Callable[[Any], Iterable[Any]], ingress: str, as_json: bool) -> None:
    """Print a SyncClient stream's events (events(client) gives them) until its end."""
    from endure.sdk.client import InvocationError, RequestError, SyncClient

    printer = _EventPrinter(as_json)
    try:
        with SyncClient(ingress) as client:
            for event in events(client):
                printer.print(event)
    except (RequestError, InvocationError, ValueError) as exc:
        printer.end_line()
        _fail(str(exc))
    except KeyboardInterrupt:
        printer.end_line()
        raise typer.Exit(130) from None


@app.command()
def call(
    target: str = typer.Argument(..., metavar="SERVICE/HANDLER"),
    key: str | None = typer.Option(None, "--key", help="object or workflow key"),
    data: str | None = typer.Option(None, "--data", help="JSON input"),
    idempotency_key: str | None = typer.Option(None, "--idempotency-key"),
    timeout: float | None = typer.Option(None, "--timeout", help="seconds to wait (the invocation keeps running)"),
    follow: bool = typer.Option(False, "--follow", "-f", help="print its streams as they are written, then the result"),
    ingress: str = INGRESS_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Invoke a handler and print its result."""
    from endure.sdk.client import Client, InvocationError, RequestError

    if follow:
        if timeout is not None:
            _fail("--timeout does not apply with --follow (it follows until the result)", 2)
        arg = _parse_data(data)
        _follow(lambda c: c.stream(target, arg, key=key, idempotency_key=idempotency_key), ingress, as_json)
        return

    async def main() -> Any:
        async with Client(ingress) as client:
            return await client.call(target, _parse_data(data), key=key, idempotency_key=idempotency_key,
                                     timeout=timeout)

    try:
        _print_result(_run(main()), as_json)
    except (RequestError, InvocationError, ValueError) as exc:
        _fail(str(exc))


@app.command()
def send(
    target: str = typer.Argument(..., metavar="SERVICE/HANDLER"),
    key: str | None = typer.Option(None, "--key"),
    data: str | None = typer.Option(None, "--data", help="JSON input"),
    idempotency_key: str | None = typer.Option(None, "--idempotency-key"),
    delay: float = typer.Option(0.0, "--delay", help="seconds before it runs"),
    ingress: str = INGRESS_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Invoke a handler without waiting; print the invocation id."""
    from endure.sdk.client import Client, RequestError

    async def main() -> str:
        async with Client(ingress) as client:
            return await client.send(target, _parse_data(data), key=key, idempotency_key=idempotency_key,
                                     delay=timedelta(seconds=delay) if delay else None)

    try:
        inv = _run(main())
    except (RequestError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(json.dumps({"invocation_id": inv}) if as_json else inv)


awakeables_app = typer.Typer(help="Complete awakeables (a human in the loop, an external system).",
                             no_args_is_help=True)
app.add_typer(awakeables_app, name="awakeables")


@awakeables_app.command("resolve")
def awakeables_resolve(awakeable_id: str, data: str | None = typer.Option(None, "--data", help="JSON value"),
                       ingress: str = INGRESS_OPT) -> None:
    """Complete an awakeable with a value."""
    from endure.sdk.client import Client, RequestError

    async def main() -> None:
        async with Client(ingress) as client:
            await client.resolve_awakeable(awakeable_id, _parse_data(data))

    try:
        _run(main())
    except RequestError as exc:
        _fail(str(exc))
    typer.echo(f"resolved: {awakeable_id}")


@awakeables_app.command("reject")
def awakeables_reject(awakeable_id: str, reason: str = typer.Option("rejected", "--reason"),
                      ingress: str = INGRESS_OPT) -> None:
    """Fail an awakeable: the waiting handler sees a TerminalError with the reason."""
    from endure.sdk.client import Client, RequestError

    async def main() -> None:
        async with Client(ingress) as client:
            await client.reject_awakeable(awakeable_id, reason)

    try:
        _run(main())
    except RequestError as exc:
        _fail(str(exc))
    typer.echo(f"rejected: {awakeable_id}")


# ---------------------------------------------------------------------- admin views


@app.command()
def services(admin: str = ADMIN_OPT, as_json: bool = JSON_OPT) -> None:
    """List registered services, their handlers and the workers serving them."""
    resp = _admin_call(admin, "ListServices", apb.ListServicesRequest())
    if as_json:
        typer.echo(json.dumps(_dump(resp)))
        return
    table = Table("service", "kind", "handler", "handler kind", "deployment", "workers")
    for svc in resp.services:
        workers = ", ".join(f"{w.name} ({w.active}/{w.concurrency})" for w in svc.workers) or "-"
        for i, h in enumerate(svc.definition.handlers):
            table.add_row(svc.definition.name if i == 0 else "",
                          wpb.ServiceKind.Name(svc.definition.kind) if i == 0 else "", h.name,
                          pb.HandlerKind.Name(h.kind), f"{svc.deployment_id}@{svc.deployment_version}" if i == 0 else "",
                          workers if i == 0 else "")
    console.print(table)


@app.command()
def partitions(admin: str = ADMIN_OPT, as_json: bool = JSON_OPT) -> None:
    """Per-partition status: leader epoch, applied LSN, log tail, segments."""
    resp = _admin_call(admin, "ListPartitions", apb.ListPartitionsRequest())
    if as_json:
        typer.echo(json.dumps(_dump(resp)))
        return
    several_nodes = len({p.node for p in resp.partitions}) > 1  # the owner column only says something then
    table = Table("partition", "leader", "epoch", Column("applied LSN", no_wrap=True), "tail", "trim", "segments",
                  "timers", *([Column("node", no_wrap=True)] if several_nodes else []))
    for p in resp.partitions:
        segs = " → ".join(f"{s.base_lsn}{'(sealed)' if s.sealed else ''}" for s in p.segments)
        table.add_row(str(p.partition), "yes" if p.leader else "no", str(p.leader_epoch), str(p.applied_lsn),
                      str(p.log_tail), str(p.trim_point), segs, str(p.timers_in_memory),
                      *([p.node] if several_nodes else []))
    console.print(table)


@invocations_app.command("list")
def invocations_list(
    service: str | None = typer.Option(None, "--service"),
    status: str | None = typer.Option(None, "--status", help="e.g. running, suspended, completed"),
    key: str | None = typer.Option(None, "--key"),
    tenant: str | None = typer.Option(None, "--tenant"),
    limit: int = typer.Option(100, "--limit"),
    page_token: str | None = typer.Option(None, "--page-token"),
    admin: str = ADMIN_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """List invocations, newest state first per partition, with filters and paging."""
    status_value = 0
    if status:
        try:
            status_value = pb.Status.Value(status.upper().replace("-", "_"))
        except ValueError:
            _fail(f"unknown status {status!r}; one of {', '.join(n.lower() for n in pb.Status.keys()[1:])}", 2)
    request = apb.ListInvocationsRequest(service=service or "", status=status_value, key=key or "",
                                         tenant=tenant or "", page_size=limit, page_token=page_token or "")
    resp = _admin_call(admin, "ListInvocations", request)
    if as_json:
        typer.echo(json.dumps(_dump(resp)))
        return
    # Ids are copied into describe/cancel, so they are never cut; a narrow terminal gets the
    # essential columns only, without borders, instead of every column squeezed to "…".
    wide = console.width >= 150
    columns = ["invocation", "target", "status"] + (["attempts", "tenant", "journal", "created", "modified"] if wide else [])
    table = Table(*columns, box=box.HEAVY_HEAD if wide else None, padding=(0, 1) if wide else (0, 2, 0, 0))
    table.columns[0].no_wrap = True
    table.columns[0].min_width = max((len(i.status.invocation_id) for i in resp.invocations), default=10)
    for column in table.columns[1:]:
        column.overflow = "fold"
    for inv in resp.invocations:
        s = inv.status
        target = f"{s.target.service}/{s.target.handler}" + (f" [{s.target.key}]" if s.target.key else "")
        row = [s.invocation_id, target, pb.Status.Name(s.status).lower()]
        if wide:
            row += [str(s.attempts), s.tenant, str(s.journal_length), _ms(s.created_at_ms), _ms(s.modified_at_ms)]
        table.add_row(*row)
    console.print(table)
    if resp.next_page_token:
        console.print(f"more: --page-token {resp.next_page_token}")


def _ended(failure: pb.Failure) -> str:
    """How a failure is named: cancelled / killed from its typed cause, never from its message."""
    if journal.is_cancellation(failure):
        return "cancelled"
    if journal.is_kill(failure):
        return "killed"
    return "failed"


def _entry_detail(entry: pb.JournalEntry) -> str:
    which = entry.WhichOneof("result")
    if which == "value":
        text = entry.value.decode(errors="replace")
        return text if len(text) <= 80 else text[:77] + "..."
    if which == "failure":
        return f"{_ended(entry.failure)} ({entry.failure.code}): {entry.failure.message}"
    if which == "void":
        return "done"
    kind = entry.WhichOneof("kind")
    if kind == "output":
        out = entry.output
        if out.HasField("value"):
            return out.value.decode(errors="replace")[:80]
        return f"{_ended(out.failure)}: {out.failure.message}"
    if kind in ("set_state",):
        return entry.set_state.value.decode(errors="replace")[:80]
    if kind in ("call", "send"):
        c = getattr(entry, kind)
        return f"→ {c.target.service}/{c.target.handler} {c.invocation_id}"
    if kind == "sleep":
        return f"until {_ms(entry.sleep.wake_at_ms)}"
    rules = journal.RULES.get(kind or "")
    return "pending" if rules is not None and rules.waits_outside else ""


@invocations_app.command("describe")
def invocations_describe(invocation_id: str, admin: str = ADMIN_OPT, as_json: bool = JSON_OPT) -> None:
    """Show one invocation with its full journal."""
    resp = _admin_call(admin, "DescribeInvocation", apb.InvocationRef(invocation_id=invocation_id))
    if as_json:
        typer.echo(json.dumps(_dump(resp)))
        return
    s = resp.status
    console.print(f"[bold]{s.invocation_id}[/bold]  {s.target.service}/{s.target.handler}"
                  + (f" [{s.target.key}]" if s.target.key else ""), highlight=False)
    console.print(f"status {pb.Status.Name(s.status).lower()}, tenant {s.tenant}, attempts {s.attempts}, "
                  f"partition {resp.partition}, on a worker: {'yes' if resp.on_worker else 'no'}", highlight=False)
    if s.HasField("deployment"):
        console.print(f"pinned to deployment {ref_text(s.deployment)}", highlight=False)
    for move in s.moves:
        console.print(f"moved {_ms(move.at_ms)} from {ref_text(move.from_deployment)} to "
                      f"{ref_text(move.to_deployment)} ({move.reason})", highlight=False)
    if resp.waiting_for:
        console.print(f"[yellow]waiting for {resp.waiting_for}[/yellow]", highlight=False)
    if s.last_failure.message:
        console.print(f"last failure: ({s.last_failure.code}) {s.last_failure.message}", highlight=False)
    table = Table("#", "kind", "name", "appended", "result")
    for i, entry in enumerate(resp.journal):
        table.add_row(str(i), entry.WhichOneof("kind") or "?", entry.name, _ms(entry.appended_at_ms),
                      _entry_detail(entry))
    console.print(table)


def _action(method: str, invocation_id: str, admin: str, as_json: bool = False) -> None:
    _admin_call(admin, method, apb.InvocationRef(invocation_id=invocation_id))
    action = method.removesuffix("Invocation").lower()
    if as_json:
        typer.echo(json.dumps({"action": action, "invocation_id": invocation_id}))
    else:
        typer.echo(f"{action}: {invocation_id}")


def _action_command(name: str, rpc: str, doc: str) -> None:
    """Register `endure invocations NAME ID`: one admin action on one invocation."""

    def command(invocation_id: str, admin: str = ADMIN_OPT, as_json: bool = JSON_OPT) -> None:
        _action(rpc, invocation_id, admin, as_json)

    command.__doc__ = doc
    command.__name__ = f"invocations_{name}"
    invocations_app.command(name)(command)


for _name, _rpc, _doc in (
    ("cancel", "CancelInvocation", "Cancel: the handler sees a cancellation at its next await and may compensate."),
    ("kill", "KillInvocation", "Kill: stop at once, without compensations."),
    ("purge", "PurgeInvocation", "Drop a finished invocation's status and journal now."),
    ("pause", "PauseInvocation", "Pause: stop running it until resumed."),
):
    _action_command(_name, _rpc, _doc)


@invocations_app.command("tail")
def invocations_tail(
    invocation_id: str,
    stream: str | None = typer.Option(None, "--stream", help="one stream (default: all of them)"),
    from_offset: int | None = typer.Option(None, "--from", min=0, help="the first offset of --stream to print"),
    ingress: str = INGRESS_OPT,
    as_json: bool = typer.Option(False, "--json", help="one JSON object per event"),
) -> None:
    """Follow a running or finished invocation's streams, then print its result."""
    if from_offset is not None and stream is None:
        _fail("--from is an offset of one stream: name it with --stream", 2)
    _follow(lambda c: c.subscribe(invocation_id, stream, from_offset or 0), ingress, as_json)


@invocations_app.command("resume")
def invocations_resume(
    invocation_id: str,
    deployment: str | None = typer.Option(
        None, "--deployment",
        help="run it from now on on this code: 'latest' (its service's latest version) or ID@VERSION / VERSION; "
             "journaled as an operator's move. Default: the version it is pinned to"),
    admin: str = ADMIN_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Resume a paused invocation, for example after a journal mismatch, optionally onto fixed code."""
    _admin_call(admin, "ResumeInvocation", apb.ResumeRequest(invocation_id=invocation_id, deployment=deployment or ""))
    if as_json:
        typer.echo(json.dumps({"action": "resume", "invocation_id": invocation_id,
                               **({"deployment": deployment} if deployment else {})}))
    else:
        typer.echo(f"resume: {invocation_id}" + (f" on {deployment}" if deployment else ""))


_FILES_MAX_MESSAGE = 64 << 20  # a journal with workspace contents exceeds gRPC's 4 MiB default


def _describe_whole(admin: str, invocation_id: str) -> apb.InvocationDescription:
    """DescribeInvocation on a channel that takes a journal as large as a worker may send."""
    import grpc

    from endure.proto import admin_pb2_grpc as apb_grpc

    channel = grpc.insecure_channel(admin, options=[("grpc.max_receive_message_length", _FILES_MAX_MESSAGE)])
    try:
        return apb_grpc.AdminStub(channel).DescribeInvocation(apb.InvocationRef(invocation_id=invocation_id),
                                                              timeout=30)
    except grpc.RpcError as exc:
        _fail(f"{exc.code().name}: {exc.details()}")
    finally:
        channel.close()


def _pick_workspace(spaces: list[Any], wanted: str) -> list[Any]:
    """The workspace `wanted` names: its label (NAME, object:NAME), invocation:NAME, or a bare name
    only one scope has."""
    exact = [w for w in spaces if wanted in (w.label, f"{w.scope}:{w.name}")]
    if exact:
        return exact
    named = [w for w in spaces if w.name == wanted]
    if len(named) > 1:
        _fail(f"both scopes have a workspace {wanted!r}: say invocation:{wanted} or object:{wanted}", 2)
    if not named:
        _fail(f"no workspace {wanted!r} in this journal; it has: {', '.join(w.label for w in spaces) or 'none'}")
    return named


@invocations_app.command("files")
def invocations_files(
    invocation_id: str,
    workspace: str | None = typer.Option(None, "--workspace", help="NAME, or object:NAME for an object's "
                                         "workspace (default: all of them; with --get, the only one)"),
    get: str | None = typer.Option(None, "--get", help="print this file's contents (or write them to --out)"),
    out: Path | None = typer.Option(None, "--out", help="with --get: write the file here"),
    admin: str = ADMIN_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """List the files of an invocation's sandbox workspaces, as its journal leaves them, or fetch one."""
    from endure.sdk.workspace import WorkspaceError, normalize_path, replay_journal

    if out is not None and get is None:
        _fail("--out goes with --get PATH", 2)
    resp = _describe_whole(admin, invocation_id)
    try:
        wj = replay_journal(resp.journal)  # the worker's own reconstruction
    except WorkspaceError as exc:
        _fail(f"the journal's workspace entries do not decode: {exc.message}")
    spaces = sorted(wj.workspaces.values(), key=lambda w: (w.scope != "invocation", w.name))
    if workspace is not None:
        spaces = _pick_workspace(spaces, workspace)
    if get is None:
        if as_json:
            typer.echo(json.dumps({"invocation_id": invocation_id, "workspaces": {
                w.label: {p: {"size": w.sizes[h], "sha256": h, "in_journal": h in wj.blobs}
                          for p, h in sorted(w.files.items())} for w in spaces}}))
            return
        if not spaces:
            console.print("no sandbox workspaces in this journal", highlight=False)
            return
        table = Table("workspace", Column("path", overflow="fold"), Column("size", justify="right"), "sha256")
        for w in spaces:
            for p, h in sorted(w.files.items()):
                table.add_row(w.label, p, f"{w.sizes[h]:,}", h[:12] + ("" if h in wj.blobs else " (in state)"))
            if not w.files:
                table.add_row(w.label, "(empty)", "", "")
        console.print(table)
        return
    if len(spaces) != 1:
        _fail(f"--get needs --workspace: this journal has {', '.join(w.label for w in spaces) or 'none'}", 2)
    ws = spaces[0]
    try:
        path = normalize_path(get)
    except WorkspaceError as exc:
        _fail(exc.message, 2)
    sha = ws.files.get(path)
    if sha is None:
        _fail(f"workspace {ws.label!r} has no file {path!r}")
    data = wj.blobs.get(sha)
    if data is None:
        _fail(f"{path!r} ({sha[:12]}) is in the object's state from an earlier invocation, not in this journal")
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    elif as_json:
        out.write_bytes(data)
        typer.echo(json.dumps({"workspace": ws.label, "path": path, "size": len(data), "sha256": sha,
                               "out": str(out)}))
    else:
        out.write_bytes(data)
        typer.echo(f"wrote {len(data):,} bytes of {ws.label}:{path} to {out}")


def _parse_since(since: str | None) -> int:
    if not since:
        return 0
    if since.endswith("d") and since[:-1].isdigit():
        return int((time.time() - int(since[:-1]) * 86_400) * 1000)
    try:
        return int(datetime.fromisoformat(since).timestamp() * 1000)
    except ValueError:
        _fail(f"--since takes a date (2026-12-01) or a number of days (7d), not {since!r}", 2)
    return 0


@app.command()
def usage(
    tenant: str | None = typer.Option(None, "--tenant"),
    since: str | None = typer.Option(None, "--since", help="a date (YYYY-MM-DD) or days back (7d)"),
    by: str = typer.Option("tenant", "--by", help="tenant, service, handler or day"),
    admin: str = ADMIN_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Metered usage per tenant: invocations, handler time, journal and state bytes, LLM tokens, sandbox."""
    resp = _admin_call(admin, "GetUsage", apb.UsageRequest(tenant=tenant or "", since_ms=_parse_since(since), by=by))
    if as_json:
        typer.echo(json.dumps(_dump(resp)))
        return
    counters = sorted({name for row in resp.rows for name in row.counters})
    table = Table("tenant", *([by] if by != "tenant" else []), *counters)
    for row in resp.rows:
        values = [f"{row.counters.get(c, 0):,.0f}" for c in counters]
        table.add_row(row.tenant, *([row.group] if by != "tenant" else []), *values)
    console.print(table)


limits_app = typer.Typer(help="Flow-control limits per tenant and per service / handler.", no_args_is_help=True)
app.add_typer(limits_app, name="limits")


def _print_limits(resp: apb.LimitsResponse, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(_dump(resp)))
        return
    table = Table("scope", "max running", "rate/s", "burst", "max backlog", "weight", "queued")
    rows = [(f"tenant {n}", spec, str(resp.backlog.get(n, 0))) for n, spec in sorted(resp.tenants.items())]
    rows += [(f"target {n}", spec, "") for n, spec in sorted(resp.targets.items())]
    fields = ("max_running", "rate_per_s", "burst", "max_backlog", "weight")
    for name, spec, queued in rows:
        table.add_row(name, *[str(getattr(spec, f)) if spec.HasField(f) else "-" for f in fields], queued)
    console.print(table)


@limits_app.command("get")
def limits_get(admin: str = ADMIN_OPT, as_json: bool = JSON_OPT) -> None:
    """Show the limits in force and each tenant's queued backlog."""
    _print_limits(_admin_call(admin, "GetLimits", apb.GetLimitsRequest()), as_json)


@limits_app.command("set")
def limits_set(
    tenant: str | None = typer.Option(None, "--tenant", help="the tenant to limit"),
    target: str | None = typer.Option(None, "--target", help="or a service / service/handler"),
    max_running: int | None = typer.Option(None, "--max-running"),
    rate: float | None = typer.Option(None, "--rate", help="invocations started per second"),
    burst: float | None = typer.Option(None, "--burst"),
    max_backlog: int | None = typer.Option(None, "--max-backlog"),
    weight: float | None = typer.Option(None, "--weight", help="fair share under contention (tenants)"),
    clear: bool = typer.Option(False, "--clear", help="remove the override"),
    admin: str = ADMIN_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Set a tenant's or a target's limits; kept across restarts."""
    if bool(tenant) == bool(target):
        _fail("give exactly one of --tenant and --target", 2)
    spec = apb.LimitSpec()
    for name, value in (("max_running", max_running), ("rate_per_s", rate), ("burst", burst),
                        ("max_backlog", max_backlog), ("weight", weight)):
        if value is not None:
            setattr(spec, name, value)
    request = apb.SetLimitsRequest(limits=spec, clear=clear)
    if tenant:
        request.tenant = tenant
    else:
        request.target = target or ""
    _print_limits(_admin_call(admin, "SetLimits", request), as_json)


def main() -> None:
    die_with_parent()  # when started by the launcher (endure dev, tests, benchmarks)
    app()


if __name__ == "__main__":
    main()
