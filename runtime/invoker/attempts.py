"""The state of one invocation in the invoker, in one place, with explicit transitions.

After Restate's invoker `invocation_state_machine.rs`: every invocation the invoker knows is one
`InvocationMachine` whose `state` says where its current attempt is, and `move` refuses a step
the lifecycle does not allow, so a bug shows up as a typed, logged error rather than a slot that
is silently leaked or an attempt run twice.

    QUEUED ──▶ STARTING ──▶ RUNNING ──▶ ENDED        (end, suspend, fail, abort, leadership lost)
      │           │            │
      │           └──▶ ENDED   └──▶ LOST ──▶ WAITING_FOR_RETRY ──▶ QUEUED
      └──▶ ENDED                     │  └───────────────────────────▶ QUEUED / ENDED
                                     └──▶ QUEUED / ENDED

LOST: the worker is gone or the attempt was aborted to be restarted; the invoker waits until the
old worker's in-flight appends are applied, so the next attempt sees a complete journal.
WAITING_FOR_RETRY: that wait is over; a backoff delay runs before the invocation is queued again.
A lost invocation may also be queued directly by a new start effect (the restart then finds it
queued or running and does nothing). ENDED machines are dropped from the invoker's table.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from endure.runtime.invoker.scheduler import Runnable
from endure.runtime.invoker.session import WorkerSession


class AttemptState(enum.Enum):
    QUEUED = "queued"  # waiting in a fair queue for a worker slot and its limits
    STARTING = "starting"  # a worker slot is taken; the StartFrame is being built
    RUNNING = "running"  # the StartFrame was sent; the worker owns the attempt
    LOST = "lost"  # the attempt ended without a result; waiting for its appends to apply
    WAITING_FOR_RETRY = "waiting for retry"  # a backoff delay before it is queued again
    ENDED = "ended"  # nothing more to do here (done, suspended, failed, aborted, or dropped)


_MOVES: dict[AttemptState, frozenset[AttemptState]] = {
    AttemptState.QUEUED: frozenset({AttemptState.STARTING, AttemptState.ENDED}),
    AttemptState.STARTING: frozenset({AttemptState.RUNNING, AttemptState.ENDED}),
    AttemptState.RUNNING: frozenset({AttemptState.ENDED, AttemptState.LOST}),
    AttemptState.LOST: frozenset({AttemptState.WAITING_FOR_RETRY, AttemptState.QUEUED, AttemptState.ENDED}),
    AttemptState.WAITING_FOR_RETRY: frozenset({AttemptState.QUEUED, AttemptState.ENDED}),
    AttemptState.ENDED: frozenset(),
}

# States in which the invocation holds a worker slot (and counts against its limits).
ON_WORKER = frozenset({AttemptState.STARTING, AttemptState.RUNNING})


class IllegalTransition(Exception):
    """A move the attempt lifecycle does not allow; the machine keeps its state."""

    def __init__(self, invocation_id: str, current: AttemptState, target: AttemptState) -> None:
        super().__init__(f"invocation {invocation_id}: no move from {current.value} to {target.value}")
        self.invocation_id = invocation_id
        self.current = current
        self.target = target


@dataclass(slots=True)
class InvocationMachine:
    """One invocation as the invoker sees it: its state, and its current attempt while on a worker."""

    runnable: Runnable
    state: AttemptState = AttemptState.QUEUED
    number: int = 0  # the current (or last) attempt's number; 0 before the first start
    session: WorkerSession | None = None  # set exactly while the state is STARTING or RUNNING
    started_at: float = field(default_factory=time.monotonic)
    # The version this attempt pins the invocation to, written ahead of its first record; "" once
    # written (or when the invocation was pinned before this attempt).
    pin_due: str = ""

    @property
    def invocation_id(self) -> str:
        return self.runnable.invocation_id

    def move(self, target: AttemptState) -> None:
        """Go to target, or raise IllegalTransition and stay where it is."""
        if target not in _MOVES[self.state]:
            raise IllegalTransition(self.invocation_id, self.state, target)
        self.state = target

    def start(self, number: int, session: WorkerSession) -> None:
        """QUEUED -> STARTING on session, as attempt `number`."""
        self.move(AttemptState.STARTING)
        self.number = number
        self.session = session
        self.started_at = time.monotonic()

    def leave_worker(self, target: AttemptState) -> WorkerSession:
        """STARTING/RUNNING -> target (ENDED or LOST); returns the session whose slot is freed."""
        session = self.session
        if self.state not in ON_WORKER or session is None:
            raise IllegalTransition(self.invocation_id, self.state, target)
        self.move(target)
        self.session = None
        return session

    def is_running(self, number: int, session: WorkerSession) -> bool:
        """True when attempt `number` on session is the one running now (else its frames are fenced)."""
        return self.state is AttemptState.RUNNING and self.number == number and self.session is session
