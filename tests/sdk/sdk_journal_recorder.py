"""Record real journals: run a handler through `Invocation` with a sink that plays the runtime.

The sink acks every acked entry (run, combinator) and completes entries that take a completion
from a script keyed by "kind 'name'" (e.g. {"sleep ''": None, "call 'svc/add'": b"3"}), and keeps
each entry with its result filled in, as the runtime's journal holds it. An entry the script does
not name stays incomplete (the handler then waits on it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from endure.proto import ids, journal, records_pb2, worker_pb2
from endure.sdk import App
from endure.sdk.invocation import Invocation, describe

JournalEntry = records_pb2.JournalEntry


class RecordingSink:
    """A FrameSink standing in for the runtime of one attempt."""

    def __init__(self, loop: asyncio.AbstractEventLoop, completions: Mapping[str, bytes | None]) -> None:
        self.loop = loop
        self.completions = dict(completions)
        self.inv: Invocation | None = None
        self.frames: list[worker_pb2.WorkerFrame] = []
        self.new_entries: list[worker_pb2.EntryFrame] = []
        self.journal: list[JournalEntry] = []
        self.ended = asyncio.Event()

    def send(self, frame: worker_pb2.WorkerFrame) -> None:
        self.frames.append(frame)
        which = frame.WhichOneof("frame")
        if which != "entry":
            if which in ("end", "fail", "suspend"):
                self.ended.set()
            return
        inv = self.inv
        assert inv is not None
        ef = frame.entry
        self.new_entries.append(ef)
        assert ef.index == len(self.journal), f"entry {ef.index} out of order ({len(self.journal)} so far)"
        e = JournalEntry()
        e.CopyFrom(ef.entry)
        kind = e.WhichOneof("kind")
        assert kind is not None
        rules = journal.RULES[kind]
        if rules.acked:
            self.loop.call_soon(inv.on_ack, ef.index)
        elif (rules.takes_completion or rules.completed_on_append) and not journal.has_result(e):
            key = describe(kind, e.name)
            if key in self.completions:
                value = self.completions[key]
                done = worker_pb2.CompleteFrame(invocation_id=inv.id, attempt=inv.attempt, index=ef.index)
                if value is None:
                    done.void.SetInParent()
                    e.void.SetInParent()
                else:
                    done.value = value
                    e.value = value
                self.loop.call_soon(inv.on_complete, done)
        self.journal.append(e)

    def release(self, inv: Invocation) -> None:
        self.ended.set()


@dataclass
class Recording:
    journal: list[JournalEntry]  # the recorded prefix followed by the new entries
    new_entries: list[worker_pb2.EntryFrame]
    outcome: str | None  # "end", "fail", "suspend" or None
    frames: list[worker_pb2.WorkerFrame] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return [describe(e.WhichOneof("kind"), e.name) for e in self.journal]

    def output(self) -> bytes:
        out = [e for e in self.new_entries if e.entry.WhichOneof("kind") == "output"]
        assert out, f"no output entry: {self.frames}"
        return out[-1].entry.output.value

    def mismatch(self) -> worker_pb2.FailFrame:
        fails = [f.fail for f in self.frames if f.WhichOneof("frame") == "fail"]
        assert fails and fails[0].journal_mismatch, f"no journal mismatch: {self.frames}"
        return fails[0]


async def record(
    app: App,
    service: str,
    handler: str,
    input: bytes = b"",
    *,
    key: str = "",
    journal: Iterable[JournalEntry] = (),
    completions: Mapping[str, bytes | None] | None = None,
    state: Mapping[str, bytes] | None = None,
    invocation_id: str | None = None,
    timeout: float = 5.0,
) -> Recording:
    """Run one attempt of service/handler (replaying `journal` first) until it ends."""
    loop = asyncio.get_running_loop()
    defn = app.lookup(service, handler)
    assert defn is not None, f"no {service}/{handler}"
    recorded = list(journal)
    start = worker_pb2.StartFrame(
        invocation_id=invocation_id or ids.new_invocation_id(),
        attempt=2 if recorded else 1,
        target=records_pb2.Target(service=service, handler=handler, key=key),
        handler_kind=defn.kind,  # type: ignore[arg-type]
        input=input,
        journal=recorded,
        state=[worker_pb2.StateEntry(key=k, value=v) for k, v in (state or {}).items()],
        state_complete=True,
    )
    sink = RecordingSink(loop, completions or {})
    sink.journal.extend(recorded)
    inv = Invocation(sink, start, defn, loop)
    sink.inv = inv
    inv.start()
    await asyncio.wait_for(sink.ended.wait(), timeout)
    assert inv.task is not None
    await asyncio.wait({inv.task}, timeout=timeout)
    outcome = next((f.WhichOneof("frame") for f in sink.frames
                    if f.WhichOneof("frame") in ("end", "fail", "suspend")), None)
    return Recording(sink.journal, sink.new_entries, outcome, sink.frames)
