"""Start an `endure serve` runtime and `endure worker` workers as child processes, and stop them.

The one launcher behind `endure dev`, `endure demo`, the benchmarks and the integration tests.
Why it exists as one module:

- children die with their parent: on Linux each child sets PR_SET_PDEATHSIG (SIGKILL) as it
  starts (`die_with_parent`, called by the `endure` command), so a
  `kill -9` of the launching process never leaves a runtime holding the ports and the data
  directory's lock, nor a worker serving on;
- a runtime's addresses are read from its ready line (`endure.runtime.ready.ReadyLine`; it may
  bind port 0), and a worker is started only after *its* runtime printed that line, so a
  runtime that failed to start never gets a worker that connects to some other runtime.

PR_SET_PDEATHSIG fires when the *thread* that forked the child ends: start children from a
thread that outlives them (the main thread in every caller here).
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from endure.runtime.ready import ReadyLine

__all__ = [
    "Child",
    "ExitedEarly",
    "LaunchError",
    "Launcher",
    "NotReady",
    "RuntimeChild",
    "die_with_parent",
    "serve_argv",
    "stop_all",
    "worker_argv",
]

_READY = re.compile(r"endure: ready ")
_PR_SET_PDEATHSIG = 1


class LaunchError(Exception):
    """A child process did not come up as expected."""


class ExitedEarly(LaunchError, RuntimeError):
    """The child exited before printing the line it was waited for."""

    def __init__(self, name: str, returncode: int, detail: str = "") -> None:
        self.name = name
        self.returncode = returncode
        super().__init__(f"{name} exited ({returncode}) before it was ready" + (f"; log:\n{detail}" if detail else ""))


class NotReady(LaunchError, TimeoutError):
    """The child did not print the awaited line in time."""

    def __init__(self, name: str, what: str, timeout: float, detail: str = "") -> None:
        self.name = name
        super().__init__(f"{name}: no line matching {what!r} within {timeout:g}s" + (f"; log:\n{detail}" if detail else ""))


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - every Linux libc has prctl
        return None
    return prctl


_prctl = _load_prctl()  # looked up before any fork: the child only calls it


PARENT_ENV = "ENDURE_DIE_WITH_PARENT"  # the pid of the launching process, read by the child


def die_with_parent() -> None:
    """In a launched child, as it starts: receive SIGKILL when the launching process dies (Linux).

    Set in the child itself, not in a `preexec_fn`: a preexec_fn makes subprocess fork() instead of
    vfork(), and fork() runs gRPC's fork handlers in a process with busy gRPC threads, which can
    abort the child before it execs. If the parent died before prctl took effect, the child would
    never get the signal: it compares its parent pid with the recorded one and exits then. The
    variable is removed, so the child's own children (sandbox pools) are not affected.
    """
    raw = os.environ.pop(PARENT_ENV, None)
    if raw is None or _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if str(os.getppid()) != raw:
        os.kill(os.getpid(), signal.SIGKILL)


def serve_argv(
    data_dir: Path | str,
    *,
    ingress: str = "127.0.0.1:0",
    admin: str = "127.0.0.1:0",
    metrics: str = "127.0.0.1:0",
    console: str = "off",
    partitions: int | None = None,
    log_level: str | None = None,
    processes: int | str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line of `endure serve` (through this interpreter, so a venv needs no PATH). The
    web console is off unless asked for (`console="127.0.0.1:0"`): tests and benchmarks rarely need it."""
    argv = [sys.executable, "-m", "endure.runtime.cli", "serve", "--data-dir", str(data_dir),
            "--ingress", ingress, "--admin", admin, "--metrics", metrics, "--console", console]
    if partitions is not None:
        argv += ["--partitions", str(partitions)]
    if processes is not None:
        argv += ["--processes", str(processes)]
    if log_level is not None:
        argv += ["--log-level", log_level]
    return [*argv, *extra]


def worker_argv(
    app: str,
    runtime: str,
    *,
    concurrency: int | None = None,
    name: str | None = None,
    log_level: str | None = None,
    log_format: str | None = None,
    metrics: str | None = None,
    shutdown_grace: float | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line of `endure worker APP --runtime RUNTIME` with the options given."""
    argv = [sys.executable, "-m", "endure.runtime.cli", "worker", app, "--runtime", runtime]
    for flag, value in (("--concurrency", concurrency), ("--name", name), ("--log-level", log_level),
                        ("--log-format", log_format), ("--metrics", metrics), ("--shutdown-grace", shutdown_grace)):
        if value is not None:
            argv += [flag, str(value)]
    return [*argv, *extra]


class Child:
    """One child process that dies with its parent and is always reaped.

    Its stdout is read by a thread: lines are kept (`lines`, unless keep_lines is off) for
    `wait_for_line`, and copied to the log file and to `echo`. Its stderr goes to the log file,
    or, without one, to this process's stderr.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        echo: BinaryIO | None = None,
        keep_lines: bool = True,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.echo = echo
        self.keep_lines = keep_lines
        self.lines: list[str] = []
        self._log = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115 - closed in close()
        self._cond = threading.Condition()
        self._eof = False
        try:
            self.popen: subprocess.Popen[bytes] = subprocess.Popen(
                list(argv), stdout=subprocess.PIPE, stderr=self._log,
                env={**(os.environ if env is None else env), PARENT_ENV: str(os.getpid())})
        except BaseException:
            if self._log is not None:
                self._log.close()
            raise
        self._reader = threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            for sink in (self._log, self.echo):
                if sink is not None:
                    try:
                        sink.write(raw)
                        sink.flush()
                    except (OSError, ValueError):  # a closed terminal or file must not stop the draining
                        pass
            with self._cond:
                if self.keep_lines:
                    self.lines.append(raw.decode(errors="replace"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float = 60.0) -> re.Match[str]:
        """The first stdout line matching pattern; ExitedEarly if it exits first, NotReady after timeout."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    match = pattern.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                if self._eof or self.popen.poll() is not None:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.5))
            eof = self._eof
        if not eof and self.popen.poll() is None:
            raise NotReady(self.name, pattern.pattern, timeout, self.tail())
        self._reader.join(timeout=5)
        with self._cond:  # lines read after the last check (the child exited meanwhile)
            for line in self.lines[seen:]:
                match = pattern.search(line)
                if match:
                    return match
        try:
            code = self.popen.wait(timeout=30)  # stdout closed: it is exiting
        except subprocess.TimeoutExpired:
            code = self.kill()
        raise ExitedEarly(self.name, code, self.tail())

    def tail(self, n: int = 60) -> str:
        """The last n lines of the log file (empty without one): for failure messages."""
        if self.log_path is None:
            return ""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout=timeout)

    def kill(self) -> int:
        """SIGKILL (kill -9) and reap."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        return self.popen.wait(timeout=30)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait up to timeout, then SIGKILL; the exit status (-9 if it had to be killed)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -signal.SIGKILL

    def close(self) -> None:
        """Kill if still running, and release the pipe, the reader and the log file."""
        self.kill()
        self._reader.join(timeout=5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        if self._log is not None:
            self._log.close()


class RuntimeChild(Child):
    """An `endure serve` child; `ready` holds the addresses from its ready line once started."""

    ready: ReadyLine

    def wait_ready(self, timeout: float = 60.0) -> ReadyLine:
        """Wait for the ready line; a runtime that does not print it in time is killed (NotReady)."""
        try:
            line = self.wait_for_line(_READY, timeout).string
        except NotReady:
            self.kill()
            raise
        ready = ReadyLine.parse(line)
        assert ready is not None, "the ready pattern matched a line ReadyLine cannot parse"
        self.ready = ready
        return ready


def stop_all(children: Sequence[Child], grace: float | None = 10.0) -> None:
    """SIGTERM every live child at once, wait up to grace in total, then SIGKILL the rest and close all.

    grace=None kills at once (kill -9), for tests and benchmarks that only clean up."""
    if grace is not None:
        for child in children:
            if child.alive():
                child.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in children:
            try:
                child.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    for child in children:
        child.close()


class Launcher:
    """Starts runtimes and workers and owns them: `stop()` (or leaving the `with`) ends them all."""

    def __init__(self, env: Mapping[str, str] | None = None, log_dir: Path | None = None) -> None:
        self.env = dict(env) if env is not None else dict(os.environ)
        self.log_dir = log_dir
        self.children: list[Child] = []

    def _log_path(self, name: str) -> Path | None:
        return self.log_dir / f"{name}.log" if self.log_dir is not None else None

    def start_runtime(
        self,
        argv: Sequence[str],
        *,
        name: str = "runtime",
        log_path: Path | None = None,
        echo: BinaryIO | None = None,
        ready_timeout: float = 60.0,
    ) -> RuntimeChild:
        """Start `endure serve` (argv from `serve_argv`) and wait for its ready line; ExitedEarly /
        NotReady if it fails."""
        child = RuntimeChild(name, argv, env=self.env, log_path=log_path or self._log_path(name), echo=echo)
        self.children.append(child)
        child.wait_ready(ready_timeout)
        return child

    def start_worker(
        self,
        argv: Sequence[str],
        *,
        name: str | None = None,
        log_path: Path | None = None,
        echo: BinaryIO | None = None,
        keep_lines: bool = True,
    ) -> Child:
        """Start `endure worker` (argv from `worker_argv`); it registers on its own, not waited for."""
        label = name or f"worker-{len(self.children) + 1}"
        child = Child(label, argv, env=self.env, log_path=log_path or self._log_path(label), echo=echo,
                      keep_lines=keep_lines)
        self.children.append(child)
        return child

    def stop(self, grace: float | None = 10.0) -> None:
        """End every child (workers first in the SIGTERM order, all within one grace period)."""
        children, self.children = self.children, []
        workers = [c for c in children if not isinstance(c, RuntimeChild)]
        stop_all([*workers, *(c for c in children if isinstance(c, RuntimeChild))], grace)

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
