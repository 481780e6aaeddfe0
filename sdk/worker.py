"""The worker process: one gRPC stream per runtime node, many invocation attempts multiplexed on each.

    python -m endure.sdk.worker MODULE:APP --runtime HOST:PORT [--concurrency N]

It registers the app's services, runs StartFrames as `Invocation`s (at most `concurrency` at
once), batches every frame produced in one event-loop turn into one message, reconnects with
backoff when the stream drops (dropping its attempts: the runtime retries them), and on SIGTERM
drains: tells the runtime to send it nothing new (DrainFrame; the runtime answers DrainedFrame),
hands back starts it will not run (ReleaseFrame), lets handlers reach their next suspension point,
releases what is still running when the grace timeout is over, then exits. A runtime of several
nodes names the other nodes' endpoints when the worker registers; the worker opens a stream to each
of them too (see `Worker`), and drains every stream on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

# The worker forks sandbox pool processes; gRPC's fork handlers can stall a child forked while
# gRPC threads are busy. The children exec at once and never use gRPC, so turn fork support off.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

import grpc  # noqa: E402
import grpc.aio  # noqa: E402

from endure.proto import worker_pb2, worker_pb2_grpc
from endure.sdk import tools
from endure.sdk.backoff import Backoff
from endure.sdk.definitions import VERSION_ENV, App, check_deployment_version
from endure.sdk.errors import RegistrationError
from endure.sdk.invocation import Invocation
from endure.sdk.streams import DEFAULT_FLUSH_BYTES, DEFAULT_FLUSH_MS

log = logging.getLogger("endure.sdk.worker")

# Errors that mean "the runtime refused us", not "the runtime is not there right now".
_FATAL = {
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.UNIMPLEMENTED,
}

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


def load_app(ref: str) -> App:
    """Import `module:attr` (attr may be dotted) and return the App it names."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected MODULE:APP, got {ref!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, App):
        raise TypeError(f"{ref} is a {type(obj).__name__}, not an endure.sdk.App")
    return obj


_STOP_MARGIN = 10.0  # after the grace: a session's flush (5 s), half-close (2 s) and end of stream (2 s)
MAX_PEERS = 64  # streams to other nodes a worker opens at most (beyond them, peers are ignored)


class Worker:
    """Serves one App to a runtime; `await run()` until `stop()` (or a fatal registration error).

    The worker connects to `runtime`. When the runtime has several nodes, the registration answer
    lists the other nodes' worker endpoints (peers) and the worker opens one more stream to each
    (at most MAX_PEERS), so it serves the partitions of every node. Every stream is a `_Session`
    with the same registration, its own reconnect backoff (a peer that is down is retried like a
    lost runtime, never blocking the others) and its own drain on `stop()`.

    `concurrency` is one pool of slots for the whole process, shared by every session: at most
    `concurrency` attempts run at once whatever node they came from (a handler's resources, the
    step threads, an LLM client, are sized once). Each node is told `concurrency` and may send up to
    that many starts; a start that finds the pool full waits in its session's queue (bounded by
    `concurrency`) and the sessions take freed slots in turn. A handler that waits long enough
    suspends and gives its slot back, so a busy node cannot hold the pool forever.

    Stream writes (`ctx.stream`) of an attempt are sent `stream_flush_ms` after the first one not
    sent yet, or once `stream_flush_bytes` of data wait, whichever comes first (and always before
    the attempt's next other frame): fewer, bigger StreamWrite records against a client's latency.
    """

    def __init__(
        self,
        app: App,
        runtime: str,
        *,
        deployment_id: str | None = None,
        concurrency: int = 64,
        worker_name: str | None = None,
        shutdown_grace: float = 30.0,
        reconnect_initial: float = 0.05,
        reconnect_max: float = 5.0,
        threads: int | None = None,
        deployment_version: str | None = None,
        stream_flush_ms: float = DEFAULT_FLUSH_MS,
        stream_flush_bytes: int = DEFAULT_FLUSH_BYTES,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        check_stream_flush(stream_flush_ms, stream_flush_bytes)
        self.stream_flush_ms = stream_flush_ms
        self.stream_flush_bytes = stream_flush_bytes
        self.app = app
        self.runtime = runtime
        self.deployment_id = deployment_id or app.name or "app"
        # Given here (an operator's --deployment-version), it wins over what the app says.
        self.deployment_version = (check_deployment_version(deployment_version) if deployment_version
                                   else app.deployment_version())
        self.concurrency = concurrency
        self.worker_name = worker_name or f"{socket.gethostname()}:{os.getpid()}"
        self.shutdown_grace = shutdown_grace
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = reconnect_max
        self._reconnect = Backoff(reconnect_initial, 2.0, reconnect_max)  # doubling, no jitter (as always)
        self.threads = threads
        self._stopping = False
        self._stopped_at = 0.0  # time.monotonic() of stop()
        self._stop_event = asyncio.Event()
        self.released = 0  # attempts handed back to a runtime while draining
        self.starts_after_drain_ack = 0  # StartFrames that broke a drain ack (must stay 0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._register = worker_pb2.Register(
            deployment_id=self.deployment_id,
            deployment_version=self.deployment_version,
            concurrency=concurrency,
            services=app.service_defs(),
            worker_name=self.worker_name,
        )
        self.primary = _Session(self, runtime, primary=True)
        self.sessions: dict[str, _Session] = {runtime: self.primary}  # by address; the primary first
        self._peer_tasks: set[asyncio.Task[None]] = set()
        self._turn = 0  # the session that takes the next freed slot
        self._peers_capped = False

    # ------------------------------------------------------------------ the primary session

    @property
    def registered(self) -> asyncio.Event:
        """Set while the stream to `runtime` is registered (tests, health)."""
        return self.primary.registered

    @property
    def connections(self) -> int:
        """Times the stream to `runtime` got registered."""
        return self.primary.connections

    @property
    def worker_id(self) -> str | None:
        return self.primary.worker_id

    @property
    def drain_acked(self) -> bool:
        """Every session that was connected when stopping got the runtime's drain answer."""
        return all(s.drain_acked for s in self.sessions.values() if s.connections)

    @property
    def _active(self) -> dict[str, Invocation]:
        return self.primary.active_attempts

    # ------------------------------------------------------------------ the shared slot pool

    @property
    def active(self) -> int:
        """Attempts running now, over every session."""
        return sum(len(s.active_attempts) for s in self.sessions.values())

    def _has_slot(self) -> bool:
        return not self._stopping and self.active < self.concurrency

    def _fill_slots(self) -> None:
        """Start queued attempts while slots are free, taking sessions in turn."""
        sessions = list(self.sessions.values())
        idle = 0
        while idle < len(sessions) and self._has_slot():
            session = sessions[self._turn % len(sessions)]
            self._turn += 1
            if session.start_queued():
                idle = 0
            else:
                idle += 1

    # ------------------------------------------------------------------ peers

    def _add_peers(self, peers: Iterable[str]) -> None:
        """Open a session to every peer not served yet (called on each registration answer)."""
        if self._stopping or self._loop is None:
            return
        for address in peers:
            if address in self.sessions:
                continue
            if len(self.sessions) > MAX_PEERS:
                if not self._peers_capped:
                    log.warning("more than %d peers: not connecting to %s and later ones", MAX_PEERS, address)
                    self._peers_capped = True
                continue
            log.info("connecting to peer node %s", address)
            session = _Session(self, address, primary=False)
            self.sessions[address] = session
            task = self._loop.create_task(session.run(), name=f"endure-worker:{address}")
            self._peer_tasks.add(task)

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Graceful shutdown of every session: take no more work; suspend handlers at their next
        wait; exit when none are left or after `shutdown_grace` seconds."""
        if self._stopping:
            return
        log.info("stopping: draining %d invocation(s) on %d session(s)", self.active, len(self.sessions))
        self._stopping = True
        self._stopped_at = time.monotonic()
        for session in self.sessions.values():
            session.on_stop()
        self._stop_event.set()

    async def run(self) -> None:
        """Connect, register, serve (and serve the peers the runtime names); reconnect with backoff
        until stopped. Returns when every session has drained or its grace ran out."""
        self._loop = asyncio.get_running_loop()
        # Sync steps run here; threads start on demand, and blocking steps (a sync LLM client) must
        # not throttle the declared concurrency.
        self._loop.set_default_executor(
            ThreadPoolExecutor(
                max_workers=self.threads or max(8, self.concurrency), thread_name_prefix="endure-step"
            )
        )
        tools.configure(getattr(self.app, "tools", None))
        try:
            await self.primary.run()  # returns once stopping (or raises RegistrationError)
            # No peer is added once stopping. Each drains within the grace (plus its flush and
            # close margins); one stuck connecting to an unresponsive address is cut off after it.
            deadline = self._stopped_at + self.shutdown_grace + _STOP_MARGIN
            while self._peer_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("%d peer session(s) did not finish within the grace: closing them",
                                len(self._peer_tasks))
                    break
                done, _ = await asyncio.wait(self._peer_tasks, timeout=left)
                self._peer_tasks -= done
        finally:
            for task in self._peer_tasks:
                task.cancel()
            await asyncio.gather(*self._peer_tasks, return_exceptions=True)
            for session in self.sessions.values():
                session.drop_all()
            await tools.close_sandbox()

    def _release(self, sink: _Session, invocation_id: str, attempt: int, reason: str) -> None:
        """Hand an attempt back to the runtime, which starts it on another worker at once."""
        self.released += 1
        sink.send(worker_pb2.WorkerFrame(
            release=worker_pb2.ReleaseFrame(invocation_id=invocation_id, attempt=attempt, reason=reason)))


class _Session:
    """One stream to one node's worker endpoint: the attempts it started, its batched outgoing
    frames, its reconnects and its drain. The `FrameSink` of its attempts."""

    def __init__(self, worker: Worker, address: str, *, primary: bool) -> None:
        self.worker = worker
        self.address = address
        self.primary = primary  # the address the worker was given: a refusal there is fatal
        self.worker_id: str | None = None
        self.registered = asyncio.Event()  # set while registered
        self.connections = 0  # times this stream got registered
        self.drain_acked = False  # the runtime answered our DrainFrame: no StartFrame may follow
        self.active_attempts: dict[str, Invocation] = {}
        self._queue: collections.deque[worker_pb2.StartFrame] = collections.deque()
        self._out: list[worker_pb2.WorkerFrame] = []
        self._wake = asyncio.Event()
        self._flushed = asyncio.Event()
        self._writing = False  # the writer is sending a message right now
        self._drained = asyncio.Event()

    # ------------------------------------------------------------------ FrameSink

    def send(self, frame: worker_pb2.WorkerFrame) -> None:
        self._out.append(frame)
        if not self._wake.is_set():
            self._wake.set()

    def release(self, inv: Invocation) -> None:
        key = inv.id
        if self.active_attempts.get(key) is inv:
            del self.active_attempts[key]
        self.worker._fill_slots()
        if self.worker._stopping and not self.active_attempts:
            self._drained.set()

    # ------------------------------------------------------------------ slots

    def start_queued(self) -> bool:
        """Start the oldest queued start (the worker has a free slot); False when none is queued."""
        if not self._queue:
            return False
        self._start(self._queue.popleft())
        return True

    # ------------------------------------------------------------------ lifecycle

    def on_stop(self) -> None:
        self.send(worker_pb2.WorkerFrame(drain=worker_pb2.DrainFrame()))
        for start in self._queue:  # taken but never started: the runtime starts them elsewhere now
            self.worker._release(self, start.invocation_id, start.attempt, "worker draining")
        self._queue.clear()
        for inv in list(self.active_attempts.values()):
            inv.drain()
        if not self.active_attempts:
            self._drained.set()

    async def run(self) -> None:
        """Connect, register, serve; reconnect with backoff until the worker stops."""
        worker = self.worker
        delays = worker._reconnect.iter()
        try:
            while not worker._stopping:
                registered_before = self.connections
                try:
                    await self._session()
                except grpc.aio.AioRpcError as exc:
                    if self.connections == registered_before and exc.code() in _FATAL:
                        error = (f"runtime {self.address} rejected registration of {worker.deployment_id!r}: "
                                 f"{exc.code().name}: {exc.details()}")
                        if self.primary:  # refused before this session registered: retrying cannot help
                            raise RegistrationError(error) from exc
                        log.error("%s (a peer node: retrying with backoff)", error)
                    else:
                        log.warning("stream to %s lost: %s %s", self.address, exc.code().name, exc.details())
                except Exception as exc:  # keep serving: the runtime retries what we dropped
                    log.exception("worker session with %s failed: %s", self.address, exc)
                self.drop_all()
                if worker._stopping:
                    break
                if self.connections > registered_before:
                    delays.reset()
                try:
                    await asyncio.wait_for(worker._stop_event.wait(), timeout=next(delays))
                except TimeoutError:
                    pass
        finally:
            self.drop_all()

    def drop_all(self) -> None:
        self.registered.clear()
        self._queue.clear()
        for inv in list(self.active_attempts.values()):
            inv.abort()
        self.active_attempts.clear()
        self._out.clear()
        if self.worker._stopping:
            self._drained.set()
        else:
            self.worker._fill_slots()  # the slots this stream held go to the others

    async def _session(self) -> None:
        worker = self.worker
        async with grpc.aio.insecure_channel(self.address, options=_CHANNEL_OPTIONS) as channel:
            stub = worker_pb2_grpc.WorkerEndpointStub(channel)
            token = os.environ.get("ENDURE_WORKER_TOKEN")  # when the runtime requires a worker token
            call = stub.Connect(metadata=(("authorization", f"Bearer {token}"),) if token else None)
            self._out.clear()
            if worker._stopping:  # stopped while connecting: register only to drain at once
                self.send(worker_pb2.WorkerFrame(drain=worker_pb2.DrainFrame()))
            await call.write(
                worker_pb2.WorkerMessage(frames=[worker_pb2.WorkerFrame(register=worker._register)])
            )
            writer: asyncio.Task[Any] = asyncio.create_task(self._writer(call))
            reader: asyncio.Task[Any] = asyncio.create_task(self._reader(call))
            stopper: asyncio.Task[Any] = asyncio.create_task(worker._stop_event.wait())
            try:
                done, _ = await asyncio.wait({reader, writer, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done or writer in done:
                    for t in (reader, writer):
                        if t.done() and t.exception() is not None:
                            raise t.exception()  # type: ignore[misc]
                    return  # the runtime closed the stream: reconnect
                # Stopping: wait for handlers to finish or suspend, flush, then close our side.
                drained = asyncio.create_task(self._drained.wait())
                done, _ = await asyncio.wait(
                    {reader, drained}, timeout=worker.shutdown_grace, return_when=asyncio.FIRST_COMPLETED
                )
                drained.cancel()
                if not self._drained.is_set():
                    log.warning(
                        "shutdown grace of %.1fs over: handing %d invocation(s) back to %s",
                        worker.shutdown_grace,
                        len(self.active_attempts),
                        self.address,
                    )
                    for inv in list(self.active_attempts.values()):
                        inv.abort()  # no more frames from it; its acknowledged steps stay journaled
                        worker._release(self, inv.id, inv.attempt, "shutdown grace over")
                if not writer.done():
                    # Flush what is queued or being written (a frame swapped out by the writer but
                    # not yet sent, e.g. the last SuspendFrame, must not be lost), half-close, and
                    # let the runtime end the stream so it has read everything.
                    if self._out or self._writing:
                        self._flushed.clear()
                        self._wake.set()
                        await asyncio.wait(
                            {writer, asyncio.create_task(self._flushed.wait())},
                            timeout=5.0,
                            return_when=asyncio.FIRST_COMPLETED,
                        )
                    try:
                        await asyncio.wait_for(call.done_writing(), timeout=2.0)
                    except Exception:
                        pass
                    if not reader.done():
                        await asyncio.wait({reader}, timeout=2.0)
                log.info(
                    "stream to %s drained: %d attempt(s) handed back; %d start(s) after the runtime's drain ack%s",
                    self.address,
                    worker.released,
                    worker.starts_after_drain_ack,
                    "" if self.drain_acked else " (the runtime never acknowledged the drain)",
                )
            finally:
                for t in (reader, writer, stopper):
                    t.cancel()
                await asyncio.gather(reader, writer, stopper, return_exceptions=True)
                call.cancel()

    async def _writer(self, call: Any) -> None:
        wake = self._wake
        while True:
            await wake.wait()
            wake.clear()
            while self._out:
                frames, self._out = self._out, []
                self._writing = True
                try:
                    await call.write(worker_pb2.WorkerMessage(frames=frames))
                finally:
                    self._writing = False
            self._flushed.set()

    async def _reader(self, call: Any) -> None:
        while True:
            msg = await call.read()
            if msg is grpc.aio.EOF:
                log.warning("runtime %s closed the stream", self.address)
                return
            for frame in msg.frames:
                self._dispatch(frame)

    # ------------------------------------------------------------------ frames

    def _dispatch(self, frame: worker_pb2.RuntimeFrame) -> None:
        worker = self.worker
        which = frame.WhichOneof("frame")
        if which == "ack":
            a = frame.ack
            inv = self.active_attempts.get(a.invocation_id)
            if inv is not None and inv.attempt == a.attempt:
                inv.on_ack(a.index)
        elif which == "complete":
            c = frame.complete
            inv = self.active_attempts.get(c.invocation_id)
            if inv is not None and inv.attempt == c.attempt:
                inv.on_complete(c)
        elif which == "start":
            start = frame.start
            if worker._stopping:
                if self.drain_acked:
                    worker.starts_after_drain_ack += 1
                    log.error("StartFrame for %s after %s acknowledged our drain", start.invocation_id, self.address)
                worker._release(self, start.invocation_id, start.attempt, "worker draining")
                return
            if worker._has_slot():
                self._start(start)
            elif len(self._queue) < worker.concurrency:
                self._queue.append(start)
            else:  # the runtime sent more than it was told we take: give it back at once
                worker._release(self, start.invocation_id, start.attempt, "worker queue full")
        elif which == "cancel":
            x = frame.cancel
            inv = self.active_attempts.get(x.invocation_id)
            if inv is not None and inv.attempt == x.attempt:
                inv.cancel()
        elif which == "abort":
            ab = frame.abort
            inv = self.active_attempts.get(ab.invocation_id)
            if inv is not None and inv.attempt == ab.attempt:
                inv.abort()
            else:
                self._queue = collections.deque(
                    s
                    for s in self._queue
                    if not (s.invocation_id == ab.invocation_id and s.attempt == ab.attempt)
                )
        elif which == "drained":
            self.drain_acked = True
            log.info("runtime acknowledged the drain on %s (%d attempt(s) running here)", self.address,
                     frame.drained.running)
        elif which == "registered":
            self.worker_id = frame.registered.worker_id
            self.connections += 1
            self.registered.set()
            log.info("registered with %s as %s (%s)", self.address, self.worker_id, worker.deployment_id)
            worker._add_peers(frame.registered.peers)
        elif which == "peers":
            worker._add_peers(frame.peers.peers)

    def _start(self, start: worker_pb2.StartFrame) -> None:
        old = self.active_attempts.get(start.invocation_id)
        if old is not None:
            if old.attempt >= start.attempt:
                return  # a stale or duplicate start
            old.abort()
        loop = self.worker._loop
        assert loop is not None
        defn = self.worker.app.lookup(start.target.service, start.target.handler)
        inv = Invocation(self, start, defn, loop, stream_flush_ms=self.worker.stream_flush_ms,
                         stream_flush_bytes=self.worker.stream_flush_bytes)
        self.active_attempts[inv.id] = inv
        inv.start()


# ---------------------------------------------------------------------- entry points


class StreamFlushError(ValueError):
    """A stream flush policy that cannot work (a negative delay, a buffer under one byte)."""


def check_stream_flush(flush_ms: float, flush_bytes: int) -> None:
    if not flush_ms >= 0:  # also NaN
        raise StreamFlushError(f"stream_flush_ms must be >= 0 (0: every write at once), not {flush_ms}")
    if flush_bytes < 1:
        raise StreamFlushError(f"stream_flush_bytes must be >= 1, not {flush_bytes}")


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.new_event_loop()


def run_worker(
    app_ref: str | App,
    runtime: str,
    concurrency: int = 64,
    *,
    worker_name: str | None = None,
    shutdown_grace: float = 30.0,
    deployment_id: str | None = None,
    on_ready: Callable[[Worker], None] | None = None,
    deployment_version: str | None = None,
    stream_flush_ms: float = DEFAULT_FLUSH_MS,
    stream_flush_bytes: int = DEFAULT_FLUSH_BYTES,
) -> None:
    """Run a worker until SIGTERM/SIGINT (blocking; uses uvloop). Raises RegistrationError when
    the runtime refuses the registration."""
    if isinstance(app_ref, App):
        app = app_ref
        deployment_id = deployment_id or app.name or "app"
    else:
        app = load_app(app_ref)
        deployment_id = deployment_id or app_ref

    async def main() -> None:
        worker = Worker(
            app,
            runtime,
            deployment_id=deployment_id,
            concurrency=concurrency,
            worker_name=worker_name,
            shutdown_grace=shutdown_grace,
            deployment_version=deployment_version,
            stream_flush_ms=stream_flush_ms,
            stream_flush_bytes=stream_flush_bytes,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        if on_ready is not None:
            on_ready(worker)
        await worker.run()

    with asyncio.Runner(loop_factory=_new_loop) as runner:
        runner.run(main())



@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """What `endure worker` and `python -m endure.sdk.worker` take: one definition for both."""

    app: str
    runtime: str
    concurrency: int = 64
    name: str | None = None
    shutdown_grace: float = 30.0
    log_level: str = "INFO"
    log_format: str = "text"
    metrics: str | None = None
    # None: App(version=...), else $ENDURE_DEPLOYMENT_VERSION, else a hash of the handlers' code.
    deployment_version: str | None = None
    stream_flush_ms: float = DEFAULT_FLUSH_MS
    stream_flush_bytes: int = DEFAULT_FLUSH_BYTES


LOG_FORMATS = ("text", "json")
FLUSH_MS_ENV = "ENDURE_STREAM_FLUSH_MS"
FLUSH_BYTES_ENV = "ENDURE_STREAM_FLUSH_BYTES"


def serve(options: WorkerOptions) -> int:
    """Run a worker process as the commands do (logging, tracing, metrics, then run_worker);
    returns the exit status: 0 after a stop, 2 if the app cannot be loaded or is refused."""
    from endure.sdk.logs import setup_logging

    if options.log_format not in LOG_FORMATS:
        print(f"endure worker: --log-format is one of {', '.join(LOG_FORMATS)}, not {options.log_format!r}",
              file=sys.stderr)
        return 2
    setup_logging(options.log_level, options.log_format)
    try:
        app = load_app(options.app)
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        print(f"endure worker: cannot load {options.app}: {exc}", file=sys.stderr)
        return 2
    try:  # a bad --deployment-version or $ENDURE_DEPLOYMENT_VERSION is a usage error, not a traceback
        if options.deployment_version:
            check_deployment_version(options.deployment_version, "--deployment-version")
        else:
            app.deployment_version()
    except ValueError as exc:
        print(f"endure worker: {exc}", file=sys.stderr)
        return 2
    try:
        check_stream_flush(options.stream_flush_ms, options.stream_flush_bytes)
    except StreamFlushError as exc:
        print(f"endure worker: {exc}", file=sys.stderr)
        return 2
    from endure.sdk import tracing

    tracing.enable_from_env()
    if options.metrics:
        from endure.sdk import metrics

        port = metrics.enable(options.metrics)
        log.info("worker metrics on %s", f"{options.metrics.rpartition(':')[0]}:{port}")
    from endure.sdk.profiling import run_profiled

    try:
        run_profiled(lambda: run_worker(
            app,
            options.runtime,
            options.concurrency,
            worker_name=options.name,
            shutdown_grace=options.shutdown_grace,
            deployment_id=options.app,
            deployment_version=options.deployment_version,
            stream_flush_ms=options.stream_flush_ms,
            stream_flush_bytes=options.stream_flush_bytes,
        ), "ENDURE_WORKER_PROFILE")
    except RegistrationError as exc:
        print(f"endure worker: {exc}", file=sys.stderr)
        return 2
    return 0


def parse_options(argv: list[str] | None = None) -> WorkerOptions:
    """The WorkerOptions of a `python -m endure.sdk.worker` command line (and its environment)."""
    parser = argparse.ArgumentParser(prog="python -m endure.sdk.worker", description=__doc__.split("\n")[0])
    parser.add_argument("app", help="MODULE:APP, the endure.sdk.App to serve")
    parser.add_argument("--runtime", required=True, help="HOST:PORT of the runtime's worker endpoint")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--name", default=None, help="worker name shown by the runtime")
    parser.add_argument("--shutdown-grace", type=float, default=30.0)
    parser.add_argument("--log-level", default=os.environ.get("ENDURE_LOG_LEVEL", "INFO"))
    parser.add_argument("--log-format", choices=LOG_FORMATS, default=os.environ.get("ENDURE_LOG_FORMAT", "text"))
    parser.add_argument("--metrics", default=os.environ.get("ENDURE_WORKER_METRICS"),
                        help="serve Prometheus metrics on HOST:PORT (off by default)")
    parser.add_argument("--deployment-version", default=None,
                        help="the version this worker registers (default: the app's App(version=...), else "
                             f"${VERSION_ENV}, else a hash of the handlers' code)")
    parser.add_argument("--stream-flush-ms", type=float,
                        default=os.environ.get(FLUSH_MS_ENV, str(DEFAULT_FLUSH_MS)),  # argparse applies type=
                        help="send an attempt's stream writes this long after the first one waits "
                             f"(default {DEFAULT_FLUSH_MS:g}; ${FLUSH_MS_ENV})")
    parser.add_argument("--stream-flush-bytes", type=int,
                        default=os.environ.get(FLUSH_BYTES_ENV, str(DEFAULT_FLUSH_BYTES)),
                        help=f"... or once this many bytes of data wait (default {DEFAULT_FLUSH_BYTES}; ${FLUSH_BYTES_ENV})")
    args = parser.parse_args(argv)
    return WorkerOptions(app=args.app, runtime=args.runtime, concurrency=args.concurrency, name=args.name,
                               shutdown_grace=args.shutdown_grace, log_level=args.log_level,
                               log_format=args.log_format, metrics=args.metrics,
                               deployment_version=args.deployment_version,
                               stream_flush_ms=args.stream_flush_ms, stream_flush_bytes=args.stream_flush_bytes)


def main(argv: list[str] | None = None) -> int:
    """`python -m endure.sdk.worker`: parses argv into WorkerOptions and calls serve()."""
    return serve(parse_options(argv))


if __name__ == "__main__":
    from endure.sdk.worker import main as _main  # the package's module, not this __main__ copy

    sys.exit(_main())
