"""Issue 5, end to end: every `endure` subcommand as a real process against a real runtime, with
and without --json; `endure dev` serves a call and SIGTERM stops it and both its children."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from cluster import APPS_DIR, Cluster, Proc, free_port, read_markers, running_cluster, wait_until

from endure.proto import records_pb2 as pb

APP = "e2eapp:app"
ID = re.compile(r"inv_[0-9a-f]{48}")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, processes: int) -> Path:
    return tmp_path_factory.mktemp(f"e2e-cli-p{processes}")


@pytest.fixture(scope="module")
def cluster(root: Path, processes: int) -> Iterator[Cluster]:
    with running_cluster(root, APP, processes) as c:
        yield c


def endure(cluster: Cluster, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `endure ARGS` as a user would in an 80-column terminal (output is not a TTY)."""
    env = dict(cluster.env, ENDURE_INGRESS=cluster.ingress, ENDURE_ADMIN=cluster.admin, COLUMNS="80")
    proc = subprocess.run([sys.executable, "-m", "endure.runtime.cli", *args], env=env, capture_output=True,
                          text=True, timeout=60)
    if ok:
        assert proc.returncode == 0, f"endure {' '.join(args)} → {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def status_of(cluster: Cluster, inv: str) -> str:
    return pb.Status.Name(cluster.describe(inv).status.status)


def test_call(cluster: Cluster) -> None:
    assert endure(cluster, "call", "e2e/add", "--data", '{"a": 1, "b": 2}').stdout.strip() == "3"
    assert json.loads(endure(cluster, "call", "e2e/echo", "--data", '{"x": [1, 2]}', "--json").stdout) == {"x": [1, 2]}
    out = endure(cluster, "call", "e2eobj/put", "--key", "cli", "--data", '{"k": 1}').stdout
    assert json.loads(out) == ["k"]
    assert endure(cluster, "call", "e2e/noop", "--idempotency-key", "cli-idem").stdout.strip() == '"ok"'
    bad = endure(cluster, "call", "e2e/add", "--data", '{"a": "x", "b": 2}', ok=False)
    assert bad.returncode != 0 and "INVALID_ARGUMENT" in bad.stderr + bad.stdout
    assert "a" in bad.stderr + bad.stdout
    unknown = endure(cluster, "call", "nosuch/handler", ok=False)
    assert unknown.returncode != 0 and "NOT_FOUND" in unknown.stderr + unknown.stdout
    not_json = endure(cluster, "call", "e2e/echo", "--data", "{oops", ok=False)
    assert not_json.returncode == 2 and "JSON" in not_json.stderr + not_json.stdout


def test_send(cluster: Cluster) -> None:
    plain = endure(cluster, "send", "e2e/echo", "--data", '"hi"').stdout.strip()
    assert ID.fullmatch(plain)
    as_json = json.loads(endure(cluster, "send", "e2e/echo", "--data", '"later"', "--delay", "0.5", "--json").stdout)
    assert ID.fullmatch(as_json["invocation_id"])
    wait_until(lambda: status_of(cluster, as_json["invocation_id"]) == "COMPLETED", 30, "the delayed send")
    status = cluster.describe(as_json["invocation_id"]).status
    assert status.execute_at_ms - status.created_at_ms >= 400


def test_services(cluster: Cluster) -> None:
    table = endure(cluster, "services").stdout
    for needle in ("e2e", "e2eobj", "e2eflow", "EXCLUSIVE", "SHARED", "WORKFLOW_RUN", "w1"):
        assert needle in table, table
    data = json.loads(endure(cluster, "services", "--json").stdout)
    by_name = {s["definition"]["name"]: s for s in data["services"]}
    assert {"e2e", "e2eobj", "e2eflow"} <= set(by_name)
    assert "run_terminal_uncaught" in [h["name"] for h in by_name["e2e"]["definition"]["handlers"]]
    assert [w["name"] for w in by_name["e2e"]["workers"]] == ["w1"]


def test_partitions(cluster: Cluster) -> None:
    table = endure(cluster, "partitions").stdout
    assert "applied LSN" in table and re.search(r"│ 1\s+│ yes", table), table
    data = json.loads(endure(cluster, "partitions", "--json").stdout)
    assert [p.get("partition", 0) for p in data["partitions"]] == [0, 1]
    assert all(p["leader"] for p in data["partitions"])
    assert all(int(p.get("applied_lsn", 0)) <= int(p.get("log_tail", 0)) for p in data["partitions"])


def test_invocations_list_and_describe(cluster: Cluster) -> None:
    inv = endure(cluster, "send", "e2e/runs", "--data", "7").stdout.strip()
    wait_until(lambda: status_of(cluster, inv) == "COMPLETED", 30, "e2e/runs")
    listed = json.loads(endure(cluster, "invocations", "list", "--service", "e2e", "--json").stdout)
    ids = [i["status"]["invocation_id"] for i in listed["invocations"]]
    assert inv in ids
    assert all(i["status"]["target"]["service"] == "e2e" for i in listed["invocations"])
    completed = json.loads(endure(cluster, "invocations", "list", "--status", "completed", "--json").stdout)
    assert inv in [i["status"]["invocation_id"] for i in completed["invocations"]]
    paged = json.loads(endure(cluster, "invocations", "list", "--limit", "1", "--json").stdout)
    assert len(paged["invocations"]) == 1 and paged["next_page_token"]
    bad_status = endure(cluster, "invocations", "list", "--status", "nonsense", ok=False)
    assert bad_status.returncode == 2 and "unknown status" in bad_status.stdout + bad_status.stderr
    described = json.loads(endure(cluster, "invocations", "describe", inv, "--json").stdout)
    assert [e.get("name") for e in described["journal"]][:2] == ["double", "triple"]
    text = endure(cluster, "invocations", "describe", inv).stdout
    assert inv in text and "double" in text and "triple" in text and "14" in text and "21" in text, text
    missing = endure(cluster, "invocations", "describe", "inv_" + "0" * 48, ok=False)
    assert missing.returncode != 0 and "NOT_FOUND" in missing.stdout + missing.stderr


def test_invocations_table_shows_whole_ids(cluster: Cluster) -> None:
    """An operator copies ids from the table into describe/cancel: they must not be cut."""
    inv = endure(cluster, "send", "e2e/echo", "--data", "1").stdout.strip()
    wait_until(lambda: status_of(cluster, inv) == "COMPLETED", 30, "e2e/echo")
    table = endure(cluster, "invocations", "list", "--service", "e2e").stdout
    assert inv in table, table


def test_invocations_pause_resume_cancel_kill_purge(cluster: Cluster, root: Path) -> None:
    a = endure(cluster, "send", "e2e/cancellable", "--data", '"cli-a"').stdout.strip()
    b = endure(cluster, "send", "e2e/cancellable", "--data", '"cli-b"').stdout.strip()
    for inv in (a, b):
        wait_until(lambda inv=inv: [e.name for e in cluster.describe(inv).journal] == ["long"], 30, "the sleep")
    assert endure(cluster, "invocations", "pause", a).stdout.strip() == f"pause: {a}"
    wait_until(lambda: status_of(cluster, a) == "PAUSED", 30, "paused")
    paused = json.loads(endure(cluster, "invocations", "list", "--status", "paused", "--json").stdout)
    assert a in [i["status"]["invocation_id"] for i in paused["invocations"]]
    endure(cluster, "invocations", "resume", a)
    wait_until(lambda: status_of(cluster, a) in ("RUNNING", "SUSPENDED"), 30, "resumed")
    endure(cluster, "invocations", "cancel", a)
    wait_until(lambda: status_of(cluster, a) == "CANCELLED", 30, "cancelled")
    assert read_markers(root).count("cli-a:compensated") == 1
    endure(cluster, "invocations", "kill", b)
    wait_until(lambda: status_of(cluster, b) == "KILLED", 30, "killed")
    assert read_markers(root).count("cli-b:compensated") == 0
    endure(cluster, "invocations", "purge", b)
    wait_until(lambda: endure(cluster, "invocations", "describe", b, ok=False).returncode != 0, 30, "purged")


def test_invocation_actions_with_json(cluster: Cluster) -> None:
    inv = endure(cluster, "send", "e2e/cancellable", "--data", '"cli-json"').stdout.strip()
    wait_until(lambda: [e.name for e in cluster.describe(inv).journal] == ["long"], 30, "the sleep")
    for action in ("pause", "resume", "cancel"):
        out = endure(cluster, "invocations", action, inv, "--json").stdout
        assert json.loads(out) == {"action": action, "invocation_id": inv}
        if action == "pause":
            wait_until(lambda: status_of(cluster, inv) == "PAUSED", 30, "paused")
    wait_until(lambda: status_of(cluster, inv) == "CANCELLED", 30, "cancelled")
    for action in ("kill", "purge"):
        assert json.loads(endure(cluster, "invocations", action, inv, "--json").stdout)["action"] == action


def test_dev_serves_a_call_and_sigterm_stops_both_processes(tmp_path: Path) -> None:
    ingress, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(APPS_DIR), os.environ.get("PYTHONPATH", "")]),
               ENDURE_TEST_DIR=str(tmp_path))
    dev = Proc([sys.executable, "-m", "endure.runtime.cli", "dev", APP, "--data-dir", str(tmp_path / "data"),
                "--ingress", ingress, "--admin", admin, "--metrics", "127.0.0.1:0", "--console", "127.0.0.1:0"],
               tmp_path / "dev.log", env)
    children: list[psutil.Process] = []
    try:
        def ready() -> bool:
            r = subprocess.run([sys.executable, "-m", "endure.runtime.cli", "call", "e2e/add", "--data",
                                '{"a": 20, "b": 22}', "--ingress", ingress], capture_output=True, text=True, env=env)
            return r.returncode == 0 and r.stdout.strip() == "42"

        wait_until(ready, 60, "endure dev to serve a call", interval=0.2)
        console = dev.wait_for_line(re.compile(r"web console on (http://\S+)"), 30).group(1)
        with urllib.request.urlopen(f"{console}api/whoami", timeout=10) as response:  # open: no auth in dev
            assert json.loads(response.read())["admin"] is True
        children = psutil.Process(dev.pid).children(recursive=True)
        assert len(children) == 2, children  # the runtime and the worker
        dev.popen.send_signal(signal.SIGTERM)
        assert dev.popen.wait(timeout=30) == 0
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"left running after SIGTERM: {alive}"
    finally:
        for child in children:  # never leave them behind, whatever happened
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        dev.stop()
