"""Who may read the reports: the read token (`SLUICE_READ_TOKEN`) or the admin token, as a bearer
token or as a signed session cookie that the dashboard's login form issues.

The cookie holds `role.expires.signature`: the role (`read` or `admin`), the Unix time it expires,
and HMAC-SHA256 over both with a key derived from the configured tokens. Nothing is stored on the
server; changing either token changes the key, which logs every session out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from functools import wraps
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from sluice.http import Handler, error_response
from sluice.settings import Settings

Role = Literal["read", "admin"]
SESSION_COOKIE = "sluice_session"
SESSION_MAX_AGE_S = 7 * 24 * 3600  # the cookie's lifetime: its signed expiry, and Max-Age
_ROLES: tuple[Role, ...] = ("read", "admin")


def _token_of(settings: Settings, role: Role) -> str:
    return settings.admin_token if role == "admin" else settings.read_token


def _signing_key(settings: Settings) -> bytes:
    material = f"sluice-session\0{settings.admin_token}\0{settings.read_token}".encode()
    return hashlib.sha256(material).digest()


def _signature(settings: Settings, payload: str) -> str:
    digest = hmac.new(_signing_key(settings), payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_session(settings: Settings, role: Role, *, now: float | None = None, ttl_s: int = SESSION_MAX_AGE_S) -> str:
    """The cookie value for a session of `role`, valid for `ttl_s` seconds from `now`."""
    if not _token_of(settings, role):
        raise ValueError(f"no token is configured for role {role!r}: nobody can hold such a session")
    payload = f"{role}.{int((time.time() if now is None else now) + ttl_s)}"
    return f"{payload}.{_signature(settings, payload)}"


def verify_session(settings: Settings, value: str, *, now: float | None = None) -> Role | None:
    """The role of a cookie value that this server signed and that has not expired, else None."""
    name, _, rest = value.partition(".")
    expires, _, signature = rest.partition(".")
    role = next((r for r in _ROLES if r == name), None)
    if role is None or not expires.isdigit() or not _token_of(settings, role):
        return None
    if not hmac.compare_digest(signature.encode(), _signature(settings, f"{role}.{expires}").encode()):
        return None
    if int(expires) <= (time.time() if now is None else now):
        return None
    return role


def role_of_token(settings: Settings, token: str) -> Role | None:
    """The role a token grants: admin first, so an admin keeps the controls."""
    for role in reversed(_ROLES):
        expected = _token_of(settings, role)
        if expected and hmac.compare_digest(token.encode(), expected.encode()):
            return role
    return None


def reader_of(request: Request, settings: Settings | None = None) -> Role | None:
    """Who is asking: "read" or "admin" from `Authorization: Bearer` or the session cookie, else None.

    `settings` defaults to the serving process's (the app's lifespan state)."""
    settings = settings or request.state.settings
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return role_of_token(settings, token.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    return verify_session(settings, cookie) if cookie else None


def readers_only(settings: Settings, handler: Handler) -> Handler:
    """The reports' guard: the read or the admin token (bearer or cookie); 401 JSON without it."""

    @wraps(handler)
    async def guarded(request: Request) -> Response:
        if not (settings.read_token or settings.admin_token):
            message = "reports are disabled: set SLUICE_READ_TOKEN (or SLUICE_ADMIN_TOKEN) to enable them"
            return error_response("forbidden", message)
        if reader_of(request, settings) is None:
            message = "send 'Authorization: Bearer <SLUICE_READ_TOKEN>' (or the admin token)"
            return error_response("unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="sluice"'})
        return await handler(request)

    return guarded
