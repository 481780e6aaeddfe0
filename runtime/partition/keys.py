"""Key layout of the partition store: one table per prefix, components length-prefixed.

Length prefixes keep (service, key) scans exact whatever bytes the names hold, and big-endian
numbers keep journals, inboxes, timers and the outbox in order for range scans.
"""

from __future__ import annotations

import functools
import struct

APPLIED_LSN = b"m/applied"
LEADER_EPOCH = b"m/epoch"
OUTBOX_NEXT = b"m/outbox_next"
INBOX_NEXT = b"m/inbox_next"
FORMAT = b"m/format"  # the data format this store was last migrated to (see endure.runtime.data_format)

STATUS = b"i/"
JOURNAL = b"j/"
STATE = b"s/"
INBOX = b"x/"
LOCK = b"l/"
TIMER = b"t/"
IDEMPOTENCY = b"d/"
WORKFLOW = b"w/"
PROMISE = b"p/"
OUTBOX = b"o/"
DEDUP = b"q/"
USAGE = b"u/"
RUNNING = b"r/"  # index of RUNNING invocations: what a new leader must restart, without a full scan
FAILED_ATTEMPTS = b"f/"  # failed attempts of an invocation: what its retry policy counts
PINNED = b"k/"  # index of unfinished invocations by the deployment version they are pinned to
STREAM_EVENT = b"c/"  # an invocation's stream events, by their position among all its events
STREAM_STATE = b"n/"  # per invocation and stream: next offset, handler writes, open steps
STREAM_TOTALS = b"v/"  # per invocation: events and bytes of all its streams
CREATED = b"a/"  # index of invocations by creation time (newest first when scanned backwards)

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def part(text: str) -> bytes:
    raw = text.encode()
    return _U16.pack(len(raw)) + raw


def u64(n: int) -> bytes:
    return _U64.pack(n)


def read_u64(raw: bytes) -> int:
    return int(_U64.unpack(raw)[0])


def status(invocation_id: str) -> bytes:
    return STATUS + invocation_id.encode()


def created(created_at_ms: int, invocation_id: str) -> bytes:
    return CREATED + _U64.pack(max(created_at_ms, 0)) + invocation_id.encode()


def parse_created(raw_key: bytes) -> tuple[int, str]:
    """(creation time, invocation id) of a created index row's key."""
    rest = raw_key[len(CREATED) :]
    return int(_U64.unpack(rest[:8])[0]), rest[8:].decode()


def created_value(tenant: str, service: str, handler: str, key: str, idempotency_key: str) -> bytes:
    """A created index row's value: what never changes about the invocation, so a scan filters on it
    without reading the status."""
    return part(tenant) + part(service) + part(handler) + part(key) + part(idempotency_key)


def parse_created_value(raw: bytes) -> tuple[str, ...]:
    """(tenant, service, handler, key, idempotency key) of a created index row; () for an empty one."""
    out = []
    while raw:
        (length,) = _U16.unpack(raw[:2])
        out.append(raw[2 : 2 + length].decode())
        raw = raw[2 + length :]
    return tuple(out)


def running(invocation_id: str) -> bytes:
    return RUNNING + invocation_id.encode()


def pinned_prefix(deployment: str) -> bytes:
    """The index rows of one deployment version ("id@version"); PINNED alone scans them all."""
    return PINNED + part(deployment)


def pinned(deployment: str, invocation_id: str) -> bytes:
    return pinned_prefix(deployment) + invocation_id.encode()


def parse_pinned(raw_key: bytes) -> tuple[str, str]:
    """(deployment, invocation id) of a pinned index row's key."""
    rest = raw_key[len(PINNED) :]
    (length,) = _U16.unpack(rest[:2])
    return rest[2 : 2 + length].decode(), rest[2 + length :].decode()


def stream_events_prefix(invocation_id: str) -> bytes:
    return STREAM_EVENT + part(invocation_id)


def stream_event(invocation_id: str, seq: int) -> bytes:
    return stream_events_prefix(invocation_id) + _U64.pack(seq)


def stream_state_prefix(invocation_id: str) -> bytes:
    return STREAM_STATE + part(invocation_id)


def stream_state(invocation_id: str, stream: str) -> bytes:
    return stream_state_prefix(invocation_id) + part(stream)


def stream_totals(invocation_id: str) -> bytes:
    return STREAM_TOTALS + invocation_id.encode()


def failed_attempts(invocation_id: str) -> bytes:
    return FAILED_ATTEMPTS + invocation_id.encode()


def journal_prefix(invocation_id: str) -> bytes:
    return JOURNAL + part(invocation_id)


def journal(invocation_id: str, index: int) -> bytes:
    return journal_prefix(invocation_id) + _U32.pack(index)


def object_prefix(table: bytes, tenant: str, service: str, key: str) -> bytes:
    """A keyed object's rows in a table: every tenant has its own objects, even with the same key."""
    return table + part(tenant) + part(service) + part(key)


def objects_prefix(table: bytes, tenant: str, service: str) -> bytes:
    """Every key's rows of one object type (or workflow) of one tenant in a table."""
    return table + part(tenant) + part(service)


def object_key(raw_key: bytes, prefix: bytes) -> tuple[str, bytes]:
    """(the object's key, its rows' prefix) of a row under objects_prefix."""
    rest = raw_key[len(prefix) :]
    (length,) = _U16.unpack(rest[:2])
    return rest[2 : 2 + length].decode(), raw_key[: len(prefix) + 2 + length]


def successor(prefix: bytes) -> bytes:
    """The first key after every key that starts with prefix (for seeking past them)."""
    body = prefix.rstrip(b"\xff")
    return body[:-1] + bytes([body[-1] + 1]) if body else prefix + b"\xff"


def state(tenant: str, service: str, key: str, name: str) -> bytes:
    return object_prefix(STATE, tenant, service, key) + part(name)


def state_name(raw_key: bytes, prefix: bytes) -> str:
    rest = raw_key[len(prefix) :]
    (length,) = _U16.unpack(rest[:2])
    return rest[2 : 2 + length].decode()


def inbox(tenant: str, service: str, key: str, seq: int) -> bytes:
    return object_prefix(INBOX, tenant, service, key) + _U64.pack(seq)


def lock(tenant: str, service: str, key: str) -> bytes:
    return object_prefix(LOCK, tenant, service, key)


def timer_key(wake_at_ms: int, invocation_id: str, action: str) -> str:
    """The timer's id; sorted by wake time. Also what a TimerFired record names."""
    return f"{max(wake_at_ms, 0):016x}/{invocation_id}/{action}"


def timer(key: str) -> bytes:
    return TIMER + key.encode()


def idempotency(tenant: str, service: str, handler: str, key: str, idempotency_key: str) -> bytes:
    return IDEMPOTENCY + part(tenant) + part(service) + part(handler) + part(key) + part(idempotency_key)


def workflow(tenant: str, service: str, key: str) -> bytes:
    return object_prefix(WORKFLOW, tenant, service, key)


def promise(tenant: str, service: str, key: str, name: str) -> bytes:
    return object_prefix(PROMISE, tenant, service, key) + part(name)


def outbox(seq: int) -> bytes:
    return OUTBOX + _U64.pack(seq)


def dedup(producer: str) -> bytes:
    return DEDUP + producer.encode()


@functools.lru_cache(maxsize=4096)  # built for every applied record; few distinct rows are live at a time
def usage(tenant: str, day: int, service: str, handler: str) -> bytes:
    """Metering row of a tenant's handler on a day (days since the epoch, UTC)."""
    return USAGE + part(tenant) + _U32.pack(day) + part(service) + part(handler)


def parse_usage(raw_key: bytes) -> tuple[str, int, str, str]:
    """(tenant, day, service, handler) of a usage row's key."""
    rest = raw_key[len(USAGE) :]
    out: list[str | int] = []
    for i in range(4):
        if i == 1:
            out.append(int(_U32.unpack(rest[:4])[0]))
            rest = rest[4:]
            continue
        (length,) = _U16.unpack(rest[:2])
        out.append(rest[2 : 2 + length].decode())
        rest = rest[2 + length :]
    return out[0], out[1], out[2], out[3]  # type: ignore[return-value]
