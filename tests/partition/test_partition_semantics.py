"""Scenario tests of the partition state machine on a real RocksDB store."""

from __future__ import annotations

import json

import pytest
from partition_testkit import (
    T0,
    Partition,
    completion,
    end,
    entry,
    env,
    inv_id,
    invoke,
    of_type,
    output,
    run_entry,
)

from endure.proto import records_pb2 as pb
from endure.runtime.partition import keys
from endure.runtime.partition.effects import (
    AbortAttempt,
    ArmTimer,
    CancelAttempt,
    CompleteEntry,
    DeliverOutbox,
    InvocationCompleted,
    StartInvocation,
)

RETENTION = 60_000


@pytest.fixture
def part(tmp_path):
    p = Partition(tmp_path / "store", retention_ms=RETENTION)
    yield p
    p.close()


def started(effects) -> list[str]:
    return [e.invocation_id for e in of_type(effects, StartInvocation)]


def finish(part: Partition, inv: str, start_index: int, value: bytes = b"out", ts: int = T0) -> list:
    """Append the output entry at start_index and end the invocation; return End's effects."""
    part.apply(output(inv, start_index, value, ts=ts))
    return part.apply(end(inv, ts=ts))


# ---------------------------------------------------------------------- admission


def test_service_invocation_starts_at_once(part):
    a = inv_id("a")
    eff = part.apply(invoke(a, tenant="t1", priority=pb.HIGH, input=b"in"))
    (start,) = eff
    assert isinstance(start, StartInvocation)
    assert (start.invocation_id, start.service, start.tenant, start.priority) == (a, "svc", "t1", pb.HIGH)
    s = part.status(a)
    assert s.status == pb.RUNNING
    assert s.created_at_ms == T0 and s.modified_at_ms == T0
    assert s.input == b"in" and s.tenant == "t1"
    # Services never take a lock nor queue, however many run.
    more = [inv_id(f"s{i}") for i in range(5)]
    eff = part.apply(*(invoke(i) for i in more))
    assert started(eff) == more
    assert part.table(keys.LOCK) == [] and part.table(keys.INBOX) == []


def test_exclusive_handlers_queue_per_key_in_arrival_order(part):
    ids_k = [inv_id(f"k{i}", "k") for i in range(6)]
    other = inv_id("other", "k2")
    recs = [invoke(i, service="obj", handler=f"h{n % 2}", key="k", kind=pb.EXCLUSIVE) for n, i in enumerate(ids_k)]
    eff = part.apply(*recs[:3], invoke(other, service="obj", key="k2", kind=pb.EXCLUSIVE), *recs[3:])
    # Only the first per key runs; another key is independent.
    assert started(eff) == [ids_k[0], other]
    for i in ids_k[1:]:
        assert part.status(i).status == pb.INBOXED
    inbox = [v.decode() for _, v in part.table(keys.object_prefix(keys.INBOX, "", "obj", "k"))]
    assert inbox == ids_k[1:]
    assert part.store.get(keys.lock("", "obj", "k")) == ids_k[0].encode()
    # Each End hands the key to the next one, in arrival order.
    for n, running in enumerate(ids_k):
        part.apply(run_entry(running, 0))
        eff = finish(part, running, 1)
        assert part.status(running).status == pb.COMPLETED
        if n + 1 < len(ids_k):
            assert started(eff) == [ids_k[n + 1]]
            assert part.status(ids_k[n + 1]).status == pb.RUNNING
            assert part.status(ids_k[n + 1]).inbox_seq == 0
            assert part.store.get(keys.lock("", "obj", "k")) == ids_k[n + 1].encode()
        else:
            assert started(eff) == []
    assert part.table(keys.object_prefix(keys.INBOX, "", "obj", "k")) == []
    assert part.store.get(keys.lock("", "obj", "k")) is None
    assert part.store.get(keys.lock("", "obj", "k2")) == other.encode()


def test_shared_handlers_never_wait(part):
    holder = inv_id("holder", "k")
    part.apply(invoke(holder, service="obj", key="k", kind=pb.EXCLUSIVE))
    queued = inv_id("queued", "k")
    part.apply(invoke(queued, service="obj", key="k", kind=pb.EXCLUSIVE))
    readers = [inv_id(f"r{i}", "k") for i in range(3)]
    eff = part.apply(*(invoke(r, service="obj", handler="get", key="k", kind=pb.SHARED) for r in readers))
    assert started(eff) == readers
    # Ending a shared handler does not touch the lock or the inbox.
    eff = finish(part, readers[0], 0)
    assert started(eff) == []
    assert part.store.get(keys.lock("", "obj", "k")) == holder.encode()
    assert part.status(queued).status == pb.INBOXED


def test_delayed_invocation_is_scheduled_then_started_by_its_timer(part):
    a = inv_id("later")
    eff = part.apply(invoke(a, execute_at_ms=T0 + 5000))
    assert started(eff) == []
    assert part.status(a).status == pb.SCHEDULED
    (arm,) = of_type(eff, ArmTimer)
    assert arm.wake_at_ms == T0 + 5000
    eff = part.apply(env(ts=T0 + 5000, timer_fired=pb.TimerFired(timer_key=arm.key)))
    assert started(eff) == [a]
    assert part.timers() == {}


def test_workflow_runs_once_per_key(part):
    first, second = inv_id("wf1", "w"), inv_id("wf2", "w")
    eff = part.apply(invoke(first, service="wf", key="w", kind=pb.WORKFLOW_RUN))
    assert started(eff) == [first]
    before = part.rows(without_lsn=True)
    # A second submit with another id: no new invocation, the first's id stays.
    eff = part.apply(invoke(second, service="wf", key="w", kind=pb.WORKFLOW_RUN))
    assert eff == []
    assert part.store.status(second) is None
    assert part.store.get(keys.workflow("", "wf", "w")) == first.encode()
    # The same id again: idempotent, nothing changes.
    eff = part.apply(invoke(first, service="wf", key="w", kind=pb.WORKFLOW_RUN))
    assert eff == []
    assert part.rows(without_lsn=True) == before
    # After it completed, submitting again still does not run it, and answers with the result.
    finish(part, first, 0, b"done")
    eff = part.apply(invoke(first, service="wf", key="w", kind=pb.WORKFLOW_RUN))
    assert started(eff) == []
    (done,) = of_type(eff, InvocationCompleted)
    assert done.status.value == b"done"
    eff = part.apply(invoke(second, service="wf", key="w", kind=pb.WORKFLOW_RUN))
    assert eff == [] and part.store.status(second) is None
    # Another key is another workflow.
    other = inv_id("wf3", "w2")
    assert started(part.apply(invoke(other, service="wf", key="w2", kind=pb.WORKFLOW_RUN))) == [other]


def test_idempotent_reinvoke_returns_the_completed_result(part):
    a = inv_id("idem")
    part.apply(invoke(a, idempotency_key="req-1", tenant="t"))
    idem_row = keys.idempotency("t", "svc", "run", "", "req-1")
    assert part.store.get(idem_row) == a.encode()
    # While running, a repeat changes nothing and starts nothing.
    assert part.apply(invoke(a, idempotency_key="req-1", tenant="t")) == []
    part.apply(run_entry(a, 0))
    finish(part, a, 1, b"result")
    before = part.rows(without_lsn=True)
    eff = part.apply(invoke(a, idempotency_key="req-1", tenant="t"))
    assert started(eff) == []
    (done,) = of_type(eff, InvocationCompleted)
    assert done.invocation_id == a and done.status.value == b"result"
    assert part.rows(without_lsn=True) == before
    # A repeat that comes from another invocation's call gets the result through the outbox.
    caller = inv_id("caller")
    eff = part.apply(invoke(a, idempotency_key="req-1", tenant="t",
                            caller=pb.Caller(invocation_id=caller, entry_index=3)))
    (out,) = of_type(eff, DeliverOutbox)
    c = out.message.envelope.completion
    assert (c.invocation_id, c.entry_index, c.value) == (caller, 3, b"result")


def test_retention_purge_deletes_status_journal_and_idempotency(part):
    a = inv_id("purged")
    part.apply(invoke(a, idempotency_key="k1"))
    part.apply(run_entry(a, 0))
    done_at = T0 + 777
    eff = finish(part, a, 1, ts=done_at)
    (arm,) = of_type(eff, ArmTimer)
    assert arm.wake_at_ms == done_at + RETENTION
    assert part.status(a).completed_at_ms == done_at
    assert part.timers()[arm.key].HasField("purge")
    assert len(part.store.journal(a)) == 2
    eff = part.apply(env(ts=done_at + RETENTION, timer_fired=pb.TimerFired(timer_key=arm.key)))
    assert part.store.status(a) is None
    assert part.store.journal(a) == []
    assert part.table(keys.IDEMPOTENCY) == []
    assert part.timers() == {}
    # Firing twice changes nothing.
    before = part.rows(without_lsn=True)
    part.apply(env(ts=done_at + RETENTION, timer_fired=pb.TimerFired(timer_key=arm.key)))
    assert part.rows(without_lsn=True) == before


def test_purge_of_a_workflow_frees_its_key_and_promises(part):
    w = inv_id("wf", "w")
    part.apply(invoke(w, service="wf", key="w", kind=pb.WORKFLOW_RUN))
    part.apply(entry(w, 0, name="p", promise_complete=pb.PromiseCompleteEntry(value=b"v")))
    finish(part, w, 1)
    assert part.table(keys.PROMISE)
    part.apply(env(purge=pb.Purge(invocation_id=w)))
    assert part.table(keys.WORKFLOW) == [] and part.table(keys.PROMISE) == []
    assert part.store.status(w) is None


# ---------------------------------------------------------------------- fencing and dedup


def test_stale_epoch_and_duplicate_sequence_are_ignored(part):
    part.apply(env(announce_leader=pb.AnnounceLeader(epoch=1, node="n")))
    part.apply(env(announce_leader=pb.AnnounceLeader(epoch=2, node="n")))
    assert part.store.leader_epoch() == 2
    a = inv_id("a")
    before = part.rows(without_lsn=True)
    eff = part.apply(env(epoch=1, invoke=pb.Invoke(invocation_id=a, target=pb.Target(service="s", handler="h"),
                                                   handler_kind=pb.SERVICE)))
    assert eff == [] and part.rows(without_lsn=True) == before
    eff = part.apply(env(epoch=2, invoke=pb.Invoke(invocation_id=a, target=pb.Target(service="s", handler="h"),
                                                   handler_kind=pb.SERVICE)))
    assert started(eff) == [a]

    def from_producer(name: str, seq: int) -> pb.Envelope:
        return env(producer="partition-3", seq=seq,
                   invoke=pb.Invoke(invocation_id=inv_id(name), target=pb.Target(service="s", handler="h"),
                                    handler_kind=pb.SERVICE))

    assert started(part.apply(from_producer("p5", 5))) == [inv_id("p5")]
    assert part.store.get(keys.dedup("partition-3")) == keys.u64(5)
    before = part.rows(without_lsn=True)
    assert part.apply(from_producer("p5-again", 5)) == []
    assert part.apply(from_producer("p4", 4)) == []
    assert part.rows(without_lsn=True) == before
    # Another producer has its own sequence.
    assert started(part.apply(env(producer="partition-1", seq=1, invoke=pb.Invoke(
        invocation_id=inv_id("q1"), target=pb.Target(service="s", handler="h"), handler_kind=pb.SERVICE)))) \
        == [inv_id("q1")]
    assert started(part.apply(from_producer("p6", 6))) == [inv_id("p6")]


# ---------------------------------------------------------------------- journal, timers, completions


def test_sleep_arms_a_timer_that_resumes_the_suspended_invocation(part):
    a = inv_id("sleeper")
    part.apply(invoke(a))
    eff = part.apply(entry(a, 0, name="nap", sleep=pb.SleepEntry(wake_at_ms=T0 + 1000)))
    (arm,) = of_type(eff, ArmTimer)
    assert arm.wake_at_ms == T0 + 1000
    assert part.timers()[arm.key].complete_sleep == 0
    assert part.apply(env(suspend=pb.Suspend(invocation_id=a, waiting_on=[0]))) == []
    assert part.status(a).status == pb.SUSPENDED
    assert list(part.status(a).waiting_on) == [0]
    eff = part.apply(env(ts=T0 + 1000, timer_fired=pb.TimerFired(timer_key=arm.key)))
    assert started(eff) == [a]
    s = part.status(a)
    assert s.status == pb.RUNNING and list(s.waiting_on) == []
    assert part.store.journal(a)[0].HasField("void")
    assert part.timers() == {}


def test_completion_while_running_is_forwarded(part):
    a = inv_id("a")
    part.apply(invoke(a), entry(a, 0, awakeable=pb.AwakeableEntry()))
    eff = part.apply(completion(a, 0, b"human says yes"))
    (ce,) = of_type(eff, CompleteEntry)
    assert (ce.invocation_id, ce.index, ce.entry.value) == (a, 0, b"human says yes")
    # A second resolution of the same awakeable is a duplicate: nothing changes.
    before = part.rows(without_lsn=True)
    assert part.apply(completion(a, 0, b"no")) == []
    assert part.rows(without_lsn=True) == before


def test_suspend_racing_a_completion_restarts_at_once(part):
    a = inv_id("racer")
    part.apply(invoke(a), entry(a, 0, awakeable=pb.AwakeableEntry()), entry(a, 1, awakeable=pb.AwakeableEntry()))
    part.apply(completion(a, 1, b"v"))
    eff = part.apply(env(suspend=pb.Suspend(invocation_id=a, waiting_on=[0, 1])))
    assert started(eff) == [a]
    assert part.status(a).status == pb.RUNNING
    # Suspended and completed on an entry it does not wait on: stays suspended.
    part.apply(entry(a, 2, awakeable=pb.AwakeableEntry()), entry(a, 3, awakeable=pb.AwakeableEntry()))
    part.apply(env(suspend=pb.Suspend(invocation_id=a, waiting_on=[3])))
    assert started(part.apply(completion(a, 2))) == []
    assert part.status(a).status == pb.SUSPENDED
    assert started(part.apply(completion(a, 3))) == [a]


def test_state_entries_and_lazy_get_state(part):
    o = inv_id("o", "k")
    part.apply(invoke(o, service="obj", key="k", kind=pb.EXCLUSIVE))
    part.apply(entry(o, 0, name="a", set_state=pb.SetStateEntry(value=b"1")),
               entry(o, 1, name="b", set_state=pb.SetStateEntry(value=b"2")))
    assert part.store.object_state("", "obj", "k") == [("a", b"1"), ("b", b"2")]
    eff = part.apply(entry(o, 2, name="a", get_state=pb.GetStateEntry()))
    (ce,) = of_type(eff, CompleteEntry)
    assert ce.entry.value == b"1"
    eff = part.apply(entry(o, 3, name="zz", get_state=pb.GetStateEntry()))
    assert of_type(eff, CompleteEntry)[0].entry.HasField("void")
    eff = part.apply(entry(o, 4, get_state_keys=pb.GetStateKeysEntry()))
    assert json.loads(of_type(eff, CompleteEntry)[0].entry.value) == ["a", "b"]
    part.apply(entry(o, 5, name="a", clear_state=pb.ClearStateEntry()))
    assert part.store.object_state("", "obj", "k") == [("b", b"2")]
    # A shared handler reads the committed state lazily.
    r = inv_id("reader", "k")
    part.apply(invoke(r, service="obj", handler="get", key="k", kind=pb.SHARED))
    eff = part.apply(entry(r, 0, name="b", get_state=pb.GetStateEntry()))
    assert of_type(eff, CompleteEntry)[0].entry.value == b"2"
    part.apply(entry(o, 6, clear_all_state=pb.ClearAllStateEntry()))
    assert part.store.object_state("", "obj", "k") == []
    # The journal keeps the completed get.
    assert part.store.journal(o)[2].value == b"1"


def test_promises(part):
    w = inv_id("wf", "w")
    part.apply(invoke(w, service="wf", key="w", kind=pb.WORKFLOW_RUN))
    eff = part.apply(entry(w, 0, name="approval", promise_get=pb.PromiseGetEntry()))
    assert of_type(eff, CompleteEntry) == []
    eff = part.apply(entry(w, 1, name="approval", promise_peek=pb.PromisePeekEntry()))
    assert of_type(eff, CompleteEntry)[0].entry.HasField("void")
    # A shared handler of the same workflow resolves it: the waiting run gets the value.
    sig = inv_id("signal", "w")
    part.apply(invoke(sig, service="wf", handler="approve", key="w", kind=pb.WORKFLOW_SHARED))
    eff = part.apply(entry(sig, 0, name="approval", promise_complete=pb.PromiseCompleteEntry(value=b"ok")))
    got = {(e.invocation_id, e.index): e.entry for e in of_type(eff, CompleteEntry)}
    assert got[(w, 0)].value == b"ok"
    assert got[(sig, 0)].HasField("void")
    # Resolving again fails with 409 in the journal.
    eff = part.apply(entry(sig, 1, name="approval", promise_complete=pb.PromiseCompleteEntry(value=b"again")))
    assert of_type(eff, CompleteEntry)[0].entry.failure.code == 409
    # A get after resolution completes at once.
    eff = part.apply(entry(w, 2, name="approval", promise_get=pb.PromiseGetEntry()))
    assert of_type(eff, CompleteEntry)[0].entry.value == b"ok"
    # An external resolution (ingress) completes suspended waiters, who resume.
    part.apply(entry(w, 3, name="ext", promise_get=pb.PromiseGetEntry()))
    part.apply(env(suspend=pb.Suspend(invocation_id=w, waiting_on=[3])))
    eff = part.apply(env(resolve_promise=pb.ResolvePromise(workflow="wf", key="w", name="ext",
                                                           failure=pb.Failure(code=400, message="no"))))
    assert started(eff) == [w]
    assert part.store.journal(w)[3].failure.code == 400
    # Only workflows have promises.
    s = inv_id("svc")
    part.apply(invoke(s))
    assert part.apply(entry(s, 0, name="x", promise_get=pb.PromiseGetEntry())) == []
    assert part.status(s).journal_length == 0


def test_calls_and_sends_go_through_the_outbox(part):
    a = inv_id("parent")
    part.apply(invoke(a, tenant="t", headers={"traceparent": "x"}))
    eff = part.apply(entry(a, 0, call=pb.CallEntry(target=pb.Target(service="obj", handler="h", key="k"),
                                                   input=b"i", handler_kind=pb.EXCLUSIVE)))
    (out,) = of_type(eff, DeliverOutbox)
    inv = out.message.envelope.invoke
    child = part.store.journal(a)[0].call.invocation_id
    assert child and inv.invocation_id == child
    assert (inv.caller.invocation_id, inv.caller.entry_index) == (a, 0)
    assert inv.tenant == "t" and dict(inv.headers) == {"traceparent": "x"}
    assert out.message.sequence == 1
    eff = part.apply(entry(a, 1, send=pb.SendEntry(target=pb.Target(service="s2", handler="h"),
                                                   handler_kind=pb.SERVICE, execute_at_ms=T0 + 9)))
    (out2,) = of_type(eff, DeliverOutbox)
    assert out2.message.sequence == 2 and out2.message.envelope.invoke.execute_at_ms == T0 + 9
    assert not out2.message.envelope.invoke.HasField("caller")
    # An unknown target: a call fails at once with 404, a send is dropped.
    eff = part.apply(entry(a, 2, call=pb.CallEntry(target=pb.Target(service="nope", handler="h"))))
    assert of_type(eff, CompleteEntry)[0].entry.failure.code == 404 and of_type(eff, DeliverOutbox) == []
    eff = part.apply(entry(a, 3, send=pb.SendEntry(target=pb.Target(service="nope", handler="h"))))
    assert of_type(eff, DeliverOutbox) == []
    # The callee's result comes back as a completion of the call entry.
    part.apply(out.message.envelope)
    part.apply(output(child, 0, b"child-result"))
    eff = part.apply(end(child))
    (back,) = of_type(eff, DeliverOutbox)
    assert back.message.envelope.completion.invocation_id == a
    eff = part.apply(back.message.envelope)
    assert of_type(eff, CompleteEntry)[0].entry.value == b"child-result"
    # Truncation drops delivered rows only.
    assert [m.sequence for m in part.outbox()] == [1, 2, 3]
    part.apply(env(outbox_truncate=pb.OutboxTruncate(up_to=2)))
    assert [m.sequence for m in part.outbox()] == [3]


# ---------------------------------------------------------------------- failures, pause, resume


def test_attempt_failed_backs_off_retries_then_fails(part):
    a = inv_id("flaky")
    part.apply(invoke(a))
    eff = part.apply(env(attempt_failed=pb.AttemptFailed(invocation_id=a, failure=pb.Failure(code=500, message="x"),
                                                         retry_at_ms=T0 + 100)))
    s = part.status(a)
    assert s.status == pb.BACKING_OFF and s.attempts == 1 and s.retry_at_ms == T0 + 100
    assert s.last_failure.message == "x"
    (arm,) = of_type(eff, ArmTimer)
    assert part.timers()[arm.key].HasField("retry")
    eff = part.apply(env(ts=T0 + 100, timer_fired=pb.TimerFired(timer_key=arm.key)))
    assert started(eff) == [a]
    # Exhausted: completed with the failure, and clients are answered.
    eff = part.apply(env(attempt_failed=pb.AttemptFailed(invocation_id=a, failure=pb.Failure(code=500, message="y"))))
    s = part.status(a)
    assert s.status == pb.COMPLETED and s.failure.message == "y" and s.attempts == 2
    assert of_type(eff, InvocationCompleted)


def test_pause_and_resume(part):
    a = inv_id("p")
    part.apply(invoke(a))
    part.apply(env(attempt_failed=pb.AttemptFailed(invocation_id=a, failure=pb.Failure(code=500), pause=True)))
    assert part.status(a).status == pb.PAUSED
    assert started(part.apply(env(resume=pb.Resume(invocation_id=a)))) == [a]
    # An operator pause of a running attempt aborts it.
    eff = part.apply(env(pause=pb.Pause(invocation_id=a)))
    assert of_type(eff, AbortAttempt) == [AbortAttempt(a, "paused")]
    assert part.status(a).status == pb.PAUSED
    # A pause racing a backoff: the retry timer finds it paused and does nothing.
    assert started(part.apply(env(resume=pb.Resume(invocation_id=a)))) == [a]
    eff = part.apply(env(attempt_failed=pb.AttemptFailed(invocation_id=a, failure=pb.Failure(code=500),
                                                         retry_at_ms=T0 + 5)))
    (arm,) = of_type(eff, ArmTimer)
    part.apply(env(pause=pb.Pause(invocation_id=a)))
    assert part.apply(env(timer_fired=pb.TimerFired(timer_key=arm.key))) == []
    assert part.status(a).status == pb.PAUSED
    assert started(part.apply(env(resume=pb.Resume(invocation_id=a)))) == [a]


# ---------------------------------------------------------------------- cancel and kill


def _call(part: Partition, parent: str, index: int, service: str, key: str = "",
          kind: int = pb.SERVICE) -> str:
    """Journal a call and deliver its Invoke (as the shuffle would); return the child's id."""
    eff = part.apply(entry(parent, index, call=pb.CallEntry(target=pb.Target(service=service, handler="h", key=key),
                                                            handler_kind=kind)))
    (out,) = of_type(eff, DeliverOutbox)
    part.apply(out.message.envelope)
    return out.message.envelope.invoke.invocation_id


def test_cancellation_propagates_through_a_tree_of_calls(part):
    root = inv_id("root")
    part.apply(invoke(root))
    c1 = _call(part, root, 0, "child-svc")
    c2 = _call(part, root, 1, "child-obj", key="k", kind=pb.EXCLUSIVE)
    c3 = _call(part, root, 2, "child-done")
    part.apply(output(c3, 0), end(c3))  # c3 finished; the shuffle brings its result back
    (back,) = [m for m in part.outbox() if m.envelope.HasField("completion")]
    part.apply(back.envelope)
    grandchild = _call(part, c1, 0, "leaf")
    # c1 is suspended waiting on its grandchild; c2 runs.
    part.apply(env(suspend=pb.Suspend(invocation_id=c1, waiting_on=[0])))
    assert part.status(c1).status == pb.SUSPENDED

    # root also waits on an awakeable: the cancel completes it with 409 in the journal.
    part.apply(entry(root, 3, awakeable=pb.AwakeableEntry()))
    seen_outbox = {m.sequence for m in part.outbox()}
    eff = part.apply(env(cancel=pb.Cancel(invocation_id=root)))
    assert CancelAttempt(root) in eff
    assert [(e.index, e.entry.failure.code) for e in of_type(eff, CompleteEntry)] == [(3, 409)]
    assert part.store.journal(root)[3].failure.code == 409
    # A second cancel while it runs is not delivered again.
    assert part.apply(env(cancel=pb.Cancel(invocation_id=root))) == []
    assert part.status(root).cancel_requested
    sent = [m for m in part.outbox() if m.sequence not in seen_outbox]
    assert {m.envelope.cancel.invocation_id for m in sent} == {c1, c2}  # not c3: its call completed
    assert all(m.envelope.HasField("cancel") for m in sent)

    # Deliver the cancels: the running child is told, the suspended one resumes to see it.
    seen_outbox = {m.sequence for m in part.outbox()}
    effects = [e for m in sent for e in part.apply(m.envelope)]
    assert CancelAttempt(c2) in effects
    assert c1 in started(effects)
    assert part.status(c1).status == pb.RUNNING and part.status(c1).cancel_requested
    # c1 passed it on to its own pending call.
    (to_leaf,) = [m for m in part.outbox() if m.sequence not in seen_outbox]
    assert to_leaf.envelope.cancel.invocation_id == grandchild
    assert CancelAttempt(grandchild) in part.apply(to_leaf.envelope)

    # Everyone ends with the cancellation failure: CANCELLED, and the parents get failures.
    cancelled = pb.Failure(code=409, message="cancelled")
    for inv, idx in ((grandchild, 0), (c1, 1), (c2, 0), (root, 4)):
        part.apply(entry(inv, idx, output=pb.OutputEntry(failure=cancelled)))
        eff = part.apply(end(inv))
        assert part.status(inv).status == pb.CANCELLED
        for out in of_type(eff, DeliverOutbox):
            part.apply(out.message.envelope)
    assert part.store.journal(root)[0].failure.code == 409
    assert part.store.journal(root)[1].failure.code == 409
    assert part.store.journal(root)[2].value == b"out"
    # The object key of c2 is free again.
    assert part.store.get(keys.lock("", "child-obj", "k")) is None


def test_cancel_of_queued_or_scheduled_invocations_finishes_them(part):
    holder, queued = inv_id("h", "k"), inv_id("q", "k")
    part.apply(invoke(holder, service="o", key="k", kind=pb.EXCLUSIVE),
               invoke(queued, service="o", key="k", kind=pb.EXCLUSIVE))
    eff = part.apply(env(cancel=pb.Cancel(invocation_id=queued)))
    assert part.status(queued).status == pb.CANCELLED and of_type(eff, InvocationCompleted)
    assert part.table(keys.object_prefix(keys.INBOX, "", "o", "k")) == []
    later = inv_id("later")
    part.apply(invoke(later, execute_at_ms=T0 + 10_000))
    part.apply(env(cancel=pb.Cancel(invocation_id=later)))
    assert part.status(later).status == pb.CANCELLED
    # Cancelling a finished invocation is a no-op.
    before = part.rows(without_lsn=True)
    assert part.apply(env(cancel=pb.Cancel(invocation_id=later))) == []
    assert part.rows(without_lsn=True) == before


def test_kill_stops_at_once_fails_the_caller_and_frees_the_key(part):
    caller = inv_id("caller")
    part.apply(invoke(caller))
    victim = _call(part, caller, 0, "obj", key="k", kind=pb.EXCLUSIVE)
    nxt = inv_id("next", "k")
    part.apply(invoke(nxt, service="obj", key="k", kind=pb.EXCLUSIVE))
    assert part.status(nxt).status == pb.INBOXED
    grandchild = _call(part, victim, 0, "leaf")
    eff = part.apply(env(kill=pb.Kill(invocation_id=victim)))
    assert AbortAttempt(victim, "killed") in eff
    s = part.status(victim)
    assert s.status == pb.KILLED and s.failure.code == 409
    outs = [e.message.envelope for e in of_type(eff, DeliverOutbox)]
    kills = [o.kill.invocation_id for o in outs if o.HasField("kill")]
    completions = [o.completion for o in outs if o.HasField("completion")]
    assert kills == [grandchild]
    assert [(c.invocation_id, c.entry_index, c.failure.code) for c in completions] == [(caller, 0, 409)]
    assert started(eff) == [nxt]
    assert part.store.get(keys.lock("", "obj", "k")) == nxt.encode()
    # The caller sees the failure.
    eff = part.apply(env(completion=completions[0]))
    assert of_type(eff, CompleteEntry)[0].entry.failure.code == 409
    # Kill is final: anything the aborted attempt still sends is rejected.
    assert part.apply(run_entry(victim, 1)) == []


def test_kill_of_a_queued_invocation(part):
    holder, queued = inv_id("h", "k"), inv_id("q", "k")
    part.apply(invoke(holder, service="o", key="k", kind=pb.EXCLUSIVE),
               invoke(queued, service="o", key="k", kind=pb.EXCLUSIVE))
    eff = part.apply(env(kill=pb.Kill(invocation_id=queued)))
    assert of_type(eff, AbortAttempt) == []
    assert part.status(queued).status == pb.KILLED
    assert part.table(keys.object_prefix(keys.INBOX, "", "o", "k")) == []
    assert part.store.get(keys.lock("", "o", "k")) == holder.encode()
    assert started(finish(part, holder, 0)) == []


# ---------------------------------------------------------------------- typed cancellation and kill


def test_cancelled_and_killed_failures_carry_their_cause(part):
    # A cancelled inboxed invocation, and the awakeable a running one waits on.
    holder, queued = inv_id("h", "k"), inv_id("q", "k")
    part.apply(invoke(holder, service="o", key="k", kind=pb.EXCLUSIVE),
               invoke(queued, service="o", key="k", kind=pb.EXCLUSIVE))
    part.apply(env(cancel=pb.Cancel(invocation_id=queued)))
    s = part.status(queued)
    assert (s.status, s.failure.code, s.failure.cause) == (pb.CANCELLED, 409, pb.FAILURE_CANCELLED)
    waiting = inv_id("waiting")
    part.apply(invoke(waiting), entry(waiting, 0, awakeable=pb.AwakeableEntry()))
    eff = part.apply(env(cancel=pb.Cancel(invocation_id=waiting)))
    (done,) = of_type(eff, CompleteEntry)
    assert done.entry.failure.cause == pb.FAILURE_CANCELLED
    assert part.store.journal(waiting)[0].failure.cause == pb.FAILURE_CANCELLED
    # A killed invocation, and the failure its caller receives.
    caller = inv_id("caller")
    part.apply(invoke(caller))
    victim = _call(part, caller, 0, "svc2")
    eff = part.apply(env(kill=pb.Kill(invocation_id=victim)))
    s = part.status(victim)
    assert (s.status, s.failure.code, s.failure.cause) == (pb.KILLED, 409, pb.FAILURE_KILLED)
    (back,) = [e.message.envelope.completion for e in of_type(eff, DeliverOutbox)]
    assert back.failure.cause == pb.FAILURE_KILLED


def test_a_handlers_own_409_cancelled_failure_is_completed_not_cancelled(part):
    a = inv_id("own409")
    part.apply(invoke(a))
    part.apply(entry(a, 0, output=pb.OutputEntry(failure=pb.Failure(code=409, message="cancelled"))))
    part.apply(end(a))
    s = part.status(a)
    assert s.status == pb.COMPLETED and not s.cancel_requested
    assert (s.failure.code, s.failure.message, s.failure.cause) == (409, "cancelled", pb.FAILURE_ERROR)


# ---------------------------------------------------------------------- attempts


def test_attempts_count_the_attempts_started(part):
    once = inv_id("once")
    part.apply(invoke(once))
    assert part.status(once).attempts == 1
    finish(part, once, 0)
    assert (part.status(once).status, part.status(once).attempts) == (pb.COMPLETED, 1)

    retried = inv_id("retried")
    part.apply(invoke(retried))
    eff = part.apply(env(attempt_failed=pb.AttemptFailed(invocation_id=retried, failure=pb.Failure(code=500),
                                                         retry_at_ms=T0 + 100)))
    (arm,) = of_type(eff, ArmTimer)
    assert part.status(retried).attempts == 1 and part.store.failed_attempts(retried) == 1
    assert started(part.apply(env(ts=T0 + 100, timer_fired=pb.TimerFired(timer_key=arm.key)))) == [retried]
    finish(part, retried, 0)
    s = part.status(retried)
    assert (s.status, s.attempts) == (pb.COMPLETED, 2)
    assert part.store.failed_attempts(retried) == 1


def test_retry_timers_are_unique_per_attempt_and_resumptions_are_no_failures(part):
    a = inv_id("sleepy")
    part.apply(invoke(a))
    part.apply(entry(a, 0, sleep=pb.SleepEntry(wake_at_ms=T0 + 10)))
    part.apply(env(suspend=pb.Suspend(invocation_id=a, waiting_on=[0])))
    (sleep_key,) = [k for k, t in part.timers().items() if t.HasField("complete_sleep")]
    assert started(part.apply(env(ts=T0 + 10, timer_fired=pb.TimerFired(timer_key=sleep_key)))) == [a]
    assert part.status(a).attempts == 2 and part.store.failed_attempts(a) == 0  # a resumption, no failure
    retry_keys = []
    for n in range(2):
        eff = part.apply(env(attempt_failed=pb.AttemptFailed(invocation_id=a, failure=pb.Failure(code=500),
                                                             retry_at_ms=T0 + 100 + n)))
        (arm,) = of_type(eff, ArmTimer)
        retry_keys.append(arm.key)
        assert part.store.failed_attempts(a) == n + 1
        assert started(part.apply(env(ts=T0 + 100 + n, timer_fired=pb.TimerFired(timer_key=arm.key)))) == [a]
    assert len(set(retry_keys)) == 2 and part.status(a).attempts == 4
    finish(part, a, 1)
    # The purge at the end of retention drops the failure count with the status.
    purge_key = next(k for k, t in part.timers().items() if t.HasField("purge"))
    part.apply(env(ts=T0 + RETENTION, timer_fired=pb.TimerFired(timer_key=purge_key)))
    assert part.store.status(a) is None and part.store.failed_attempts(a) == 0
