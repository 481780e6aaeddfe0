"""Cancellation is told by its typed cause and the final status, never by a failure's text.

A handler that raises TerminalError("cancelled", 409) on its own is an ordinary failure for the
client (a plain InvocationError), the journal (cause FAILURE_ERROR), the status (COMPLETED) and the
CLI; an invocation really cancelled shows as cancelled (FAILURE_CANCELLED) in all of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from cluster import Cluster, running_cluster, wait_until

from endure.proto import records_pb2 as pb
from endure.sdk.client import Client, InvocationCancelled, InvocationError

APP = "e2eapp:app"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("e2e-cancel-cause"), APP) as c:
        yield c


def endure_cmd(cluster: Cluster, *args: str) -> list[str]:
    return [sys.executable, "-m", "endure.runtime.cli", *args]


def endure_env(cluster: Cluster) -> dict[str, str]:
    # wide, so rich never folds a table cell and the text checks see whole phrases
    return dict(cluster.env, ENDURE_INGRESS=cluster.ingress, ENDURE_ADMIN=cluster.admin, COLUMNS="200")


def endure(cluster: Cluster, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(endure_cmd(cluster, *args), env=endure_env(cluster), capture_output=True, text=True,
                          timeout=60)
    if ok:
        assert proc.returncode == 0, f"endure {' '.join(args)} → {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def status_name(cluster: Cluster, inv: str) -> str:
    return pb.Status.Name(cluster.describe(inv).status.status)


def output_failure(cluster: Cluster, inv: str) -> pb.Failure:
    last = cluster.describe(inv).journal[-1]
    assert last.HasField("output") and last.output.HasField("failure"), last
    return last.output.failure


def wait_for_sleep(cluster: Cluster, inv: str) -> None:
    wait_until(lambda: [e.name for e in cluster.describe(inv).journal] == ["long"], 30, f"the sleep of {inv}")


def listed(cluster: Cluster, status: str) -> list[str]:
    out = json.loads(endure(cluster, "invocations", "list", "--status", status, "--json").stdout)
    return [i["status"]["invocation_id"] for i in out.get("invocations", [])]


async def test_own_terminal_error_named_cancelled_is_a_plain_failure(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("e2e/own_conflict", "own")
        with pytest.raises(InvocationError) as err:
            await client.attach(inv, timeout=30)
    assert type(err.value) is InvocationError and err.value.cause == pb.FAILURE_ERROR
    assert (err.value.code, err.value.message) == (409, "cancelled")
    assert output_failure(cluster, inv).cause == pb.FAILURE_ERROR
    assert status_name(cluster, inv) == "COMPLETED"
    assert cluster.describe(inv).status.failure.cause == pb.FAILURE_ERROR

    text = endure(cluster, "invocations", "describe", inv).stdout
    assert "status completed" in text and "failed: cancelled" in text, text
    assert "status cancelled" not in text and "cancelled: cancelled" not in text, text
    assert inv in listed(cluster, "completed") and inv not in listed(cluster, "cancelled")

    call = endure(cluster, "call", "e2e/own_conflict", "--data", '"own-cli"', ok=False)
    said = call.stdout + call.stderr
    assert call.returncode != 0 and "failed (409): cancelled" in said and "was cancelled" not in said, said


async def test_real_cancellation_shows_as_cancelled(cluster: Cluster) -> None:
    async with Client(cluster.ingress) as client:
        inv = await client.send("e2e/cancellable", "real")
        wait_for_sleep(cluster, inv)
        await client.cancel(inv)
        with pytest.raises(InvocationCancelled) as err:
            await client.attach(inv, timeout=30)
    assert err.value.cause == pb.FAILURE_CANCELLED and err.value.code == 409
    assert output_failure(cluster, inv).cause == pb.FAILURE_CANCELLED
    assert status_name(cluster, inv) == "CANCELLED"
    assert cluster.describe(inv).status.failure.cause == pb.FAILURE_CANCELLED

    text = endure(cluster, "invocations", "describe", inv).stdout
    assert "status cancelled" in text and "cancelled: cancelled" in text, text
    assert inv in listed(cluster, "cancelled")


def test_endure_call_of_a_cancelled_invocation_says_so(cluster: Cluster) -> None:
    before = set(listed(cluster, "cancelled"))
    call = subprocess.Popen(endure_cmd(cluster, "call", "e2e/cancellable", "--data", '"call-cli"'),
                            env=endure_env(cluster), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def started() -> str | None:
            out = json.loads(endure(cluster, "invocations", "list", "--service", "e2e", "--json").stdout)
            found = [i["status"]["invocation_id"] for i in out.get("invocations", [])
                     if i["status"]["target"]["handler"] == "cancellable" and i["status"]["invocation_id"] not in before
                     and i["status"]["status"] in ("RUNNING", "SUSPENDED")]
            return found[0] if found else None

        inv = wait_until(started, 30, "the call to start")
        wait_for_sleep(cluster, inv)
        endure(cluster, "invocations", "cancel", inv)
        stdout, stderr = call.communicate(timeout=60)
    finally:
        if call.poll() is None:
            call.kill()
            call.communicate()
    assert call.returncode != 0
    assert f"invocation {inv} was cancelled (409)" in stdout + stderr, stdout + stderr
