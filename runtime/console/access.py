"""Who is looking at the console: the admin (every tenant) or one tenant, from a bearer token or a
sign-in cookie.

Access is required when auth is on or an admin token is configured, as for the admin API; then
the admin token (by digest) signs in as the admin and, with auth on, a tenant's API key as that
tenant. A sign-in keeps the secret on the server, in memory, behind a random session id in an
HttpOnly, SameSite=Strict cookie: a restart signs everyone out.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

from endure.runtime.auth import TenantResolver, Unauthenticated, digest

SESSION_COOKIE = "endure_console"
SESSION_TTL_S = 12 * 3600
_MAX_SESSIONS = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str | None  # None: the admin, who sees every tenant
    token: str | None = None  # the secret presented (None with access open)

    @property
    def admin(self) -> bool:
        return self.tenant is None


class Access:
    def __init__(self, auth: bool, admin_token_sha256: str | None, tenants: TenantResolver) -> None:
        self._auth = auth
        self._admin = admin_token_sha256
        self._tenants = tenants
        self._sessions: dict[str, tuple[Principal, float]] = {}

    @property
    def required(self) -> bool:
        return self._auth or self._admin is not None

    def principal(self, token: str | None) -> Principal | None:
        """Who token signs in as; None for a wrong or missing one (the admin when access is open)."""
        if not self.required:
            return Principal(None)
        if not token:
            return None
        if self._admin is not None and hmac.compare_digest(digest(token), self._admin):
            return Principal(None, token)
        if self._auth:
            try:
                return Principal(self._tenants.tenant((("authorization", f"Bearer {token}"),)), token)
            except Unauthenticated:
                return None
        return None

    def sign_in(self, token: str) -> tuple[str, Principal] | None:
        """A new session id for token, or None if it signs in as nobody."""
        who = self.principal(token)
        if who is None:
            return None
        now = time.monotonic()
        if len(self._sessions) >= _MAX_SESSIONS:
            self._sessions = {k: v for k, v in self._sessions.items() if v[1] > now}
            while len(self._sessions) >= _MAX_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = (who, now + SESSION_TTL_S)
        return sid, who

    def session(self, sid: str | None) -> Principal | None:
        if not self.required:
            return Principal(None)
        found = self._sessions.get(sid or "")
        if found is None:
            return None
        if found[1] <= time.monotonic():
            del self._sessions[sid or ""]
            return None
        return found[0]

    def sign_out(self, sid: str | None) -> None:
        self._sessions.pop(sid or "", None)
