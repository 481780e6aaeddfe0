"""Property test: random sequences of appends, reads, seals, reconfigurations, trims, races
and close/reopen on a real RocksDB-backed log give the answers of a simple in-memory model."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from endure.runtime.log import BeyondTailError, LogRecord, NodeLog, TrimmedError, VirtualLog

payload_st = st.binary(min_size=0, max_size=24)
batch_st = st.lists(payload_st, min_size=1, max_size=4)


class Model:
    """The reference: a list of payloads indexed by LSN, a trim point, segment bases."""

    def __init__(self) -> None:
        self.records: dict[int, bytes] = {}
        self.tail = 1
        self.trim_point = 0
        self.bases = [1]
        self.last_sealed = False  # the last loglet was sealed behind the log's back

    def new_segment(self) -> None:
        self.bases.append(self.tail)
        self.last_sealed = False

    def append(self, payloads: list[bytes]) -> range:
        if self.last_sealed:
            self.new_segment()  # the log finishes the reconfiguration before appending
        r = range(self.tail, self.tail + len(payloads))
        for lsn, p in zip(r, payloads, strict=True):
            self.records[lsn] = p
        self.tail = r.stop
        return r

    def read(self, from_lsn: int, to_lsn: int, limit: int) -> list[LogRecord] | type[Exception]:
        if from_lsn > to_lsn:
            return ValueError
        if from_lsn <= self.trim_point:
            return TrimmedError
        if to_lsn > self.tail:
            return BeyondTailError
        return [LogRecord(i, self.records[i]) for i in range(from_lsn, min(to_lsn, from_lsn + limit))]

    def trim(self, up_to: int) -> type[Exception] | None:
        if up_to >= self.tail:
            return BeyondTailError
        if up_to <= self.trim_point:
            return None
        self.trim_point = up_to
        for lsn in [k for k in self.records if k <= up_to]:
            del self.records[lsn]
        while len(self.bases) > 1 and self.bases[1] <= up_to + 1:
            del self.bases[0]
        return None


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="endure-log-model-"))
        self.node: NodeLog = self.run(NodeLog.open(self.dir, 2))
        self.model = Model()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @property
    def log(self) -> VirtualLog:
        return self.node.log(1)

    def teardown(self) -> None:
        try:
            self.run(self.node.close())
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- rules ----------------------------------------------------------------------------

    @rule(payloads=batch_st)
    def append(self, payloads: list[bytes]) -> None:
        assert self.run(self.log.append(payloads)) == self.model.append(payloads)

    @rule(batches=st.lists(batch_st, min_size=2, max_size=6), reconfigure=st.booleans())
    def concurrent_appends(self, batches: list[list[bytes]], reconfigure: bool) -> None:
        """Racing appenders (and maybe a racing reconfiguration): each batch gets one
        contiguous range, the ranges tile the new LSNs, nothing is lost or doubled."""
        old_tail, old_bases = self.model.tail, list(self.model.bases)

        async def race() -> list[Any]:
            coros: list[Any] = [self.log.append(b) for b in batches]
            if reconfigure:
                coros.insert(len(coros) // 2, self.log.reconfigure())
            return await asyncio.gather(*coros)

        results = self.run(race())
        ranges = [r for r in results if r is not None]
        assert sorted(x for r in ranges for x in r) == list(range(old_tail, old_tail + sum(map(len, batches))))
        for r, b in zip(ranges, batches, strict=True):
            assert len(r) == len(b)
            for lsn, p in zip(r, b, strict=True):
                self.model.records[lsn] = p
        self.model.tail = old_tail + sum(map(len, batches))
        bases = [s.base_lsn for s in self.log.segments()]
        assert bases[: len(old_bases)] == old_bases
        extra = bases[len(old_bases) :]
        repaired = self.model.last_sealed  # the first append or the reconfiguration repairs it
        if repaired:
            assert extra[:1] == [old_tail]
        if reconfigure and not repaired:
            assert len(extra) == 1
        else:
            # A reconfiguration racing the repair may join it or come after it.
            assert int(repaired) <= len(extra) <= int(repaired) + int(reconfigure)
        assert extra == sorted(extra) and all(old_tail <= b <= self.model.tail for b in extra)
        self.model.last_sealed = False
        self.model.bases = bases

    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        hi = self.model.tail + 2
        from_lsn = data.draw(st.integers(0, hi), label="from")
        to_lsn = data.draw(st.integers(max(0, from_lsn - 1), hi), label="to")
        limit = data.draw(st.integers(1, 8), label="limit")
        want = self.model.read(from_lsn, to_lsn, limit)
        try:
            got = self.run(self.log.read(from_lsn, to_lsn, limit))
        except (ValueError, TrimmedError, BeyondTailError) as e:
            assert isinstance(want, type) and isinstance(e, want), (want, e)
        else:
            assert got == want

    @precondition(lambda self: self.model.tail > self.model.trim_point + 1)
    @rule(data=st.data())
    def follow_with_reader(self, data: st.DataObject) -> None:
        start = data.draw(st.integers(self.model.trim_point + 1, self.model.tail - 1), label="start")

        async def collect() -> list[LogRecord]:
            seen: list[LogRecord] = []
            it = self.log.reader(start, limit=3)
            try:
                async for batch in it:
                    seen.extend(batch)
                    if seen[-1].lsn == self.model.tail - 1:
                        return seen
            finally:
                await it.aclose()
            raise AssertionError("reader ended")

        got = self.run(collect())
        assert got == [LogRecord(i, self.model.records[i]) for i in range(start, self.model.tail)]

    @rule()
    def reconfigure(self) -> None:
        self.run(self.log.reconfigure())
        self.model.new_segment()

    @precondition(lambda self: not self.model.last_sealed)
    @rule()
    def seal_last_loglet(self) -> None:
        """Seal the last loglet directly, as a crashed reconfiguration would leave it."""
        seg = self.log.segments()[-1]
        loglet = self.node.store.loglet(seg.loglet_id, seg.base_lsn)
        assert self.run(loglet.seal()) == self.model.tail
        self.model.last_sealed = True

    @rule(data=st.data())
    def trim(self, data: st.DataObject) -> None:
        up_to = data.draw(st.integers(0, self.model.tail + 1), label="up_to")
        want = self.model.trim(up_to)
        try:
            self.run(self.log.trim(up_to))
        except BeyondTailError:
            assert want is BeyondTailError
        else:
            assert want is None

    @rule()
    def reopen(self) -> None:
        self.run(self.node.close())
        self.node = self.run(NodeLog.open(self.dir, 2))
        if self.model.last_sealed:
            self.model.new_segment()  # open() repairs a half-done reconfiguration

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def matches_model(self) -> None:
        assert self.log.tail() == self.model.tail
        assert self.log.trim_point() == self.model.trim_point
        assert [s.base_lsn for s in self.log.segments()] == self.model.bases
        assert self.node.log(0).tail() == 1  # the other partition is untouched


LogMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLogModel = LogMachine.TestCase
