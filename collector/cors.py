"""CORS for `/collect`, lean on the hot path.

Starlette's CORSMiddleware answers the preflights here. For everything else it is replaced by a
few lines, because it wraps every request and rebuilds the response headers, a sizeable share of
the collector's CPU per request (bench/README.md); this only appends two headers when an allowed
Origin is present. `POST /collect` adds them itself (`AllowedOrigins.headers_for`),
with no middleware around it at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send


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
        return [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]


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
            await self.preflights(scope, receive, send)
            return
        extra = self.allowed.headers_for(origin)
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
