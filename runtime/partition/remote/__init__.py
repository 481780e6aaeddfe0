"""Partitions another node owns, over the internal gRPC service `endure.internal.PartitionService`.

`PartitionServicer` serves the partitions this node owns (its `LocalPartition`s) to other nodes;
`RemotePartition` is the `Partition` a node uses for a partition it does not own. Both sides speak
the api dataclasses, so the ingress and admin cannot tell a remote partition from a local one: the
same results, and the same `LogFull` when the owner's log is full.

Appends are batched: the ingress appends one record per call, and a round trip per record would
cap a node at one partition's RTT. Concurrent `append`s to one `RemotePartition` wait in a bounded
queue and go out together in one Append RPC (one in flight per partition, so LSNs follow call
order); each caller gets its own slice of the batch's LSNs.

Waiting for an invocation's end (`await_completion`, the AwaitCompletion RPC) holds a waiter on
the owner for as long as the caller waits: the RPC has no deadline of its own, and cancelling the
caller cancels it and frees the waiter.
"""

from endure.runtime.partition.remote.client import RemotePartition, remote_partitions
from endure.runtime.partition.remote.server import PartitionServicer
from endure.runtime.partition.remote.wire import (
    MAX_APPEND,
    MAX_SCAN,
    SERVICE_NAME,
    InvalidPartitionRequest,
    PartitionError,
    PartitionNotOwned,
    PartitionUnavailable,
)

__all__ = ["MAX_APPEND", "MAX_SCAN", "SERVICE_NAME", "InvalidPartitionRequest", "PartitionError",
           "PartitionNotOwned", "PartitionServicer", "PartitionUnavailable", "RemotePartition",
           "remote_partitions"]
