"""PeerPartition: a partition another node of this machine owns, at the address it publishes."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from endure.proto import records_pb2 as pb
from endure.runtime.partition.remote import PartitionUnavailable
from endure.runtime.peers import Peer, PeerPartition
from endure.runtime.placement import write_endpoint


def _dead_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


async def test_a_peer_that_publishes_no_address_is_unavailable(tmp_path: Path) -> None:
    peer = Peer(1, tmp_path, resolve_timeout=0.1)
    with pytest.raises(PartitionUnavailable, match="published no address"):
        await PeerPartition(3, peer).get_info()
    await peer.close()


async def test_a_peer_that_moved_is_called_at_its_new_address(tmp_path: Path) -> None:
    write_endpoint(tmp_path, _dead_address())
    peer = Peer(1, tmp_path, resolve_timeout=0.1)
    part = PeerPartition(3, peer)
    with pytest.raises(PartitionUnavailable):
        await part.get_info()  # nobody there, and the file did not change
    first = peer.address
    moved = _dead_address()
    write_endpoint(tmp_path, moved)
    with pytest.raises(PartitionUnavailable):
        await part.get_status("inv")  # re-read on failure: the retry went to the new address
    assert first != moved and peer.address == moved
    again = _dead_address()
    write_endpoint(tmp_path, again)
    env = pb.Envelope(resolve_promise=pb.ResolvePromise(workflow="wf", key="k", name="p", tenant="t", value=b"v"))
    with pytest.raises(PartitionUnavailable):
        await part.append([env])  # not sent again (it may have reached the old process) ...
    assert peer.address == again  # ... but the next call goes to the new address
    await peer.close()
