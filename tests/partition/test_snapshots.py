"""Partition snapshots: checkpoints, the dir and S3 snapshot stores, the index, the snapshotter's
trimming, and restoring a store that then replays the rest of a trimmed log.

Everything is real: RocksDB stores built by applying records through the state machine, a
LocalMetadataStore, a NodeLog, and for S3 moto's server mode started as a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from endure.runtime.config import ConfigError, NodeConfig, load_config
from endure.runtime.log import LocalMetadataStore, NodeLog, TrimmedError, VirtualLog
from endure.runtime.partition import keys
from endure.runtime.partition.snapshots import (
    DirSnapshotStore,
    S3SnapshotStore,
    SnapshotConfigError,
    SnapshotError,
    SnapshotNotFound,
    SnapshotRef,
    SnapshotStore,
    Snapshotter,
    index_key,
    latest_snapshot,
    list_snapshots,
    open_snapshot_store,
    record_snapshot,
    restore_latest,
)
from endure.runtime.partition.snapshots import archive as archive_module
from endure.runtime.partition.state_machine import StateMachine, StateMachineConfig
from endure.runtime.partition.store import PartitionStore, read_applied_lsn
from tests.partition.partition_testkit import Partition, apply_batch, end, inv_id, invoke, output, run_entry

RECORDS_PER_INVOCATION = 6  # invoke, three run entries, output, end


# ----------------------------------------------------------------------------- records and stores


def records(first: int, invocations: int) -> list[bytes]:
    """Serialized records of `invocations` three-step invocations, numbered from `first`."""
    out = []
    for n in range(first, first + invocations):
        inv = inv_id(f"snap-{n}")
        out += [invoke(inv, input=b'{"n": %d}' % n), run_entry(inv, 0, b"a" * 50), run_entry(inv, 1, b"b" * 50),
                run_entry(inv, 2, b"c" * 50), output(inv, 3), end(inv)]
    return [r.SerializeToString() for r in out]


def fill(part: Partition, first: int, invocations: int) -> None:
    """Apply invocations to a testkit partition, in batches of 64 records like a processor would."""
    recs = records(first, invocations)
    for i in range(0, len(recs), 64):
        part.apply(*recs[i:i + 64])
    assert part.sm.rejected == 0


class LogApplier:
    """A store that follows a NodeLog as a processor does: reader(applied + 1), one commit per batch."""

    def __init__(self, path: Path, vlog: VirtualLog) -> None:
        self.store = PartitionStore(path)
        self.sm = StateMachine(StateMachineConfig(partition=0, partitions=1, retention_ms=3_600_000))
        self.vlog = vlog

    async def catch_up(self, to_lsn: int | None = None) -> int:
        target = self.vlog.tail() - 1 if to_lsn is None else to_lsn
        if self.store.applied_lsn() >= target:
            return self.store.applied_lsn()
        async for batch in self.vlog.reader(self.store.applied_lsn() + 1, limit=64):
            batch = [r for r in batch if r.lsn <= target]
            apply_batch(self.store, self.sm, [(r.lsn, r.payload) for r in batch])
            if self.store.applied_lsn() >= target:
                break
        return self.store.applied_lsn()

    def close(self) -> None:
        self.store.close()


def rows(store: PartitionStore) -> list[tuple[bytes, bytes]]:
    return list(store.items())


def temp_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith((".snapshot", ".restore", ".tmp")))


@pytest.fixture
async def metadata(tmp_path: Path) -> AsyncIterator[LocalMetadataStore]:
    meta = LocalMetadataStore(tmp_path / "metadata")
    yield meta
    await meta.close()


@pytest.fixture
async def node_log(tmp_path: Path) -> AsyncIterator[NodeLog]:
    node = await NodeLog.open(tmp_path / "node", 1)
    yield node
    await node.close()


# ----------------------------------------------------------------------------- moto's S3 server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server as a real subprocess (moto_server -p PORT -H 127.0.0.1), killed afterwards."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("boto3") is None:
        pytest.skip("moto[server] and boto3 are not installed (pip install -e '.[cluster]'): the S3 snapshot "
                    "store is tested against moto's server")
    port = _free_port()
    script = Path(sys.executable).with_name("moto_server")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]
    proc = subprocess.Popen([*cmd, "-p", str(port), "-H", "127.0.0.1"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(endpoint + "/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer on {endpoint} within 60 s") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture
def s3_url(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server; credentials through the standard AWS variables."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"snap-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    client.close()
    return f"s3://{bucket}/cluster-a/snapshots?endpoint={moto_endpoint}"


@pytest.fixture(params=["dir", "s3"])
async def snapshot_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SnapshotStore]:
    if request.param == "dir":
        store = open_snapshot_store(f"dir:{tmp_path / 'snapshots'}")
    else:
        store = open_snapshot_store(request.getfixturevalue("s3_url"))
    yield store
    await store.close()


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_holds_the_rows_and_lsn_it_was_taken_at_and_restores_identically(tmp_path: Path) -> None:
    part = Partition(tmp_path / "live")
    fill(part, 0, 200)
    lsn_then, rows_then = part.store.applied_lsn(), rows(part.store)
    assert lsn_then == 200 * RECORDS_PER_INVOCATION

    (tmp_path / "cp").mkdir()  # an empty folder is fine
    assert part.store.checkpoint(tmp_path / "cp") == lsn_then
    fill(part, 200, 10)  # the live store moves on; the checkpoint does not
    assert part.store.applied_lsn() > lsn_then
    assert read_applied_lsn(tmp_path / "cp") == lsn_then

    restored = PartitionStore.from_checkpoint(tmp_path / "cp", tmp_path / "restored")
    try:
        assert restored.applied_lsn() == lsn_then
        assert rows(restored) == rows_then
        assert (tmp_path / "cp").is_dir()  # copied, not moved
    finally:
        restored.close()
    with pytest.raises(FileExistsError, match="cp"):
        part.store.checkpoint(tmp_path / "cp")  # not empty
    part.close()


def test_a_restored_checkpoint_replaces_an_existing_store_folder(tmp_path: Path) -> None:
    old = Partition(tmp_path / "store")
    fill(old, 0, 3)
    old.close()
    src = Partition(tmp_path / "src")
    fill(src, 100, 20)
    src.store.checkpoint(tmp_path / "cp")
    expected = rows(src.store)
    src.close()
    restored = PartitionStore.from_checkpoint(tmp_path / "cp", tmp_path / "store", move=True)
    try:
        assert rows(restored) == expected
        assert not (tmp_path / "cp").exists()
        assert temp_leftovers(tmp_path) == []
    finally:
        restored.close()


# ----------------------------------------------------------------------------- snapshot stores


async def test_snapshot_store_put_list_get_delete(snapshot_store: SnapshotStore, tmp_path: Path) -> None:
    part = Partition(tmp_path / "live")
    fill(part, 0, 50)
    lsn = part.store.checkpoint(tmp_path / "cp")
    ref = await snapshot_store.put(3, lsn, tmp_path / "cp")
    assert (ref.partition, ref.lsn) == (3, lsn)
    assert ref.size > 0 and ref.sha256 and ref.key.startswith("p3/")
    assert ref.location.startswith(snapshot_store.url.split("?")[0]) and ref.location.endswith(ref.key)

    listed = await snapshot_store.list(3)
    assert [(r.key, r.lsn, r.size) for r in listed] == [(ref.key, lsn, ref.size)]
    assert await snapshot_store.list(4) == []

    await snapshot_store.get(ref, tmp_path / "got")
    await snapshot_store.get(listed[0], tmp_path / "got-from-list")  # checksum from the object itself
    for folder in ("got", "got-from-list"):
        store = PartitionStore(tmp_path / folder)
        assert store.applied_lsn() == lsn and rows(store) == rows(part.store)
        store.close()

    await snapshot_store.delete(ref)
    assert await snapshot_store.list(3) == []
    with pytest.raises(SnapshotNotFound, match=ref.key):
        await snapshot_store.get(ref, tmp_path / "gone")
    await snapshot_store.delete(ref)  # already gone: not an error
    part.close()


async def test_dir_store_writes_atomically_and_refuses_a_corrupt_archive(tmp_path: Path) -> None:
    store = DirSnapshotStore(tmp_path / "snaps")
    part = Partition(tmp_path / "live")
    fill(part, 0, 20)
    lsn = part.store.checkpoint(tmp_path / "cp")
    ref = await store.put(0, lsn, tmp_path / "cp")
    assert sorted(p.name for p in (tmp_path / "snaps" / "p0").iterdir()) == [ref.key.split("/")[1]]
    assert ref.location == f"dir:{tmp_path / 'snaps' / ref.key}"

    path = tmp_path / "snaps" / ref.key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match=f"{ref.key}.*(corrupt|not a readable archive)"):
        await store.get(ref, tmp_path / "got")
    assert list((tmp_path / "got").iterdir()) == []  # nothing half-restored is left behind
    part.close()


async def test_snapshot_io_runs_in_a_thread_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    pack = archive_module.pack

    def spying_pack(folder: Path, out: object) -> tuple[int, str]:
        seen.append(threading.current_thread().name)
        return pack(folder, out)  # type: ignore[arg-type]

    monkeypatch.setattr(archive_module, "pack", spying_pack)
    part = Partition(tmp_path / "live")
    fill(part, 0, 5)
    part.store.checkpoint(tmp_path / "cp")
    await DirSnapshotStore(tmp_path / "snaps").put(0, part.store.applied_lsn(), tmp_path / "cp")
    assert seen and threading.main_thread().name not in seen
    part.close()


async def test_s3_errors_are_typed_and_name_the_bucket(s3_url: str, tmp_path: Path) -> None:
    endpoint = s3_url.split("?endpoint=")[1]
    store = open_snapshot_store(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/x?endpoint={endpoint}")
    assert isinstance(store, S3SnapshotStore)
    part = Partition(tmp_path / "live")
    fill(part, 0, 2)
    part.store.checkpoint(tmp_path / "cp")
    with pytest.raises(SnapshotError, match=r"s3://no-such-bucket-\w+/x/p0/"):
        await store.put(0, 12, tmp_path / "cp")
    with pytest.raises(SnapshotError, match="s3://no-such-bucket"):
        await store.list(0)
    assert temp_leftovers(tmp_path) == []  # the staged archive is removed
    await store.close()
    part.close()


def test_snapshot_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(open_snapshot_store(f"dir:{tmp_path}"), DirSnapshotStore)
    assert open_snapshot_store(f"dir://{tmp_path}").root == tmp_path  # type: ignore[attr-defined]
    monkeypatch.setenv("ENDURE_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    s3 = open_snapshot_store("s3://bucket/some/prefix/")
    assert isinstance(s3, S3SnapshotStore)
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == ("bucket", "some/prefix", "http://127.0.0.1:9")
    s3 = open_snapshot_store("s3://bucket?endpoint=http://localhost:5000&region=eu-west-1")
    assert (s3.prefix, s3.endpoint_url, s3.region) == ("", "http://localhost:5000", "eu-west-1")  # type: ignore[attr-defined]

    for bad, says in [("ftp://host/x", "unknown scheme 'ftp'"), ("/just/a/path", "unknown scheme"),
                      ("s3:///prefix", "names no bucket"), ("dir:", "names no folder"),
                      ("s3://b/p?endpoint=x&colour=red", "unknown parameter")]:
        with pytest.raises(SnapshotConfigError, match=says) as err:
            open_snapshot_store(bad)
        assert repr(bad) in str(err.value) and isinstance(err.value, ConfigError)

    assert NodeConfig().cluster is None
    cluster = {"ENDURE_CLUSTER_NATS": "nats://127.0.0.1:4222", "ENDURE_CLUSTER_NODE_ID": "0"}
    cfg = load_config(environ={**cluster, "ENDURE_CLUSTER_SNAPSHOTS": "s3://b/p", "ENDURE_SNAPSHOT_INTERVAL_S": "5"})
    assert cfg.cluster is not None
    assert (cfg.cluster.snapshots, cfg.snapshot_interval_s, cfg.snapshot_every_records, cfg.snapshot_keep) == \
        ("s3://b/p", 5.0, 50_000, 2)
    assert load_config(environ={**cluster, "ENDURE_CLUSTER_SNAPSHOTS": "off"}).cluster.snapshots == "off"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="cluster.snapshots.*'gs://b'"):
        load_config(environ={**cluster, "ENDURE_CLUSTER_SNAPSHOTS": "gs://b"})


# ----------------------------------------------------------------------------- the index


def _ref(lsn: int, name: str = "") -> SnapshotRef:
    key = f"p0/{lsn:020d}-0000000000000-{name or 'aaaaaaaa'}.tar"
    return SnapshotRef(0, lsn, key, f"dir:/x/{key}", 1.0, 10)


async def test_index_keeps_the_newest_k_by_compare_and_set(metadata: LocalMetadataStore) -> None:
    assert await latest_snapshot(metadata, 0) is None
    kept, dropped = await record_snapshot(metadata, 0, _ref(10))
    assert ([r.lsn for r in kept], dropped) == ([10], [])
    # Two writers at once (a leader and a stale one): compare-and-set, retried, loses neither.
    (k1, d1), (k2, d2) = await asyncio.gather(record_snapshot(metadata, 0, _ref(30)),
                                              record_snapshot(metadata, 0, _ref(20)))
    assert [r.lsn for r in await list_snapshots(metadata, 0)] == [20, 30]
    assert sorted(r.lsn for r in d1 + d2) == [10]
    kept, dropped = await record_snapshot(metadata, 0, _ref(5))  # older than both kept: dropped at once
    assert [r.lsn for r in kept] == [20, 30] and [r.lsn for r in dropped] == [5]
    kept, _ = await record_snapshot(metadata, 0, _ref(40), keep=3)
    assert [r.lsn for r in kept] == [20, 30, 40]
    assert (await latest_snapshot(metadata, 0)).lsn == 40  # type: ignore[union-attr]
    assert await latest_snapshot(metadata, 1) is None
    version, raw = await metadata.get(index_key(0))  # type: ignore[misc]
    assert index_key(0) == "snapshots/0" and b'"lsn":40' in raw and version >= 4


# ----------------------------------------------------------------------------- the snapshotter


async def test_snapshotter_keeps_k_deletes_older_snapshots_and_trims_below_the_oldest(
        snapshot_store: SnapshotStore, metadata: LocalMetadataStore, node_log: NodeLog, tmp_path: Path) -> None:
    vlog = node_log.log(0)
    live = LogApplier(tmp_path / "live", vlog)
    snap = Snapshotter(0, live.store, vlog, metadata, snapshot_store, keep=2)
    lsns = []
    for round_ in range(4):
        await vlog.append(records(round_ * 20, 20))
        lsns.append(await live.catch_up())
        if round_ == 1:  # an upload a crash left unindexed (older than anything indexed): swept
            live.store.checkpoint(tmp_path / "orphan")
            await snapshot_store.put(0, 1, tmp_path / "orphan")
            shutil.rmtree(tmp_path / "orphan")
        ref = await snap.snapshot_now()
        assert ref is not None and ref.lsn == lsns[-1]
        indexed = await list_snapshots(metadata, 0)
        assert [r.lsn for r in indexed] == lsns[-2:]
        assert sorted(r.key for r in await snapshot_store.list(0)) == sorted(r.key for r in indexed)
        # The log is trimmed up to the oldest snapshot the index keeps: the oldest one a new leader
        # could restore still has every record after it.
        assert vlog.trim_point() == (lsns[-2] if round_ else lsns[0])
    assert await snap.snapshot_now() is None  # nothing applied since
    assert snap.snapshots_taken == 4 and snap.failures == 0
    assert temp_leftovers(tmp_path) == []
    with pytest.raises(TrimmedError):
        await vlog.read(1, vlog.tail())
    assert (await vlog.read(lsns[-2] + 1, lsns[-2] + 2))[0].lsn == lsns[-2] + 1
    live.close()


async def test_trim_never_goes_above_trim_floor(metadata: LocalMetadataStore, node_log: NodeLog,
                                                tmp_path: Path) -> None:
    vlog = node_log.log(0)
    live = LogApplier(tmp_path / "live", vlog)
    floor = 7  # e.g. a follower that has applied only this far
    snap = Snapshotter(0, live.store, vlog, metadata, DirSnapshotStore(tmp_path / "snaps"), keep=1,
                       trim_floor=lambda: floor)
    await vlog.append(records(0, 30))
    await live.catch_up()
    assert (await snap.snapshot_now()).lsn == 180  # type: ignore[union-attr]
    assert vlog.trim_point() == 7
    floor = 100
    await vlog.append(records(30, 10))
    await live.catch_up()
    await snap.snapshot_now()
    assert vlog.trim_point() == 100  # the floor, not the snapshot at 240
    floor = 50  # a floor moving back never un-trims, and never trims more
    await vlog.append(records(40, 10))
    await live.catch_up()
    await snap.snapshot_now()
    assert vlog.trim_point() == 100
    floor = 10_000  # above the snapshot: the snapshot bounds it
    await vlog.append(records(50, 10))
    await live.catch_up()
    ref = await snap.snapshot_now()
    assert ref is not None and vlog.trim_point() == ref.lsn == 360
    live.close()


async def test_snapshotter_task_snapshots_by_records_and_by_interval_and_survives_failures(
        metadata: LocalMetadataStore, node_log: NodeLog, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    vlog = node_log.log(0)
    live = LogApplier(tmp_path / "live", vlog)
    (tmp_path / ".snapshot-p0-deadbeef").mkdir()  # a temp folder a crash left: removed at start

    class Flaky(DirSnapshotStore):
        fail = 1

        async def put(self, partition: int, lsn: int, local_checkpoint_dir: Path) -> SnapshotRef:
            if self.fail:
                self.fail -= 1
                raise SnapshotError(f"injected failure writing to {self.url}")
            return await super().put(partition, lsn, local_checkpoint_dir)

    async def until(cond: object, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():  # type: ignore[operator]
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.02)

    # By records: the interval is far away, 60 records (10 invocations) are due at once.
    snap = Snapshotter(0, live.store, vlog, metadata, DirSnapshotStore(tmp_path / "snaps"), interval_s=3600,
                       every_records=60, poll_s=0.02)
    snap.start()
    await until(lambda: not (tmp_path / ".snapshot-p0-deadbeef").exists())
    await vlog.append(records(0, 5))
    await live.catch_up()
    await asyncio.sleep(0.2)
    assert snap.snapshots_taken == 0  # 30 records: not yet
    await vlog.append(records(5, 5))
    await live.catch_up()
    await until(lambda: snap.snapshots_taken == 1)
    assert snap.last_ref is not None and snap.last_ref.lsn == 60
    await snap.stop()

    # By interval, with a failure first: logged, retried at the next interval, the task lives on.
    flaky = Flaky(tmp_path / "snaps")
    snap = Snapshotter(0, live.store, vlog, metadata, flaky, interval_s=0.3, every_records=10_000, poll_s=0.02)
    snap.start()
    await asyncio.sleep(0.5)
    assert snap.snapshots_taken == 0 and snap.failures == 0  # nothing new since the indexed LSN 60
    await vlog.append(records(10, 2))
    await live.catch_up()
    with caplog.at_level(logging.WARNING, logger="endure.partition.snapshots"):
        await until(lambda: snap.failures == 1)
        assert snap.running and "injected failure" in caplog.text
        t_fail = time.monotonic()
        await until(lambda: snap.snapshots_taken == 1)
        assert time.monotonic() - t_fail >= 0.2  # at the next interval, not at once
    assert snap.last_ref.lsn == 72  # type: ignore[union-attr]
    await asyncio.sleep(0.7)  # no records since: no more snapshots
    assert snap.snapshots_taken == 1
    await snap.stop()
    await snap.stop()  # idempotent
    assert temp_leftovers(tmp_path) == []
    assert [r.lsn for r in await list_snapshots(metadata, 0)] == [60, 72]
    live.close()


async def test_stop_waits_for_a_checkpoint_in_flight(metadata: LocalMetadataStore, node_log: NodeLog,
                                                    tmp_path: Path) -> None:
    vlog = node_log.log(0)
    live = LogApplier(tmp_path / "live", vlog)
    await vlog.append(records(0, 5))
    await live.catch_up()
    entered, release = threading.Event(), threading.Event()
    real = live.store.checkpoint

    def slow_checkpoint(path: Path) -> int:
        entered.set()
        release.wait(10)
        return real(path)

    live.store.checkpoint = slow_checkpoint  # type: ignore[method-assign]
    snap = Snapshotter(0, live.store, vlog, metadata, DirSnapshotStore(tmp_path / "snaps"), interval_s=0.05,
                       poll_s=0.01)
    snap.start()
    await asyncio.to_thread(entered.wait, 10)
    stopping = asyncio.create_task(snap.stop())
    await asyncio.sleep(0.1)
    assert not stopping.done()  # the store is still in use by the checkpoint thread
    release.set()
    await stopping
    assert temp_leftovers(tmp_path) == []
    live.close()  # safe now


# ----------------------------------------------------------------------------- restore


async def test_restore_latest_fills_a_missing_store_and_keeps_a_newer_one(
        snapshot_store: SnapshotStore, metadata: LocalMetadataStore, tmp_path: Path) -> None:
    target = tmp_path / "partitions" / "p0"
    assert await restore_latest(metadata, snapshot_store, 0, target) is None  # no index yet
    assert not target.exists()

    src = Partition(tmp_path / "src")
    fill(src, 0, 40)
    lsn = src.store.checkpoint(tmp_path / "cp")
    ref = await snapshot_store.put(0, lsn, tmp_path / "cp")
    await record_snapshot(metadata, 0, ref)
    expected = rows(src.store)

    assert await restore_latest(metadata, snapshot_store, 0, target) == lsn  # missing: restored
    store = PartitionStore(target)
    assert store.applied_lsn() == lsn and rows(store) == expected
    store.close()
    assert temp_leftovers(target.parent) == []

    newer = Partition(target)  # the local store moves past the snapshot
    fill(newer, 40, 3)
    newer_rows = rows(newer.store)
    newer.close()
    assert await restore_latest(metadata, snapshot_store, 0, target) is None  # newer: kept
    assert await restore_latest(metadata, snapshot_store, 0, target) is None
    store = PartitionStore(target)
    assert rows(store) == newer_rows
    store.close()

    older = tmp_path / "older" / "p0"  # an older local store is replaced
    stale = Partition(older)
    fill(stale, 0, 10)
    stale.close()
    assert await restore_latest(metadata, snapshot_store, 0, older) == lsn
    store = PartitionStore(older)
    assert rows(store) == expected
    store.close()

    await snapshot_store.delete(ref)  # indexed but gone: a typed error naming it
    with pytest.raises(SnapshotNotFound, match=ref.key):
        await restore_latest(metadata, snapshot_store, 0, tmp_path / "other" / "p0", attempts=2)
    src.close()


async def test_a_restored_snapshot_replays_the_rest_of_a_trimmed_log(
        metadata: LocalMetadataStore, node_log: NodeLog, tmp_path: Path) -> None:
    vlog = node_log.log(0)
    snaps = DirSnapshotStore(tmp_path / "snaps")
    leader = LogApplier(tmp_path / "leader", vlog)
    snap = Snapshotter(0, leader.store, vlog, metadata, snaps, keep=2)
    await vlog.append(records(0, 50))
    await leader.catch_up()
    await snap.snapshot_now()
    await vlog.append(records(50, 50))
    await leader.catch_up()
    ref = await snap.snapshot_now()  # the second: the log is trimmed below the first
    assert ref is not None and ref.lsn == 600 and vlog.trim_point() == 300
    await vlog.append(records(100, 30))  # the tail after the newest snapshot
    tail_lsn = await leader.catch_up()
    assert tail_lsn == 780

    # A new leader elsewhere: no local store; the log below 300 is gone.
    fresh = LogApplier(tmp_path / "fresh-full", vlog)
    with pytest.raises(TrimmedError):
        await fresh.catch_up()
    fresh.close()

    new_path = tmp_path / "new-leader" / "p0"
    restored_lsn = await restore_latest(metadata, snaps, 0, new_path)
    assert restored_lsn == 600
    follower = LogApplier(new_path, vlog)
    assert follower.store.applied_lsn() == 600
    assert await follower.catch_up() == tail_lsn  # replays only 601..780
    assert rows(follower.store) == rows(leader.store)
    assert follower.store.get(keys.APPLIED_LSN) == keys.u64(tail_lsn)
    with pytest.raises(TrimmedError):
        await vlog.read(restored_lsn - 400, restored_lsn)
    follower.close()
    leader.close()


@contextlib.contextmanager
def _no_leftover_dirs(root: Path) -> Iterator[None]:
    before = set(os.listdir(root))
    yield
    assert set(os.listdir(root)) - before == set()


def test_move_install_leaves_nothing_behind_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = Partition(tmp_path / "src")
    fill(src, 0, 5)
    src.store.checkpoint(tmp_path / "cp")
    src.close()
    keep = Partition(tmp_path / "store")
    fill(keep, 100, 2)
    kept_rows = rows(keep.store)
    keep.close()

    real_rename = os.rename

    def failing_rename(a: object, b: object) -> None:
        if Path(str(b)) == tmp_path / "store" and ".restore-" in str(a):
            raise OSError("injected: rename into place failed")
        real_rename(a, b)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", failing_rename)
    with _no_leftover_dirs(tmp_path), pytest.raises(OSError, match="injected"):
        PartitionStore.from_checkpoint(tmp_path / "cp", tmp_path / "store")
    monkeypatch.undo()
    store = PartitionStore(tmp_path / "store")  # the old store is back in place, untouched
    assert rows(store) == kept_rows
    store.close()
    shutil.rmtree(tmp_path / "cp")


async def test_restore_reads_the_index_again_when_its_snapshot_vanished(metadata: LocalMetadataStore,
                                                                        tmp_path: Path) -> None:
    src = Partition(tmp_path / "src")
    fill(src, 0, 10)
    first_lsn = src.store.checkpoint(tmp_path / "cp1")
    fill(src, 10, 10)
    second_lsn = src.store.checkpoint(tmp_path / "cp2")

    class Racing(DirSnapshotStore):
        """The index moves on (a newer snapshot, the old one deleted) between read and download."""

        async def get(self, ref: SnapshotRef, into_dir: Path) -> None:
            if ref.lsn == first_lsn:
                newer = await self.put(0, second_lsn, tmp_path / "cp2")
                await record_snapshot(metadata, 0, newer, keep=1)
                await self.delete(ref)
            await super().get(ref, into_dir)

    snaps = Racing(tmp_path / "snaps")
    await record_snapshot(metadata, 0, await snaps.put(0, first_lsn, tmp_path / "cp1"))
    assert await restore_latest(metadata, snaps, 0, tmp_path / "p0") == second_lsn
    store = PartitionStore(tmp_path / "p0")
    assert rows(store) == rows(src.store)
    store.close()
    src.close()
