"""`endure serve --processes N`: a supervisor and N node processes on one machine.

The supervisor takes the data dir's lock, checks (or records) the placement
(`endure.runtime.placement`), starts the N nodes through the launcher (`endure.runtime.launcher`:
they die with it, even on kill -9), waits for every node's ready line and prints one ready line
of its own: the shared ingress address, node 0's admin address (for workers and the CLI),
node 0's metrics and node 0's web console (the only one: it reaches every partition through its
owner, as the admin API does). Then it restarts a node that dies (same node id, same arguments; a node that
keeps dying at once is restarted with a growing delay, up to `MAX_BACKOFF_S`), and on SIGTERM or
SIGINT stops every node (SIGTERM, then SIGKILL after the grace).

Every node binds the same ingress address (gRPC sets SO_REUSEPORT; the kernel spreads the
clients' connections); asked for port 0, the supervisor picks a free port first. Node 0 binds
the admin and metrics addresses asked for, the others port 0 on the same host. The nodes call each
other with a token the supervisor makes for its run (`ENDURE_INTERNAL_TOKEN`).

Children are started and restarted from the main thread: PR_SET_PDEATHSIG fires when the thread
that forked the child ends.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from endure.runtime.config import ConfigError, NodeConfig
from endure.runtime.datadir import DataDirLock
from endure.runtime.launcher import LaunchError, RuntimeChild, serve_argv, stop_all
from endure.runtime.placement import Placement, check_placement, recorded
from endure.runtime.ready import ReadyLine

__all__ = ["MAX_BACKOFF_S", "NodeFailed", "SupervisorOptions", "resolve_processes", "run_supervisor"]

log = logging.getLogger("endure.supervisor")

MAX_BACKOFF_S = 10.0
_STABLE_S = 10.0  # a node that lived this long is restarted at once
_TOKEN_ENV = "ENDURE_INTERNAL_TOKEN"


class NodeFailed(LaunchError):
    """A node did not come up at start; the supervisor stopped the others."""

    def __init__(self, node: int, returncode: int | None, detail: str) -> None:
        self.node = node
        self.returncode = returncode
        super().__init__(f"node {node} did not start: {detail}")


def resolve_processes(value: str, partitions: int, data_dir: Path | None = None) -> int:
    """`--processes`: a count >= 1, or `auto`: what the data dir was created with, or for a new data
    dir the cores, at most one per partition (so `auto` never refuses an existing data dir)."""
    if value == "auto":
        found = recorded(data_dir) if data_dir is not None else None
        if found is not None:
            return found if isinstance(found, int) else found.nodes
        return max(1, min(os.cpu_count() or 1, partitions))
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"--processes: expected a count >= 1 or 'auto', got {value!r}")
    return int(value)


@dataclass
class SupervisorOptions:
    processes: int
    config_file: Path | None = None
    log_level: str | None = None
    ready_timeout: float = 120.0
    grace: float = 20.0
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass(eq=False)
class _Slot:
    node: int
    argv: list[str]
    child: RuntimeChild
    started: float
    backoff: float = 0.0
    restart_at: float | None = None
    restarts: int = 0


def _free_address(address: str) -> str:
    host, _, port = address.rpartition(":")
    if port != "0":
        return address
    with socket.socket() as s:
        s.bind((host, 0))
        return f"{host}:{s.getsockname()[1]}"


def _on_host(address: str | None) -> str:
    if address is None:
        return "off"
    return f"{address.rpartition(':')[0]}:0"


class Supervisor:
    def __init__(self, cfg: NodeConfig, options: SupervisorOptions) -> None:
        self.cfg = cfg
        self.options = options
        self.placement = Placement(options.processes, cfg.partitions)
        self.stopping = threading.Event()
        self.slots: list[_Slot] = []
        self.env = {**os.environ, **options.extra_env, _TOKEN_ENV: secrets.token_urlsafe(32)}
        self.ingress = _free_address(cfg.ingress) if cfg.ingress else cfg.ingress

    def _argv(self, node: int, pinned: ReadyLine | None = None) -> list[str]:
        """A node's command line; `pinned`: the addresses it bound when it first started, so a restart
        serves on the same ports (workers and peers that knew it reconnect there)."""
        cfg, opts = self.cfg, self.options
        extra = ["--node-id", str(node), "--nodes", str(opts.processes)]
        if opts.config_file is not None:
            extra += ["--config", str(opts.config_file)]
        admin = cfg.admin if node == 0 else _on_host(cfg.admin)
        metrics = (cfg.metrics or "off") if node == 0 else _on_host(cfg.metrics)
        console = (cfg.console or "off") if node == 0 else "off"  # one console: it shows every partition anyway
        if pinned is not None:
            admin, metrics = pinned.admin or admin, pinned.metrics or metrics
            console = pinned.console or console
        return serve_argv(cfg.data_dir, ingress=self.ingress or "off", admin=admin or "off", metrics=metrics,
                          console=console, partitions=cfg.partitions, log_level=opts.log_level, extra=extra)

    def _spawn(self, node: int, argv: list[str]) -> RuntimeChild:
        return RuntimeChild(f"node-{node}", argv, env=self.env)  # stderr: the supervisor's own

    def start(self) -> ReadyLine:
        """Start every node, wait for all their ready lines (NodeFailed, every node stopped, if one fails)."""
        for node in range(self.options.processes):
            argv = self._argv(node)
            self.slots.append(_Slot(node, argv, self._spawn(node, argv), time.monotonic()))
        deadline = time.monotonic() + self.options.ready_timeout
        try:
            for slot in self.slots:
                slot.child.wait_ready(max(1.0, deadline - time.monotonic()))
        except LaunchError as exc:
            failed = next((s for s in self.slots if not s.child.alive()), None)
            self.stop(grace=5.0)
            node = failed.node if failed is not None else -1
            raise NodeFailed(node, failed.child.returncode if failed is not None else None, str(exc)) from exc
        for slot in self.slots:
            slot.argv = self._argv(slot.node, pinned=slot.child.ready)
        first = self.slots[0].child.ready
        return ReadyLine(first.ingress, first.admin, first.metrics, first.console)

    def watch(self) -> None:
        """Restart nodes that die, until `stopping` is set (by SIGTERM / SIGINT)."""
        while not self.stopping.wait(0.2):
            now = time.monotonic()
            for slot in self.slots:
                if slot.restart_at is None:
                    code = slot.child.returncode
                    if code is None:
                        continue
                    slot.child.close()
                    lived = now - slot.started
                    slot.backoff = 0.0 if lived >= _STABLE_S else min(MAX_BACKOFF_S, max(0.5, 2 * slot.backoff))
                    slot.restart_at = now + slot.backoff
                    log.warning("node %d (pid %d) exited with %d after %.1fs; restarting it in %.1fs",
                                slot.node, slot.child.pid, code, lived, slot.backoff)
                if slot.restart_at is not None and now >= slot.restart_at:
                    slot.child = self._spawn(slot.node, slot.argv)
                    slot.started, slot.restart_at = now, None
                    slot.restarts += 1
                    log.info("node %d restarted (pid %d)", slot.node, slot.child.pid)

    def stop(self, grace: float | None = None) -> None:
        stop_all([s.child for s in self.slots], self.options.grace if grace is None else grace)


def run_supervisor(cfg: NodeConfig, options: SupervisorOptions) -> int:
    """Run `endure serve --processes N` until SIGTERM / SIGINT; the exit status.

    Errors before the nodes start (the data dir in use, another placement) are raised
    (DataDirLocked, PlacementError); a node that does not start is NodeFailed."""
    lock = DataDirLock.acquire(cfg.data_dir)
    try:
        supervisor = Supervisor(cfg, options)
        check_placement(cfg.data_dir, supervisor.placement)
        signal.signal(signal.SIGTERM, lambda signum, frame: supervisor.stopping.set())
        signal.signal(signal.SIGINT, lambda signum, frame: supervisor.stopping.set())
        ready = supervisor.start()
        log.info("endure supervisor up: %d nodes, pids %s", options.processes,
                 [s.child.pid for s in supervisor.slots])
        print(ready.format(), flush=True)
        try:
            supervisor.watch()
        finally:
            log.info("shutting down %d nodes", options.processes)
            supervisor.stop()
        return 0
    finally:
        lock.release()
        sys.stdout.flush()
