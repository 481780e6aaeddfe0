"""endure.runtime.log.jetstream: the log and its metadata on a NATS JetStream cluster.

The replicated engine behind the same interfaces as the embedded RocksDB one (`Loglet`,
`LogletProvider`, `MetadataStore`): a stream per log segment, a key-value bucket for the
metadata. Needs the `cluster` extra (`pip install 'endure[cluster]'`: nats-py, and nats-server
for local clusters).

Typical use::

    conn = await JetStreamConnection.connect(["nats://a:4222", "nats://b:4222", "nats://c:4222"])
    metadata = await JetStreamMetadataStore.open(conn, replicas=3)
    provider = JetStreamLogletProvider(conn, replicas=3)
    log = await VirtualLog.open(0, metadata, {"jetstream": provider}, default_kind="jetstream")
"""

from .connection import ClusterUnavailable, JetStreamApiError, JetStreamConnection
from .loglet import JetStreamLoglet, JetStreamLogletProvider, SequenceConflict
from .metadata import JetStreamMetadataStore, decode_key, encode_key

__all__ = [
    "ClusterUnavailable",
    "JetStreamApiError",
    "JetStreamConnection",
    "JetStreamLoglet",
    "JetStreamLogletProvider",
    "JetStreamMetadataStore",
    "SequenceConflict",
    "decode_key",
    "encode_key",
]
