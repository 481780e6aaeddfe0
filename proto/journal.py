"""The journal protocol, written once: the rules of each entry kind, results, typed failures.

The SDK (replay), the state machine (apply), the invoker (frames) and the CLI (views) all read
these rules here instead of re-deriving them. Every kind in `JournalEntry.kind` must have a rule:
a kind added to the proto without one fails at import, not as a silently mishandled entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from endure.proto import records_pb2 as pb

CONFLICT_CODE = 409  # HTTP-like code of a conflict, a cancellation and a kill


@dataclass(frozen=True, slots=True)
class EntryRules:
    """What one journal entry kind means to every part that handles it."""

    kind: str
    # A later Completion record fills its result (sleep, call, awakeable, promise get, a lazy state
    # get): the handler may suspend on it.
    takes_completion: bool = False
    # The state machine fills its result when it applies the entry (state reads, promise peek and
    # complete, a promise get of a resolved promise): the worker waits for a completion frame.
    completed_on_append: bool = False
    # The worker sent the result with the entry and waits only for the Ack (run, combinator).
    acked: bool = False
    # The entry must carry its result when it is appended (a run's result is what gets journaled).
    result_on_append: bool = False
    # It changes object state, so only a handler holding the key's lock may write it.
    needs_lock: bool = False
    # A pending one is completed with a cancellation when its invocation is cancelled. (Calls are
    # left to complete when their cancelled callee ends, after its own compensations.)
    cancelled_with_invocation: bool = False
    # A handler waiting on a pending one is blocked by something outside it (what `describe` shows).
    waits_outside: bool = False
    # What a replay compares between the recorded entry and the operation the code does.
    replay_compares: tuple[str, ...] = ("kind", "name")


_RULES = (
    EntryRules("run", acked=True, result_on_append=True),
    EntryRules("sleep", takes_completion=True, cancelled_with_invocation=True, waits_outside=True),
    EntryRules("call", takes_completion=True, waits_outside=True),
    EntryRules("send"),
    EntryRules("get_state", takes_completion=True, completed_on_append=True),
    EntryRules("set_state", needs_lock=True),
    EntryRules("clear_state", needs_lock=True),
    EntryRules("clear_all_state", needs_lock=True),
    EntryRules("get_state_keys", completed_on_append=True),
    EntryRules("awakeable", takes_completion=True, cancelled_with_invocation=True, waits_outside=True),
    EntryRules("promise_get", takes_completion=True, completed_on_append=True, cancelled_with_invocation=True,
               waits_outside=True),
    EntryRules("promise_peek", completed_on_append=True),
    EntryRules("promise_complete", completed_on_append=True),
    EntryRules("combinator", acked=True),
    EntryRules("output"),
    EntryRules("meter"),
    EntryRules("patch"),  # a marker (ctx.patched); replay compares its change id
)


def _table() -> Mapping[str, EntryRules]:
    table = {r.kind: r for r in _RULES}
    kinds = {f.name for f in pb.JournalEntry.DESCRIPTOR.oneofs_by_name["kind"].fields}
    if kinds != set(table):
        raise RuntimeError(f"journal entry rules out of step with records.proto: "
                           f"no rule for {sorted(kinds - set(table))}, no kind for {sorted(set(table) - kinds)}")
    return table


RULES: Mapping[str, EntryRules] = _table()
KINDS_TAKING_COMPLETION = frozenset(k for k, r in RULES.items() if r.takes_completion)
KINDS_NEEDING_LOCK = frozenset(k for k, r in RULES.items() if r.needs_lock)
KINDS_CANCELLED_WITH_INVOCATION = frozenset(k for k, r in RULES.items() if r.cancelled_with_invocation)


class UnknownEntryKind(ValueError):
    """An entry without a kind, or of a kind this version does not know."""


def rules_of(entry: pb.JournalEntry) -> EntryRules:
    kind = entry.WhichOneof("kind")
    if kind is None:
        raise UnknownEntryKind("journal entry without a kind")
    return RULES[kind]


# ---------------------------------------------------------------- results

# Every message that carries an outcome names its oneof `result`, with some of the fields
# `value` (bytes), `failure` (Failure) and `void`.


def has_result(msg: Any) -> bool:
    return msg.WhichOneof("result") is not None


def copy_result(src: Any, dst: Any) -> str | None:
    """Copy src's value / failure / void into dst; return which one (None: src has none).

    A void copied into a message without a `void` field (an output, a promise) is an error of the
    caller, so it raises instead of silently dropping the outcome.
    """
    which: str | None = src.WhichOneof("result")
    if which == "value":
        dst.value = src.value
    elif which == "failure":
        dst.failure.CopyFrom(src.failure)
    elif which == "void":
        dst.void.SetInParent()
    return which


# ---------------------------------------------------------------- typed failures


def cancelled_failure(message: str = "cancelled") -> pb.Failure:
    return pb.Failure(code=CONFLICT_CODE, message=message, cause=pb.FAILURE_CANCELLED)


def killed_failure(message: str = "killed") -> pb.Failure:
    return pb.Failure(code=CONFLICT_CODE, message=message, cause=pb.FAILURE_KILLED)


def is_cancellation(failure: pb.Failure) -> bool:
    """True for a cancellation by an operator or caller; never for a handler's own TerminalError."""
    return failure.cause == pb.FAILURE_CANCELLED


def is_kill(failure: pb.Failure) -> bool:
    return failure.cause == pb.FAILURE_KILLED
