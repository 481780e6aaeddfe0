"""The partition state machine: apply(record) → store changes + effects, deterministically.

Apply uses no clock and no randomness: every time comes from the record's header, so the same
log always yields the same store. A record that cannot apply (unknown invocation, an entry index
gap, a wrong state) is rejected with a logged reason and changes nothing; the partition goes on.

Each record kind (a field of `Envelope.body`) has one handler function in the dispatch table
`HANDLERS`; the table is checked against records.proto when a state machine is built, so a record
kind without a handler fails at start-up instead of being silently ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from endure.proto import records_pb2 as pb
from endure.runtime.partition import keys
from endure.runtime.partition.effects import AbortAttempt, Effect
from endure.runtime.partition.state_machine import (
    deployments,
    entries,
    leadership,
    lifecycle,
    operator,
    promises,
    streams,
    timers,
)
from endure.runtime.partition.state_machine.metering import Metering
from endure.runtime.partition.state_machine.shared import Rejected, StateMachineConfig, read_u64
from endure.runtime.partition.store import Transaction

log = logging.getLogger("endure.partition")

# handler(state machine, transaction, the record's body message, the record's time, effects so far)
Handler = Callable[["StateMachine", Transaction, Any, int, list[Effect]], None]

HANDLERS: Mapping[str, Handler] = {
    "invoke": lifecycle.on_invoke,
    "append_entry": entries.on_append_entry,
    "completion": promises.on_completion,
    "end": lifecycle.on_end,
    "suspend": lifecycle.on_suspend,
    "attempt_failed": lifecycle.on_attempt_failed,
    "timer_fired": timers.on_timer_fired,
    "cancel": operator.on_cancel,
    "kill": operator.on_kill,
    "purge": operator.on_purge,
    "pause": operator.on_pause,
    "resume": operator.on_resume,
    "resolve_promise": promises.on_resolve_promise,
    "announce_leader": leadership.on_announce_leader,
    "outbox_truncate": leadership.on_outbox_truncate,
    "move_deployment": deployments.on_move_deployment,
    "stream_write": streams.on_stream_write,
}


class DispatchTableMismatch(Exception):
    """The dispatch table and the record kinds of records.proto differ (a missing or unknown kind)."""

    def __init__(self, missing: list[str], unknown: list[str]) -> None:
        super().__init__(f"state machine dispatch table out of step with Envelope.body: "
                         f"no handler for {missing}, no record kind for {unknown}")
        self.missing = missing
        self.unknown = unknown


def check_dispatch_table(handlers: Mapping[str, Handler]) -> None:
    """Raise DispatchTableMismatch unless handlers names exactly the kinds of `Envelope.body`."""
    kinds = {f.name for f in pb.Envelope.DESCRIPTOR.oneofs_by_name["body"].fields}
    missing, unknown = sorted(kinds - set(handlers)), sorted(set(handlers) - kinds)
    if missing or unknown:
        raise DispatchTableMismatch(missing, unknown)


class StateMachine:
    """Applies one record at a time into a store transaction; holds only metering between records."""

    def __init__(self, config: StateMachineConfig, handlers: Mapping[str, Handler] = HANDLERS) -> None:
        check_dispatch_table(handlers)
        self.config = config
        self.rejected = 0  # records rejected since start, for metrics and tests
        self.metering = Metering()
        self._handlers = dict(handlers)

    def apply(self, tx: Transaction, env: pb.Envelope, effects: list[Effect]) -> bool:
        """Apply one record into tx; append its effects. False when it was ignored or rejected."""
        header = env.header
        if header.leader_epoch:
            current = read_u64(tx, keys.LEADER_EPOCH)
            if header.leader_epoch < current:
                log.debug("partition %d: record from stale leader epoch %d < %d ignored",
                          self.config.partition, header.leader_epoch, current)
                return False
        if header.producer:
            dedup_key = keys.dedup(header.producer)
            if header.sequence <= read_u64(tx, dedup_key):
                return False
            tx.put(dedup_key, keys.u64(header.sequence))
        kind = env.WhichOneof("body")
        handler = self._handlers.get(kind) if kind is not None else None
        if handler is None:
            self.reject(f"record without a known body ({kind!r})")
            return False
        # Roll back to these marks on rejection, so a rejected record leaves nothing half-written.
        # (Truncating instead of copying the effects list keeps a batch's apply linear in its size.)
        mark = len(effects)
        checkpoint = tx.checkpoint()
        self.metering.drop_staged()
        body = getattr(env, kind)
        try:
            handler(self, tx, body, header.timestamp_ms, effects)
        except Rejected as exc:
            tx.rollback(checkpoint)
            del effects[mark:]
            self.metering.drop_staged()
            self.reject(f"{kind}: {exc}", getattr(body, "invocation_id", ""))
            if exc.restart:
                effects.append(AbortAttempt(exc.restart, str(exc), restart=True))
            return False
        self.metering.merge_staged(tx)
        return True

    def reject(self, reason: str, invocation_id: str = "") -> None:
        """Count and log a record that changes nothing (structured: with its invocation id)."""
        self.rejected += 1
        log.warning("partition %d: rejected record: %s", self.config.partition, reason,
                    extra={"invocation_id": invocation_id} if invocation_id else None)
