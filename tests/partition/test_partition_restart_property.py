"""Property: killing and restarting the processor at random points never changes the final store.

Random streams of records (mostly valid: the generator looks at a guide store that applies each
record as it is made, so it knows which invocations run, their journal lengths, their pending
entries, timers and outbox rows) are applied in random batches, uninterrupted and with the
processor killed at random points (the in-flight batch is dropped uncommitted, the RocksDB
directory reopened, apply continues from the store's applied LSN). Both runs must end in exactly
the same rows, byte for byte.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from partition_testkit import Partition, apply_batch, inv_id

from endure.proto import records_pb2 as pb
from endure.runtime.partition import keys

KINDS = {
    pb.SERVICE: ("svc", "run"),
    pb.EXCLUSIVE: ("obj", "update"),
    pb.SHARED: ("obj", "read"),
    pb.WORKFLOW_RUN: ("wf", "run"),
    pb.WORKFLOW_SHARED: ("wf", "signal"),
}
OBJECT_KEYS = ["a", "b", "c"]
ACTIONS = (
    ["invoke"] * 3 + ["reinvoke"] + ["append"] * 10 + ["end"] * 4 + ["complete"] * 4 + ["suspend"] * 2
    + ["attempt_failed"] + ["timer"] * 3 + ["cancel", "kill", "purge", "pause", "resume", "resume"]
    + ["resolve_promise"] + ["announce"] + ["deliver"] * 4 + ["truncate"] + ["garbage"]
)
STATE_WRITES = ("set_state", "clear_state", "clear_all_state")
PROMISES = ("promise_get", "promise_peek", "promise_complete")
ENTRY_KINDS = (
    ["run"] * 4 + ["sleep"] * 2 + ["call"] * 2 + ["send", "get_state", "set_state", "set_state", "clear_state",
                                                   "clear_all_state", "get_state_keys", "awakeable", "awakeable",
                                                   "promise_get", "promise_peek", "promise_complete", "combinator",
                                                   "meter"] + ["output"] * 3
)
COMPLETABLE = ("sleep", "call", "awakeable", "promise_get")


class Generator:
    def __init__(self, data: st.DataObject, guide: Partition) -> None:
        self.data = data
        self.guide = guide
        self.records: list[bytes] = []
        self.invocations: list[str] = []
        self.now = 1_700_000_000_000
        self.counter = 0
        self.producer_seq = 0
        self.delivered = 0  # highest outbox sequence delivered

    def draw(self, strategy):  # noqa: ANN001, ANN201
        return self.data.draw(strategy)

    def pick(self, options):  # noqa: ANN001, ANN201
        return self.draw(st.sampled_from(options))

    def chance(self, p: float) -> bool:
        # sampled_from is close to uniform; small integers are favoured by st.integers.
        return self.draw(st.sampled_from(range(100))) >= 100 - p * 100

    # ------------------------------------------------------------------ guide state

    def statuses(self, *wanted: int) -> list[pb.InvocationStatus]:
        out = []
        for inv in self.invocations:
            s = self.guide.store.status(inv)
            if s is not None and (not wanted or s.status in wanted):
                out.append(s)
        return out

    def pending_entries(self, s: pb.InvocationStatus) -> list[tuple[int, pb.JournalEntry]]:
        return [(i, e) for i, e in enumerate(self.guide.store.journal(s.invocation_id))
                if e.WhichOneof("kind") in COMPLETABLE and e.WhichOneof("result") is None]

    # ------------------------------------------------------------------ records

    def emit(self, record: pb.Envelope | bytes) -> None:
        if isinstance(record, pb.Envelope):
            h = record.header
            self.now += self.draw(st.integers(0, 1500))
            if not h.timestamp_ms:
                h.timestamp_ms = self.now
            epoch = self.guide.store.leader_epoch()
            if not h.leader_epoch and epoch:
                roll = self.draw(st.integers(0, 19))
                if roll == 0:
                    h.leader_epoch = epoch - 1 if epoch > 1 else 1  # stale (or current when epoch is 1)
                elif roll < 10:
                    h.leader_epoch = epoch
            if not h.producer:
                roll = self.draw(st.integers(0, 29))
                if roll < 3:
                    self.producer_seq += 1
                    h.producer, h.sequence = "ingress", self.producer_seq
                elif roll == 3 and self.producer_seq:
                    h.producer, h.sequence = "ingress", self.draw(st.integers(1, self.producer_seq))  # duplicate
            record = record.SerializeToString()
        self.records.append(record)
        self.guide.apply(record)

    def new_id(self, key: str = "") -> str:
        self.counter += 1
        return inv_id(f"g{self.counter}", key)

    def step(self) -> None:
        action = self.pick(ACTIONS)
        getattr(self, f"do_{action}")()

    def do_invoke(self) -> None:
        kind = self.pick(sorted(KINDS))
        service, handler = KINDS[kind]
        key = "" if kind == pb.SERVICE else self.pick(OBJECT_KEYS)
        inv = self.new_id(key)
        rec = pb.Invoke(invocation_id=inv, target=pb.Target(service=service, handler=handler, key=key),
                        handler_kind=kind, input=self.draw(st.binary(max_size=8)), tenant=self.pick(["", "t1", "t2"]),
                        priority=self.pick([pb.NORMAL, pb.HIGH, pb.LOW]))
        if self.chance(0.2):
            rec.idempotency_key = f"idem{self.draw(st.integers(0, 3))}"
        if self.chance(0.15):
            rec.execute_at_ms = self.now + self.draw(st.integers(-100, 5000))
        if self.chance(0.1):
            rec.headers["traceparent"] = "00-abc"
        self.invocations.append(inv)
        self.emit(pb.Envelope(invoke=rec))

    def do_reinvoke(self) -> None:
        done = self.statuses()
        if not done:
            return self.do_invoke()
        s = self.pick(done)
        rec = pb.Invoke(invocation_id=s.invocation_id, target=s.target, handler_kind=s.handler_kind,
                        idempotency_key=s.idempotency_key, tenant=s.tenant)
        if self.chance(0.3):
            rec.caller.invocation_id = self.pick(self.invocations)
            rec.caller.entry_index = self.draw(st.integers(0, 3))
        self.emit(pb.Envelope(invoke=rec))

    def do_append(self) -> None:
        running = self.statuses(pb.RUNNING)
        if not running:
            return self.do_invoke()
        s = self.pick(running)
        index = s.journal_length
        if self.chance(0.05):
            index = self.draw(st.integers(0, index + 3))  # sometimes a gap or a repeat
        e = pb.JournalEntry(name=self.pick(["x", "y", "z"]))
        kind = self.pick(ENTRY_KINDS)
        # Mostly entries this handler may write: state writes need the key's lock, promises a workflow.
        if kind in STATE_WRITES and s.handler_kind not in (pb.EXCLUSIVE, pb.WORKFLOW_RUN) and not self.chance(0.05):
            kind = "get_state"
        if kind in PROMISES and s.handler_kind not in (pb.WORKFLOW_RUN, pb.WORKFLOW_SHARED) and not self.chance(0.05):
            kind = "run"
        if kind == "run":
            if self.chance(0.8):
                e.value = self.draw(st.binary(max_size=6))
            else:
                e.failure.code, e.failure.message = 500, "boom"
            e.run.SetInParent()
            if self.chance(0.2):
                e.usage["fuel"] = float(self.draw(st.integers(0, 1000)))
        elif kind == "sleep":
            e.sleep.wake_at_ms = self.now + self.draw(st.integers(0, 3000))
        elif kind in ("call", "send"):
            tkind = self.pick(sorted(KINDS) + [pb.HANDLER_KIND_UNSPECIFIED])
            service, handler = KINDS.get(tkind, ("nowhere", "h"))
            target = pb.Target(service=service, handler=handler,
                               key="" if tkind in (pb.SERVICE, pb.HANDLER_KIND_UNSPECIFIED) else self.pick(OBJECT_KEYS))
            call = e.call if kind == "call" else e.send
            call.target.CopyFrom(target)
            call.handler_kind = tkind
            call.input = b"in"
            if kind == "send" and self.chance(0.5):
                e.send.execute_at_ms = self.now + self.draw(st.integers(0, 3000))
        elif kind == "set_state":
            e.set_state.value = self.draw(st.binary(max_size=6))
        elif kind == "promise_complete":
            if self.chance(0.8):
                e.promise_complete.value = b"resolved"
            else:
                e.promise_complete.failure.code = 400
        elif kind == "combinator":
            e.combinator.completed.extend([0])
            e.value = b"[0]"
        elif kind == "meter":
            e.meter.counters["tokens"] = 12.0
            e.void.SetInParent()
        elif kind == "output":
            if self.chance(0.8):
                e.output.value = b"out"
            else:
                e.output.failure.code = 500
        else:
            getattr(e, kind).SetInParent()
        self.emit(pb.Envelope(append_entry=pb.AppendEntry(invocation_id=s.invocation_id, index=index, entry=e)))

    def do_end(self) -> None:
        running = self.statuses(pb.RUNNING)
        if not running:
            return self.do_invoke()
        s = self.pick(running)
        last = self.guide.store.journal(s.invocation_id)[-1:] if s.journal_length else []
        if not (last and last[0].HasField("output")) and not self.chance(0.1):
            out = pb.JournalEntry(output=pb.OutputEntry(value=b"done"))
            self.emit(pb.Envelope(append_entry=pb.AppendEntry(invocation_id=s.invocation_id,
                                                              index=s.journal_length, entry=out)))
        self.emit(pb.Envelope(end=pb.End(invocation_id=s.invocation_id)))

    def do_complete(self) -> None:
        candidates = [(s, i) for s in self.statuses() for i, _ in self.pending_entries(s)]
        c = pb.Completion()
        if not candidates and not self.chance(0.1):
            return self.do_append()
        if candidates and not self.chance(0.1):
            s, index = self.pick(candidates)
            c.invocation_id, c.entry_index = s.invocation_id, index
        elif self.invocations:
            c.invocation_id = self.pick(self.invocations)
            c.entry_index = self.draw(st.integers(0, 5))
        else:
            c.invocation_id, c.entry_index = self.new_id(), 0
        outcome = self.pick(["value", "value", "failure", "void"])
        if outcome == "value":
            c.value = b"v"
        elif outcome == "failure":
            c.failure.code, c.failure.message = 500, "f"
        else:
            c.void.SetInParent()
        self.emit(pb.Envelope(completion=c))

    def do_suspend(self) -> None:
        running = self.statuses(pb.RUNNING)
        if not running:
            return self.do_complete()
        s = self.pick(running)
        waiting = [i for i, _ in self.pending_entries(s)]
        if not waiting:
            if not self.chance(0.1):
                return self.do_append()
            waiting = [self.draw(st.integers(0, s.journal_length + 1))]
        self.emit(pb.Envelope(suspend=pb.Suspend(invocation_id=s.invocation_id, waiting_on=waiting[:2])))

    def do_attempt_failed(self) -> None:
        running = self.statuses(pb.RUNNING)
        if not running:
            return self.do_invoke()
        s = self.pick(running)
        rec = pb.AttemptFailed(invocation_id=s.invocation_id, failure=pb.Failure(code=500, message="transient"))
        how = self.pick(["retry", "retry", "exhausted", "pause"])
        if how == "retry":
            rec.retry_at_ms = self.now + self.draw(st.integers(0, 2000))
        elif how == "pause":
            rec.pause = True
        self.emit(pb.Envelope(attempt_failed=rec))

    def do_timer(self) -> None:
        timers = [k[len(keys.TIMER):].decode() for k, _ in self.guide.store.scan(keys.TIMER)]
        if timers and not self.chance(0.05):
            key = self.pick(timers[:6])
        else:
            key = keys.timer_key(self.now, self.new_id(), "sleep0")
        self.emit(pb.Envelope(timer_fired=pb.TimerFired(timer_key=key)))

    def _operator(self, field: str, wanted: tuple[int, ...] = ()) -> None:
        candidates = [s.invocation_id for s in self.statuses(*wanted)]
        if not candidates and not self.chance(0.1):
            return self.do_append()
        inv = self.pick(candidates) if candidates and not self.chance(0.05) else self.pick(self.invocations or ["x"])
        env = pb.Envelope()
        getattr(env, field).invocation_id = inv
        self.emit(env)

    def do_cancel(self) -> None:
        self._operator("cancel")

    def do_kill(self) -> None:
        self._operator("kill")

    def do_purge(self) -> None:
        self._operator("purge", (pb.COMPLETED, pb.KILLED, pb.CANCELLED))

    def do_pause(self) -> None:
        self._operator("pause", (pb.RUNNING, pb.SUSPENDED, pb.BACKING_OFF))

    def do_resume(self) -> None:
        self._operator("resume", (pb.PAUSED,))

    def do_resolve_promise(self) -> None:
        rec = pb.ResolvePromise(workflow="wf", key=self.pick(OBJECT_KEYS), name=self.pick(["x", "y", "z"]))
        outcome = self.pick(["value", "value", "failure", "none"])
        if outcome == "value":
            rec.value = b"ext"
        elif outcome == "failure":
            rec.failure.code = 400
        self.emit(pb.Envelope(resolve_promise=rec))

    def do_announce(self) -> None:
        epoch = self.guide.store.leader_epoch()
        new = epoch + 1 if not self.chance(0.2) else max(epoch - 1, 0)
        self.emit(pb.Envelope(announce_leader=pb.AnnounceLeader(epoch=new, node="n1")))

    def do_deliver(self) -> None:
        """Deliver an outbox row back into this log, stamped like the shuffle does (with re-deliveries)."""
        rows = list(self.guide.store.scan(keys.OUTBOX, limit=4))
        if not rows:
            return self.do_append()
        msg = pb.OutboxMessage()
        msg.ParseFromString(self.pick(rows)[1])
        env = pb.Envelope()
        env.CopyFrom(msg.envelope)
        env.header.producer, env.header.sequence, env.header.leader_epoch = "partition-0", msg.sequence, 0
        self.delivered = max(self.delivered, msg.sequence)
        if msg.envelope.HasField("invoke"):
            self.invocations.append(msg.envelope.invoke.invocation_id)
        self.emit(env)

    def do_truncate(self) -> None:
        up_to = self.delivered if not self.chance(0.2) else self.draw(st.integers(0, self.delivered + 2))
        self.emit(pb.Envelope(outbox_truncate=pb.OutboxTruncate(up_to=up_to)))

    def do_garbage(self) -> None:
        self.emit(self.draw(st.binary(min_size=1, max_size=12)))


def replay(path: Path, records: list[bytes], data: st.DataObject, crashes: bool, retention_ms: int) -> Partition:
    """Apply records from the store's applied LSN on, in random batches, killing the processor at random."""
    part = Partition(path, retention_ms=retention_ms)
    while part.store.applied_lsn() < len(records):
        start = part.store.applied_lsn()
        size = data.draw(st.integers(1, 40), label="batch")
        batch = [(lsn, records[lsn - 1]) for lsn in range(start + 1, min(start + size, len(records)) + 1)]
        crash = crashes and data.draw(st.integers(0, 5), label="crash") == 0
        if crash and data.draw(st.booleans(), label="before commit"):
            # Killed mid-batch: the transaction is applied but never committed.
            tx = part.store.transaction()
            env = pb.Envelope()
            for _, payload in batch:
                env.Clear()
                try:
                    env.ParseFromString(payload)
                except Exception:
                    continue
                part.sm.apply(tx, env, [])
            part.reopen()
            continue
        apply_batch(part.store, part.sm, batch)
        if crash:
            part.reopen()
    return part


@settings(max_examples=35, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_restarts_at_random_points_end_in_the_same_store(data):
    retention = data.draw(st.sampled_from([500, 3000]), label="retention")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        guide = Partition(root / "guide", retention_ms=retention)
        gen = Generator(data, guide)
        steps = data.draw(st.integers(5, 90), label="steps")
        for _ in range(steps):
            gen.step()
        expected = list(guide.store.items())
        # The running index (what a new leader restarts) lists exactly the RUNNING invocations.
        running = set()
        for _, raw in guide.store.scan(keys.STATUS):
            status = pb.InvocationStatus()
            status.ParseFromString(raw)
            if status.status == pb.RUNNING:
                running.add(status.invocation_id)
        assert {k[len(keys.RUNNING):].decode() for k, _ in guide.store.scan(keys.RUNNING)} == running
        guide.close()

        plain = replay(root / "plain", gen.records, data, crashes=False, retention_ms=retention)
        assert list(plain.store.items()) == expected
        plain.close()
        crashed = replay(root / "crashed", gen.records, data, crashes=True, retention_ms=retention)
        assert list(crashed.store.items()) == expected
        crashed.close()
