"""network= on Python runs: the guest's HTTP goes through the host under an allow-list, against a real
local HTTP server (a thread on 127.0.0.1); refusals, redirects, DNS, timeouts and caps end in typed
errors inside the guest, and every exchange is in the journaled result."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from endure.sandbox import LimitKind, Limits, NetErrorKind, NetworkPolicy, Sandbox, SandboxResult
from endure.sandbox.network import HttpClient, NetworkError, parse_url

pytestmark = pytest.mark.asyncio(loop_scope="session")


class _Handler(BaseHTTPRequestHandler):
    hits: Counter[str]

    def log_message(self, *a: object) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        u = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        self.hits[u.path] += 1
        if u.path == "/json":
            self._send(200, json.dumps({"hello": "world", "q": q}).encode())
        elif u.path == "/headers":
            self._send(200, json.dumps(dict(self.headers.items())).encode())
        elif u.path == "/redirect":
            self._send(int(q.get("code", "302")), b"", Location=q["to"])
        elif u.path == "/loop":
            self._send(302, b"", Location="/loop")
        elif u.path == "/big":
            self._send(200, b"x" * (2 << 20), "application/octet-stream")
        elif u.path == "/big-stream":  # no Content-Length: the cap must hold while reading
            self.send_response(200)
            self.end_headers()
            for _ in range(64):
                self.wfile.write(b"y" * 65536)
        elif u.path == "/slow":
            time.sleep(float(q.get("s", "3")))
            self._send(200, b"{}")
        elif u.path == "/trickle":  # headers at once, then a byte every 0.2 s: only a total deadline stops it
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"z")
                self.wfile.flush()
                time.sleep(0.2)
        else:
            self._send(404, b'{"error": "not found"}')

    def do_POST(self) -> None:
        self.hits[self.path] += 1
        data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = {"got": data.decode(), "ctype": self.headers.get("Content-Type")}
        self._send(201, json.dumps(body).encode())


class _Quiet(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that stop reading (size caps, timeouts) are the point of some tests


@dataclass
class Server:
    port: int
    hits: Counter[str]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _serve() -> tuple[ThreadingHTTPServer, Server]:
    hits: Counter[str] = Counter()
    handler = type("H", (_Handler,), {"hits": hits})
    srv = _Quiet(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, Server(srv.server_address[1], hits)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Server, Server]]:
    a, sa = _serve()
    b, sb = _serve()
    yield sa, sb
    a.shutdown()
    b.shutdown()


@pytest.fixture
def server(servers: tuple[Server, Server]) -> Server:
    servers[0].hits.clear()
    return servers[0]


def policy(srv: Server, *extra: str, **kw: object) -> NetworkPolicy:
    return NetworkPolicy(allow=[f"{srv.base}/", *extra], **kw)  # type: ignore[arg-type]


async def run(sb: Sandbox, code: str, pol: NetworkPolicy | None, **kw: object) -> SandboxResult:
    return await sb.run_python("import endure_http as h\n" + code, network=pol, **kw)  # type: ignore[arg-type]


# -- through the sandbox ---------------------------------------------------------------------------


async def test_get_post_requests_shim_and_log(sandbox: Sandbox, server: Server) -> None:
    code = f"""
r = h.get("{server.base}/json", params={{"a": "1"}})
print(r.status_code, r.json(), r.headers["content-type"], r.ok)
r = h.post("{server.base}/echo", json={{"x": [1, 2]}})
print(r.status, r.json())
r = h.post("{server.base}/echo", data={{"k": "v w"}})
print(r.json())
import requests
s = requests.Session()
s.headers["X-Test"] = "1"
print(s.get("{server.base}/headers").json()["X-Test"])
try:
    requests.get("{server.base}/nope").raise_for_status()
except requests.HTTPError as e:
    print("http error", e.response.status_code)
"""
    res = await run(sandbox, code, policy(server))
    assert res.ok, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "200 {'hello': 'world', 'q': {'a': '1'}} application/json True"
    assert lines[1] == "201 {'got': '{\"x\": [1, 2]}', 'ctype': 'application/json'}"
    assert lines[2] == "{'got': 'k=v+w', 'ctype': 'application/x-www-form-urlencoded'}"
    assert lines[3:] == ["1", "http error 404"]
    assert [(e.method, e.url, e.status, e.error) for e in res.http] == [
        ("GET", f"{server.base}/json?a=1", 200, None),
        ("POST", f"{server.base}/echo", 201, None),
        ("POST", f"{server.base}/echo", 201, None),
        ("GET", f"{server.base}/headers", 200, None),
        ("GET", f"{server.base}/nope", 404, None),
    ]
    assert res.http[1].sent == len(b'{"x": [1, 2]}') and res.http[0].bytes > 10 and res.http[0].sha256
    usage = res.usage()
    assert usage["sandbox.http_requests"] == 5
    assert usage["sandbox.http_bytes"] == sum(e.bytes + e.sent for e in res.http)
    # The log is part of the result that the step journals: it survives the JSON round trip.
    assert SandboxResult.model_validate_json(res.model_dump_json()) == res


async def test_hosts_not_on_the_list_are_refused(sandbox: Sandbox, server: Server) -> None:
    code = f"""
for url in ["http://example.com/", "http://127.0.0.2:{server.port}/json", "http://127.0.0.1:1/json",
            "ftp://127.0.0.1:{server.port}/", "http://127.0.0.1:{server.port}@example.com/",
            "http://localhost:{server.port}/json", "http://127.0.0.1:{server.port}/a/../json"]:
    try:
        h.get(url)
        print("FETCHED", url)
    except h.NetworkDenied as e:
        print("denied")
"""
    res = await run(sandbox, code, policy(server))
    assert res.ok, res.stderr
    assert res.stdout.splitlines() == ["denied"] * 7
    assert all(e.error is NetErrorKind.DENIED and e.status is None for e in res.http)
    assert server.hits == Counter()
    assert "sandbox.http_requests" in res.usage() and res.usage()["sandbox.http_requests"] == 0


async def test_redirects_followed_only_within_the_list(
    sandbox: Sandbox, servers: tuple[Server, Server]
) -> None:
    a, b = servers
    a.hits.clear()
    b.hits.clear()
    code = f"""
def go(url, **kw):
    try:
        r = h.get(url, **kw)
        print(r.status_code, r.url)
    except h.RequestException as e:
        print(type(e).__name__, e)
go("{a.base}/redirect?to=/json")
go("{a.base}/redirect?code=307&to={b.base}/headers", headers={{"Authorization": "secret"}})
go("{a.base}/redirect?to=http://example.com/")
go("{a.base}/redirect?to=http://169.254.169.254/latest/meta-data/")
go("{a.base}/redirect?to=http://127.0.0.1:{b.port}/")
go("{a.base}/loop")
go("{a.base}/redirect?to=/json", allow_redirects=False)
"""
    res = await run(sandbox, code, NetworkPolicy(allow=[f"{a.base}/", f"{b.base}/headers"]))
    assert res.ok, res.stderr
    out = res.stdout.splitlines()
    assert out[0] == f"200 {a.base}/json"
    assert out[1] == f"200 {b.base}/headers"
    assert out[2].startswith(f"NetworkDenied redirect from {a.base}/redirect") and "example.com" in out[2]
    assert out[3].startswith("NetworkDenied redirect from") and "169.254.169.254" in out[3]
    assert out[4].startswith("NetworkDenied redirect from") and "not on the allow-list" in out[4]
    assert out[5] == "TooManyRedirects more than 5 redirects"
    assert out[6] == f"302 {a.base}/redirect?to=/json"
    assert a.hits["/loop"] == 6 and b.hits["/headers"] == 1 and b.hits["/"] == 0
    assert [e.status for e in res.http[:4]] == [302, 200, 307, 200]  # each hop is logged


async def test_credentials_dropped_and_host_header_owned_by_host(
    sandbox: Sandbox, servers: tuple[Server, Server]
) -> None:
    a, b = servers
    code = f"""
r = h.get("{a.base}/redirect?code=307&to={b.base}/headers", headers={{"Authorization": "secret", "X-Keep": "k"}})
print(sorted(k.lower() for k in r.json()))
r = h.get("{b.base}/headers", headers={{"Host": "internal.example", "Authorization": "same-origin"}})
print(r.json()["Host"], r.json()["Authorization"])
"""
    res = await run(sandbox, code, NetworkPolicy(allow=[a.base, b.base]))
    assert res.ok, res.stderr
    first, second = res.stdout.splitlines()
    assert "authorization" not in first and "x-keep" in first
    assert second == f"127.0.0.1:{b.port} same-origin"


async def test_names_resolving_to_internal_addresses_are_refused(sandbox: Sandbox, server: Server) -> None:
    """`localhost` on the list is not enough: it resolves to 127.0.0.1, which must be listed as an IP."""
    code = f"""
for url in ["http://localhost:{server.port}/json", "http://2130706433:{server.port}/json"]:
    try:
        h.get(url)
        print("FETCHED")
    except h.NetworkDenied as e:
        print(e)
"""
    pol = NetworkPolicy(allow=[f"http://localhost:{server.port}/", f"http://2130706433:{server.port}/"])
    res = await run(sandbox, code, pol)
    assert res.ok, res.stderr
    first, second = res.stdout.splitlines()
    assert first.startswith("localhost resolves to 127.0.0.1, which is a loopback/private")
    assert "allow it by listing that IP explicitly" in first
    assert second.startswith("2130706433 resolves to 127.0.0.1")
    assert server.hits == Counter()
    # Listing the IP as well (for that port) allows the name.
    pol = NetworkPolicy(allow=[f"http://localhost:{server.port}/", f"127.0.0.1:{server.port}"])
    res = await run(sandbox, f"print(h.get('http://localhost:{server.port}/json').status_code)", pol)
    assert res.stdout == "200\n", res.stderr


async def test_timeouts(sandbox: Sandbox, server: Server) -> None:
    code = f"""
import time
for path in ["/slow?s=3", "/trickle"]:
    t0 = time.monotonic()
    try:
        h.get("{server.base}" + path)
        print("FETCHED")
    except h.Timeout as e:
        print("timeout", round(time.monotonic() - t0, 1))
t0 = time.monotonic()
try:
    h.get("{server.base}/slow?s=3", timeout=0.3)
except h.Timeout:
    print("timeout", round(time.monotonic() - t0, 1))
"""
    res = await run(sandbox, code, policy(server, total_timeout_s=1.0))
    assert res.ok, res.stderr
    out = res.stdout.split()
    assert out[0::2] == ["timeout"] * 3
    assert all(0.2 <= float(t) < 1.6 for t in out[1::2]), out
    assert [e.error for e in res.http] == [NetErrorKind.TIMEOUT] * 3


async def test_connect_timeout(sandbox: Sandbox) -> None:
    """A listener whose accept queue is full drops SYNs: the connect timeout ends the wait."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        fillers.append(c)
    await asyncio.sleep(0.1)
    try:
        code = f"""
import time
t0 = time.monotonic()
try:
    h.get("http://127.0.0.1:{port}/")
except (h.Timeout, h.ConnectionError) as e:
    print(type(e).__name__, round(time.monotonic() - t0, 1))
"""
        res = await run(sandbox, code, NetworkPolicy(allow=[f"127.0.0.1:{port}"], connect_timeout_s=0.5))
        assert res.ok, res.stderr
        kind, took = res.stdout.split()
        assert kind == "Timeout" and 0.4 <= float(took) < 1.5, res.stdout
    finally:
        for c in fillers:
            c.close()
        lsock.close()


async def test_http_cannot_outlive_the_run_wall_time(sandbox: Sandbox, server: Server) -> None:
    replaced = sandbox.pool.replaced
    t0 = time.monotonic()
    code = f"""
try:
    h.get("{server.base}/slow?s=5")
except h.Timeout:
    print("timeout")
"""
    res = await run(sandbox, code, policy(server), limits=Limits(wall_time_ms=800))
    assert time.monotonic() - t0 < 3.5
    assert res.limit_hit is LimitKind.WALL_TIME or res.stdout == "timeout\n", res
    assert res.http[0].error is NetErrorKind.TIMEOUT and res.http[0].ms < 1000
    assert sandbox.pool.replaced == replaced  # the host call returned in time; no process was killed


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate")
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "k.pem", d / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, crt


async def test_https_verifies_certificates(sandbox: Sandbox, self_signed: tuple[Path, Path]) -> None:
    """The TLS path: a self-signed server certificate is refused, not silently accepted."""
    key, crt = self_signed
    srv, info = _serve()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    try:
        code = f"""
try:
    h.get("https://127.0.0.1:{info.port}/json")
except h.ConnectionError as e:
    print(e)
"""
        res = await run(sandbox, code, NetworkPolicy(allow=[f"https://127.0.0.1:{info.port}/"]))
        assert res.ok, res.stderr
        assert (
            res.stdout.startswith("TLS with 127.0.0.1 failed") and "CERTIFICATE_VERIFY_FAILED" in res.stdout
        )
        assert info.hits == Counter()
    finally:
        srv.shutdown()


async def test_size_caps(sandbox: Sandbox, server: Server) -> None:
    code = f"""
for call in [lambda: h.get("{server.base}/big"), lambda: h.get("{server.base}/big-stream"),
             lambda: h.post("{server.base}/echo", data=b"p" * 300_000)]:
    try:
        call()
        print("FETCHED")
    except h.ResponseTooLarge as e:
        print("too large")
print(len(h.get("{server.base}/json").content) > 0)
"""
    res = await run(sandbox, code, policy(server, max_response_bytes=1 << 20, max_request_bytes=200_000))
    assert res.ok, res.stderr
    assert res.stdout.splitlines() == ["too large"] * 3 + ["True"]
    assert [e.error for e in res.http[:2]] == [NetErrorKind.TOO_LARGE] * 2
    assert res.http[1].bytes <= (1 << 20) + 65536
    assert server.hits["/echo"] == 0  # the oversized request body never left the host


async def test_request_budget(sandbox: Sandbox, server: Server) -> None:
    code = f"""
n = 0
for i in range(50):
    try:
        h.get("{server.base}/json")
        n += 1
    except h.NetworkDenied as e:
        last = str(e)
print(n, last)
"""
    res = await run(sandbox, code, policy(server, max_requests=3))
    assert res.stdout == "3 this run's request budget (3) is spent\n", res.stderr
    assert len(res.http) == 4 and server.hits["/json"] == 3


async def test_channel_refuses_forged_requests(sandbox: Sandbox, server: Server) -> None:
    """Requests endure_http never sends, straight into the channel: the component's `http-call`
    import or, on the CPython 3.12 path (ENDURE_SANDBOX_PYTHON=core), the channel files."""
    code = """
import os
try:
    import wit_world
except ImportError:
    wit_world = None
if wit_world is not None:
    for forged in ["99999:GET", "8:5:GET1:x", "\\u20ac", ""]:
        print(wit_world.http_call(forged).encode("latin-1").split(b":", 1)[1][:40])
else:
    open("/.endure/io/req.meta", "wb").write(b"99999:GET")
    os.sched_yield()
    print(open("/.endure/io/resp.meta", "rb").read()[:40])
    try:  # a link the host would write through, if it followed links
        os.symlink("../root/x", "/.endure/io/resp.meta")
    except OSError:
        pass
    os.sched_yield()  # no request pending: nothing happens
print(h.get("BASE/json").status_code)
""".replace("BASE", server.base)
    res = await run(sandbox, code, policy(server))
    assert res.ok, res.stderr
    *forged, last = res.stdout.splitlines()
    assert forged and all(f.startswith("b'3:err7:invalid") for f in forged) and last == "200"
    assert len(res.http) == 1  # refused before any check: nothing attempted, nothing logged


async def test_http_call_without_policy_is_refused(sandbox: Sandbox, server: Server) -> None:
    code = """
try:
    import wit_world
except ImportError:
    print("core")
else:
    print(wit_world.http_call("23:3:GET11:http://x/j1:10:").encode("latin-1").split(b":", 1)[1][:13])
"""
    res = await sandbox.run_python(code)
    if res.stdout == "core\n":
        pytest.skip("the CPython 3.12 path has no http-call import")
    assert res.stdout == "b'3:err6:denied'\n", res.stderr
    assert res.http == [] and server.hits == Counter()


async def test_no_policy_no_network(sandbox: Sandbox, server: Server) -> None:
    res = await sandbox.run_python("import endure_http")
    assert res.exit_code == 1 and "ModuleNotFoundError" in res.stderr
    res = await sandbox.run_python(f"import socket\nsocket.socket().connect(('127.0.0.1', {server.port}))")
    assert res.exit_code == 1 and ("OSError" in res.stderr or "PermissionError" in res.stderr) and res.http == []
    res = await sandbox.run_python("import os\nprint(os.path.exists('/.endure/io'))\nos.sched_yield()")
    assert res.stdout == "False\n" and res.http == [] and "sandbox.http_requests" not in res.usage()
    assert server.hits == Counter()


# -- host side only ----------------------------------------------------------------------------------


async def test_policy_validation() -> None:
    for bad in [[], ["ftp://x/"], ["http://x/?q=1"], ["http://user@x/"], [""], ["x/y"], ["http:///"]]:
        with pytest.raises(ValidationError):
            NetworkPolicy(allow=bad)
    NetworkPolicy(allow=["api.example.com", "10.0.0.7:8080", "[::1]:9000", "https://h/v1/"])


async def test_allow_list_matching() -> None:
    c = HttpClient(NetworkPolicy(allow=["https://api.example.com/v1", "files.example.com", "h.example:8080"]))
    ok = [
        "https://api.example.com/v1",
        "https://API.example.com./v1/items?x=1",
        "https://api.example.com:443/v1/",
        "http://files.example.com/a",
        "https://files.example.com/a",
        "http://h.example:8080/",
        "https://h.example:8080/",
    ]
    for url in ok:
        c.check_url(url)
    denied = [
        "http://api.example.com/v1",  # scheme is part of a URL prefix
        "https://api.example.com/v1x",
        "https://api.example.com/v2",
        "https://api.example.com/v1/../admin",
        "https://api.example.com/v1/%2e%2e/admin",
        "https://api.example.com:8443/v1",
        "http://files.example.com:8080/",
        "http://h.example/",
        "https://evil.com/#@api.example.com/v1",
        "http://files.example.com@evil.com/",
    ]
    for url in denied:
        with pytest.raises(NetworkError) as ei:
            c.check_url(url)
        assert ei.value.kind is NetErrorKind.DENIED, url
    for url in ["http://a b/", "http://x:99999/", "http:///x"]:
        with pytest.raises(NetworkError):
            parse_url(url)


async def test_addresses_checked_after_dns() -> None:
    pol = NetworkPolicy(allow=["public.example", "internal.example", "10.1.2.3"])
    dns = {
        "public.example": ["93.184.215.14"],
        "internal.example": ["10.1.2.3"],
        "mixed.example": ["93.184.215.14", "192.168.1.1"],
    }
    c = HttpClient(pol, resolver=lambda host, port: dns[host])
    far = time.monotonic() + 5
    assert c.addresses(parse_url("http://public.example/"), far) == ["93.184.215.14"]
    assert c.addresses(parse_url("http://internal.example/"), far) == ["10.1.2.3"]  # that IP is listed
    assert c.addresses(parse_url("http://10.1.2.3/"), far) == ["10.1.2.3"]
    c2 = HttpClient(
        NetworkPolicy(allow=["mixed.example", "v6.example"]),
        resolver=lambda h, p: dns.get(h, ["::ffff:127.0.0.1"]),
    )
    for host in ["mixed.example", "v6.example"]:
        with pytest.raises(NetworkError) as ei:
            c2.addresses(parse_url(f"http://{host}/"), far)
        assert ei.value.kind is NetErrorKind.DENIED

    def slow(host: str, port: int) -> list[str]:
        time.sleep(2)
        return ["93.184.215.14"]

    c3 = HttpClient(NetworkPolicy(allow=["public.example"], connect_timeout_s=0.2), resolver=slow)
    with pytest.raises(NetworkError) as ei:
        c3.addresses(parse_url("http://public.example/"), far)
    assert ei.value.kind is NetErrorKind.TIMEOUT


async def test_a_tool_granted_network_reaches_only_its_allow_list(sandbox: Sandbox, server: Server) -> None:
    from pydantic import BaseModel

    from endure.sandbox import Tool

    class In(BaseModel):
        url: str

    class Out(BaseModel):
        status: int

    code = ("import json, sys, endure_http as h\nurl = json.load(sys.stdin)['url']\n"
            "try:\n    print(json.dumps({'status': h.get(url).status_code}))\n"
            "except h.NetworkDenied:\n    print(json.dumps({'status': -1}))\n")
    tool = Tool("fetch", "GET a URL", In, Out, python=code, network=policy(server))
    assert (await tool.call(sandbox, {"url": f"{server.base}/json"})).status == 200  # type: ignore[attr-defined]
    assert (await tool.call(sandbox, {"url": "http://10.0.0.1/x"})).status == -1  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="python= tools"):
        Tool("js", "x", In, Out, javascript="1", network=policy(server))
