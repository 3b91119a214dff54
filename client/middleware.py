"""`SluiceMiddleware`: one `request` event per HTTP request of the app it wraps (pure ASGI).

    app.add_middleware(SluiceMiddleware, endpoint="http://sluice.internal:8000", site_id="api", token="…")

Each event: `method`, `route` (the route template, `/users/{id}`; the raw path only when no route
matched), `status`, `durationMs`, `responseBytes`, `userId` (from the `user_id` callable), and in
`context` the end user's IP and User-Agent, which the collector believes only from a source that
sends an ingest token (README: Sending from servers). Recording is an append to the client's
queue: when Sluice is slow or down the app's responses do not change, and what cannot be kept is
counted in `client.stats.dropped`.

The route template is what Starlette leaves in `scope["route"]` after routing (FastAPI: its
effective route, prefixes of `include_router` included), prefixed with the path of any `Mount` it
went through (read from the growth of `root_path`). An app that sets no `scope["route"]` reports
the raw path.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from sluice.client.api import AsyncClient, Client

log = logging.getLogger("sluice.client")

# The ASGI shapes, spelled here so that the client needs no ASGI framework.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_time_ns = time.time_ns
_perf_ns = time.perf_counter_ns


def _globs(patterns: Iterable[str]) -> Callable[[str], Any] | None:
    """One regex for every pattern (`/health`, `/static/*`: fnmatch's syntax, `*` crossing `/`)."""
    patterns = list(patterns)
    if not patterns:
        return None
    return re.compile("|".join(fnmatch.translate(p) for p in patterns)).match


class SluiceMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        /,
        endpoint: str | None = None,
        site_id: str | None = None,
        token: str | None = None,
        *,
        client: Client | AsyncClient | None = None,
        user_id: Callable[[Scope], Any] | None = None,
        client_ip: Callable[[Scope], str | None] | None = None,
        exclude_paths: Iterable[str] = (),
        sample_rate: float = 1.0,
        **client_options: Any,
    ) -> None:
        """Either `endpoint` and `site_id` (and `token`, an ingest token; `client_options` go to
        the Client made from them, which the app's lifespan shutdown closes), or a `client` you made
        (flushed at shutdown; you close it). `user_id(scope)` runs after the response, so what an
        inner authentication middleware put in the scope is there. `client_ip(scope)`: the end
        user's address; by default the ASGI peer (`scope["client"]`), which uvicorn's
        `--proxy-headers` sets from a trusted proxy's `X-Forwarded-For`."""
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be between 0 and 1, not {sample_rate}")
        if client is None:
            if endpoint is None or site_id is None:
                raise ValueError("SluiceMiddleware needs endpoint= and site_id=, or client=")
            client = Client(endpoint, site_id, token, **client_options)
            self._owns_client = True
        else:
            self._owns_client = False
        self.app = app
        self.client = client
        self._user_id = user_id
        self._client_ip = client_ip
        self._excluded = _globs(exclude_paths)
        self._sample_rate = sample_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, self._on_shutdown(send))
            return
        if (
            kind != "http"
            or (self._excluded is not None and self._excluded(scope["path"]))
            or (self._sample_rate < 1.0 and random.random() >= self._sample_rate)
        ):
            await self.app(scope, receive, send)
            return

        started_ns, started = _time_ns(), _perf_ns()
        root_path = scope.get("root_path", "")
        status = 500  # what the server answers when the app raises before its response starts
        sent_bytes = 0

        async def counting_send(message: Message) -> None:
            nonlocal status, sent_bytes
            kind = message["type"]
            if kind == "http.response.body":
                sent_bytes += len(message.get("body", b""))
            elif kind == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            try:
                self._record(scope, root_path, started_ns, (_perf_ns() - started) / 1e6, status, sent_bytes)
            except Exception:  # the app's response is what matters: never fail it for an event
                log.debug("sluice middleware: could not record a request", exc_info=True)

    def _record(self, scope: Scope, root_path: str, at_ns: int, duration_ms: float, status: int, size: int) -> None:
        event: dict[str, Any] = {
            "eventType": "request",
            "siteId": self.client.site_id,
            "method": scope["method"],
            "route": _route(scope, root_path),
            "status": status,
            "durationMs": round(duration_ms, 3),
            "responseBytes": size,
        }
        if self._user_id is not None:
            try:
                user = self._user_id(scope)
            except Exception:
                log.debug("sluice middleware: user_id raised", exc_info=True)
                user = None
            if user is not None:
                event["userId"] = str(user)
        context: dict[str, str] = {}
        if self._client_ip is not None:
            ip = self._client_ip(scope)
        else:
            peer = scope.get("client")
            ip = peer[0] if peer else None
        if ip:
            context["ip"] = ip
        for name, value in scope["headers"]:
            if name == b"user-agent":
                context["userAgent"] = value.decode("latin-1")
                break
        if context:
            event["context"] = context
        self.client._record(at_ns, event)

    def _on_shutdown(self, send: Send) -> Send:
        """The lifespan's `send`: before the server hears that shutdown is complete, the queued
        events are sent (the client closed if this middleware made it, else flushed)."""

        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                recorder = self.client
                await asyncio.to_thread(recorder._close if self._owns_client else recorder._flush, None)
            await send(message)

        return lifespan_send


def _route(scope: Scope, root_path: str) -> str:
    route = scope.get("route")
    template = getattr(route, "path_format", None)
    # FastAPI leaves in scope["route"] the route as its router declared it (`/items/{name}`);
    # with the prefixes of include_router it is the effective route context (`/api/items/{name}`).
    fastapi_scope = scope.get("fastapi")
    if isinstance(fastapi_scope, dict):
        effective = getattr(fastapi_scope.get("effective_route_context"), "path_format", None)
        if isinstance(effective, str):
            template = effective
    if not isinstance(template, str):
        path: str = scope["path"]
        return path
    # Mounts passed on the way append what they matched to root_path (concrete text: a mount with
    # parameters in its own path shows their values).
    grown = scope.get("root_path", "")
    prefix = grown[len(root_path) :] if grown.startswith(root_path) else ""
    if hasattr(route, "routes"):  # the route is a Mount around an app that is no router (static files)
        return prefix + "/{path}"
    return prefix + template
