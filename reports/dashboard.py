"""The dashboard's routes: `/` (to a site's page), `/dashboard`, `/login`, `/logout`, the favicon.

The page is HTML rendered here from the same query functions the API answers with (`view.py` turns
their dicts into what the template shows), so every number on it is the API's. Without credentials
the page sends the browser to the sign-in form, which trades a token for the session cookie.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Awaitable, Callable
from importlib.resources import files

import psycopg
from psycopg_pool import PoolTimeout
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from sluice.reports import api, view
from sluice.reports.access import reader_of, role_of_token, sign_session
from sluice.reports.web import clear_session, local_target, page, same_origin, set_session
from sluice.settings import Settings

MAX_FORM_BYTES = 4096
FAVICON = (files("sluice.reports") / "static" / "favicon.svg").read_bytes()
FAVICON_HEADERS = {"Cache-Control": "public, max-age=86400"}


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, 303, headers={"Cache-Control": "no-store"})


def _disabled() -> Response:
    text = "Reports are disabled: set SLUICE_READ_TOKEN (or SLUICE_ADMIN_TOKEN) and restart Sluice."
    return page("message.html", 403, heading="Reports are disabled", text=text, links=[])


def _login_url(request: Request) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login?" + urllib.parse.urlencode({"next": here})


def _unavailable(exc: Exception) -> Response:
    text = f"PostgreSQL is out of reach ({exc}); this page answers again once it is back."
    response = page("message.html", 503, heading="The database is unavailable", text=text, links=[])
    response.headers["Retry-After"] = "5"
    return response


def _readers_page(
    settings: Settings, handler: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    """A page for the read or admin token's holders; anyone else is sent to the sign-in form."""

    async def guarded(request: Request) -> Response:
        if not (settings.read_token or settings.admin_token):
            return _disabled()
        if reader_of(request, settings) is None:
            return _see_other(_login_url(request))
        try:
            return await handler(request)
        except (PoolTimeout, psycopg.OperationalError) as exc:
            return _unavailable(exc)

    return guarded


def routes(settings: Settings) -> list[BaseRoute]:
    async def home(request: Request) -> Response:
        site = await view.default_site(view.Source(lambda: api.connection(request, settings)))
        query = {"site": site, "period": view.DEFAULT_PERIOD} if site else {}
        return _see_other("/dashboard" + (f"?{urllib.parse.urlencode(query)}" if query else ""))

    async def dashboard(request: Request) -> Response:
        now = api.now()  # the API's clock: the page and the API agree on what `7d` is
        source = view.Source(lambda: api.connection(request, settings))
        started = time.perf_counter()
        result = await view.dashboard(source, request.query_params, now, settings.max_future_skew_s)
        if result.redirect is not None:
            return _see_other(result.redirect)
        asked = time.perf_counter()
        response = page(result.template, result.status_code, **result.context)
        # What the page cost this server (browsers' developer tools and bench/report.py read it).
        response.headers["Server-Timing"] = (
            f"queries;dur={(asked - started) * 1000:.1f}, render;dur={(time.perf_counter() - asked) * 1000:.1f}"
        )
        return response

    async def login_form(request: Request) -> Response:
        if not (settings.read_token or settings.admin_token):
            return _disabled()
        target = local_target(request.query_params.get("next"), "/")
        if reader_of(request, settings) is not None:
            return _see_other(target)
        return page("login.html", next=target, error=None)

    async def login(request: Request) -> Response:
        if not (settings.read_token or settings.admin_token):
            return _disabled()
        if not same_origin(request):
            return page("login.html", 403, next="/", error="This form can only be sent from Sluice's own page.")
        form = await _form(request)
        if form is None:
            return page("login.html", 400, next="/", error="Send the form as the sign-in page does.")
        target = local_target(form.get("next"), "/")
        role = role_of_token(settings, form.get("token", "").strip())
        if role is None:
            return page("login.html", 401, next=target, error="That is neither the read token nor the admin token.")
        response = _see_other(target)
        set_session(response, request, settings, sign_session(settings, role))
        return response

    async def logout(request: Request) -> Response:
        if not same_origin(request):
            return page("message.html", 403, heading="Not signed out", text="Sign out from Sluice's page.", links=[])
        response = _see_other("/login")
        clear_session(response, request, settings)
        return response

    async def favicon(request: Request) -> Response:
        return Response(FAVICON, media_type="image/svg+xml", headers=FAVICON_HEADERS)

    return [
        Route("/", _readers_page(settings, home)),
        Route("/dashboard", _readers_page(settings, dashboard)),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        # Browsers ask for /favicon.ico on their own when a page names none (an image, a PDF).
        Route("/favicon.svg", favicon),
        Route("/favicon.ico", favicon),
    ]


async def _form(request: Request) -> dict[str, str] | None:
    """The sign-in form's fields, or None when the body is not a small urlencoded form."""
    if request.headers.get("content-type", "").partition(";")[0].strip() != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        fields = urllib.parse.parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return None
    return {name: values[0] for name, values in fields.items()}
