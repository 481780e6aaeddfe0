"""Effects: what applying a record asks the leader to do outside the state machine.

Apply only computes them; the leader carries them out after the store commit. A follower (or a
processor catching up on its log) drops them, and the leader re-derives what is still owed when
it takes over.
"""

from __future__ import annotations

from dataclasses import dataclass

from endure.proto import records_pb2 as pb
from endure.proto.deployments import ref_text


@dataclass(frozen=True, slots=True)
class StartInvocation:
    """Run (or resume) the invocation on a worker; the invoker reads journal and state from the store."""

    invocation_id: str
    service: str
    tenant: str
    priority: int
    handler: str = ""
    deployment: str = ""  # "id@version" it is pinned to; "" = not run yet: the service's latest

    @classmethod
    def of(cls, status: pb.InvocationStatus) -> StartInvocation:
        """The start of this invocation, as its status describes it (the one place it is built)."""
        return cls(status.invocation_id, status.target.service, status.tenant, status.priority,
                   status.target.handler, ref_text(status.deployment))


@dataclass(frozen=True, slots=True)
class CompleteEntry:
    """Forward a completion to the attempt running on a worker, if there is one."""

    invocation_id: str
    index: int
    entry: pb.JournalEntry


@dataclass(frozen=True, slots=True)
class CancelAttempt:
    """Ask the running attempt to raise a cancellation at its next await."""

    invocation_id: str


@dataclass(frozen=True, slots=True)
class AbortAttempt:
    """Stop the running attempt now (killed, paused, rejected entry); nothing it sends is applied.

    With restart, the invocation runs again from its journal in the store (after a rejected entry).
    """

    invocation_id: str
    reason: str
    restart: bool = False


@dataclass(frozen=True, slots=True)
class ArmTimer:
    key: str
    wake_at_ms: int


@dataclass(frozen=True, slots=True)
class DeliverOutbox:
    message: pb.OutboxMessage


@dataclass(frozen=True, slots=True)
class InvocationCompleted:
    """Answer clients waiting on this invocation (ingress Call / Attach)."""

    invocation_id: str
    status: pb.InvocationStatus


@dataclass(frozen=True, slots=True)
class StreamAppended:
    """Wake the subscribers of this invocation's streams: events up to `seq` are durable."""

    invocation_id: str
    seq: int


Effect = StreamAppended | StartInvocation | CompleteEntry | CancelAttempt | AbortAttempt | ArmTimer | DeliverOutbox | InvocationCompleted
