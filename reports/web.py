"""What the dashboard's HTML pages share: the templates, their security headers, and the sign-in cookie.

The cookie (`sluice_session`, signed by `access.sign_session`) is HttpOnly (no script reads it),
SameSite=Strict (no other site's page can make the browser send it, which together with the Origin
check on the sign-in and sign-out forms is the CSRF defence: no token in the forms is needed), and
Secure when the browser reached Sluice over https: directly, or through a trusted proxy that says so
in `X-Forwarded-Proto`.
"""

from __future__ import annotations

import secrets
import urllib.parse
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from sluice.collector.client_ip import client_ip
from sluice.reports.access import SESSION_COOKIE, SESSION_MAX_AGE_S
from sluice.settings import Settings

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("sluice.reports", "templates"),
    autoescape=True,  # every value on the page (paths, referrers, UTM tags) is the visitors' text
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def raw_value(value: object) -> str:
    """A number as the API's JSON writes it, for `<data value=...>`: empty for null."""
    return "" if value is None else repr(value)


TEMPLATES.filters["raw"] = raw_value


def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A rendered page that nobody caches or frames, and that runs only its own inline style and script
    (the nonce): a value that escaped escaping still could not run. So the templates use no `style=`
    attributes (bars are SVG rectangles, whose sizes are attributes)."""
    nonce = secrets.token_urlsafe(16)
    html = TEMPLATES.get_template(template).render(nonce=nonce, **context)
    policy = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
        "img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    headers = {
        "Cache-Control": "no-store",
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }
    return HTMLResponse(html, status_code, headers=headers)


def is_https(request: Request, settings: Settings) -> bool:
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else None
    _, trusted = client_ip(peer, {}, settings.trusted_proxies)
    # nginx sets it to its own $scheme; a chain of proxies appends, the nearest one last.
    forwarded = request.headers.get("x-forwarded-proto", "").rpartition(",")[2].strip().lower()
    return trusted and forwarded == "https"


def set_session(response: Response, request: Request, settings: Settings, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_MAX_AGE_S,
        path="/",  # the API's CSV links under /api/v1 read it too
        httponly=True,
        samesite="strict",
        secure=is_https(request, settings),
    )


def clear_session(response: Response, request: Request, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=is_https(request, settings)
    )


def same_origin(request: Request) -> bool:
    """A form post that came from one of Sluice's own pages (the CSRF check beside SameSite=Strict).

    Browsers send `Origin` with every POST and `Sec-Fetch-Site` with every request; a client that
    sends neither is not a browser acting for someone else. The host is compared without the port:
    nginx passes `Host` without it ($host), and cookies are not kept apart by port either."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    origin_host = urllib.parse.urlsplit(origin).hostname
    own_host = urllib.parse.urlsplit("//" + request.headers.get("host", "")).hostname
    return origin_host is not None and origin_host == own_host


def local_target(raw: str | None, default: str) -> str:
    """Where to go after signing in: a path on this server only (never `//elsewhere` or a URL)."""
    if not raw or not raw.startswith("/") or raw.startswith(("//", "/\\")) or any(c in raw for c in "\r\n\\"):
        return default
    return raw
