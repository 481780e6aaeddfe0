"""The console's HTTP server (aiohttp, on the node's event loop): the pages, their fragments, the
JSON API and the static script and stylesheet.

Requests are checked in one middleware, in this order: the Host header (a console bound to
loopback answers only to loopback names, so a web page cannot reach it by DNS rebinding), who
is asking (bearer token, or the sign-in cookie), and for a change made with the cookie the
`X-Endure-Console` header (which another site's form cannot send: no cross-site request forgery).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from endure.runtime.auth import bearer
from endure.runtime.config import ConfigError
from endure.runtime.console import pages
from endure.runtime.console.access import SESSION_COOKIE, SESSION_TTL_S, Access, Principal
from endure.runtime.console.data import ConsoleData, ConsoleError
from endure.runtime.console.sources import ConsoleSources

log = logging.getLogger("endure.console")

STATIC = Path(__file__).resolve().parent / "static"
CHANGE_HEADER = "X-Endure-Console"  # sent by the page script with every change made through a cookie
_WHO = web.RequestKey("who", Principal)
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _params(request: web.Request) -> dict[str, str]:
    return {k: request.query.get(k, "") for k in request.query}


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ConsoleError(400, f"{name} must be a whole number, got {raw!r}") from None


def _float_param(request: web.Request, name: str, default: float) -> float:
    raw = request.query.get(name, "")
    try:
        return float(raw) if raw else default
    except ValueError:
        raise ConsoleError(400, f"{name} must be a number, got {raw!r}") from None


def _safe_next(url: str) -> str:
    """Where to go after signing in: a path on this console only."""
    return url if url.startswith("/") and not url.startswith("//") and "\\" not in url else "/"


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


class ConsoleServer:
    def __init__(self, sources: ConsoleSources) -> None:
        self.sources = sources
        self.data = ConsoleData(sources)
        self.access = Access(sources.auth, sources.admin_token_sha256, sources.tenants)
        self._runner: web.AppRunner | None = None
        self._loopback_only = True

    # ------------------------------------------------------------------ lifecycle

    async def start(self, address: str) -> str:
        """Listen on address (HOST:PORT, port 0 for a free one); the address it serves on."""
        host, _, port = address.rpartition(":")
        self._loopback_only = _is_loopback(host)
        # A stopping node waits at most a second for the console's requests (long polls included).
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host.strip("[]"), int(port), reuse_address=True)
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(f"the console cannot listen on {address}: {exc}") from exc
        self._runner = runner
        bound = runner.addresses[0]
        shown = host if host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"{shown}:{bound[1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=1 << 20)
        r = app.router
        r.add_get("/", self._root)
        r.add_get("/login", self._login_form)
        r.add_post("/login", self._login)
        r.add_post("/logout", self._logout)
        r.add_get("/invocations", self._invocations_page)
        r.add_get("/invocations/{id}", self._invocation_page)
        r.add_get("/invocations/{id}/header", self._header_fragment)
        r.add_get("/invocations/{id}/journal", self._journal_fragment)
        r.add_get("/services", self._services_page)
        r.add_get("/state", self._state_page)
        r.add_get("/tenants", self._tenants_page)
        r.add_get("/cluster", self._cluster_page)
        r.add_get("/api/whoami", self._api_whoami)
        r.add_get("/api/invocations", self._api_invocations)
        r.add_get("/api/invocations/{id}", self._api_invocation)
        r.add_get("/api/invocations/{id}/journal", self._api_journal)
        r.add_get("/api/invocations/{id}/journal/{index}", self._api_entry)
        r.add_get("/api/invocations/{id}/stream", self._api_stream)
        r.add_post("/api/invocations/{id}/{action}", self._api_action)
        r.add_get("/api/services", self._api_services)
        r.add_get("/api/deployments", self._api_deployments)
        r.add_get("/api/state", self._api_keyed)
        r.add_get("/api/state/{service}/keys", self._api_keys)
        r.add_get("/api/state/{service}/keys/{key}", self._api_object)
        r.add_get("/api/tenants", self._api_tenants)
        r.add_post("/api/limits", self._api_limits)
        r.add_get("/api/cluster", self._api_cluster)
        r.add_static("/static", STATIC, append_version=False)
        return app

    # ------------------------------------------------------------------ the checks

    def _who(self, request: web.Request) -> tuple[Principal | None, bool]:
        """(who is asking, whether by cookie); a bearer header wins over the cookie."""
        header = request.headers.get("Authorization")
        if header:
            return self.access.principal(bearer((("authorization", header),))), False
        return self.access.session(request.cookies.get(SESSION_COOKIE)), True

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        api = request.path.startswith("/api/")
        try:
            if self._loopback_only and not _is_loopback(request.url.host or ""):
                raise ConsoleError(403, "this console answers to loopback addresses only (it is bound to one)")
            if not (request.path.startswith("/static/") or request.path == "/login"):
                who, by_cookie = self._who(request)
                if who is None:
                    if api or request.method != "GET":
                        raise ConsoleError(401, "sign in: send 'Authorization: Bearer <admin token or API key>'")
                    raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='')}")
                if (by_cookie and request.method not in ("GET", "HEAD") and request.path != "/logout"
                        and self.access.required and request.headers.get(CHANGE_HEADER) != "1"):
                    raise ConsoleError(403, f"a change made with the sign-in cookie needs the {CHANGE_HEADER} header")
                request[_WHO] = who
            response = await handler(request)
        except ConsoleError as exc:
            response = self._error(request, api, exc.status, str(exc))
        except web.HTTPException as exc:
            if exc.status >= 400 and api:
                response = web.json_response({"error": exc.reason}, status=exc.status)
            else:
                raise
        except Exception:
            log.exception("console: %s %s failed", request.method, request.path)
            response = self._error(request, api, 500, "the console failed to answer (see the runtime's log)")
        response.headers.update(_SECURITY_HEADERS)
        return response

    def _error(self, request: web.Request, api: bool, status: int, message: str) -> web.Response:
        if api:
            return web.json_response({"error": message}, status=status)
        return _html(pages.error_page(request.get(_WHO) or Principal(None), status, message), status)

    # ------------------------------------------------------------------ sign in

    async def _root(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/invocations")

    async def _login_form(self, request: web.Request) -> web.StreamResponse:
        if not self.access.required:
            raise web.HTTPFound("/")
        return _html(pages.login_page("", _safe_next(request.query.get("next", "/"))))

    async def _login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        next_url = _safe_next(str(form.get("next", "/")))
        signed = self.access.sign_in(str(form.get("token", "")))
        if signed is None:
            return _html(pages.login_page("That is neither the admin token nor a tenant's API key.", next_url), 401)
        response = web.HTTPFound(next_url)
        response.set_cookie(SESSION_COOKIE, signed[0], httponly=True, samesite="Strict", path="/",
                            max_age=SESSION_TTL_S)
        raise response

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        self.access.sign_out(request.cookies.get(SESSION_COOKIE))
        response = web.HTTPFound("/login" if self.access.required else "/")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response

    # ------------------------------------------------------------------ pages

    async def _invocations_page(self, request: web.Request) -> web.StreamResponse:
        who, params = request[_WHO], _params(request)
        listed = await self.data.invocations(who, params)
        services = [name for name, *_ in self.sources.registry.services()]
        return _html(pages.invocations_page(who, listed, params, services))

    async def _invocation_page(self, request: web.Request) -> web.StreamResponse:
        inv = await self.data.invocation(request[_WHO], request.match_info["id"], 0, pages.JOURNAL_PAGE)
        return _html(pages.invocation_page(request[_WHO], inv))

    async def _header_fragment(self, request: web.Request) -> web.StreamResponse:
        inv = await self.data.invocation(request[_WHO], request.match_info["id"], 0, 1)
        return _html(pages.invocation_header(inv))

    async def _journal_fragment(self, request: web.Request) -> web.StreamResponse:
        page = await self.data.journal(request[_WHO], request.match_info["id"], _int_param(request, "from", 0),
                                       _int_param(request, "limit", pages.JOURNAL_PAGE))
        response = _html(pages.journal_items(page["id"], page["entries"]))
        response.headers["X-Journal-Next"] = "" if page["next"] is None else str(page["next"])
        response.headers["X-Journal-Length"] = str(page["journal_length"])
        return response

    async def _services_page(self, request: web.Request) -> web.StreamResponse:
        return _html(pages.services_page(request[_WHO], await self.data.services(request[_WHO])))

    async def _state_page(self, request: web.Request) -> web.StreamResponse:
        who, params = request[_WHO], _params(request)
        service, key = params.get("service", ""), params.get("key", "")
        keys = await self.data.object_keys(who, service, params) if service else None
        obj = await self.data.object(who, service, key, params) if service and key else None
        return _html(pages.state_page(who, self.data.keyed_services(), params, keys, obj))

    async def _tenants_page(self, request: web.Request) -> web.StreamResponse:
        who = request[_WHO]
        data = await self.data.tenants(who, _int_param(request, "days", 14))
        return _html(pages.tenants_page(who, data, request.query.get("counter", "") or "invocations"))

    async def _cluster_page(self, request: web.Request) -> web.StreamResponse:
        return _html(pages.cluster_page(request[_WHO], await self.data.cluster(request[_WHO])))

    # ------------------------------------------------------------------ the JSON API

    async def _api_whoami(self, request: web.Request) -> web.StreamResponse:
        who = request[_WHO]
        return web.json_response({"admin": who.admin, "tenant": who.tenant, "access_required": self.access.required})

    async def _api_invocations(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await self.data.invocations(request[_WHO], _params(request)))

    async def _api_invocation(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await self.data.invocation(
            request[_WHO], request.match_info["id"], _int_param(request, "journal_from", 0),
            _int_param(request, "journal_limit", 100)))

    async def _api_journal(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await self.data.journal(
            request[_WHO], request.match_info["id"], _int_param(request, "from", 0),
            _int_param(request, "limit", 100)))

    async def _api_entry(self, request: web.Request) -> web.StreamResponse:
        raw = request.match_info["index"]
        if not raw.isdigit():
            raise ConsoleError(400, f"an entry index is a whole number, got {raw!r}")
        return web.json_response(await self.data.entry(request[_WHO], request.match_info["id"], int(raw)))

    async def _api_stream(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await self.data.stream(
            request[_WHO], request.match_info["id"], _int_param(request, "after", 0), _float_param(request, "wait", 0)))

    async def _api_action(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        return web.json_response(await self.data.act(request[_WHO], request.match_info["id"],
                                                     request.match_info["action"], str(body.get("deployment", ""))))

    async def _api_services(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await self.data.services(request[_WHO]))

    async def _api_deployments(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await self.data.deployments(request[_WHO]))

    async def _api_keyed(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"services": self.data.keyed_services()})

    async def _api_keys(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await self.data.object_keys(request[_WHO], request.match_info["service"],
                                                             _params(request)))

    async def _api_object(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await self.data.object(request[_WHO], request.match_info["service"],
                                                        request.match_info["key"], _params(request)))

    async def _api_tenants(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await self.data.tenants(request[_WHO], _int_param(request, "days", 14)))

    async def _api_limits(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await self.data.set_limits(request[_WHO], await self._json_body(request)))

    async def _api_cluster(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await self.data.cluster(request[_WHO]))

    @staticmethod
    async def _json_body(request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise ConsoleError(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise ConsoleError(400, "the body is a JSON object")
        return body
