"""Deployment pins: which code an invocation runs on, and an operator's moves onto other code.

An invocation is pinned by its first attempt (the invoker sets `pin` on that attempt's first
record, so the pin applies before anything the attempt did) and keeps the pin until it finishes. The `PINNED` index lists the
unfinished invocations of each version, so `deployments list` counts them and `remove --force`
finds them without scanning every status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from endure.proto import records_pb2 as pb
from endure.proto.deployments import ref_text
from endure.runtime.partition import keys
from endure.runtime.partition.effects import AbortAttempt, Effect
from endure.runtime.partition.state_machine.shared import FINAL, Rejected, load_status, save_status
from endure.runtime.partition.store import Transaction

if TYPE_CHECKING:
    from endure.runtime.partition.state_machine.machine import StateMachine


def _check(ref: pb.DeploymentRef, what: str) -> str:
    text = ref_text(ref)
    if not ref.id or not ref.version:
        raise Rejected(f"{what} names no deployment version ({text or 'empty'})")
    return text


def pin(tx: Transaction, status: pb.InvocationStatus, ref: pb.DeploymentRef) -> None:
    """Pin status to ref (the caller saves the status), keeping the index in step."""
    unpin(tx, status)
    status.deployment.CopyFrom(ref)
    if not status.HasField("first_deployment"):
        status.first_deployment.CopyFrom(ref)
    tx.put(keys.pinned(ref_text(ref), status.invocation_id), b"")


def unpin(tx: Transaction, status: pb.InvocationStatus) -> None:
    """Drop status's index row (it finished, or moves); the pin itself stays in the status."""
    if status.HasField("deployment"):
        tx.delete(keys.pinned(ref_text(status.deployment), status.invocation_id))


def move(tx: Transaction, status: pb.InvocationStatus, to: pb.DeploymentRef, reason: str, now: int) -> bool:
    """An operator's move onto `to`, recorded in the status; False when it is pinned there already."""
    if ref_text(status.deployment) == ref_text(to):
        return False
    status.moves.add(from_deployment=status.deployment, to_deployment=to, at_ms=now, reason=reason)
    pin(tx, status, to)
    return True


def pin_first(tx: Transaction, status: pb.InvocationStatus, ref: pb.DeploymentRef) -> bool:
    """Apply the pin an attempt's first record carries (the caller saves the status); True when it
    pinned the invocation. An unset ref, or an invocation pinned already, changes nothing."""
    if not (ref.id or ref.version) or status.HasField("deployment"):
        return False
    _check(ref, f"pin of {status.invocation_id}")
    pin(tx, status, ref)
    return True


def on_move_deployment(sm: StateMachine, tx: Transaction, rec: pb.MoveDeployment, now: int,
                       effects: list[Effect]) -> None:
    to = _check(rec.to_deployment, f"move of {rec.invocation_id}")
    status = load_status(tx, rec.invocation_id)
    if status.status in FINAL or ref_text(status.deployment) != ref_text(rec.from_deployment):
        return  # finished, or moved elsewhere meanwhile
    if not move(tx, status, rec.to_deployment, rec.reason or "moved by an operator", now):
        return
    save_status(tx, status, now)
    if status.status == pb.RUNNING:  # queued (or running) for the old code: start it on the new one
        effects.append(AbortAttempt(status.invocation_id, f"moved to deployment {to}", restart=True))
