"""endure_http: HTTP for Python in the sandbox, performed by the host under the run's NetworkPolicy.

This file runs inside the guest (it is mounted read-only as /.endure/lib/endure_http.py; a
`requests` module there re-exports it). The guest has no sockets. On the CPython 3.14 component a
request is one call of the component's `http-call` import (`wit_world.http_call`); on the
CPython 3.12 WASI path it is written into the run's channel directory and `os.sched_yield()`
hands it to the host. Either way the host checks the allow-list, performs it and answers (see
endure.sandbox.network). Refusals and failures raise the typed exceptions below; responses are
capped by the policy.

Imports are kept to `os` (already loaded): the guest compiles stdlib modules on import, and
`json` alone costs ~230M fuel, so it and `urllib.parse` load only when a call needs them. The
request and response descriptions are netstrings (`<len>:<utf-8>`), not JSON, for that reason.

    import endure_http as http
    r = http.get("https://api.example.com/v1/items", headers={"Accept": "application/json"})
    r.raise_for_status(); items = r.json()
"""

from __future__ import annotations

import os

__all__ = [
    "ConnectionError",
    "HTTPError",
    "Headers",
    "InvalidRequest",
    "NetworkDenied",
    "RequestException",
    "Response",
    "ResponseTooLarge",
    "Session",
    "Timeout",
    "TooManyRedirects",
    "delete",
    "get",
    "head",
    "options",
    "patch",
    "post",
    "put",
    "request",
]

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing would cost every run's fuel
    from collections.abc import Iterator, Mapping
    from typing import Any

_IO = "/.endure/io"

try:  # the component's host import (already in its snapshot); absent on the CPython 3.12 path
    from wit_world import http_call as _http_call
except ImportError:
    _http_call = None


class RequestException(OSError):
    """Any failed request (an OSError, like requests' base class)."""

    kind = "error"


class NetworkDenied(RequestException):
    """The run's NetworkPolicy does not allow this request (host, address, redirect, budget)."""

    kind = "denied"


class Timeout(RequestException):
    """Connect, total or the run's wall-clock time ran out."""

    kind = "timeout"


class ResponseTooLarge(RequestException):
    """The response (or request) body is over the policy's cap."""

    kind = "too_large"


class ConnectionError(RequestException):  # noqa: A001 - the name requests uses
    """DNS, connect, TLS or a broken response."""

    kind = "connection"


class TooManyRedirects(RequestException):
    """More redirects than the policy allows."""

    kind = "redirects"


class InvalidRequest(RequestException, ValueError):
    """A malformed URL, method or header."""

    kind = "invalid"


class HTTPError(RequestException):
    """raise_for_status() on a 4xx/5xx response."""

    kind = "status"

    def __init__(self, message: str, response: Response | None = None) -> None:
        super().__init__(message)
        self.response = response


_KINDS = {
    c.kind: c
    for c in (NetworkDenied, Timeout, ResponseTooLarge, ConnectionError, TooManyRedirects, InvalidRequest)
}


def _encode(fields: list[str]) -> bytes:
    out = bytearray()
    for f in fields:
        b = f.encode("utf-8", "surrogateescape")
        out += b"%d:" % len(b) + b
    return bytes(out)


def _decode(data: bytes) -> list[str]:
    out, i = [], 0
    while i < len(data):
        j = data.index(b":", i)
        n = int(data[i:j])
        out.append(data[j + 1 : j + 1 + n].decode("utf-8", "surrogateescape"))
        i = j + 1 + n
    return out


class Headers:
    """Case-insensitive response headers (a read-only mapping); repeated ones are joined with ", "."""

    def __init__(self, pairs: list[tuple[str, str]] | None = None) -> None:
        self._d: dict[str, tuple[str, str]] = {}
        for k, v in pairs or []:
            low = k.lower()
            self._d[low] = (k, f"{self._d[low][1]}, {v}" if low in self._d else v)

    def __getitem__(self, key: str) -> str:
        return self._d[key.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._d.values())

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._d

    def get(self, key: str, default: str | None = None) -> str | None:
        v = self._d.get(key.lower())
        return default if v is None else v[1]

    def keys(self) -> list[str]:
        return list(self)

    def items(self) -> list[tuple[str, str]]:
        return list(self._d.values())

    def values(self) -> list[str]:
        return [v for _, v in self._d.values()]

    def __repr__(self) -> str:
        return repr(dict(self.items()))


class Response:
    """An HTTP response: status_code (or status), headers, content, text, json()."""

    def __init__(self, status: int, reason: str, headers: Headers, content: bytes, url: str) -> None:
        self.status_code = status
        self.reason = reason
        self.headers = headers
        self.content = content
        self.url = url

    @property
    def status(self) -> int:
        return self.status_code

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def encoding(self) -> str:
        ctype = self.headers.get("content-type") or ""
        for part in ctype.split(";")[1:]:
            k, _, v = part.strip().partition("=")
            if k.lower() == "charset" and v:
                return v.strip('"')
        return "utf-8"

    @property
    def text(self) -> str:
        try:
            return self.content.decode(self.encoding, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self, **kw: Any) -> Any:
        import json

        return json.loads(self.content, **kw)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise HTTPError(f"{self.status_code} {self.reason} for {self.url}", response=self)

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"


def _pairs(obj: Any) -> list[tuple[Any, Any]]:
    return list(obj.items()) if hasattr(obj, "items") else list(obj)


def _with_params(url: str, params: Mapping[str, Any] | list[tuple[str, Any]] | None) -> str:
    if not params:
        return url
    from urllib.parse import urlencode

    base, _, frag = url.partition("#")
    extra = urlencode(_pairs(params), doseq=True)
    return base + ("&" if "?" in base else "?") + extra + (f"#{frag}" if frag else "")


def request(
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
    data: bytes | str | Mapping[str, Any] | None = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
    allow_redirects: bool = True,
    timeout: float | None = None,
) -> Response:
    """Send one request through the host; raises a RequestException subclass if it is refused or fails."""
    hdrs = dict(headers or {})
    lower = {k.lower() for k in hdrs}
    body = b""
    if json is not None:
        import json as _json

        body = _json.dumps(json).encode()
        if "content-type" not in lower:
            hdrs["Content-Type"] = "application/json"
    elif hasattr(data, "items"):
        from urllib.parse import urlencode

        body = urlencode(_pairs(data), doseq=True).encode()
        if "content-type" not in lower:
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    elif isinstance(data, str):
        body = data.encode()
    elif data is not None:
        body = bytes(data)
    fields = [
        method.upper(),
        _with_params(url, params),
        "1" if allow_redirects else "0",
        "" if timeout is None else repr(float(timeout)),
    ]
    for k, v in hdrs.items():
        fields += [str(k), str(v)]
    if _http_call is not None:
        meta, content = _call_host(_encode(fields), body)
    else:
        meta, content = _file_channel(_encode(fields), body)
    status, reason, final_url, rest = int(meta[1]), meta[2], meta[3], meta[4:]
    hs = Headers([(rest[i], rest[i + 1]) for i in range(0, len(rest) - 1, 2)])
    return Response(status, reason, hs, content, final_url)


def _call_host(raw: bytes, body: bytes) -> tuple[list[str], bytes]:
    """The component's channel: meta as a netstring, then the body, both ways (bytes as latin-1)."""
    assert _http_call is not None
    reply = _http_call((b"%d:" % len(raw) + raw + body).decode("latin-1")).encode("latin-1")
    j = reply.index(b":")
    n = int(reply[:j])
    meta = _decode(reply[j + 1 : j + 1 + n])
    if meta[0] != "ok":
        raise _KINDS.get(meta[1], RequestException)(meta[2])
    return meta, reply[j + 1 + n :]


def _file_channel(raw: bytes, body: bytes) -> tuple[list[str], bytes]:
    """The CPython 3.12 path's channel: files in /.endure/io, served by the host at os.sched_yield()."""
    if not os.path.isdir(_IO):
        raise NetworkDenied("network is off for this run (no NetworkPolicy)")
    for name in ("resp.meta", "resp.body"):
        try:
            os.unlink(f"{_IO}/{name}")
        except FileNotFoundError:
            pass
    if body:
        with open(f"{_IO}/req.body", "wb") as f:
            f.write(body)
    with open(f"{_IO}/req.meta", "wb") as f:  # written last: its presence is the request
        f.write(raw)
    os.sched_yield()  # the host serves the request before this returns
    try:
        with open(f"{_IO}/resp.meta", "rb") as f:
            meta = _decode(f.read())
    except FileNotFoundError:
        raise ConnectionError(
            "the host did not answer (is this a sandbox run with a NetworkPolicy?)"
        ) from None
    if meta[0] != "ok":
        raise _KINDS.get(meta[1], RequestException)(meta[2])
    with open(f"{_IO}/resp.body", "rb") as f:
        content = f.read()
    for name in ("resp.meta", "resp.body"):
        os.unlink(f"{_IO}/{name}")
    return meta, content


def get(url: str, params: Any = None, **kw: Any) -> Response:
    return request("GET", url, params=params, **kw)


def head(url: str, **kw: Any) -> Response:
    kw.setdefault("allow_redirects", False)
    return request("HEAD", url, **kw)


def options(url: str, **kw: Any) -> Response:
    return request("OPTIONS", url, **kw)


def post(url: str, data: Any = None, json: Any = None, **kw: Any) -> Response:
    return request("POST", url, data=data, json=json, **kw)


def put(url: str, data: Any = None, **kw: Any) -> Response:
    return request("PUT", url, data=data, **kw)


def patch(url: str, data: Any = None, **kw: Any) -> Response:
    return request("PATCH", url, data=data, **kw)


def delete(url: str, **kw: Any) -> Response:
    return request("DELETE", url, **kw)


class Session:
    """requests.Session look-alike: default headers merged into each request (no cookies kept)."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}

    def request(self, method: str, url: str, **kw: Any) -> Response:
        kw["headers"] = {**self.headers, **(kw.get("headers") or {})}
        return request(method, url, **kw)

    def get(self, url: str, **kw: Any) -> Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, data: Any = None, json: Any = None, **kw: Any) -> Response:
        return self.request("POST", url, data=data, json=json, **kw)

    def put(self, url: str, data: Any = None, **kw: Any) -> Response:
        return self.request("PUT", url, data=data, **kw)

    def delete(self, url: str, **kw: Any) -> Response:
        return self.request("DELETE", url, **kw)

    def close(self) -> None:
        pass

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
