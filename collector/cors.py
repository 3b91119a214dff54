"""CORS for `/collect`, lean on the hot path.

Who may call: an origin in `SLUICE_CORS_ORIGINS` (default `*`), or one in the `allowed_origins` of
the registered site the request is for (`sluice sites add --origin`), as on the dialects'
endpoints (collector/dialects/http.py). A `POST /collect` is for the sites its events name: its
answer carries the headers when every one of them allows the origin (a body too broken to name
a site: when some site does, so that its page can read the error). A pixel `GET` is for its
`siteId`. A preflight does not say its site: it passes when some site allows the origin.

Starlette's CORSMiddleware answers the preflights of the global list here. For everything else it
is replaced by a few lines, because it wraps every request and rebuilds the response headers, a
sizeable share of the collector's CPU per request (bench/README.md); this only appends two headers
when an allowed Origin is present. `POST /collect` adds them itself (`AllowedOrigins.headers_for`,
then the sites' origins only when that list refuses), with no middleware around it at all.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from sluice.collector.sites import SiteDirectory

_PREFLIGHT_HEADERS = "Content-Type, Content-Encoding"


class AllowedOrigins:
    """`SLUICE_CORS_ORIGINS`, and the headers an answer to a request from an origin carries."""

    def __init__(self, allow_origins: Sequence[str]) -> None:
        self.names = tuple(allow_origins)
        self.allow_all = "*" in allow_origins
        self.origins = frozenset(origin.encode("latin-1") for origin in allow_origins)

    def headers_for(self, origin: bytes | None) -> list[tuple[bytes, bytes]]:
        """The headers a (non-preflight) answer to a request from `origin` carries: none if not allowed."""
        if origin is None:
            return []
        if self.allow_all:
            return [(b"access-control-allow-origin", b"*")]
        if origin not in self.origins:
            return []
        # With a list of origins the answer depends on the request's Origin: caches must know it.
        return echoed(origin)


def echoed(origin: bytes) -> list[tuple[bytes, bytes]]:
    """The headers that let a page of `origin` read an answer meant for it alone."""
    return [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]


async def site_headers(sites: SiteDirectory, origin: bytes, site_ids: set[str] | None) -> list[tuple[bytes, bytes]]:
    """When SLUICE_CORS_ORIGINS refused `origin`: the headers the sites' own origins grant, for a
    request for `site_ids` (None: it named none that could be read; then any site's origin will do)."""
    text = origin.decode("latin-1")
    allowed = await (sites.any_allows(text) if site_ids is None else sites.all_allow(site_ids, text))
    return echoed(origin) if allowed else []


def preflight_answer(origin: str, methods: str, headers: str) -> Response:
    """A preflight's 204 for an origin a site allows (the global list's are Starlette's)."""
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": methods,
            "Access-Control-Allow-Headers": headers,
            "Access-Control-Max-Age": "86400",
            "Vary": "Origin",
        },
    )


class CollectCORS:
    """The middleware of the `/collect` routes that take it (GET, OPTIONS): preflights, and the headers."""

    def __init__(self, app: ASGIApp, allowed: AllowedOrigins) -> None:
        self.app = app
        self.allowed = allowed
        self.preflights = CORSMiddleware(
            app,
            allow_origins=allowed.names,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Content-Encoding"],
            max_age=86400,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = None
        preflight = False
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                preflight = True
        if origin is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if preflight and scope["method"] == "OPTIONS":
            if not self.allowed.headers_for(origin) and await _sites(scope).any_allows(origin.decode("latin-1")):
                answer = preflight_answer(origin.decode("latin-1"), "GET, POST", _PREFLIGHT_HEADERS)
                await answer(scope, receive, send)
                return
            await self.preflights(scope, receive, send)  # the global list's, or its 400
            return
        extra = self.allowed.headers_for(origin)
        if not extra:
            extra = await site_headers(_sites(scope), origin, _query_site(scope))
        if not extra:
            await self.app(scope, receive, send)  # the browser withholds the answer from that page
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_cors)


def origin_of(scope: Scope) -> bytes | None:
    """The request's Origin header (the last, if sent twice), as CollectCORS reads it."""
    origin = None
    for name, value in scope["headers"]:
        if name == b"origin":
            origin = value
    return origin


def _sites(scope: Scope) -> SiteDirectory:
    sites: SiteDirectory = scope["state"]["collector"].sites
    return sites


def _query_site(scope: Scope) -> set[str] | None:
    """The pixel's site: its query's siteId (None when it names none)."""
    values = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1")).get("siteId")
    return {values[-1]} if values else None
