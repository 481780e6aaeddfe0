"""Network for sandbox runs: off unless a run is granted an allow-list, and then HTTP(S) only, via the host.

The guest has no sockets. A run with a NetworkPolicy gets the guest module `endure_http`
(sandbox/http_guest.py, plus a tiny `requests` shim) read-only at /.endure/lib. On the CPython
3.14 component (the default) a request is one call of the component's `http-call` import, served
by `serve_call`. On the CPython 3.12 WASI fallback, which cannot call an arbitrary wasm import
from Python, the run also gets a channel directory at /.endure/io: `endure_http` writes
`req.meta` (+ `req.body`) there and calls `os.sched_yield()`, which the runner shadows with a
host function (the same one that does the boot hand-off) running `Channel.serve`. Both channels
carry the same netstring request and reply and end in `answer`, which checks the request against
the policy and performs it here before the guest continues.

Checks: the URL against the allow-list (URL prefixes or hosts), then every address the host name
resolves to: loopback, private, link-local, unspecified, multicast and other non-global addresses
are refused unless the allow-list names that IP itself (a name that resolves there is not
enough, or a listed public name could be re-pointed at internal services). The connection goes to
the checked address (no second lookup). Redirects are followed only to URLs that pass the same
checks, at most `max_redirects`. Connect and total timeouts, request and response size caps, and
a per-run request budget bound what a guest can do; every refusal reaches the guest as a typed
exception. Each exchange is logged (method, URL, status, bytes) into the SandboxResult, which is
journaled with the step: a replay returns the recorded result and never fetches again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import ipaddress
import os
import shutil
import socket
import ssl
import stat
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

GUEST_LIB_MOUNT = "/.endure/lib"
GUEST_IO_MOUNT = "/.endure/io"
MiB = 1 << 20
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECTS = {301, 302, 303, 307, 308}
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
# The guest may not set these: the host frames the request and names the server itself.
_HOST_OWNED_HEADERS = {
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "proxy-connection",
    "keep-alive",
    "trailer",
}
_CREDENTIAL_HEADERS = {"authorization", "cookie", "proxy-authorization"}
_MAX_REQ_META = 256 * 1024
_CHUNK = 64 * 1024


class NetworkPolicy(BaseModel):
    """What one run may reach: `allow` holds URL prefixes ("https://api.example.com/v1/") or hosts
    ("api.example.com", "10.0.0.7:8080"); a bare host allows http and https on their default ports."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: list[str] = Field(min_length=1, max_length=256)
    connect_timeout_s: float = Field(default=5.0, gt=0, le=60)
    total_timeout_s: float = Field(default=20.0, gt=0, le=600, description="per request, redirects included")
    max_response_bytes: int = Field(default=1 * MiB, ge=0, le=64 * MiB)
    max_request_bytes: int = Field(default=1 * MiB, ge=0, le=64 * MiB)
    max_requests: int = Field(default=100, ge=1, le=10_000, description="attempts per run, refused ones too")
    max_redirects: int = Field(default=5, ge=0, le=20)

    @field_validator("allow")
    @classmethod
    def _parse_allow(cls, v: list[str]) -> list[str]:
        for entry in v:
            _Rule.parse(entry)
        return v

    def rules(self) -> list[_Rule]:
        return [_Rule.parse(e) for e in self.allow]


class NetErrorKind(StrEnum):
    """Why a guest's HTTP request did not get a response (the guest's exception type)."""

    DENIED = "denied"  # not on the allow-list, a non-global address, no policy, budget spent
    TIMEOUT = "timeout"  # connect, total or the run's wall time
    TOO_LARGE = "too_large"  # response (or request) body over its cap
    CONNECTION = "connection"  # DNS failure, refused connection, TLS error, broken response
    REDIRECTS = "redirects"  # more than max_redirects
    INVALID = "invalid"  # malformed URL, method or headers


class NetworkError(Exception):
    """A refused or failed request; `kind` selects the exception the guest sees."""

    def __init__(self, kind: NetErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class HttpExchange(BaseModel):
    """One request as journaled with the run's result (bodies are not kept; sizes and a digest are)."""

    method: str
    url: str
    status: int | None = None
    bytes: int = 0  # response body bytes received
    sent: int = 0  # request body bytes sent
    sha256: str | None = None  # of the response body
    ms: float = 0.0
    error: NetErrorKind | None = None
    reason: str | None = None


# -- allow-list ---------------------------------------------------------------------------------


def _norm_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise NetworkError(NetErrorKind.INVALID, f"invalid host name {host!r}") from None


def _dot_segments(path: str) -> bool:
    return any(seg in (".", "..") for seg in unquote(path).replace("\\", "/").split("/"))


@dataclass(frozen=True)
class _Url:
    scheme: str
    host: str
    port: int
    path: str
    target: str  # path + query, as sent

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port

    @property
    def host_header(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return h if self.port == _DEFAULT_PORTS[self.scheme] else f"{h}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host_header}{self.target}"


def parse_url(url: str) -> _Url:
    """http(s) URLs only; userinfo and fragments dropped, dot segments refused (servers would
    collapse them, walking out of a listed path prefix)."""
    if not isinstance(url, str) or any(c in url for c in "\r\n\t\0 "):
        raise NetworkError(NetErrorKind.INVALID, f"invalid URL {url!r}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise NetworkError(NetErrorKind.DENIED, f"only http and https URLs are allowed, not {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise NetworkError(NetErrorKind.INVALID, f"invalid port in {url!r}") from None
    if not parts.hostname:
        raise NetworkError(NetErrorKind.INVALID, f"no host in {url!r}")
    path = parts.path or "/"
    if _dot_segments(path):
        raise NetworkError(NetErrorKind.DENIED, f"'.' and '..' path segments are not allowed: {url!r}")
    target = path + (f"?{parts.query}" if parts.query else "")
    return _Url(scheme, _norm_host(parts.hostname), port or _DEFAULT_PORTS[scheme], path, target)


@dataclass(frozen=True)
class _Rule:
    scheme: str | None  # None: http or https
    host: str
    port: int | None  # None: the scheme's default port
    path: str  # a prefix; "/" allows every path

    @classmethod
    def parse(cls, entry: str) -> _Rule:
        if not isinstance(entry, str) or not entry.strip():
            raise ValueError(f"empty allow-list entry {entry!r}")
        e = entry.strip()
        try:
            if "://" in e:
                u = urlsplit(e)
                if u.scheme.lower() not in _DEFAULT_PORTS or not u.hostname or u.query or u.fragment:
                    raise ValueError
                if u.username or u.password or _dot_segments(u.path):
                    raise ValueError
                return cls(
                    u.scheme.lower(),
                    _norm_host(u.hostname),
                    u.port or _DEFAULT_PORTS[u.scheme.lower()],
                    u.path or "/",
                )
            u = urlsplit("//" + e)
            if not u.hostname or u.path or u.query or u.username:
                raise ValueError
            return cls(None, _norm_host(u.hostname), u.port, "/")
        except (ValueError, NetworkError):
            raise ValueError(
                f"invalid allow-list entry {entry!r}: use a URL prefix or a host[:port]"
            ) from None

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
            return True
        except ValueError:
            return False

    def matches(self, u: _Url, host: str | None = None) -> bool:
        if (host or u.host) != self.host:
            return False
        if self.scheme is not None and u.scheme != self.scheme:
            return False
        if u.port != (self.port if self.port is not None else _DEFAULT_PORTS[u.scheme]):
            return False
        if self.path == "/" or u.path == self.path:
            return True
        prefix = self.path if self.path.endswith("/") else self.path + "/"
        return u.path.startswith(prefix)


def _special(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


# -- the client ---------------------------------------------------------------------------------


@dataclass
class HttpResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    url: str


Resolver = Callable[[str, int], list[str]]


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(i[4][0]) for i in infos))


class HttpClient:
    """Performs one run's requests under its policy; `deadline` is the run's wall-clock end
    (time.monotonic), which no request outlives."""

    def __init__(
        self,
        policy: NetworkPolicy,
        deadline: Callable[[], float] | None = None,
        resolver: Resolver = _system_resolver,
    ) -> None:
        self.policy = policy
        self.rules = policy.rules()
        self.deadline = deadline
        self.resolver = resolver
        self.log: list[HttpExchange] = []
        self.attempts = 0
        self._budget_logged = False

    # -- checks ---------------------------------------------------------------------------------
    def check_url(self, url: str) -> _Url:
        u = parse_url(url)
        if not any(r.matches(u) for r in self.rules):
            raise NetworkError(
                NetErrorKind.DENIED, f"{u.scheme}://{u.host_header}{u.path} is not on the allow-list"
            )
        return u

    def addresses(self, u: _Url, until: float) -> list[str]:
        """The host's addresses, each checked: a non-global one only if the allow-list names that IP."""
        try:
            ips = [ipaddress.ip_address(u.host)]
        except ValueError:
            ips = [ipaddress.ip_address(a.split("%")[0]) for a in self._lookup(u.host, u.port, until)]
        if not ips:
            raise NetworkError(NetErrorKind.CONNECTION, f"{u.host} has no addresses")
        for ip in ips:
            if _special(ip) and not any(r.is_ip and r.matches(u, host=str(ip)) for r in self.rules):
                what = "is" if str(ip) == u.host else f"resolves to {ip}, which is"
                raise NetworkError(
                    NetErrorKind.DENIED,
                    f"{u.host} {what} a loopback/private/link-local/reserved address; "
                    "allow it by listing that IP explicitly",
                )
        return [str(ip) for ip in ips]

    def _lookup(self, host: str, port: int, until: float) -> list[str]:
        box: dict[str, Any] = {}

        def go() -> None:
            try:
                box["ok"] = self.resolver(host, port)
            except Exception as e:  # reported below
                box["err"] = e

        t = threading.Thread(target=go, daemon=True, name="endure-dns")
        t.start()
        t.join(max(0.0, min(until, time.monotonic() + self.policy.connect_timeout_s) - time.monotonic()))
        if t.is_alive():
            raise NetworkError(NetErrorKind.TIMEOUT, f"DNS lookup of {host} timed out")
        if "err" in box:
            raise NetworkError(NetErrorKind.CONNECTION, f"cannot resolve {host}: {box['err']}")
        return list(box["ok"])

    # -- requests -------------------------------------------------------------------------------
    def fetch(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        follow_redirects: bool = True,
        timeout_s: float | None = None,
    ) -> HttpResponse:
        """One guest request, redirects included, or a NetworkError; every attempt is logged."""
        method = str(method).upper()
        if method not in _METHODS:
            raise NetworkError(NetErrorKind.INVALID, f"method {method!r} is not allowed")
        if len(body) > self.policy.max_request_bytes:
            raise NetworkError(
                NetErrorKind.TOO_LARGE, f"request body over {self.policy.max_request_bytes} bytes"
            )
        hdrs = self._guest_headers(headers or [])
        now = time.monotonic()
        total = (
            self.policy.total_timeout_s if timeout_s is None else min(self.policy.total_timeout_s, timeout_s)
        )
        until = now + max(0.0, total)
        if self.deadline is not None:
            until = min(until, self.deadline())
        hops = 0
        prev: _Url | None = None
        while True:
            t0 = time.monotonic()
            entry = HttpExchange(method=method, url=self._loggable(url), sent=len(body))
            if self.attempts >= self.policy.max_requests:
                if not self._budget_logged:  # logged once: a guest looping on refusals cannot grow the log
                    self._budget_logged = True
                    entry.error, entry.reason = NetErrorKind.DENIED, "request budget spent"
                    self.log.append(entry)
                raise NetworkError(
                    NetErrorKind.DENIED, f"this run's request budget ({self.policy.max_requests}) is spent"
                )
            self.attempts += 1
            try:
                try:
                    u = self.check_url(url)
                    if time.monotonic() >= until:
                        raise NetworkError(NetErrorKind.TIMEOUT, "no time left for the request")
                    ips = self.addresses(u, until)
                except NetworkError as e:
                    if prev is not None and e.kind is NetErrorKind.DENIED:
                        raise NetworkError(e.kind, f"redirect from {prev} refused: {e}") from None
                    raise
                entry.url = str(u)
                if prev is not None and u.origin != prev.origin:
                    hdrs = [(k, v) for k, v in hdrs if k.lower() not in _CREDENTIAL_HEADERS]
                resp = self._exchange(method, u, ips, hdrs, body, until, entry)
            except NetworkError as e:
                entry.error, entry.reason = e.kind, str(e)
                raise
            finally:
                entry.ms = round((time.monotonic() - t0) * 1000, 3)
                self.log.append(entry)
            location = next((v for k, v in resp.headers if k.lower() == "location"), None)
            if not follow_redirects or resp.status not in _REDIRECTS or location is None:
                return resp
            if hops >= self.policy.max_redirects:
                raise NetworkError(NetErrorKind.REDIRECTS, f"more than {self.policy.max_redirects} redirects")
            hops += 1
            prev, url = u, urljoin(str(u), location)
            if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                method = "GET" if method != "HEAD" else method
                body = b""
                hdrs = [(k, v) for k, v in hdrs if k.lower() != "content-type"]

    @staticmethod
    def _loggable(url: str) -> str:
        s = str(url)[:2000]
        try:
            p = urlsplit(s)
            if p.username or p.password:
                s = s.replace(p.netloc, p.netloc.rsplit("@", 1)[-1], 1)
        except ValueError:
            pass
        return s

    @staticmethod
    def _guest_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for k, v in headers:
            k, v = str(k), str(v)
            if not k or any(c in k for c in "\r\n:\0 ") or any(c in v for c in "\r\n\0"):
                raise NetworkError(NetErrorKind.INVALID, f"invalid header {k!r}")
            if k.lower() not in _HOST_OWNED_HEADERS:
                out.append((k, v))
        if not any(k.lower() == "user-agent" for k, _ in out):
            out.append(("User-Agent", "endure-sandbox"))
        return out

    def _connect(self, u: _Url, ips: list[str], until: float) -> socket.socket:
        last: Exception | None = None
        for ip in ips:
            left = until - time.monotonic()
            if left <= 0:
                break
            try:
                sock = socket.create_connection(
                    (ip, u.port), timeout=min(self.policy.connect_timeout_s, left)
                )
            except OSError as e:  # TimeoutError included; try the next address
                last = e
                continue
            if u.scheme == "https":
                try:
                    sock.settimeout(max(0.01, until - time.monotonic()))
                    sock = ssl.create_default_context().wrap_socket(sock, server_hostname=u.host)
                except TimeoutError:
                    sock.close()
                    raise NetworkError(
                        NetErrorKind.TIMEOUT, f"TLS handshake with {u.host} timed out"
                    ) from None
                except (ssl.SSLError, OSError) as e:
                    sock.close()
                    raise NetworkError(NetErrorKind.CONNECTION, f"TLS with {u.host} failed: {e}") from None
            return sock
        if isinstance(last, TimeoutError) or last is None:
            raise NetworkError(NetErrorKind.TIMEOUT, f"connecting to {u.host_header} timed out")
        raise NetworkError(NetErrorKind.CONNECTION, f"cannot connect to {u.host_header}: {last}")

    def _exchange(
        self,
        method: str,
        u: _Url,
        ips: list[str],
        headers: list[tuple[str, str]],
        body: bytes,
        until: float,
        entry: HttpExchange,
    ) -> HttpResponse:
        sock = self._connect(u, ips, until)
        expired = threading.Event()

        def cut() -> None:  # the total deadline holds even against a server that trickles bytes
            expired.set()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(max(0.0, until - time.monotonic()), cut)
        timer.daemon = True
        timer.start()
        conn = http.client.HTTPConnection(u.host, u.port)
        conn.sock = sock
        cap = self.policy.max_response_bytes
        try:
            sock.settimeout(max(0.01, until - time.monotonic()))
            conn.putrequest(method, u.target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", u.host_header)
            for k, v in headers:
                conn.putheader(k, v)
            if body or method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            resp = conn.getresponse()
            entry.status = resp.status
            length = resp.getheader("Content-Length")
            if length is not None and length.strip().isdigit() and int(length) > cap:
                raise NetworkError(
                    NetErrorKind.TOO_LARGE, f"response of {int(length)} bytes is over the cap of {cap}"
                )
            buf = bytearray()
            while True:
                if sock.fileno() != -1:  # http.client closes it after the last byte of a closing response
                    sock.settimeout(max(0.01, until - time.monotonic()))
                chunk = resp.read(min(_CHUNK, cap + 1 - len(buf)))
                if not chunk:
                    break
                buf += chunk
                entry.bytes = len(buf)
                if len(buf) > cap:
                    raise NetworkError(NetErrorKind.TOO_LARGE, f"response body over the cap of {cap} bytes")
            if expired.is_set():  # the cut socket reads as EOF
                raise TimeoutError
            if length is not None and length.strip().isdigit() and len(buf) < int(length):
                raise http.client.IncompleteRead(bytes(buf), int(length) - len(buf))
            entry.sha256 = hashlib.sha256(buf).hexdigest()
            return HttpResponse(resp.status, resp.reason, resp.getheaders(), bytes(buf), str(u))
        except NetworkError:
            raise
        except (TimeoutError, OSError, http.client.HTTPException, ValueError) as e:
            if expired.is_set() or isinstance(e, TimeoutError) or time.monotonic() >= until:
                raise NetworkError(NetErrorKind.TIMEOUT, f"{method} {u} timed out") from None
            if isinstance(e, ValueError):
                raise NetworkError(NetErrorKind.INVALID, f"invalid request: {e}") from None
            raise NetworkError(
                NetErrorKind.CONNECTION, f"{method} {u} failed: {type(e).__name__}: {e}"
            ) from None
        finally:
            timer.cancel()
            conn.close()
            with contextlib.suppress(OSError):
                sock.close()


# -- the file channel between endure_http and the host --------------------------------------------


def _read_nofollow(path: Path, cap: int) -> bytes | None:
    """A regular file's bytes (None if absent); symlinks are not followed; over `cap` -> ValueError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        data = f.read(cap + 1)
    if len(data) > cap:
        raise ValueError(f"over {cap} bytes")
    return data


def _write_fresh(path: Path, data: bytes) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # whatever the guest left there (a symlink, say) is replaced, never followed
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def encode_fields(fields: list[str]) -> bytes:
    """Netstrings (`<len>:<utf-8>`...): what endure_http parses without importing json."""
    out = bytearray()
    for f in fields:
        b = f.encode("utf-8", "surrogateescape")
        out += b"%d:" % len(b) + b
    return bytes(out)


def decode_fields(data: bytes) -> list[str]:
    out, i = [], 0
    while i < len(data):
        j = data.index(b":", i)
        n = int(data[i:j])
        if n < 0 or j + 1 + n > len(data):
            raise ValueError("truncated field")
        out.append(data[j + 1 : j + 1 + n].decode("utf-8", "surrogateescape"))
        i = j + 1 + n
    return out


def answer(client: HttpClient | None, raw: bytes, body: bytes) -> tuple[list[str], bytes]:
    """Serve one encoded request (netstring meta: method, url, follow, timeout, header pairs) under
    `client`; the reply meta and body. Both channels call this, so their checks cannot drift apart."""
    try:
        if client is None:
            raise NetworkError(NetErrorKind.DENIED, "network is off for this run (no NetworkPolicy)")
        try:
            f = decode_fields(raw)
            method, url, follow, timeout_s = f[0], f[1], f[2] == "1", float(f[3]) if f[3] else None
            if len(f) % 2:
                raise ValueError("odd header list")
            headers = [(f[i], f[i + 1]) for i in range(4, len(f), 2)]
        except (ValueError, IndexError) as e:
            raise NetworkError(NetErrorKind.INVALID, f"malformed request from endure_http: {e}") from None
        resp = client.fetch(method, url, headers, body, follow, timeout_s)
    except NetworkError as e:
        return ["err", e.kind.value, str(e)], b""
    meta = ["ok", str(resp.status), resp.reason, resp.url]
    for k, v in resp.headers:
        meta += [k, v]
    return meta, resp.body


def frame(meta: list[str], body: bytes) -> bytes:
    """One message of the component's `http-call`: the netstring-encoded meta as a netstring, then the body."""
    m = encode_fields(meta)
    return b"%d:" % len(m) + m + body


def unframe(data: bytes) -> tuple[bytes, bytes]:
    """`frame`'s inverse on raw meta: (meta bytes, body); ValueError if malformed."""
    j = data.index(b":", 0, 24)
    n = int(data[:j])
    if n < 0 or j + 1 + n > len(data):
        raise ValueError("truncated request meta")
    return data[j + 1 : j + 1 + n], data[j + 1 + n :]


def serve_call(client: HttpClient | None, request: bytes) -> bytes:
    """Host side of the component's `http-call` import: one framed request in, one framed reply out.
    Never raises, since an exception in a host call would trap the guest instead of reaching it."""
    try:
        raw, body = unframe(request)
        if len(raw) > _MAX_REQ_META:
            raise ValueError(f"request meta over {_MAX_REQ_META} bytes")
        if client is not None and len(body) > client.policy.max_request_bytes:
            raise NetworkError(
                NetErrorKind.TOO_LARGE, f"request body over {client.policy.max_request_bytes} bytes"
            )
        meta, out = answer(client, raw, body)
    except NetworkError as e:
        meta, out = ["err", e.kind.value, str(e)], b""
    except ValueError as e:
        meta, out = ["err", NetErrorKind.INVALID.value, f"malformed request from endure_http: {e}"], b""
    except Exception as e:  # a host bug still answers the guest (and is named) instead of trapping it
        meta, out = ["err", NetErrorKind.CONNECTION.value, f"host error: {type(e).__name__}: {e}"], b""
    return frame(meta, out)


class Channel:
    """Host side of endure_http's request files in one run's channel directory: `req.meta` (method,
    url, follow, timeout, header pairs) + `req.body` in; `resp.meta` + `resp.body` out."""

    def __init__(self, io_dir: Path, client: HttpClient | None) -> None:
        self.dir = io_dir
        self.client = client

    def serve(self) -> bool:
        """Answer a pending request, if the guest left one; False if there was none."""
        req_path = self.dir / "req.meta"
        if not os.path.lexists(req_path):
            return False
        meta: list[str]
        try:
            try:
                raw = _read_nofollow(req_path, _MAX_REQ_META)
                limit = self.client.policy.max_request_bytes if self.client else 0
                try:
                    body = _read_nofollow(self.dir / "req.body", limit) or b""
                except ValueError:
                    raise NetworkError(NetErrorKind.TOO_LARGE, f"request body over {limit} bytes") from None
            finally:
                for name in ("req.meta", "req.body", "resp.meta", "resp.body"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.dir / name)
            if self.client is None:
                raise NetworkError(NetErrorKind.DENIED, "network is off for this run (no NetworkPolicy)")
            meta, out = answer(self.client, raw or b"", body)
            if meta[0] == "ok":
                _write_fresh(self.dir / "resp.body", out)
        except NetworkError as e:
            meta = ["err", e.kind.value, str(e)]
        except (OSError, ValueError) as e:
            meta = ["err", NetErrorKind.INVALID.value, f"channel error: {e}"]
        _write_fresh(self.dir / "resp.meta", encode_fields(meta))
        return True


# -- the guest library ----------------------------------------------------------------------------

_REQUESTS_SHIM = '''"""A small `requests` look-alike over endure_http: the sandbox has no sockets, only the host's HTTP."""
from endure_http import *  # noqa: F403
from endure_http import __all__  # noqa: F401
import endure_http as exceptions  # noqa: F401
'''


async def guest_lib_dir(
    cache_dir: Path, precompile: Callable[[Path, str], Awaitable[None]] | None = None
) -> Path:
    """A read-only directory with `endure_http.py` and `requests.py` for the guest, content-addressed
    under `cache_dir/guest-lib`, created once (atomically) and precompiled like package sets."""
    src = await asyncio.to_thread(Path(__file__).with_name("http_guest.py").read_bytes)
    files = {"endure_http.py": src, "requests.py": _REQUESTS_SHIM.encode()}
    key = hashlib.sha256(b"\0".join(k.encode() + b"\0" + v for k, v in sorted(files.items()))).hexdigest()
    final = Path(cache_dir) / "guest-lib" / key[:24]
    if await asyncio.to_thread((final / "endure_http.py").is_file):
        return final
    stage = await asyncio.to_thread(_stage_files, final.parent, files)
    try:
        if precompile is not None:
            with contextlib.suppress(Exception):  # without bytecode it still works, at ~70M fuel more
                await precompile(stage, GUEST_LIB_MOUNT)
        await asyncio.to_thread(_publish_dir, stage, final)
    finally:
        await asyncio.to_thread(_drop_dir, stage)
    return final


def _stage_files(parent: Path, files: dict[str, bytes]) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".stage-", dir=parent))
    for name, data in files.items():
        (stage / name).write_bytes(data)
    return stage


def _publish_dir(stage: Path, final: Path) -> None:
    for d, _, files in os.walk(stage):
        for f in files:
            os.chmod(os.path.join(d, f), 0o444)
        os.chmod(d, 0o555)
    try:
        os.rename(stage, final)
    except OSError:
        if not (final / "endure_http.py").is_file():  # not a concurrent twin: a real failure
            raise


def _drop_dir(stage: Path) -> None:
    if stage.exists():
        for d, _, _ in os.walk(stage):
            os.chmod(d, 0o755)
        shutil.rmtree(stage, ignore_errors=True)
