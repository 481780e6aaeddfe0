"""Invocation and awakeable ids: part of the wire contract shared by runtime, SDK and clients.

An invocation id embeds its 64-bit partition key, so any node routes by id alone, and 128 bits
that are random (or, for derived ids, a hash of something unguessable) so ids cannot be guessed.
Ids are lowercase hex: encoding and parsing them is C-fast on the ingress's hot path.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from collections.abc import Sequence

INVOCATION_PREFIX = "inv_"
AWAKEABLE_PREFIX = "awk_"
_ID_BYTES = 24  # 8 partition key + 16 unguessable


class InvalidId(ValueError):
    """An id that was not made by this module (wrong prefix, length or alphabet)."""


def stable_hash64(text: str) -> int:
    """The partition key of an object key, workflow id or idempotency key: stable across processes."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _encode(prefix: str, raw: bytes) -> str:
    return prefix + raw.hex()


def _decode(prefix: str, text: str, size: int) -> bytes:
    if not isinstance(text, str) or not text.startswith(prefix):
        raise InvalidId(f"not an id of the form {prefix}…: {text!r}")
    body = text[len(prefix) :]
    if len(body) != 2 * size:
        raise InvalidId(f"malformed id {text!r}: wrong length")
    try:
        return bytes.fromhex(body)
    except ValueError as exc:
        raise InvalidId(f"malformed id {text!r}: not hex") from exc


class _RandomIds:
    """Unguessable bytes from a keyed hash of a counter: a urandom call per id costs ~40 µs here.

    The key is 64 bytes from os.urandom, fresh per process (and after fork), so outputs are as
    unpredictable as BLAKE2b's keyed mode; the counter keeps them distinct.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reseed()

    def _reseed(self) -> None:
        self._pid = os.getpid()
        self._key = os.urandom(64)
        self._counter = itertools.count()

    def bytes(self, n: int) -> bytes:
        with self._lock:
            if os.getpid() != self._pid:
                self._reseed()
            nonce = next(self._counter)
        return hashlib.blake2b(nonce.to_bytes(16, "big"), key=self._key, digest_size=n).digest()


_random = _RandomIds()


def new_invocation_id(partition_key: int | None = None) -> str:
    """A fresh id; unkeyed invocations get a random partition key."""
    raw = _random.bytes(_ID_BYTES)
    if partition_key is not None:
        raw = partition_key.to_bytes(8, "big") + raw[8:]
    return _encode(INVOCATION_PREFIX, raw)


def new_invocation_id_on(partitions: Sequence[int], count: int) -> str:
    """A fresh unkeyed id whose partition (of `count`) is one of `partitions`, chosen at random.

    A node hands its own partitions, so an invocation free to live anywhere costs no forwarding.
    """
    raw = _random.bytes(_ID_BYTES)
    r = int.from_bytes(raw[:8], "big") >> 1  # 63 bits: the key below stays under 2**64
    key = r - r % count + partitions[r % len(partitions)]
    return _encode(INVOCATION_PREFIX, key.to_bytes(8, "big") + raw[8:])


def derived_invocation_id(partition_key: int | None, *parts: str) -> str:
    """A deterministic id from parts that include something unguessable (a parent id, a tenant's key)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=_ID_BYTES).digest()
    if partition_key is not None:
        digest = partition_key.to_bytes(8, "big") + digest[8:]
    return _encode(INVOCATION_PREFIX, digest)


def partition_key_of(invocation_id: str) -> int:
    return int.from_bytes(_decode(INVOCATION_PREFIX, invocation_id, _ID_BYTES)[:8], "big")


def partition_of(invocation_id: str, partitions: int) -> int:
    return partition_key_of(invocation_id) % partitions


def call_invocation_id(caller_id: str, entry_index: int, target_key: str) -> str:
    """The callee's id for a call or send journaled at caller's entry_index (same on every replay)."""
    pkey = stable_hash64(target_key) if target_key else None
    return derived_invocation_id(pkey, caller_id, str(entry_index))


def awakeable_id(invocation_id: str, entry_index: int) -> str:
    raw = _decode(INVOCATION_PREFIX, invocation_id, _ID_BYTES) + entry_index.to_bytes(4, "big")
    return _encode(AWAKEABLE_PREFIX, raw)


def parse_awakeable_id(awakeable: str) -> tuple[str, int]:
    """(invocation id, entry index) of an awakeable id."""
    raw = _decode(AWAKEABLE_PREFIX, awakeable, _ID_BYTES + 4)
    return _encode(INVOCATION_PREFIX, raw[:_ID_BYTES]), int.from_bytes(raw[_ID_BYTES:], "big")
