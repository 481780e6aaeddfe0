"""Object state and locks: state entries of keyed handlers, the key's lock and its inbox.

An exclusive handler (or a workflow's run) holds its key's lock while it runs; others of the key
queue in the inbox and start in order when the lock is released.
"""

from __future__ import annotations

import json

from endure.proto import records_pb2 as pb
from endure.runtime.partition import keys
from endure.runtime.partition.effects import Effect
from endure.runtime.partition.state_machine.shared import LOCKING, Rejected, next_seq, save_status, start
from endure.runtime.partition.store import Transaction


def admit(tx: Transaction, status: pb.InvocationStatus, now: int, effects: list[Effect]) -> None:
    """Run now, or queue in the key's inbox behind the exclusive handler holding its lock."""
    if status.handler_kind in LOCKING:
        lock_key = keys.lock(status.tenant, status.target.service, status.target.key)
        if tx.get(lock_key) is not None:
            seq = next_seq(tx, keys.INBOX_NEXT)
            tx.put(keys.inbox(status.tenant, status.target.service, status.target.key, seq),
                   status.invocation_id.encode())
            status.status = pb.INBOXED
            status.inbox_seq = seq
            save_status(tx, status, now)
            return
        tx.put(lock_key, status.invocation_id.encode())
    start(tx, status, now, effects)


def release_lock(tx: Transaction, status: pb.InvocationStatus, now: int, effects: list[Effect]) -> None:
    """Free the key held by a finished invocation and start the next one in its inbox."""
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
        start(tx, nxt, now, effects)
        return


def write_state(tx: Transaction, status: pb.InvocationStatus, kind: str, entry: pb.JournalEntry) -> None:
    """Apply a set / clear / clear-all state entry; only a handler holding the key's lock may."""
    if status.handler_kind not in LOCKING:
        raise Rejected(f"{status.invocation_id}: {kind} from a handler without exclusive state access",
                       restart=status.invocation_id)
    target = status.target
    if kind == "set_state":
        tx.put(keys.state(status.tenant, target.service, target.key, entry.name), entry.set_state.value)
    elif kind == "clear_state":
        tx.delete(keys.state(status.tenant, target.service, target.key, entry.name))
    else:
        for k in tx.scan_keys(keys.object_prefix(keys.STATE, status.tenant, target.service, target.key)):
            tx.delete(k)


def read_state(tx: Transaction, status: pb.InvocationStatus, entry: pb.JournalEntry) -> None:
    """Complete a get-state entry from the store: its value, or void when it is not set."""
    target = status.target
    value = tx.get(keys.state(status.tenant, target.service, target.key, entry.name))
    if value is None:
        entry.void.SetInParent()
    else:
        entry.value = value


def read_state_keys(tx: Transaction, status: pb.InvocationStatus, entry: pb.JournalEntry) -> None:
    """Complete a get-state-keys entry with the sorted names set on the key (JSON)."""
    target = status.target
    prefix = keys.object_prefix(keys.STATE, status.tenant, target.service, target.key)
    names = sorted(keys.state_name(k, prefix) for k in tx.scan_keys(prefix))
    entry.value = json.dumps(names).encode()

