"""The launcher and what a new user met with `endure dev`: a kill -9 of `endure dev` must take its
runtime and worker with it; a second runtime on a data dir in use must say so in one line, exit
non-zero and leave no worker behind; `endure worker` takes the worker's own flags."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from cluster import APPS_DIR, Cluster, Proc, free_port, list_services, wait_until

from endure.runtime.launcher import Launcher, RuntimeChild, serve_argv
from endure.runtime.ready import ReadyLine

APP = "e2eapp:app"
READY = re.compile(r"endure: ready ")
ANY_PORT = ["--ingress", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--metrics", "off"]


def _env(root: Path, marker: str = "") -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(APPS_DIR), os.environ.get("PYTHONPATH", "")]),
               ENDURE_TEST_DIR=str(root))
    if marker:
        env["ENDURE_LAUNCH_TEST"] = marker  # inherited by every descendant: how we find them afterwards
    return env


def _marked(marker: str) -> list[psutil.Process]:
    """Live processes whose environment carries marker (this test's descendants, wherever they are)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("ENDURE_LAUNCH_TEST") == marker and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def _kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[RuntimeChild]:
    """A runtime that has tmp_path/data open."""
    launcher = Launcher(_env(tmp_path), log_dir=tmp_path)
    try:
        yield launcher.start_runtime(serve_argv(tmp_path / "data", metrics="off"), name="holder")
    finally:
        launcher.stop(grace=None)


def test_kill9_of_endure_dev_takes_its_runtime_and_worker_with_it(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    data = tmp_path / "data"
    ports = ["--ingress", f"127.0.0.1:{free_port()}", "--admin", f"127.0.0.1:{free_port()}", "--metrics", "off",
             "--console", "off"]
    dev = Proc([sys.executable, "-m", "endure.runtime.cli", "dev", APP, "--data-dir", str(data), *ports],
               tmp_path / "dev.log", _env(tmp_path, marker))
    children: list[psutil.Process] = []
    try:
        ready = ReadyLine.parse(dev.wait_for_line(READY, 60).string)
        assert ready is not None
        probe = Cluster(tmp_path / "probe")
        probe.admin = ready.admin
        probe.wait_for_workers(1)  # the worker process is up and registered
        children = psutil.Process(dev.pid).children(recursive=True)
        assert len(children) == 2, children  # the runtime and the worker
        dev.kill()  # kill -9: no chance to stop its children itself
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"left running after kill -9 of endure dev: {alive}"
        assert not _marked(marker)
        # The data dir (our lock and RocksDB's) and the ports are free: a runtime opens it again.
        with Launcher(_env(tmp_path), log_dir=tmp_path) as again:
            reopened = again.start_runtime(serve_argv(data, metrics="off"), name="reopened")
            assert reopened.alive()
    finally:
        _kill_all(children)
        dev.stop()


def _assert_one_line_naming(stderr: str, data: Path, holder: RuntimeChild) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert str(data.resolve()) in lines[0] and f"pid {holder.pid}" in lines[0], lines[0]


def test_serve_on_a_data_dir_in_use_says_who_holds_it(tmp_path: Path, holder: RuntimeChild) -> None:
    data = tmp_path / "data"
    done = subprocess.run([sys.executable, "-m", "endure.runtime.cli", "serve", "--data-dir", str(data), *ANY_PORT],
                          env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0, done.stdout + done.stderr
    _assert_one_line_naming(done.stderr, data, holder)
    assert "ready" not in done.stdout
    assert holder.alive()


def test_dev_on_a_data_dir_in_use_fails_and_leaves_no_worker(tmp_path: Path, holder: RuntimeChild) -> None:
    marker = uuid.uuid4().hex
    data = tmp_path / "data"
    # The holder's own admin port: the old `endure dev` found it listening and registered its worker there.
    args = [sys.executable, "-m", "endure.runtime.cli", "dev", APP, "--data-dir", str(data),
            "--ingress", "127.0.0.1:0", "--admin", holder.ready.admin, "--metrics", "off", "--console", "off"]
    try:
        done = subprocess.run(args, env=_env(tmp_path, marker), capture_output=True, text=True, timeout=60)
        assert done.returncode != 0, done.stdout + done.stderr
        _assert_one_line_naming(done.stderr, data, holder)
        assert not _marked(marker), "endure dev left a process behind"
        probe = Cluster(tmp_path / "probe")
        probe.admin = holder.ready.admin
        assert not [w for s in list_services(probe).services for w in s.workers], "a worker joined the holder"
    finally:
        _kill_all(_marked(marker))


def test_endure_worker_takes_the_workers_own_flags(cluster: Cluster) -> None:
    cluster.start_runtime()
    worker = cluster.start_worker(APP, name="flags", extra_args=["--log-format", "json", "--shutdown-grace", "5"])
    records = wait_until(lambda: [json.loads(line) for line in worker.tail(200).splitlines()
                                  if line.startswith("{") and "registered" in line], 30, "a JSON log line")
    assert records[0]["logger"] == "endure.sdk.worker"
    worker.popen.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    bad = subprocess.run([sys.executable, "-m", "endure.runtime.cli", "worker", APP, "--runtime", cluster.admin,
                          "--log-format", "xml"], env=cluster.env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--log-format" in bad.stderr, bad.stderr
