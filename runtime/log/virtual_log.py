"""The virtual log: one partition's log as a chain of segments, each served by a loglet.

Delos-style virtual consensus (Restate's Bifrost): the chain of segments lives in the
metadata store; only the last segment takes appends. `reconfigure()` seals the last
loglet (so its tail is final), then installs a new segment starting at that tail with a
compare-and-set on the chain's version, so of two racing reconfigurations exactly one wins
and the loser just reloads the winner's chain. An append that reaches a sealed loglet was
not written (it has no LSN), so retrying it on the successor can neither duplicate nor lose
it. Readers see one LSN space: reads cross segment boundaries without noticing.

Chain encoding (JSON, small and rarely written):
    {"segments": [{"base": 1, "loglet": 4294967296, "kind": "local"}, ...],
     "trim_point": 0, "next_seq": 1}
Loglet ids are (log_id << 32) | seq, so every loglet of a node has a unique key range.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from .loglet import BeyondTailError, Loglet, LogRecord, SealedError, VersionMismatch, check_read_range
from .metadata import MetadataStore

__all__ = ["LogletProvider", "Segment", "VirtualLog", "chain_key"]

_SEQ_BITS = 32


def chain_key(log_id: int) -> str:
    """Metadata key of a log's segment chain."""
    return f"log/{log_id}/chain"


class LogletProvider(Protocol):
    """Opens loglets of one kind by id (e.g. the node's LocalLogletStore for "local")."""

    def loglet(self, loglet_id: int, base_lsn: int) -> Loglet: ...

    async def drop(self, loglet_id: int) -> None:
        """Delete a loglet after it left the chain (trimmed away)."""
        ...


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment as shown in the admin view."""

    base_lsn: int
    loglet_id: int
    kind: str
    sealed: bool
    tail: int | None  # final tail once the segment is sealed, else None


@dataclass(frozen=True, slots=True)
class _Chain:
    segments: tuple[tuple[int, int, str], ...]  # (base LSN, loglet id, kind)
    trim_point: int
    next_seq: int

    def encode(self) -> bytes:
        return json.dumps(
            {
                "segments": [{"base": b, "loglet": i, "kind": k} for b, i, k in self.segments],
                "trim_point": self.trim_point,
                "next_seq": self.next_seq,
            },
            separators=(",", ":"),
        ).encode()

    @staticmethod
    def decode(raw: bytes) -> _Chain:
        d = json.loads(raw)
        segs = tuple((int(s["base"]), int(s["loglet"]), str(s["kind"])) for s in d["segments"])
        if not segs:
            raise ValueError("a log chain must have at least one segment")
        return _Chain(segs, int(d["trim_point"]), int(d["next_seq"]))


class VirtualLog:
    """One partition's log. Obtain it from NodeLog.log(partition) (or VirtualLog.open)."""

    def __init__(
        self,
        log_id: int,
        metadata: MetadataStore,
        providers: Mapping[str, LogletProvider],
        *,
        default_kind: str = "local",
    ) -> None:
        if not 0 <= log_id < (1 << 31):
            raise ValueError(f"log id must be in [0, 2**31), got {log_id}")
        if default_kind not in providers:
            raise ValueError(f"no loglet provider for the default kind {default_kind!r}")
        self.log_id = log_id
        self._metadata = metadata
        self._providers = dict(providers)
        self._kind = default_kind
        self._key = chain_key(log_id)
        self._chain: _Chain | None = None
        self._version = 0
        self._bases: list[int] = []
        self._loglets: list[Loglet] = []
        self._last: Loglet = None  # type: ignore[assignment]  # set by _install before use
        self._trim_point = 0
        self._extending: dict[int, asyncio.Task[None]] = {}

    @classmethod
    async def open(
        cls,
        log_id: int,
        metadata: MetadataStore,
        providers: Mapping[str, LogletProvider],
        *,
        default_kind: str = "local",
    ) -> VirtualLog:
        """Load the chain (creating a one-segment chain for a new log) and repair a half-done
        reconfiguration: a sealed last segment gets its successor now."""
        vlog = cls(log_id, metadata, providers, default_kind=default_kind)
        while not await vlog._reload():
            first = _Chain(((1, vlog._loglet_id(0), default_kind),), 0, 1)
            try:
                version = await metadata.put(vlog._key, first.encode(), 0)
            except VersionMismatch:
                continue  # created concurrently: load that one
            vlog._install(first, version)
            break
        await vlog._load_loglets()
        if vlog._last.sealed:
            await vlog._extend_after(vlog._last)
        return vlog

    # -- chain management -----------------------------------------------------------------

    def _loglet_id(self, seq: int) -> int:
        if seq >= (1 << _SEQ_BITS):
            raise OverflowError(f"log {self.log_id} ran out of segment ids")
        return (self.log_id << _SEQ_BITS) | seq

    async def _reload(self) -> bool:
        """Fetch the chain from the metadata store; False if the log does not exist yet."""
        got = await self._metadata.get(self._key)
        if got is None:
            return False
        version, raw = got
        self._install(_Chain.decode(raw), version)
        await self._load_loglets()
        return True

    def _install(self, chain: _Chain, version: int) -> None:
        """Adopt a chain unless we already hold a newer one (installs can race reloads)."""
        if version <= self._version and self._chain is not None:
            return
        loglets = []
        for base, loglet_id, kind in chain.segments:
            provider = self._providers.get(kind)
            if provider is None:
                raise ValueError(f"log {self.log_id}: no provider for loglet kind {kind!r}")
            loglets.append(provider.loglet(loglet_id, base))
        self._chain = chain
        self._version = version
        self._bases = [b for b, _, _ in chain.segments]
        self._loglets = loglets
        self._last = loglets[-1]
        self._trim_point = max(self._trim_point, chain.trim_point, *(lg.trim_point() for lg in loglets))

    async def _load_loglets(self) -> None:
        """Let loglets whose state lives outside this process fetch it before the chain is used.

        Optional for a loglet: one with an async `load()` (a replicated loglet, whose tail, seal
        and trim point are on its servers) gets it awaited whenever a chain is adopted here.
        Local loglets have none: their state is already in memory, nothing changes for them.
        """
        loaded = False
        for lg in self._loglets:
            load = getattr(lg, "load", None)
            if load is not None:
                await load()
                loaded = True
        if loaded:
            self._trim_point = max(self._trim_point, *(lg.trim_point() for lg in self._loglets))

    async def _extend_after(self, sealed_or_last: Loglet) -> None:
        """Make sure a segment follows `sealed_or_last`; concurrent callers share one attempt."""
        key = sealed_or_last.loglet_id
        task = self._extending.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._do_extend(sealed_or_last))
            self._extending[key] = task
            task.add_done_callback(lambda _t: self._extending.pop(key, None))
        await asyncio.shield(task)

    async def _do_extend(self, lg: Loglet) -> None:
        while self._last is lg:
            tail = await lg.seal()
            if self._last is not lg:
                return  # the chain moved on while we sealed (a reload installed a successor)
            chain = self._chain
            assert chain is not None
            seg = (tail, self._loglet_id(chain.next_seq), self._kind)
            new = _Chain((*chain.segments, seg), chain.trim_point, chain.next_seq + 1)
            try:
                version = await self._metadata.put(self._key, new.encode(), self._version)
            except VersionMismatch:
                await self._reload()  # lost the race (or a trim moved the version): look again
                continue
            self._install(new, version)
            await self._load_loglets()

    async def reconfigure(self) -> None:
        """Seal the last segment and start a new one at its tail (compare-and-set on the chain).

        If another reconfiguration wins the race, this one reloads and adopts its result.
        """
        await self._extend_after(self._last)

    # -- append / read --------------------------------------------------------------------

    async def append(self, payloads: Sequence[bytes], *, wait: bool = True) -> range:
        """Durably append; returns the contiguous LSNs once they are fsynced.

        A batch that meets a sealed segment was not written; it is retried on the successor
        segment (installing it first if nobody has yet), so it gets exactly one set of LSNs.
        """
        while True:
            lg = self._last
            try:
                return await lg.append(payloads, wait=wait)
            except SealedError:
                await self._extend_after(lg)

    def tail(self) -> int:
        """Next LSN to be committed (in memory, cheap)."""
        return self._last.tail()

    async def find_tail(self) -> int:
        """The committed tail as the storage knows it now (tail() is what this process has seen: with
        another writer, a replicated log, it may lag)."""
        tail, _ = await self._last.find_tail()
        return max(tail, self.tail())

    def trim_point(self) -> int:
        """Records with LSN <= this are gone."""
        return self._trim_point

    async def wait_for_tail(self, lsn: int) -> int:
        """Return the tail once it is > lsn; wakes on commit, follows reconfigurations."""
        while True:
            lg = self._last
            tail = lg.tail()
            if tail > lsn:
                return tail
            await lg.wait_for_tail(lsn)
            if lg.tail() <= lsn and self._last is lg:
                # Sealed with no successor known here: finish (or adopt) the reconfiguration.
                await self._extend_after(lg)

    async def read(self, from_lsn: int, to_lsn: int, limit: int = 1000) -> list[LogRecord]:
        """Records in [from_lsn, to_lsn), at most `limit`, across segment boundaries."""
        check_read_range(from_lsn, to_lsn, limit, self._trim_point, self.tail())
        end = min(to_lsn, from_lsn + limit)
        bases, loglets = self._bases, self._loglets
        i = len(bases) - 1
        while i > 0 and bases[i] > from_lsn:
            i -= 1
        out: list[LogRecord] = []
        pos = from_lsn
        while pos < end:
            stop = min(end, bases[i + 1]) if i + 1 < len(bases) else end
            if pos < stop:
                out.extend(await loglets[i].read(pos, stop, stop - pos))
                pos = stop
            i += 1
        return out

    async def reader(self, from_lsn: int, *, limit: int = 1000) -> AsyncIterator[list[LogRecord]]:
        """Follow the log forever from `from_lsn`: batches in order, each record once.

        Waits on commit notifications (no polling); fresh records come from the loglet's
        in-memory tail cache. Raises TrimmedError if the reader falls below the trim point.
        """
        if from_lsn < 1:
            raise ValueError(f"LSNs start at 1, got from_lsn {from_lsn}")
        nxt = from_lsn
        while True:
            tail = self.tail()
            if tail <= nxt:
                tail = await self.wait_for_tail(nxt)
            records = await self.read(nxt, tail, limit)
            if records:
                nxt = records[-1].lsn + 1
                yield records

    # -- trim -----------------------------------------------------------------------------

    async def trim(self, up_to_lsn: int) -> None:
        """Drop records <= up_to_lsn: whole segments leave the chain, the first one is trimmed.

        Loglets are trimmed before the chain changes, so a crash in between leaves only
        already-trimmed segments in the chain (dropped again by the next trim).
        """
        if up_to_lsn < 0:
            raise ValueError(f"trim LSN must be >= 0, got {up_to_lsn}")
        tail = self.tail()
        if up_to_lsn >= tail:
            raise BeyondTailError(up_to_lsn, tail, what="trim up to (inclusive)")
        if up_to_lsn <= self._trim_point:
            return
        self._trim_point = up_to_lsn
        while True:
            for base, lg in zip(self._bases, self._loglets, strict=True):
                if base > up_to_lsn:
                    break
                await lg.trim(up_to_lsn)
            # Snapshot the chain and its version together, after the awaits above: the CAS
            # must describe the chain it replaces (a reconfiguration may have run meanwhile).
            chain, version = self._chain, self._version
            assert chain is not None
            bases = [b for b, _, _ in chain.segments]
            drop = 0
            while drop + 1 < len(bases) and bases[drop + 1] <= up_to_lsn + 1:
                drop += 1
            if drop == 0:
                return  # the loglet trim points are the durable record of this trim
            new = _Chain(chain.segments[drop:], max(chain.trim_point, up_to_lsn), chain.next_seq)
            try:
                version = await self._metadata.put(self._key, new.encode(), version)
            except VersionMismatch:
                await self._reload()
                if self._chain is not None and self._chain.trim_point >= up_to_lsn:
                    return
                continue
            self._install(new, version)
            # Only now, with no chain pointing at them, delete what is left of the dropped
            # loglets (a crash before this leaves a few keys of garbage, never a dangling chain).
            for _, loglet_id, kind in chain.segments[:drop]:
                await self._providers[kind].drop(loglet_id)
            return

    # -- admin view -----------------------------------------------------------------------

    def segments(self) -> list[Segment]:
        """The chain as currently known here, oldest first."""
        chain = self._chain
        assert chain is not None
        out = []
        for (base, loglet_id, kind), lg in zip(chain.segments, self._loglets, strict=True):
            sealed = lg.sealed
            out.append(Segment(base, loglet_id, kind, sealed, lg.tail() if sealed else None))
        return out

    def __repr__(self) -> str:
        return (
            f"VirtualLog(log_id={self.log_id}, tail={self.tail()}, trim_point={self._trim_point}, "
            f"segments={len(self._bases)})"
        )
