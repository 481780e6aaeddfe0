"""Metering: usage counters of invocations and of their tenant's daily rows, derived from the log.

Metering is derived from the log as it applies, so a replay never counts twice and a crash never
loses a count. Counts of the record being applied are staged (a rejected record's are dropped with
it), merged per transaction, and written once per row just before the transaction commits.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from endure.proto import records_pb2 as pb
from endure.runtime.partition import keys
from endure.runtime.partition.store import Transaction

PEAK_SUFFIX = "peak_memory_bytes"  # counters with this suffix keep the maximum, the others add up


def add_usage(totals: MutableMapping[str, float], counters: Mapping[str, float]) -> None:
    """Merge usage counters into totals: sums, except peaks, which keep the maximum."""
    for name, amount in counters.items():
        current = totals.get(name, 0.0)
        totals[name] = max(current, amount) if name.endswith(PEAK_SUFFIX) else current + amount


class Metering:
    """The staged counts of one record and the merged counts of one transaction."""

    def __init__(self) -> None:
        self._staged: list[tuple[bytes, dict[str, float]]] = []
        self._totals: dict[bytes, dict[str, float]] = {}
        self._tx: Transaction | None = None

    def meter(self, status: pb.InvocationStatus, now: int, counters: dict[str, float]) -> None:
        """Add counters to the invocation's usage and (staged) to its tenant's row for the record's day.

        The caller saves the status; the rows are written once per transaction (see flush).
        """
        if not counters:
            return
        add_usage(status.usage, counters)
        t = status.target
        self._staged.append((keys.usage(status.tenant, now // 86_400_000, t.service, t.handler), counters))

    def drop_staged(self) -> None:
        """Forget the counts of the record being applied (it starts, or it was rejected)."""
        self._staged.clear()

    def merge_staged(self, tx: Transaction) -> None:
        """Add the applied record's counts to the transaction's totals (flushed before commit)."""
        if not self._staged:
            return
        if self._tx is not tx:
            self._tx = tx
            self._totals = {}
            tx.before_commit(self.flush)
        for row_key, counters in self._staged:
            add_usage(self._totals.setdefault(row_key, {}), counters)
        self._staged.clear()

    def flush(self, tx: Transaction) -> None:
        """Add the transaction's metering to the usage rows: one read and one write per row."""
        for row_key, totals in self._totals.items():
            row = tx.get_proto(row_key, pb.UsageRow) or pb.UsageRow()
            add_usage(row.counters, totals)
            tx.put_proto(row_key, row)
        self._totals = {}
        self._tx = None
