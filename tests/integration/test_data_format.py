"""The data directory's format version: a pre-version directory is migrated (the running index is
built), a newer one is refused with one line naming both versions, by the code and by the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from cluster import Cluster  # noqa: I001 - tests/integration is on sys.path

from endure.proto import ids
from endure.proto import ingress_pb2 as ipb
from endure.proto import ingress_pb2_grpc as ipb_grpc
from endure.proto import records_pb2 as pb
from endure.runtime import data_format
from endure.runtime.data_format import CURRENT_VERSION, DataFormatTooNew, open_data_dir, read_version
from endure.runtime.partition import keys
from endure.runtime.partition.store import PartitionStore

PARTITIONS = 2


def _running_index(store: PartitionStore) -> set[str]:
    """What a new leader scans to restart running invocations (PartitionProcessor's leader start)."""
    return {key[len(keys.RUNNING):].decode() for key, _ in store.scan(keys.RUNNING)}


def _write_pre_version_data_dir(data_dir: Path) -> dict[int, set[str]]:
    """A data directory as Endure wrote it before the running index (c80ea58) and before format
    versioning: real partition stores (PartitionStore on RocksDB) holding RUNNING and finished
    invocation statuses, no `keys.RUNNING` rows, and no FORMAT record. Returns the RUNNING ids
    per partition."""
    running: dict[int, set[str]] = {p: set() for p in range(PARTITIONS)}
    stores = {p: PartitionStore(data_dir / "partitions" / f"p{p}") for p in range(PARTITIONS)}
    txs = {p: store.transaction() for p, store in stores.items()}
    for n in range(8):
        inv = ids.new_invocation_id(None)
        p = ids.partition_of(inv, PARTITIONS)
        state = pb.RUNNING if n % 4 else pb.COMPLETED
        # e2eapp's e2e/echo, so a runtime + worker can finish what the old data left running.
        status = pb.InvocationStatus(invocation_id=inv, status=state, tenant="default", handler_kind=pb.SERVICE,
                                     target=pb.Target(service="e2e", handler="echo"),
                                     input=json.dumps(f"old-{n}").encode(), attempts=1)
        if state == pb.RUNNING:
            running[p].add(inv)
        else:
            status.value = b"null"
        txs[p].put_proto(keys.status(inv), status)
    for p, store in stores.items():
        txs[p].commit(0)
        assert _running_index(store) == set()
        store.close()
    assert not (data_dir / data_format.FORMAT_FILE).exists()
    assert any(running.values())
    return running


def test_pre_version_data_dir_is_migrated(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    running = _write_pre_version_data_dir(data_dir)
    assert read_version(data_dir) == data_format.UNVERSIONED

    assert open_data_dir(data_dir) == data_format.UNVERSIONED
    assert read_version(data_dir) == CURRENT_VERSION
    for p in range(PARTITIONS):
        store = PartitionStore(data_dir / "partitions" / f"p{p}")
        try:
            assert _running_index(store) == running[p]
        finally:
            store.close()
    # Opening again finds it current and changes nothing.
    assert open_data_dir(data_dir) == CURRENT_VERSION


def test_runtime_opens_a_pre_version_data_dir_and_migrates_it(tmp_path: Path) -> None:
    c = Cluster(tmp_path, partitions=PARTITIONS)
    running = _write_pre_version_data_dir(c.data_dir)
    try:
        c.start_runtime()
        c.start_worker("e2eapp:app", name="w1")
        # The new leaders restart what the old data left running (found only through the running
        # index: the log is empty), and the worker finishes it.
        with grpc.insecure_channel(c.ingress) as channel:
            stub = ipb_grpc.IngressStub(channel)
            for inv in set().union(*running.values()):
                out = stub.Attach(ipb.AttachRequest(invocation_id=inv), timeout=60)
                assert json.loads(out.value).startswith("old-"), out
    finally:
        c.stop()
    assert read_version(c.data_dir) == CURRENT_VERSION
    for p in range(PARTITIONS):
        store = PartitionStore(c.data_dir / "partitions" / f"p{p}")
        try:
            assert _running_index(store) == set()  # all finished
            for inv in running[p]:
                status = store.status(inv)
                assert status is not None and status.status == pb.COMPLETED
        finally:
            store.close()


def test_new_data_dir_is_stamped_current(tmp_path: Path) -> None:
    assert open_data_dir(tmp_path / "fresh") == CURRENT_VERSION
    assert json.loads((tmp_path / "fresh" / data_format.FORMAT_FILE).read_text()) == {"version": CURRENT_VERSION}


def test_newer_data_format_is_refused_in_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    newer = CURRENT_VERSION + 1
    stamp = json.dumps({"version": newer}) + "\n"
    (data_dir / data_format.FORMAT_FILE).write_text(stamp)
    with pytest.raises(DataFormatTooNew) as info:
        open_data_dir(data_dir)
    assert (info.value.found, info.value.supported) == (newer, CURRENT_VERSION)
    assert "\n" not in str(info.value)

    done = subprocess.run([sys.executable, "-m", "endure.runtime.cli", "serve", "--data-dir", str(data_dir),
                           "--ingress", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--metrics", "off",
                           "--log-level", "WARNING"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"version {newer}" in lines[0] and f"up to {CURRENT_VERSION}" in lines[0], lines[0]
    assert "endure: ready" not in done.stdout
    # Nothing was opened or rewritten.
    assert (data_dir / data_format.FORMAT_FILE).read_text() == stamp
    assert not (data_dir / "log").exists()
