"""endure.runtime.log: the partitioned, RocksDB-backed virtual log (see DESIGN.md, "Virtual log").

Typical use: ``node = await NodeLog.open(data_dir, partitions)``, then
``node.log(p).append([...])``, ``node.log(p).reader(lsn)``, and ``await node.close()``.
"""

from .local_loglet import LocalLoglet, LocalLogletStore, LogCorruptionError
from .loglet import (
    BeyondTailError,
    LogClosedError,
    LogError,
    LogFull,
    Loglet,
    LogletFailedError,
    LogRecord,
    LogUnavailable,
    SealedError,
    TrimmedError,
    VersionMismatch,
)
from .metadata import LocalMetadataStore, MetadataStore
from .node_log import NodeLog
from .virtual_log import LogletProvider, Segment, VirtualLog, chain_key

__all__ = [
    "BeyondTailError",
    "LocalLoglet",
    "LocalLogletStore",
    "LocalMetadataStore",
    "LogClosedError",
    "LogCorruptionError",
    "LogError",
    "LogFull",
    "LogRecord",
    "LogUnavailable",
    "Loglet",
    "LogletFailedError",
    "LogletProvider",
    "MetadataStore",
    "NodeLog",
    "SealedError",
    "Segment",
    "TrimmedError",
    "VersionMismatch",
    "VirtualLog",
    "chain_key",
]
