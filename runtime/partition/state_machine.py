"""The partition state machine: apply(record) → store changes + effects, deterministically.

Apply uses no clock and no randomness: every time comes from the record's header, so the same
log always yields the same store. A record that cannot apply (unknown invocation, an entry index
gap, a wrong state) is rejected with a logged reason and changes nothing; the partition goes on.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from endure.proto import ids
from endure.proto import records_pb2 as pb
from endure.runtime.partition import keys
from endure.runtime.partition.effects import (
    AbortAttempt,
    ArmTimer,
    CancelAttempt,
    CompleteEntry,
    DeliverOutbox,
    Effect,
    InvocationCompleted,
    StartInvocation,
)
from endure.runtime.partition.store import Transaction

log = logging.getLogger("endure.partition")

FINAL = (pb.COMPLETED, pb.KILLED, pb.CANCELLED)
LOCKING = (pb.EXCLUSIVE, pb.WORKFLOW_RUN)
CANCELLED_CODE = 409


class Rejected(Exception):
    """A record that cannot apply; the reason is logged and the record changes nothing.

    `restart` names an invocation whose running attempt sent the bad record: the leader aborts that
    attempt and starts it again from the journal in the store.
    """

    def __init__(self, reason: str, restart: str | None = None) -> None:
        super().__init__(reason)
        self.restart = restart


@dataclass(frozen=True, slots=True)
class StateMachineConfig:
    partition: int
    partitions: int
    retention_ms: int = 24 * 3600 * 1000  # how long completed invocations (and idempotency hits) are kept


class StateMachine:
    def __init__(self, config: StateMachineConfig) -> None:
        self.config = config
        self.rejected = 0  # records rejected since start, for metrics and tests
        # Metering of the record being applied, then of its transaction (flushed before commit).
        self._staged_usage: list[tuple[bytes, dict[str, float]]] = []
        self._usage: dict[bytes, dict[str, float]] = {}
        self._usage_tx: Transaction | None = None
        self._handlers = {
            field.name: getattr(self, f"_on_{field.name}")
            for field in pb.Envelope.DESCRIPTOR.oneofs_by_name["body"].fields
            if hasattr(self, f"_on_{field.name}")
        }

    # ------------------------------------------------------------------ entry point

    def apply(self, tx: Transaction, env: pb.Envelope, effects: list[Effect]) -> bool:
        """Apply one record into tx; append its effects. False when it was ignored or rejected."""
        header = env.header
        if header.leader_epoch:
            current = self._u64(tx, keys.LEADER_EPOCH)
            if header.leader_epoch < current:
                log.debug("partition %d: record from stale leader epoch %d < %d ignored",
                          self.config.partition, header.leader_epoch, current)
                return False
        if header.producer:
            dedup_key = keys.dedup(header.producer)
            if header.sequence <= self._u64(tx, dedup_key):
                return False
            tx.put(dedup_key, keys.u64(header.sequence))
        kind = env.WhichOneof("body")
        handler = self._handlers.get(kind)  # type: ignore[arg-type]
        if handler is None:
            self.reject(f"record without a known body ({kind!r})")
            return False
        # Roll back to these marks on rejection, so a rejected record leaves nothing half-written.
        # (Truncating instead of copying the effects list keeps a batch's apply linear in its size.)
        mark = len(effects)
        checkpoint = tx.checkpoint()
        self._staged_usage.clear()
        try:
            handler(tx, getattr(env, kind), header.timestamp_ms, effects)
        except Rejected as exc:
            tx.rollback(checkpoint)
            del effects[mark:]
            self._staged_usage.clear()
            self.reject(f"{kind}: {exc}", getattr(getattr(env, kind), "invocation_id", ""))
            if exc.restart:
                effects.append(AbortAttempt(exc.restart, str(exc), restart=True))
            return False
        if self._staged_usage:
            self._merge_staged_usage(tx)
        return True

    def reject(self, reason: str, invocation_id: str = "") -> None:
        """Count and log a record that changes nothing (structured: with its invocation id)."""
        self.rejected += 1
        log.warning("partition %d: rejected record: %s", self.config.partition, reason,
                    extra={"invocation_id": invocation_id} if invocation_id else None)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _u64(tx: Transaction, key: bytes) -> int:
        raw = tx.get(key)
        return keys.read_u64(raw) if raw else 0

    def _next_seq(self, tx: Transaction, key: bytes) -> int:
        seq = self._u64(tx, key) + 1
        tx.put(key, keys.u64(seq))
        return seq

    @staticmethod
    def _status(tx: Transaction, invocation_id: str) -> pb.InvocationStatus:
        status = tx.get_proto(keys.status(invocation_id), pb.InvocationStatus)
        if status is None:
            raise Rejected(f"unknown invocation {invocation_id}")
        return status

    @staticmethod
    def _save(tx: Transaction, status: pb.InvocationStatus, now: int) -> None:
        status.modified_at_ms = now
        tx.put_proto(keys.status(status.invocation_id), status)
        if status.status == pb.RUNNING:
            tx.put(keys.running(status.invocation_id), b"")
        elif status.status not in (pb.SCHEDULED, pb.INBOXED):  # (those never ran)
            tx.delete(keys.running(status.invocation_id))

    def _meter(self, tx: Transaction, status: pb.InvocationStatus, now: int, counters: dict[str, float]) -> None:
        """Add counters to the invocation's usage and (staged) to its tenant's row for the record's day.

        Metering is derived from the log as it applies, so a replay never counts twice and a
        crash never loses a count. The caller saves the status; the rows are written once per
        transaction (see _flush_usage), and a rejected record's counts are dropped with it.
        """
        if not counters:
            return
        for name, amount in counters.items():
            if name.endswith("peak_memory_bytes"):
                status.usage[name] = max(status.usage.get(name, 0.0), amount)
            else:
                status.usage[name] = status.usage.get(name, 0.0) + amount
        t = status.target
        self._staged_usage.append((keys.usage(status.tenant, now // 86_400_000, t.service, t.handler), counters))

    def _merge_staged_usage(self, tx: Transaction) -> None:
        if self._usage_tx is not tx:
            self._usage_tx = tx
            self._usage = {}
            tx.before_commit(self._flush_usage)
        for row_key, counters in self._staged_usage:
            totals = self._usage.setdefault(row_key, {})
            for name, amount in counters.items():
                if name.endswith("peak_memory_bytes"):
                    totals[name] = max(totals.get(name, 0.0), amount)
                else:
                    totals[name] = totals.get(name, 0.0) + amount
        self._staged_usage.clear()

    def _flush_usage(self, tx: Transaction) -> None:
        """Add the transaction's metering to the usage rows: one read and one write per row."""
        for row_key, totals in self._usage.items():
            row = tx.get_proto(row_key, pb.UsageRow) or pb.UsageRow()
            for name, amount in totals.items():
                if name.endswith("peak_memory_bytes"):
                    row.counters[name] = max(row.counters.get(name, 0.0), amount)
                else:
                    row.counters[name] = row.counters.get(name, 0.0) + amount
            tx.put_proto(row_key, row)
        self._usage = {}
        self._usage_tx = None

    def _arm_timer(self, tx: Transaction, timer: pb.Timer, action: str, effects: list[Effect]) -> str:
        key = keys.timer_key(timer.wake_at_ms, timer.invocation_id, action)
        tx.put_proto(keys.timer(key), timer)
        effects.append(ArmTimer(key, timer.wake_at_ms))
        return key

    def _outbox(self, tx: Transaction, target_invocation: str, env: pb.Envelope, effects: list[Effect]) -> None:
        seq = self._next_seq(tx, keys.OUTBOX_NEXT)
        msg = pb.OutboxMessage(
            sequence=seq, partition=ids.partition_of(target_invocation, self.config.partitions), envelope=env
        )
        tx.put_proto(keys.outbox(seq), msg)
        effects.append(DeliverOutbox(msg))

    def _start(self, tx: Transaction, status: pb.InvocationStatus, now: int, effects: list[Effect]) -> None:
        status.status = pb.RUNNING
        status.waiting_on[:] = []
        self._save(tx, status, now)
        effects.append(StartInvocation(status.invocation_id, status.target.service, status.tenant, status.priority,
                                           status.target.handler))

    @staticmethod
    def _entry(tx: Transaction, invocation_id: str, index: int) -> pb.JournalEntry | None:
        return tx.get_proto(keys.journal(invocation_id, index), pb.JournalEntry)

    # ------------------------------------------------------------------ invoke

    def _on_invoke(self, tx: Transaction, rec: pb.Invoke, now: int, effects: list[Effect]) -> None:
        if not rec.invocation_id or not rec.target.service or not rec.target.handler:
            raise Rejected("invoke needs an invocation id, a service and a handler")
        try:
            ids.partition_key_of(rec.invocation_id)
        except ids.InvalidId as exc:
            raise Rejected(str(exc)) from exc
        if rec.handler_kind == pb.HANDLER_KIND_UNSPECIFIED:
            raise Rejected(f"invoke {rec.invocation_id}: handler kind unspecified")
        if rec.handler_kind != pb.SERVICE and not rec.target.key:
            raise Rejected(f"invoke {rec.invocation_id}: keyed handler without a key")
        existing = tx.get_proto(keys.status(rec.invocation_id), pb.InvocationStatus)
        if existing is not None:
            # Idempotency hit, a workflow submitted twice, or a re-delivered message: same invocation.
            if existing.status in FINAL:
                effects.append(InvocationCompleted(existing.invocation_id, existing))
                if rec.HasField("caller") and rec.caller.invocation_id:
                    self._complete_caller(tx, existing, rec.caller, effects)
            return
        if rec.handler_kind == pb.WORKFLOW_RUN:
            wf_key = keys.workflow(rec.tenant, rec.target.service, rec.target.key)
            first = tx.get(wf_key)
            if first is not None:
                # The workflow already ran (or runs) for this key: a caller gets a clear failure.
                if rec.HasField("caller") and rec.caller.invocation_id:
                    refusal = pb.InvocationStatus(invocation_id=rec.invocation_id, modified_at_ms=now)
                    refusal.failure.code = 409
                    refusal.failure.message = (f"workflow {rec.target.service}/{rec.target.key} was already "
                                               f"submitted as {first.decode()}")
                    self._complete_caller(tx, refusal, rec.caller, effects)
                return
            tx.put(wf_key, rec.invocation_id.encode())
        status = pb.InvocationStatus(
            invocation_id=rec.invocation_id,
            target=rec.target,
            handler_kind=rec.handler_kind,
            tenant=rec.tenant,
            priority=rec.priority,
            input=rec.input,
            idempotency_key=rec.idempotency_key,
            created_at_ms=now,
            execute_at_ms=rec.execute_at_ms,
        )
        status.headers.update(rec.headers)
        if rec.HasField("caller"):
            status.caller.CopyFrom(rec.caller)
        if rec.idempotency_key:
            t = rec.target
            tx.put(keys.idempotency(rec.tenant, t.service, t.handler, t.key, rec.idempotency_key),
                   rec.invocation_id.encode())
        self._meter(tx, status, now, {"invocations": 1.0})
        if rec.execute_at_ms > now:
            status.status = pb.SCHEDULED
            self._save(tx, status, now)
            self._arm_timer(tx, pb.Timer(wake_at_ms=rec.execute_at_ms, invocation_id=rec.invocation_id,
                                         start=pb.Void()), "start", effects)
            return
        self._admit(tx, status, now, effects)

    def _admit(self, tx: Transaction, status: pb.InvocationStatus, now: int, effects: list[Effect]) -> None:
        """Run now, or queue in the key's inbox behind the exclusive handler holding its lock."""
        if status.handler_kind in LOCKING:
            lock_key = keys.lock(status.tenant, status.target.service, status.target.key)
            if tx.get(lock_key) is not None:
                seq = self._next_seq(tx, keys.INBOX_NEXT)
                tx.put(keys.inbox(status.tenant, status.target.service, status.target.key, seq), status.invocation_id.encode())
                status.status = pb.INBOXED
                status.inbox_seq = seq
                self._save(tx, status, now)
                return
            tx.put(lock_key, status.invocation_id.encode())
        self._start(tx, status, now, effects)

    def _release_lock(self, tx: Transaction, status: pb.InvocationStatus, now: int, effects: list[Effect]) -> None:
        if status.handler_kind not in LOCKING:
            return
        service, key = status.target.service, status.target.key
        lock_key = keys.lock(status.tenant, service, key)
        holder = tx.get(lock_key)
        if holder is None or holder.decode() != status.invocation_id:
            return
        tx.delete(lock_key)
        inbox = keys.object_prefix(keys.INBOX, status.tenant, service, key)
        while (head := tx.first_key(inbox)) is not None:
            next_id = (tx.get(head) or b"").decode()
            tx.delete(head)
            nxt = tx.get_proto(keys.status(next_id), pb.InvocationStatus)
            if nxt is None or nxt.status != pb.INBOXED:
                continue  # a stale row: skip to the next in line
            nxt.inbox_seq = 0
            tx.put(lock_key, next_id.encode())
            self._start(tx, nxt, now, effects)
            return

    # ------------------------------------------------------------------ journal

    def _on_append_entry(self, tx: Transaction, rec: pb.AppendEntry, now: int, effects: list[Effect]) -> None:
        status = self._status(tx, rec.invocation_id)
        if status.status != pb.RUNNING:
            raise Rejected(f"{rec.invocation_id} is {pb.Status.Name(status.status)}, not running")
        if rec.index != status.journal_length:
            raise Rejected(f"{rec.invocation_id}: entry index {rec.index}, expected {status.journal_length}",
                           restart=rec.invocation_id)
        entry = pb.JournalEntry()
        entry.CopyFrom(rec.entry)
        kind = entry.WhichOneof("kind")
        if kind is None:
            raise Rejected(f"{rec.invocation_id}: entry {rec.index} has no kind", restart=rec.invocation_id)
        if kind == "run" and entry.WhichOneof("result") is None:
            raise Rejected(f"{rec.invocation_id}: run entry {rec.index} arrived without its result",
                           restart=rec.invocation_id)
        if not entry.appended_at_ms:
            entry.appended_at_ms = now
        status.journal_length += 1
        target = status.target
        completed_now = False

        if kind in ("set_state", "clear_state", "clear_all_state"):
            if status.handler_kind not in LOCKING:
                raise Rejected(f"{rec.invocation_id}: {kind} from a handler without exclusive state access",
                               restart=rec.invocation_id)
            if kind == "set_state":
                tx.put(keys.state(status.tenant, target.service, target.key, entry.name), entry.set_state.value)
            elif kind == "clear_state":
                tx.delete(keys.state(status.tenant, target.service, target.key, entry.name))
            else:
                for k in tx.scan_keys(keys.object_prefix(keys.STATE, status.tenant, target.service, target.key)):
                    tx.delete(k)
        elif kind == "get_state" and not entry.WhichOneof("result"):
            value = tx.get(keys.state(status.tenant, target.service, target.key, entry.name))
            if value is None:
                entry.void.SetInParent()
            else:
                entry.value = value
            completed_now = True
        elif kind == "get_state_keys" and not entry.WhichOneof("result"):
            prefix = keys.object_prefix(keys.STATE, status.tenant, target.service, target.key)
            names = sorted(keys.state_name(k, prefix) for k in tx.scan_keys(prefix))
            entry.value = json.dumps(names).encode()
            completed_now = True
        elif kind == "sleep":
            self._arm_timer(tx, pb.Timer(wake_at_ms=entry.sleep.wake_at_ms, invocation_id=rec.invocation_id,
                                         complete_sleep=rec.index), f"sleep{rec.index}", effects)
        elif kind in ("call", "send"):
            self._dispatch_call(tx, status, rec.index, entry, now, effects)
        elif kind in ("promise_get", "promise_peek", "promise_complete"):
            completed_now = self._promise_entry(tx, status, rec.index, entry, now, effects)

        usage = dict(entry.usage)
        usage["journal.bytes"] = float(rec.entry.ByteSize())
        if kind == "meter":
            for name, amount in entry.meter.counters.items():
                usage[name] = usage.get(name, 0.0) + amount
        elif kind == "set_state":
            usage["state.bytes"] = float(len(entry.set_state.value))
        self._meter(tx, status, now, usage)
        tx.put_proto(keys.journal(rec.invocation_id, rec.index), entry)
        self._save(tx, status, now)
        if completed_now:
            effects.append(CompleteEntry(rec.invocation_id, rec.index, entry))

    def _dispatch_call(self, tx: Transaction, status: pb.InvocationStatus, index: int, entry: pb.JournalEntry,
                       now: int, effects: list[Effect]) -> None:
        call = entry.call if entry.HasField("call") else entry.send
        if not call.invocation_id:
            call.invocation_id = ids.call_invocation_id(status.invocation_id, index, call.target.key)
        kind = call.handler_kind
        if kind == pb.HANDLER_KIND_UNSPECIFIED:
            # The invoker could not resolve the target; a call fails right away, a send is dropped.
            if entry.HasField("call"):
                entry.failure.code = 404
                entry.failure.message = f"no handler {call.target.service}/{call.target.handler}"
                effects.append(CompleteEntry(status.invocation_id, index, entry))
            return
        invoke = pb.Invoke(
            invocation_id=call.invocation_id, target=call.target, handler_kind=kind, input=call.input,
            tenant=status.tenant, priority=status.priority,
        )
        invoke.headers.update(status.headers)
        if entry.HasField("call"):
            invoke.caller.invocation_id = status.invocation_id
            invoke.caller.entry_index = index
        else:
            invoke.execute_at_ms = entry.send.execute_at_ms
        self._outbox(tx, call.invocation_id, pb.Envelope(header=pb.Header(timestamp_ms=now), invoke=invoke), effects)

    def _promise_entry(self, tx: Transaction, status: pb.InvocationStatus, index: int, entry: pb.JournalEntry,
                       now: int, effects: list[Effect]) -> bool:
        if status.handler_kind not in (pb.WORKFLOW_RUN, pb.WORKFLOW_SHARED):
            raise Rejected(f"{status.invocation_id}: promises belong to workflows")
        pkey = keys.promise(status.tenant, status.target.service, status.target.key, entry.name)
        promise = tx.get_proto(pkey, pb.Promise) or pb.Promise()
        resolved = promise.WhichOneof("result")
        if entry.HasField("promise_get"):
            if resolved:
                _copy_outcome(promise, entry)
                return True
            promise.waiters.add(invocation_id=status.invocation_id, entry_index=index)
            tx.put_proto(pkey, promise)
            return False
        if entry.HasField("promise_peek"):
            if resolved:
                _copy_outcome(promise, entry)
            else:
                entry.void.SetInParent()
            return True
        # resolve / reject
        if resolved:
            entry.failure.code = 409
            entry.failure.message = f"promise {entry.name!r} was already completed"
            return True
        _copy_outcome(entry.promise_complete, promise)
        self._settle_promise(tx, promise, now, effects, skip=(status.invocation_id, index))
        tx.put_proto(pkey, promise)
        entry.void.SetInParent()
        return True

    def _settle_promise(self, tx: Transaction, promise: pb.Promise, now: int, effects: list[Effect],
                        skip: tuple[str, int] | None = None) -> None:
        waiters = list(promise.waiters)
        del promise.waiters[:]
        for waiter in waiters:
            if skip == (waiter.invocation_id, waiter.entry_index):
                continue
            result = pb.Completion(invocation_id=waiter.invocation_id, entry_index=waiter.entry_index)
            _copy_outcome(promise, result)
            try:
                self._complete(tx, result, now, effects)
            except Rejected as exc:
                log.info("partition %d: promise waiter skipped: %s", self.config.partition, exc)

    # ------------------------------------------------------------------ completions

    def _on_completion(self, tx: Transaction, rec: pb.Completion, now: int, effects: list[Effect]) -> None:
        if rec.WhichOneof("result") is None:
            raise Rejected(f"completion of {rec.invocation_id}[{rec.entry_index}] without a result")
        self._complete(tx, rec, now, effects)

    def _complete(self, tx: Transaction, rec: pb.Completion, now: int, effects: list[Effect]) -> None:
        status = self._status(tx, rec.invocation_id)
        if status.status in FINAL:
            return  # nobody waits any more
        entry = self._entry(tx, rec.invocation_id, rec.entry_index)
        if entry is None:
            raise Rejected(f"{rec.invocation_id} has no entry {rec.entry_index}")
        if entry.WhichOneof("kind") not in ("sleep", "call", "awakeable", "promise_get", "get_state"):
            raise Rejected(f"{rec.invocation_id}[{rec.entry_index}] is a {entry.WhichOneof('kind')} entry, "
                           "which takes no completion")
        if entry.WhichOneof("result") is not None:
            return  # already completed: a duplicate (an awakeable resolved twice, a re-fired timer)
        _copy_outcome(rec, entry)
        tx.put_proto(keys.journal(rec.invocation_id, rec.entry_index), entry)
        if status.status == pb.RUNNING:
            effects.append(CompleteEntry(rec.invocation_id, rec.entry_index, entry))
        elif status.status == pb.SUSPENDED and rec.entry_index in status.waiting_on:
            self._start(tx, status, now, effects)

    def _on_suspend(self, tx: Transaction, rec: pb.Suspend, now: int, effects: list[Effect]) -> None:
        status = self._status(tx, rec.invocation_id)
        if status.status != pb.RUNNING:
            raise Rejected(f"{rec.invocation_id} is {pb.Status.Name(status.status)}, cannot suspend")
        if not rec.waiting_on:
            raise Rejected(f"{rec.invocation_id} suspends waiting on nothing", restart=rec.invocation_id)
        if rec.run_ms:
            self._meter(tx, status, now, {"handler.run_ms": float(rec.run_ms)})
        for index in rec.waiting_on:
            entry = self._entry(tx, rec.invocation_id, index)
            if entry is None:
                raise Rejected(f"{rec.invocation_id} waits on entry {index}, which does not exist")
            if entry.WhichOneof("result") is not None or status.cancel_requested:
                # Completed while the worker was suspending: resume at once.
                self._start(tx, status, now, effects)
                return
        status.status = pb.SUSPENDED
        status.waiting_on[:] = rec.waiting_on
        self._save(tx, status, now)

    # ------------------------------------------------------------------ endings

    def _on_end(self, tx: Transaction, rec: pb.End, now: int, effects: list[Effect]) -> None:
        status = self._status(tx, rec.invocation_id)
        if status.status != pb.RUNNING:
            raise Rejected(f"{rec.invocation_id} is {pb.Status.Name(status.status)}, cannot end")
        if rec.run_ms:
            self._meter(tx, status, now, {"handler.run_ms": float(rec.run_ms)})
        output = None
        if status.journal_length:
            last = self._entry(tx, rec.invocation_id, status.journal_length - 1)
            if last is not None and last.HasField("output"):
                output = last.output
        if output is None:
            raise Rejected(f"{rec.invocation_id} ended without an output entry")
        if output.WhichOneof("result") == "value":
            status.value = output.value
        else:
            status.failure.CopyFrom(output.failure)
        final = pb.CANCELLED if status.cancel_requested and output.HasField("failure") else pb.COMPLETED
        self._finish(tx, status, final, now, effects)

    def _finish(self, tx: Transaction, status: pb.InvocationStatus, final: int, now: int,
                effects: list[Effect]) -> None:
        """Make the invocation final: answer waiters and caller, free its key, arm its purge."""
        status.status = final  # type: ignore[assignment]
        status.completed_at_ms = now
        status.waiting_on[:] = []
        self._save(tx, status, now)
        effects.append(InvocationCompleted(status.invocation_id, status))
        if status.HasField("caller") and status.caller.invocation_id:
            self._complete_caller(tx, status, status.caller, effects)
        self._release_lock(tx, status, now, effects)
        self._arm_timer(tx, pb.Timer(wake_at_ms=now + self.config.retention_ms,
                                     invocation_id=status.invocation_id, purge=pb.Void()), "purge", effects)

    def _complete_caller(self, tx: Transaction, status: pb.InvocationStatus, caller: pb.Caller,
                         effects: list[Effect]) -> None:
        completion = pb.Completion(invocation_id=caller.invocation_id, entry_index=caller.entry_index)
        if status.WhichOneof("result") == "value":
            completion.value = status.value
        else:
            completion.failure.CopyFrom(status.failure)
        env = pb.Envelope(header=pb.Header(timestamp_ms=status.modified_at_ms), completion=completion)
        self._outbox(tx, caller.invocation_id, env, effects)

    def _on_attempt_failed(self, tx: Transaction, rec: pb.AttemptFailed, now: int, effects: list[Effect]) -> None:
        status = self._status(tx, rec.invocation_id)
        if status.status != pb.RUNNING:
            raise Rejected(f"{rec.invocation_id} is {pb.Status.Name(status.status)}, not running")
        if rec.run_ms:
            self._meter(tx, status, now, {"handler.run_ms": float(rec.run_ms)})
        status.attempts += 1
        status.last_failure.CopyFrom(rec.failure)
        if rec.pause:
            status.status = pb.PAUSED
            self._save(tx, status, now)
        elif rec.retry_at_ms == 0:
            status.failure.CopyFrom(rec.failure)
            self._finish(tx, status, pb.COMPLETED, now, effects)
        else:
            status.status = pb.BACKING_OFF
            status.retry_at_ms = rec.retry_at_ms
            self._save(tx, status, now)
            self._arm_timer(tx, pb.Timer(wake_at_ms=rec.retry_at_ms, invocation_id=rec.invocation_id,
                                         retry=pb.Void()), f"retry{status.attempts}", effects)

    # ------------------------------------------------------------------ timers

    def _on_timer_fired(self, tx: Transaction, rec: pb.TimerFired, now: int, effects: list[Effect]) -> None:
        row = keys.timer(rec.timer_key)
        timer = tx.get_proto(row, pb.Timer)
        if timer is None:
            return  # fired before, or cancelled: nothing to do
        tx.delete(row)
        action = timer.WhichOneof("action")
        status = tx.get_proto(keys.status(timer.invocation_id), pb.InvocationStatus)
        if status is None:
            return
        if action == "complete_sleep":
            self._complete(tx, pb.Completion(invocation_id=timer.invocation_id, entry_index=timer.complete_sleep,
                                             void=pb.Void()), now, effects)
        elif action == "start" and status.status == pb.SCHEDULED:
            self._admit(tx, status, now, effects)
        elif action == "retry" and status.status == pb.BACKING_OFF:
            self._start(tx, status, now, effects)
        elif (action == "purge" and status.status in FINAL
              and timer.wake_at_ms == status.completed_at_ms + self.config.retention_ms):
            self._purge(tx, status)  # (a purge timer of an earlier invocation with this id does nothing)

    def _purge(self, tx: Transaction, status: pb.InvocationStatus) -> None:
        inv = status.invocation_id
        tx.delete(keys.status(inv))
        for index in range(status.journal_length):
            tx.delete(keys.journal(inv, index))
        t = status.target
        if status.idempotency_key:
            tx.delete(keys.idempotency(status.tenant, t.service, t.handler, t.key, status.idempotency_key))
        if status.handler_kind == pb.WORKFLOW_RUN:
            wf_key = keys.workflow(status.tenant, t.service, t.key)
            if tx.get(wf_key) == inv.encode():
                tx.delete(wf_key)
                for k in tx.scan_keys(keys.object_prefix(keys.PROMISE, status.tenant, t.service, t.key)):
                    tx.delete(k)

    # ------------------------------------------------------------------ operator actions

    def _on_cancel(self, tx: Transaction, rec: pb.Cancel, now: int, effects: list[Effect]) -> None:
        status = self._status(tx, rec.invocation_id)
        if status.status in FINAL:
            return
        if status.status in (pb.INBOXED, pb.SCHEDULED):
            if status.status == pb.INBOXED:
                tx.delete(keys.inbox(status.tenant, status.target.service, status.target.key, status.inbox_seq))
            status.failure.code = CANCELLED_CODE
            status.failure.message = "cancelled"
            self._finish(tx, status, pb.CANCELLED, now, effects)
            return
        if status.cancel_requested and status.status == pb.RUNNING:
            return  # already delivered
        status.cancel_requested = True
        self._signal_children(tx, status, now, effects, pb.Envelope(cancel=pb.Cancel()))
        self._cancel_waits(tx, status, effects)
        if status.status == pb.RUNNING:
            self._save(tx, status, now)
            effects.append(CancelAttempt(status.invocation_id))
        else:  # suspended, backing off, paused: resume so the handler sees the cancellation and compensates
            self._start(tx, status, now, effects)

    def _cancel_waits(self, tx: Transaction, status: pb.InvocationStatus, effects: list[Effect]) -> None:
        """Complete the sleeps, awakeables and promise gets the handler waits on with 'cancelled'.

        Journaled, so a replay raises the cancellation at exactly the await that saw it. Calls
        are left to complete when their cancelled callee ends (after its own compensations).
        """
        for index in range(status.journal_length):
            entry = self._entry(tx, status.invocation_id, index)
            if entry is None or entry.WhichOneof("result") is not None:
                continue
            if entry.WhichOneof("kind") in ("sleep", "awakeable", "promise_get"):
                entry.failure.code = CANCELLED_CODE
                entry.failure.message = "cancelled"
                tx.put_proto(keys.journal(status.invocation_id, index), entry)
                if status.status == pb.RUNNING:
                    effects.append(CompleteEntry(status.invocation_id, index, entry))

    def _on_kill(self, tx: Transaction, rec: pb.Kill, now: int, effects: list[Effect]) -> None:
        status = self._status(tx, rec.invocation_id)
        if status.status in FINAL:
            return
        if status.status == pb.INBOXED:
            tx.delete(keys.inbox(status.tenant, status.target.service, status.target.key, status.inbox_seq))
        if status.status in (pb.RUNNING, pb.SUSPENDED, pb.BACKING_OFF, pb.PAUSED):
            effects.append(AbortAttempt(status.invocation_id, "killed"))
            self._signal_children(tx, status, now, effects, pb.Envelope(kill=pb.Kill()))
        status.failure.code = CANCELLED_CODE
        status.failure.message = "killed"
        self._finish(tx, status, pb.KILLED, now, effects)

    def _signal_children(self, tx: Transaction, status: pb.InvocationStatus, now: int, effects: list[Effect],
                         template: pb.Envelope) -> None:
        """Send cancel / kill to every call this invocation still waits on."""
        for index in range(status.journal_length):
            entry = self._entry(tx, status.invocation_id, index)
            if entry is None or not entry.HasField("call") or entry.WhichOneof("result") is not None:
                continue
            child = entry.call.invocation_id
            env = pb.Envelope()
            env.CopyFrom(template)
            env.header.timestamp_ms = now
            getattr(env, env.WhichOneof("body")).invocation_id = child
            self._outbox(tx, child, env, effects)

    def _on_purge(self, tx: Transaction, rec: pb.Purge, now: int, effects: list[Effect]) -> None:
        status = self._status(tx, rec.invocation_id)
        if status.status not in FINAL:
            raise Rejected(f"{rec.invocation_id} is {pb.Status.Name(status.status)}; only finished invocations "
                           "can be purged")
        self._purge(tx, status)

    def _on_pause(self, tx: Transaction, rec: pb.Pause, now: int, effects: list[Effect]) -> None:
        status = self._status(tx, rec.invocation_id)
        if status.status not in (pb.RUNNING, pb.SUSPENDED, pb.BACKING_OFF):
            raise Rejected(f"{rec.invocation_id} is {pb.Status.Name(status.status)}, cannot pause")
        if status.status == pb.RUNNING:
            effects.append(AbortAttempt(status.invocation_id, "paused"))
        status.status = pb.PAUSED
        self._save(tx, status, now)

    def _on_resume(self, tx: Transaction, rec: pb.Resume, now: int, effects: list[Effect]) -> None:
        status = self._status(tx, rec.invocation_id)
        if status.status != pb.PAUSED:
            raise Rejected(f"{rec.invocation_id} is {pb.Status.Name(status.status)}, not paused")
        self._start(tx, status, now, effects)

    def _on_resolve_promise(self, tx: Transaction, rec: pb.ResolvePromise, now: int, effects: list[Effect]) -> None:
        pkey = keys.promise(rec.tenant, rec.workflow, rec.key, rec.name)
        promise = tx.get_proto(pkey, pb.Promise) or pb.Promise()
        if promise.WhichOneof("result"):
            raise Rejected(f"promise {rec.workflow}/{rec.key}/{rec.name} was already completed")
        if rec.WhichOneof("result") is None:
            raise Rejected("promise resolution without a value or failure")
        _copy_outcome(rec, promise)
        self._settle_promise(tx, promise, now, effects)
        tx.put_proto(pkey, promise)

    # ------------------------------------------------------------------ leadership and outbox

    def _on_announce_leader(self, tx: Transaction, rec: pb.AnnounceLeader, now: int, effects: list[Effect]) -> None:
        if rec.epoch <= self._u64(tx, keys.LEADER_EPOCH):
            raise Rejected(f"leader epoch {rec.epoch} is not newer than the current one")
        tx.put(keys.LEADER_EPOCH, keys.u64(rec.epoch))

    def _on_outbox_truncate(self, tx: Transaction, rec: pb.OutboxTruncate, now: int, effects: list[Effect]) -> None:
        for k in tx.scan_keys(keys.OUTBOX):
            if keys.read_u64(k[len(keys.OUTBOX):]) > rec.up_to:
                break
            tx.delete(k)


def _copy_outcome(src: Any, dst: Any) -> None:
    """Copy value / failure / void between messages that share those field names."""
    which = src.WhichOneof("result")
    if which == "value":
        dst.value = src.value
    elif which == "failure":
        dst.failure.CopyFrom(src.failure)
    elif which == "void":
        dst.void.SetInParent()

