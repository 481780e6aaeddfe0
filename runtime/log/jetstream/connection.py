"""One nats-py connection for the JetStream log engine: a bounded start, typed errors, the raw API.

Why a wrapper and not nats-py's JetStream context:

- start-up is bounded: nats-py's own connect loop retries unreachable servers for as long as its
  reconnect budget lasts, so a node pointed at a wrong address would hang; here the first connect
  has one deadline and fails with `ClusterUnavailable`, one line naming every address tried. Once
  connected the client reconnects for ever (a server of the cluster may die at any time);
- every failure the engine meets is one of the log's own errors: anything that may heal by itself
  (a timeout, no responders, no stream leader, no quorum, a reconnect in progress) is a
  `LogUnavailable`, which callers map to gRPC UNAVAILABLE without knowing NATS; a definite answer
  of the JetStream API is a `JetStreamApiError` carrying the server's error code;
- the engine speaks the JetStream API in plain JSON (`api`) and needs one thing nats-py lacks: a
  batched direct get, many stored messages for one request (`direct_get_batch`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ..loglet import LogError, LogUnavailable

__all__ = [
    "ClusterUnavailable",
    "JetStreamApiError",
    "JetStreamConnection",
    "TRANSIENT_ERR_CODES",
]

log = logging.getLogger("endure.log.jetstream")

# JetStream API error codes that describe a passing state of the cluster, not the request:
# no meta leader / cluster unavailable, not the leader, per-subject check not ready, insufficient
# resources while peers are away, and the 429s of too many atomic or fast batches in flight.
TRANSIENT_ERR_CODES = frozenset({10008, 10009, 10023, 10163, 10210, 10211})

_STATUS = "Status"
_NO_RESPONDERS = "503"


_NO_SUITABLE_PEERS = 10005  # JetStream's err_code for "no suitable peers for placement"
_PLACEMENT_PATIENCE_S = 15.0


class ClusterUnavailable(LogUnavailable):
    """No server of the NATS cluster could be reached when connecting (wrong address, all down)."""

    def __init__(self, urls: Sequence[str], timeout: float, cause: str) -> None:
        self.urls = list(urls)
        names = ", ".join(self.urls) or "(no address given)"
        super().__init__(f"cannot connect to the NATS cluster at {names} within {timeout:g} s: {cause}")


class JetStreamApiError(LogError):
    """A definite error answer of the JetStream API (the request was refused, nothing was done)."""

    def __init__(self, what: str, code: int, err_code: int, description: str) -> None:
        self.code = code
        self.err_code = err_code
        self.description = description
        super().__init__(f"{what}: JetStream refused it: {description} (code {code}, err_code {err_code})")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."


class _Batch:
    """Payloads of one batched direct get, collected until the server's end-of-batch status."""

    __slots__ = ("payloads", "last_seq", "done")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.payloads: list[bytes] = []
        self.last_seq = 0
        self.done: asyncio.Future[None] = loop.create_future()


class JetStreamConnection:
    """A connected nats-py client plus the JetStream API calls the log engine makes.

    Create it with `await JetStreamConnection.connect(urls)`; close it with `close()`. Every
    method raises LogUnavailable when the cluster does not answer in time, JetStreamApiError on
    a refusal, and LogClosedError-like LogUnavailable once closed.
    """

    def __init__(self, nc: NatsClient, urls: Sequence[str], *, request_timeout: float) -> None:
        self.nc = nc
        self.urls = list(urls)
        self.request_timeout = request_timeout
        self._batches: dict[str, _Batch] = {}
        self._batch_prefix = ""
        self._batch_sub: Subscription | None = None
        self._next_token = 0
        self._closed = False
        # Requests answered (any kind): the round trips the engine paid, for tests and benchmarks.
        self.round_trips = 0

    @classmethod
    async def connect(
        cls,
        urls: str | Sequence[str],
        *,
        connect_timeout: float = 5.0,
        request_timeout: float = 5.0,
        name: str = "endure",
    ) -> JetStreamConnection:
        """Connect to any server of the cluster within `connect_timeout` seconds, or raise
        ClusterUnavailable naming the addresses. Later disconnects are retried for ever."""
        servers = [urls] if isinstance(urls, str) else list(urls)
        if not servers:
            raise ValueError("at least one NATS URL is needed")
        last_error: list[str] = []

        async def on_error(exc: Exception) -> None:
            last_error[:] = [_one_line(exc)]
            log.debug("NATS connection error: %s", _one_line(exc))

        async def on_disconnect() -> None:
            log.info("NATS connection lost; reconnecting to one of %s", ", ".join(servers))

        async def on_reconnect() -> None:
            log.info("NATS connection re-established to %s", nc.connected_url.netloc if nc.connected_url else "?")

        nc = NatsClient()
        try:
            await asyncio.wait_for(
                nc.connect(
                    servers=servers,
                    name=name,
                    connect_timeout=max(1, round(min(connect_timeout, 2.0))),
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,  # after the start: a node outlives any one server
                    reconnect_time_wait=0.25,  # type: ignore[arg-type]  # seconds; nats-py accepts floats
                    ping_interval=5,  # a silently dead server is noticed in 10 s, not 4 minutes
                    max_outstanding_pings=2,
                    error_cb=on_error,
                    disconnected_cb=on_disconnect,
                    reconnected_cb=on_reconnect,
                ),
                timeout=connect_timeout,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            cause = last_error[0] if last_error else _one_line(exc) if not isinstance(exc, TimeoutError) else "timed out"
            try:
                await nc.close()
            except Exception:  # noqa: BLE001 - a half-open client: nothing more to release
                pass
            raise ClusterUnavailable(servers, connect_timeout, cause) from None
        return cls(nc, servers, request_timeout=request_timeout)

    # -- plain requests ---------------------------------------------------------------------

    def _check_open(self, what: str) -> None:
        if self._closed or self.nc.is_closed:
            raise LogUnavailable(f"{what}: the NATS connection is closed")

    async def request(
        self,
        subject: str,
        payload: bytes,
        *,
        what: str,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Msg:
        """One request and its reply; LogUnavailable(maybe_written=True) if the reply never came."""
        self._check_open(what)
        try:
            msg = await self.nc.request(subject, payload, timeout=timeout or self.request_timeout, headers=headers)
        except nats.errors.NoRespondersError:
            # Nobody listens on the subject (e.g. a stream without a leader): not delivered at all.
            raise LogUnavailable(f"{what}: no JetStream server answers (no leader right now?)") from None
        except nats.errors.TimeoutError:
            raise LogUnavailable(
                f"{what}: no answer from the NATS cluster within {timeout or self.request_timeout:g} s "
                "(no quorum or a leader election?)",
                maybe_written=True,
            ) from None
        except (nats.errors.ConnectionClosedError, nats.errors.OutboundBufferLimitError, OSError) as exc:
            raise LogUnavailable(f"{what}: {_one_line(exc)}", maybe_written=True) from None
        self.round_trips += 1
        return msg

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str] | None = None) -> None:
        """Fire and forget (the first messages of an atomic batch: only the commit is answered)."""
        self._check_open("publish")
        try:
            await self.nc.publish(subject, payload, headers=headers)
        except (nats.errors.ConnectionClosedError, nats.errors.OutboundBufferLimitError, OSError) as exc:
            raise LogUnavailable(f"publish to {subject}: {_one_line(exc)}", maybe_written=True) from None

    async def publish_many(self, subject: str, messages: Sequence[tuple[bytes, bytes]]) -> None:
        """Queue many (headers block, payload) messages on `subject` as one write, unanswered.

        nats-py's publish() encodes and validates each message on its own, which was the largest
        cost per record of an atomic batch; here the HPUB frames are built in one pass and handed
        to the client's outgoing buffer as one command, so they keep their place before whatever
        is published next (the batch's commit). Uses nats-py's `_send_command` (the version is
        pinned); `headers` blocks are complete ("NATS/1.0\\r\\n...\\r\\n\\r\\n"), subjects trusted.
        """
        self._check_open(f"publish to {subject}")
        nc = self.nc
        head = b"HPUB " + subject.encode() + b" "
        parts: list[bytes] = []
        for hdr, payload in messages:
            parts += (head, b"%d %d\r\n" % (len(hdr), len(hdr) + len(payload)), hdr, payload, b"\r\n")
        frames = b"".join(parts)
        if not nc.is_connected and nc._max_pending_size and nc._pending_data_size + len(frames) > nc._max_pending_size:
            raise LogUnavailable(f"publish to {subject}: disconnected and the outgoing buffer is full",
                                 maybe_written=False)
        try:
            await nc._send_command(frames)
        except (nats.errors.ConnectionClosedError, OSError) as exc:
            raise LogUnavailable(f"publish to {subject}: {_one_line(exc)}", maybe_written=True) from None
        nc.stats["out_msgs"] += len(messages)

    async def api(self, endpoint: str, body: dict[str, Any] | None = None, *, what: str,
                  timeout: float | None = None, patience: float = 0.0) -> dict[str, Any]:
        """Call `$JS.API.<endpoint>` with a JSON body; the decoded answer, or JetStreamApiError.

        `patience` > 0 (only for calls that change nothing: reads) retries LogUnavailable for
        that many seconds, so a read spans a leader election instead of failing at once.
        """
        payload = b"" if body is None else json.dumps(body).encode()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        placement_deadline = loop.time() + _PLACEMENT_PATIENCE_S
        backoff = 0.05
        while True:
            try:
                msg = await self.request(f"$JS.API.{endpoint}", payload, what=what, timeout=timeout)
                resp = parse_json_reply(msg, what)
                err = resp.get("error")
                if err:
                    raise api_error(what, err)
                return resp
            except JetStreamApiError as exc:
                # No peers to place replicas on yet (a server just started, or is back and not
                # current): nothing was created, so asking again is safe.
                if exc.err_code != _NO_SUITABLE_PEERS or loop.time() + backoff >= placement_deadline:
                    raise
            except LogUnavailable:
                if loop.time() + backoff >= deadline:
                    raise
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 0.5)

    # -- batched direct get -----------------------------------------------------------------

    async def _ensure_batch_sub(self) -> None:
        if self._batch_sub is None:
            self._batch_prefix = self.nc.new_inbox() + "."
            self._batch_sub = await self.nc.subscribe(self._batch_prefix + "*", cb=self._on_batch_msg)

    async def _on_batch_msg(self, msg: Msg) -> None:
        batch = self._batches.get(msg.subject[len(self._batch_prefix):])
        if batch is None or batch.done.done():
            return
        headers = msg.headers
        status = headers.get(_STATUS) if headers else None
        if status is None:
            batch.payloads.append(msg.data)
            return
        # 204: end of batch (with the last sequence sent); 404: nothing at or after that
        # sequence; 408 and others: not served. Either way no more messages follow for it.
        if status == "204" and headers is not None:
            try:
                batch.last_seq = int(headers.get("Nats-Last-Sequence", "0"))
            except ValueError:
                batch.payloads.clear()  # unreadable: report nothing, the caller asks again
        batch.done.set_result(None)

    async def direct_get_batch(self, stream: str, seq: int, count: int, *, what: str,
                               timeout: float | None = None) -> tuple[list[bytes], int]:
        """Payloads of up to `count` stored messages from sequence `seq` on, in one request, and
        the sequence of the last one sent (0 if none). Needs allow_direct on the stream.

        Sent without headers (`no_hdr`): the payloads are all a log needs, and skipping the
        headers spares their parsing per record. Deleted sequences are stepped over by the
        server, so the payloads are of sequences last - len + 1 .. last when nothing between was
        deleted. Any replica may answer, and a lagging one returns fewer: callers check.
        """
        self._check_open(what)
        await self._ensure_batch_sub()
        self._next_token += 1
        token = str(self._next_token)
        batch = _Batch(asyncio.get_running_loop())
        self._batches[token] = batch
        try:
            await self.nc.publish(
                f"$JS.API.DIRECT.GET.{stream}",
                json.dumps({"seq": seq, "batch": count, "no_hdr": True}).encode(),
                reply=self._batch_prefix + token,
            )
            async with asyncio.timeout(timeout or self.request_timeout):  # (3.11's wait_for can lose a cancel)
                await batch.done
        except TimeoutError:
            raise LogUnavailable(f"{what}: no answer to a read within {timeout or self.request_timeout:g} s") from None
        except (nats.errors.ConnectionClosedError, nats.errors.OutboundBufferLimitError, OSError) as exc:
            raise LogUnavailable(f"{what}: {_one_line(exc)}") from None
        finally:
            self._batches.pop(token, None)
        self.round_trips += 1
        return batch.payloads, batch.last_seq

    # -- subscriptions / lifecycle -------------------------------------------------------------

    async def subscribe(self, subject: str, cb: Callable[[Msg], Awaitable[None]]) -> Subscription:
        self._check_open(f"subscribe to {subject}")
        return await self.nc.subscribe(subject, cb=cb)

    @property
    def connected_url(self) -> str:
        url = self.nc.connected_url
        return url.geturl() if url is not None else ""

    async def close(self) -> None:
        """Flush what is buffered and close. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for batch in self._batches.values():
            if not batch.done.done():
                batch.done.set_result(None)
        try:
            await self.nc.close()
        except Exception:  # noqa: BLE001 - closing a broken connection: nothing left to release
            log.debug("closing the NATS connection failed", exc_info=True)


def parse_json_reply(msg: Msg, what: str) -> dict[str, Any]:
    """The JSON body of a JetStream reply (a status-only reply means nobody could serve it)."""
    if msg.headers and msg.headers.get(_STATUS) == _NO_RESPONDERS:
        raise LogUnavailable(f"{what}: no JetStream server answers (no leader right now?)")
    try:
        resp = json.loads(msg.data)
    except ValueError:
        raise LogUnavailable(f"{what}: unreadable answer {msg.data[:80]!r}", maybe_written=True) from None
    if not isinstance(resp, dict):
        raise LogUnavailable(f"{what}: unexpected answer {msg.data[:80]!r}", maybe_written=True)
    return resp


def api_error(what: str, err: dict[str, Any]) -> LogError:
    """The log error for a JetStream error object: LogUnavailable if it may pass, else a refusal."""
    code, err_code = int(err.get("code", 0)), int(err.get("err_code", 0))
    description = str(err.get("description", "unknown error"))
    if err_code in TRANSIENT_ERR_CODES or code == 503:
        return LogUnavailable(f"{what}: {description} (err_code {err_code})")
    return JetStreamApiError(what, code, err_code, description)
