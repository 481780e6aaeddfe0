"""The loglet contract: the storage unit behind one segment of a virtual log.

A loglet is a plain append-only sequence with a seal. The virtual log chains loglets
together; everything about reconfiguration lives above this interface, so a loglet can be
local (RocksDB), replicated, or in memory without the virtual log knowing.

LSNs handed out by a loglet are the virtual log's LSNs: a loglet is created with the base
LSN of its segment, so no offset translation is needed on the read or append path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "BeyondTailError",
    "check_read_range",
    "LogClosedError",
    "LogError",
    "LogFull",
    "LogRecord",
    "LogUnavailable",
    "Loglet",
    "LogletFailedError",
    "SealedError",
    "TrimmedError",
    "VersionMismatch",
]


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One committed record: its LSN and the exact bytes that were appended."""

    lsn: int
    payload: bytes


class LogError(Exception):
    """Base class of every error raised by the log, so callers can catch the family."""


class SealedError(LogError):
    """An append reached a sealed loglet: it was not written and holds no LSN.

    The virtual log catches this and retries on the next segment; seeing it from a
    `VirtualLog` therefore means a bug, while seeing it from a `Loglet` is normal.
    """

    def __init__(self, loglet_id: int, tail: int) -> None:
        self.loglet_id = loglet_id
        self.tail = tail
        super().__init__(
            f"loglet {loglet_id:#x} is sealed at tail {tail}: the append was not written; "
            "append to the segment that follows it in the log's chain"
        )


class TrimmedError(LogError):
    """A read asked for records at or below the trim point; they are gone for good."""

    def __init__(self, from_lsn: int, trim_point: int) -> None:
        self.from_lsn = from_lsn
        self.trim_point = trim_point
        super().__init__(
            f"cannot read from LSN {from_lsn}: records up to and including LSN {trim_point} "
            f"were trimmed; the first readable LSN is {trim_point + 1}"
        )


class BeyondTailError(LogError):
    """A read (or trim) reached past the tail, i.e. asked for records not yet committed."""

    def __init__(self, lsn: int, tail: int, what: str = "read up to (exclusive)") -> None:
        self.lsn = lsn
        self.tail = tail
        super().__init__(
            f"cannot {what} LSN {lsn}: the tail is {tail}, so the last committed LSN is {tail - 1}; "
            "use wait_for_tail() or reader() to follow new records"
        )


def check_read_range(from_lsn: int, to_lsn: int, limit: int, trim_point: int, tail: int) -> None:
    """Raise the specific error for a bad read range; shared by every loglet and the virtual log."""
    if limit < 1:
        raise ValueError(f"read limit must be >= 1, got {limit}")
    if from_lsn > to_lsn:
        raise ValueError(f"read range is backwards: from_lsn {from_lsn} > to_lsn {to_lsn}")
    if from_lsn <= trim_point:
        raise TrimmedError(from_lsn, trim_point)
    if to_lsn > tail:
        raise BeyondTailError(to_lsn, tail)


class LogFull(LogError):
    """The bounded append queue is full and the caller asked not to wait (wait=False)."""

    def __init__(self, pending: int, limit: int) -> None:
        self.pending = pending
        self.limit = limit
        super().__init__(
            f"append queue is full ({pending} records pending, limit {limit}); "
            "retry later or append with wait=True to apply backpressure"
        )


class LogUnavailable(LogError):
    """The log's storage cannot be reached right now (a replicated log without quorum, say).

    Unlike LogletFailedError this may heal by itself: callers map it to gRPC UNAVAILABLE and may
    retry. `maybe_written` says whether a failed write (append, metadata put) may still have
    been stored: its request reached the storage but no answer came back. Retrying such an
    append can store its records twice, which is what the records' producer sequences are for.
    """

    def __init__(self, what: str, *, maybe_written: bool = False) -> None:
        self.maybe_written = maybe_written
        outcome = "a write may still have been stored" if maybe_written else "nothing was written"
        super().__init__(f"log unavailable: {what} ({outcome})")


class LogClosedError(LogError):
    """The log store was closed; nothing more can be appended or read through it."""


class LogletFailedError(LogError):
    """A write to the log's storage failed; the store refuses further work until reopened.

    After a failed synced write the durable state is unknown, so handing out more LSNs
    would risk gaps. Reopening recovers the tail from disk.
    """


class VersionMismatch(LogError):
    """A metadata compare-and-set saw another version than the caller expected."""

    def __init__(self, key: str, expected: int, actual: int) -> None:
        self.key = key
        self.expected = expected
        self.actual = actual
        state = "does not exist" if actual == 0 else f"is at version {actual}"
        want = "to not exist yet (version 0)" if expected == 0 else f"version {expected}"
        super().__init__(
            f"metadata compare-and-set on {key!r} failed: expected {want}, but it {state}; "
            "reload the value and retry"
        )


@runtime_checkable
class Loglet(Protocol):
    """What the virtual log needs from the storage of one segment."""

    @property
    def loglet_id(self) -> int:
        """Node-unique id of this loglet (also its key prefix on disk)."""
        ...

    @property
    def kind(self) -> str:
        """Short provider name for the admin view ("local", "memory", ...)."""
        ...

    @property
    def base_lsn(self) -> int:
        """LSN of the first record this loglet ever holds."""
        ...

    @property
    def sealed(self) -> bool:
        """True once a seal was requested: appends are refused from then on."""
        ...

    async def append(self, payloads: Sequence[bytes], *, wait: bool = True) -> range:
        """Durably append a batch; returns its contiguous LSNs. SealedError if sealed."""
        ...

    async def read(self, from_lsn: int, to_lsn: int, limit: int = 1000) -> list[LogRecord]:
        """Committed records in [from_lsn, to_lsn), at most `limit` of them."""
        ...

    def tail(self) -> int:
        """Next LSN to be committed (cheap, in memory)."""
        ...

    async def find_tail(self) -> tuple[int, bool]:
        """The committed tail and whether the seal is durable (authoritative check)."""
        ...

    async def wait_for_tail(self, lsn: int) -> int:
        """Return the tail once it is > lsn, or once the loglet is durably sealed."""
        ...

    async def seal(self) -> int:
        """Seal (idempotent) and return the final tail once the seal is durable."""
        ...

    async def trim(self, up_to_lsn: int) -> None:
        """Drop records <= up_to_lsn (clamped to the committed tail)."""
        ...

    def trim_point(self) -> int:
        """Records at or below this LSN are gone."""
        ...
