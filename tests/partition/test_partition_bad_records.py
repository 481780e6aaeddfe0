"""Bad records are rejected with a logged, specific reason, change nothing and do not stop the partition."""

from __future__ import annotations

import logging

import pytest
from partition_testkit import (
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
from endure.runtime.partition.effects import AbortAttempt, StartInvocation

RUNNING = inv_id("running")
OBJ = inv_id("obj", "k")
WF = inv_id("wf", "w")


@pytest.fixture
def part(tmp_path):
    p = Partition(tmp_path / "store")
    p.apply(invoke(RUNNING), run_entry(RUNNING, 0),
            invoke(OBJ, service="o", key="k", kind=pb.EXCLUSIVE),
            invoke(WF, service="wf", key="w", kind=pb.WORKFLOW_RUN))
    yield p
    p.close()


BAD = [
    pytest.param(end(inv_id("ghost")), f"unknown invocation {inv_id('ghost')}", id="unknown-invocation"),
    pytest.param(completion(inv_id("ghost"), 0, b"v"), "unknown invocation", id="completion-unknown-invocation"),
    pytest.param(run_entry(RUNNING, 3), "entry index 3, expected 1", id="entry-index-gap"),
    pytest.param(run_entry(RUNNING, 0), "entry index 0, expected 1", id="entry-index-repeat"),
    pytest.param(completion(RUNNING, 0, b"v"), "is a run entry, which takes no completion", id="completion-on-run"),
    pytest.param(completion(RUNNING, 7, b"v"), "has no entry 7", id="completion-of-missing-entry"),
    pytest.param(env(completion=pb.Completion(invocation_id=RUNNING, entry_index=0)), "without a result",
                 id="completion-without-result"),
    pytest.param(invoke(inv_id("x"), kind=pb.HANDLER_KIND_UNSPECIFIED), "handler kind unspecified",
                 id="invoke-without-kind"),
    pytest.param(invoke(inv_id("x"), service="o", kind=pb.EXCLUSIVE), "keyed handler without a key",
                 id="keyed-invoke-without-key"),
    pytest.param(invoke("inv_nonsense"), "malformed id", id="invoke-bad-id"),
    pytest.param(invoke(inv_id("x"), handler=""), "needs an invocation id, a service and a handler",
                 id="invoke-without-handler"),
    pytest.param(entry(RUNNING, 1, name="k", set_state=pb.SetStateEntry(value=b"v")),
                 "set_state from a handler without exclusive state access", id="service-sets-state"),
    pytest.param(entry(RUNNING, 1, name="p", promise_get=pb.PromiseGetEntry()), "promises belong to workflows",
                 id="promise-outside-workflow"),
    pytest.param(entry(RUNNING, 1, name="nothing"), "entry 1 has no kind", id="entry-without-kind"),
    pytest.param(end(RUNNING), "ended without an output entry", id="end-without-output"),
    pytest.param(env(suspend=pb.Suspend(invocation_id=RUNNING, waiting_on=[9])), "waits on entry 9",
                 id="suspend-on-missing-entry"),
    pytest.param(env(resume=pb.Resume(invocation_id=RUNNING)), "is RUNNING, not paused", id="resume-running"),
    pytest.param(env(purge=pb.Purge(invocation_id=RUNNING)), "only finished invocations can be purged",
                 id="purge-running"),
    pytest.param(env(announce_leader=pb.AnnounceLeader(epoch=0)), "is not newer than the current one",
                 id="announce-old-epoch"),
    pytest.param(env(resolve_promise=pb.ResolvePromise(workflow="wf", key="w", name="p")),
                 "without a value or failure", id="resolve-without-outcome"),
    pytest.param(pb.Envelope(header=pb.Header(timestamp_ms=1)), "record without a known body", id="no-body"),
    pytest.param(b"\x0a\xff\x01", "undecodable record", id="undecodable-bytes"),
]


@pytest.mark.parametrize(("record", "reason"), BAD)
def test_bad_record_is_rejected_and_changes_nothing(part, caplog, record, reason):
    before = part.rows(without_lsn=True)
    lsn_before = part.store.applied_lsn()
    rejected_before = part.sm.rejected
    with caplog.at_level(logging.WARNING, logger="endure.partition"):
        effects = part.apply(record)
    messages = [r.getMessage() for r in caplog.records if r.name == "endure.partition"]
    assert any(reason in m for m in messages), messages
    assert part.sm.rejected == rejected_before + 1
    assert part.rows(without_lsn=True) == before
    assert part.store.applied_lsn() == lsn_before + 1
    assert of_type(effects, StartInvocation) == []
    # The partition goes on: later valid records apply.
    nxt = inv_id("after")
    assert of_type(part.apply(invoke(nxt)), StartInvocation)
    part.apply(output(RUNNING, 1))
    part.apply(end(RUNNING))
    assert part.status(RUNNING).status == pb.COMPLETED


def test_bad_records_inside_a_batch_leave_the_rest_applied(part, caplog):
    """A rejection rolls back only its own record's changes, not the batch's earlier ones."""
    a, b = inv_id("a"), inv_id("b")
    with caplog.at_level(logging.WARNING, logger="endure.partition"):
        effects = part.apply(invoke(a), run_entry(RUNNING, 5), b"\xff\xff", invoke(b), run_entry(RUNNING, 1),
                             completion(RUNNING, 1, b"x"))
    assert [e.invocation_id for e in of_type(effects, StartInvocation)] == [a, b]
    assert part.status(RUNNING).journal_length == 2
    assert part.sm.rejected == 3


def test_entry_gap_asks_the_leader_to_restart_the_attempt(part):
    effects = part.apply(run_entry(RUNNING, 4))
    assert effects == [AbortAttempt(RUNNING, f"{RUNNING}: entry index 4, expected 1", restart=True)]


def test_records_for_a_finished_invocation_are_rejected(part, caplog):
    part.apply(output(RUNNING, 1), end(RUNNING))
    before = part.rows(without_lsn=True)
    with caplog.at_level(logging.WARNING, logger="endure.partition"):
        part.apply(run_entry(RUNNING, 2), end(RUNNING),
                   env(suspend=pb.Suspend(invocation_id=RUNNING, waiting_on=[0])),
                   env(attempt_failed=pb.AttemptFailed(invocation_id=RUNNING, retry_at_ms=5)),
                   env(pause=pb.Pause(invocation_id=RUNNING)))
    assert part.rows(without_lsn=True) == before
    msgs = " ".join(r.getMessage() for r in caplog.records)
    for reason in ("is COMPLETED, not running", "is COMPLETED, cannot end", "is COMPLETED, cannot suspend",
                   "is COMPLETED, cannot pause"):
        assert reason in msgs
