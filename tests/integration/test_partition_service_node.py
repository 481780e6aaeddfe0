"""The node serves its partitions to other nodes on the admin server, behind the admin token."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cluster import Cluster  # noqa: I001 - tests/integration is on sys.path

from endure.proto import records_pb2 as pb
from endure.runtime.partition.remote import PartitionError, PartitionNotOwned, RemotePartition

ADMIN_TOKEN = "admin-secret-for-partitions"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Cluster]:
    config = tmp_path / "endure.toml"
    config.write_text(f'auth = true\nadmin_token_sha256 = "{hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()}"\n')
    cluster = Cluster(tmp_path, admin_token=ADMIN_TOKEN)
    try:
        cluster.start_runtime(["--config", str(config)])
        yield cluster
    finally:
        cluster.stop()


def test_remote_partitions_of_a_running_node_need_the_admin_token(secured: Cluster) -> None:
    async def run() -> None:
        async with grpc.aio.insecure_channel(secured.admin) as channel:
            with pytest.raises(PartitionError) as refused:
                await RemotePartition(0, channel).get_info()
            assert "UNAUTHENTICATED" in str(refused.value)

            metadata = tuple(secured.admin_metadata)
            part = RemotePartition(0, channel, metadata=metadata)
            info = await part.get_info()
            assert info.partition == 0 and info.leader
            env = pb.Envelope(resolve_promise=pb.ResolvePromise(workflow="wf", key="k", name="p", tenant="t",
                                                                value=b"v"))
            env.header.timestamp_ms = 1
            lsns = await part.append([env])
            assert lsns.start >= info.log_tail
            for _ in range(200):  # applied soon after it is durable (10 s at most)
                if await part.get_promises("t", "wf", "k"):
                    break
                await asyncio.sleep(0.05)
            assert [(n, p.value) for n, p in await part.get_promises("t", "wf", "k")] == [("p", b"v")]
            with pytest.raises(PartitionNotOwned):
                await RemotePartition(secured.partitions, channel, metadata=metadata).get_info()

    asyncio.run(run())
