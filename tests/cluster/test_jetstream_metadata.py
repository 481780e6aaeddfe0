"""The metadata store on an R3 JetStream key-value bucket: compare-and-set by revision, keys by
prefix, key encoding; and the connection's one-line error for an unreachable cluster."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats_cluster import JsNode, LocalNatsCluster  # noqa: I001 - tests/cluster is on sys.path

from endure.runtime.log import LogError, LogUnavailable, MetadataStore, VersionMismatch
from endure.runtime.log.jetstream import (
    ClusterUnavailable,
    JetStreamConnection,
    JetStreamMetadataStore,
    decode_key,
    encode_key,
)


async def test_compare_and_set_by_revision(node: JsNode) -> None:
    md = node.metadata
    assert isinstance(md, MetadataStore)
    assert await md.get("svc/a") is None
    v1 = await md.put("svc/a", b"v1", 0)  # version 0: must not exist (a KV create)
    assert v1 >= 1
    with pytest.raises(VersionMismatch, match="expected to not exist yet") as err:
        await md.put("svc/a", b"again", 0)
    assert (err.value.key, err.value.expected, err.value.actual) == ("svc/a", 0, v1)
    v2 = await md.put("svc/a", b"v2", v1)  # a KV update with last=v1
    assert v2 > v1
    with pytest.raises(VersionMismatch, match=f"expected version {v1}, but it is at version {v2}") as err:
        await md.put("svc/a", b"stale", v1)
    assert err.value.actual == v2
    with pytest.raises(VersionMismatch, match="does not exist") as err:
        await md.put("svc/b", b"x", 3)
    assert err.value.actual == 0
    assert await md.get("svc/a") == (v2, b"v2")
    assert await md.put("svc/empty", b"", 0) > 0
    assert (await md.get("svc/empty") or (0, None))[1] == b""


async def test_racing_creators_and_updaters_exactly_one_wins(make_node) -> None:  # type: ignore[no-untyped-def]
    nodes = [await make_node() for _ in range(3)]
    results = await asyncio.gather(
        *(n.metadata.put("race", b"%d" % i, 0) for i, n in enumerate(nodes * 2)), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, int)]
    assert len(winners) == 1
    assert sum(isinstance(r, VersionMismatch) and r.actual == winners[0] for r in results) == 5, results
    version = winners[0]
    results = await asyncio.gather(
        *(n.metadata.put("race", b"u%d" % i, version) for i, n in enumerate(nodes)), return_exceptions=True
    )
    assert sum(isinstance(r, int) for r in results) == 1
    # Every node reads the winner right after (reads go to the bucket's leader).
    got = {await n.metadata.get("race") for n in nodes}
    assert len(got) == 1


async def test_keys_by_prefix_with_any_characters(node: JsNode) -> None:
    md = node.metadata
    names = ["log/0/chain", "log/1/chain", "log/10/chain", "limits/tenant/acme corp", "limits/target/Svc/run",
             "registry/deployment/v1.2:blue", "registry/deployment/ünïcode ✓", "a.b..c*>", "=3D"]
    for name in names:
        await md.put(name, name.encode(), 0)
    assert await md.keys("log/") == ["log/0/chain", "log/1/chain", "log/10/chain"]
    assert await md.keys("log/1") == ["log/1/chain", "log/10/chain"]
    assert await md.keys("registry/deployment/") == ["registry/deployment/v1.2:blue", "registry/deployment/ünïcode ✓"]
    assert await md.keys("limits/tenant/") == ["limits/tenant/acme corp"]
    assert await md.keys() == sorted(names)
    assert await md.keys("nothing/") == []
    for name in names:
        got = await md.get(name)
        assert got is not None and got[1] == name.encode()
    with pytest.raises(ValueError, match="empty"):
        await md.put("", b"x", 0)


@given(st.text(min_size=1, max_size=40), st.text(max_size=10))
def test_key_encoding_is_reversible_safe_and_keeps_prefixes(key: str, suffix: str) -> None:
    try:
        key.encode()
        suffix.encode()
    except UnicodeEncodeError:
        return  # lone surrogates are not keys anyone can store
    enc = encode_key(key)
    assert decode_key(enc) == key
    assert all(c.isascii() and (c.isalnum() or c in "-_/=") for c in enc)  # one valid subject token
    assert encode_key(key + suffix).startswith(enc)


def test_readable_keys_stay_readable() -> None:
    assert encode_key("log/0/chain") == "log/0/chain"
    assert encode_key("a.b c") == "a=2Eb=20c"


async def test_a_put_whose_answer_is_lost_is_not_reported_as_a_mismatch(node: JsNode) -> None:
    md = node.metadata
    v1 = await md.put("k", b"1", 0)
    real = node.conn.request
    lost = 0

    async def losing(subject: str, payload: bytes, **kw):  # type: ignore[no-untyped-def]
        nonlocal lost
        reply = await real(subject, payload, **kw)
        if subject.startswith("$KV.") and lost == 0:
            lost += 1
            raise LogUnavailable("simulated lost answer", maybe_written=True)
        return reply

    node.conn.request = losing  # type: ignore[method-assign]
    try:
        v2 = await md.put("k", b"2", v1)  # stored by the first attempt; the retry sees its own write
    finally:
        node.conn.request = real  # type: ignore[method-assign]
    assert lost == 1
    assert await md.get("k") == (v2, b"2")


async def test_bucket_is_replicated_and_reopens(node: JsNode, nats_cluster: LocalNatsCluster) -> None:
    await node.metadata.put("x", b"1", 0)
    conn = await JetStreamConnection.connect(nats_cluster.urls[2])  # through another server
    try:
        again = await JetStreamMetadataStore.open(conn, node.metadata.bucket)
        assert (await again.get("x") or (0, b""))[1] == b"1"
        info = await conn.api(f"STREAM.INFO.{again.stream}", what="info")
        assert info["config"]["num_replicas"] == 3
        assert info["config"]["max_msgs_per_subject"] == 1
    finally:
        await conn.close()


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_cluster_gives_one_line_naming_the_addresses() -> None:
    urls = [f"nats://127.0.0.1:{_dead_port()}", f"nats://127.0.0.1:{_dead_port()}"]
    start = time.monotonic()
    with pytest.raises(ClusterUnavailable) as err:
        await JetStreamConnection.connect(urls, connect_timeout=1.5)
    assert time.monotonic() - start < 5
    text = str(err.value)
    assert "\n" not in text
    assert all(url in text for url in urls)
    assert text.startswith("log unavailable: cannot connect to the NATS cluster at ")
    assert isinstance(err.value, LogUnavailable) and isinstance(err.value, LogError)
    assert not err.value.maybe_written
