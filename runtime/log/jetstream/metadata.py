"""The metadata store on a JetStream key-value bucket: versions are the bucket's revisions.

Why it fits the MetadataStore contract: a KV bucket is a stream with one subject per key, and a
publish with `Nats-Expected-Last-Subject-Sequence` is a compare-and-set on that key, decided by
the bucket's raft leader. Version 0 ("does not exist") is an expected subject sequence of 0 (KV
create); version N is the revision the caller read (KV update with last=N). The new version is
the stream sequence of the write, so versions grow per key but are not 1, 2, 3 (they are the
bucket's revisions); callers only compare them.

Reads go to the leader (STREAM.MSG.GET, not a direct get a lagging replica may answer), so a get
after a put sees it. A put whose answer is lost is sent again with the same expected version and
a nonce header: a mismatch whose current message carries our nonce is our own earlier write.

Keys: NATS subjects allow few characters, and a key becomes one subject token, so keys are
escaped byte-wise: ASCII letters, digits, '-', '_' and '/' stay as they are (so "log/0/chain"
stays readable in `nats kv ls`), every other byte becomes "=XX" (upper hex). The encoding keeps
prefixes, so `keys(prefix)` is a filter on encoded names; '.' is always escaped, so a key is one
token and never an empty one.
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

from ..loglet import LogClosedError, LogUnavailable, VersionMismatch
from .connection import JetStreamApiError, JetStreamConnection, api_error, parse_json_reply

__all__ = ["JetStreamMetadataStore", "decode_key", "encode_key"]

_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_/")
_HEX = "0123456789ABCDEF"
_EXPECTED_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
_NONCE = "Endure-Put"
_WRONG_LAST_SEQ = frozenset({10071, 10164})
_NO_MESSAGE = 10037
_STREAM_NAME_IN_USE = 10058


def encode_key(key: str) -> str:
    """The KV key (subject token) for a metadata key; reversible and prefix-preserving."""
    if not key:
        raise ValueError("metadata keys must not be empty")
    out = []
    for b in key.encode():
        if b in _SAFE:
            out.append(chr(b))
        else:
            out.append("=" + _HEX[b >> 4] + _HEX[b & 15])
    return "".join(out)


def decode_key(encoded: str) -> str:
    """The metadata key of an encoded KV key (inverse of encode_key)."""
    raw = bytearray()
    i = 0
    while i < len(encoded):
        c = encoded[i]
        if c == "=":
            raw.append(int(encoded[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.append(ord(c))
            i += 1
    return raw.decode()


class JetStreamMetadataStore:
    """MetadataStore on the JetStream KV bucket `bucket` (created if missing, R`replicas`)."""

    def __init__(self, conn: JetStreamConnection, bucket: str, *, put_timeout: float = 10.0,
                 read_patience: float = 10.0) -> None:
        if not bucket or not bucket.replace("_", "").replace("-", "").isalnum() or not bucket.isascii():
            raise ValueError(f"bucket names are ASCII letters, digits, '-' and '_', got {bucket!r}")
        self.conn = conn
        self.bucket = bucket
        self.stream = f"KV_{bucket}"
        self._prefix = f"$KV.{bucket}."
        self.put_timeout = put_timeout  # a put keeps trying this long (elections) before LogUnavailable
        self.read_patience = read_patience  # and a read
        self._closed = False

    @classmethod
    async def open(
        cls, conn: JetStreamConnection, bucket: str = "endure-metadata", *, replicas: int = 3,
        put_timeout: float = 10.0, read_patience: float = 10.0,
    ) -> JetStreamMetadataStore:
        """Open the bucket, creating it (history 1, file storage, `replicas` copies) if needed."""
        store = cls(conn, bucket, put_timeout=put_timeout, read_patience=read_patience)
        config = {
            # The layout nats' own KV clients use, so `nats kv` tools can read the bucket.
            "name": store.stream,
            "subjects": [f"$KV.{bucket}.>"],
            "retention": "limits",
            "storage": "file",
            "num_replicas": replicas,
            "max_msgs_per_subject": 1,
            "max_msgs": -1,
            "max_bytes": -1,
            "max_age": 0,
            "max_msg_size": -1,
            "max_consumers": -1,
            "discard": "new",
            "duplicate_window": 120_000_000_000,
            "allow_rollup_hdrs": True,
            "deny_delete": True,
            "allow_direct": True,
        }
        try:
            await conn.api(f"STREAM.CREATE.{store.stream}", config, what=f"creating metadata bucket {bucket}")
        except JetStreamApiError as err:
            if err.err_code != _STREAM_NAME_IN_USE:  # exists (maybe made by other tools): use it
                raise
        return store

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"the metadata store on bucket {self.bucket} is closed")

    async def _last(self, key: str, timeout: float | None = None, patience: float = 0.0) -> dict[str, Any] | None:
        """The stored message of `key` (seq, data, hdrs base64) from the leader, or None."""
        try:
            resp = await self.conn.api(
                f"STREAM.MSG.GET.{self.stream}", {"last_by_subj": self._prefix + encode_key(key)},
                what=f"reading metadata key {key!r}", timeout=timeout, patience=patience,
            )
        except JetStreamApiError as err:
            if err.err_code == _NO_MESSAGE:
                return None
            raise
        message: dict[str, Any] = resp["message"]
        return message

    async def get(self, key: str) -> tuple[int, bytes] | None:
        """(version, value) or None when the key does not exist."""
        self._check_open()
        message = await self._last(key, patience=self.read_patience)
        if message is None:
            return None
        data = message.get("data")
        return int(message["seq"]), base64.b64decode(data) if data else b""

    async def put(self, key: str, value: bytes, expected_version: int) -> int:
        """Write if the key is at `expected_version` (0: must not exist); the new version.

        VersionMismatch(key, expected, actual) if not, without writing. LogUnavailable
        (maybe_written=True) if the bucket gave no definite answer within put_timeout.
        """
        if type(value) is not bytes:
            raise TypeError(f"metadata values must be bytes, got {type(value).__name__}")
        if expected_version < 0:
            raise ValueError(f"expected_version must be >= 0, got {expected_version}")
        self._check_open()
        subject = self._prefix + encode_key(key)
        nonce = os.urandom(8).hex()
        headers = {_EXPECTED_SUBJECT_SEQ: str(expected_version), _NONCE: nonce}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.put_timeout
        uncertain = False
        backoff = 0.002
        what = f"writing metadata key {key!r}"
        while True:
            timeout = min(self.conn.request_timeout, deadline - loop.time())
            if timeout <= 0:
                raise LogUnavailable(f"{what}: no definite answer within {self.put_timeout:g} s",
                                     maybe_written=uncertain)
            try:
                msg = await self.conn.request(subject, value, what=what, headers=dict(headers), timeout=timeout)
                resp = parse_json_reply(msg, what)
                err = resp.get("error")
                if not err:
                    return int(resp["seq"])
                error = api_error(what, err)
                if not (isinstance(error, JetStreamApiError) and error.err_code in _WRONG_LAST_SEQ):
                    raise error
                # Refused: the key is at another version, or a write to it is still in flight
                # (the leader checks against proposals it has not applied yet): look until the
                # version that beat us is visible.
                current = await self._last(key, timeout)
                actual = 0 if current is None else int(current["seq"])
                if actual == expected_version:
                    await asyncio.sleep(min(backoff, max(0.0, deadline - loop.time())))
                    backoff = min(backoff * 2, 0.5)
                    continue
                if uncertain and current is not None and _has_nonce(current, nonce):
                    return actual  # our earlier attempt was stored; its answer was lost
                raise VersionMismatch(key, expected_version, actual)
            except LogUnavailable as exc:
                uncertain = uncertain or exc.maybe_written
                if loop.time() + backoff >= deadline:
                    raise LogUnavailable(f"{what}: {exc}", maybe_written=uncertain) from None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 0.5)

    async def keys(self, prefix: str = "") -> list[str]:
        """Keys starting with `prefix`, in order: one stream-info request listing the subjects."""
        self._check_open()
        encoded = encode_key(prefix) if prefix else ""
        found: list[str] = []
        offset = 0
        while True:
            resp = await self.conn.api(
                f"STREAM.INFO.{self.stream}", {"subjects_filter": f"{self._prefix}>", "offset": offset},
                what=f"listing metadata keys under {prefix!r}", patience=self.read_patience,
            )
            subjects: dict[str, int] = resp.get("state", {}).get("subjects") or {}
            for subject in subjects:
                name = subject[len(self._prefix):]
                if name.startswith(encoded):
                    found.append(decode_key(name))
            total = int(resp.get("total", 0))
            offset += len(subjects)
            if not subjects or offset >= total:
                break
        return sorted(found)

    async def close(self) -> None:
        """Refuse further calls (the connection belongs to its owner). Idempotent."""
        self._closed = True


def _has_nonce(message: dict[str, Any], nonce: str) -> bool:
    raw = message.get("hdrs")
    return bool(raw) and f"{_NONCE}: {nonce}\r\n".encode() in base64.b64decode(raw)
