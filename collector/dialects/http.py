"""The dialects' endpoints: each reads its product's body, names the site, translates, and hands the
events to `routes.ingest`, the way in of every event (no second write path); then answers as that
product does, since its clients judge success by it.

    POST /v1/{track,page,screen,identify,group,alias,batch}  Segment, RudderStack   200 {"success": true}
    POST /batch, /capture, /e, /i/v0/e (and with a slash)    PostHog                200 {"status": 1}
    POST /i/v1/analytics/events                              PostHog (v1 capture)   200 {"status": 1}
    POST /api/event                                          Plausible              202 ok
    POST /api/send                                           Umami                  200 {"ok": true}

Who is trusted (README "Trust model"): a Segment, RudderStack or PostHog request names its site by a
write key, which authenticates it as a server-side source, so its events' end-user IP and
User-Agent are believed. A Plausible or Umami request is a browser's, like `/collect`'s, unless an
Umami request carries `Authorization: Bearer <the site's write key>`.

CORS: a browser page may call these when its origin is in SLUICE_CORS_ORIGINS or in the site's
`allowed_origins` (`sluice sites add --origin`); a preflight, which does not say its site, passes
when some site allows the origin.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
import psycopg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from sluice.collector import routes
from sluice.collector.body import GZIP_MAGIC, gunzip, read_body
from sluice.collector.cors import AllowedOrigins, echoed, preflight_answer
from sluice.collector.dialects import plausible, posthog, segment, umami
from sluice.collector.dialects.shared import Translated
from sluice.collector.rejections import Rejection
from sluice.collector.sites import Site
from sluice.collector.validate import Batch, parse_sent_at
from sluice.http import JSONResponse
from sluice.metrics import count_rejected, count_request
from sluice.settings import Settings

SEGMENT_TYPES = ("track", "page", "screen", "identify", "group", "alias", "batch")
POSTHOG_PATHS = ("/batch", "/capture", "/e", "/i/v0/e")
_PREFLIGHT_HEADERS = "Content-Type, Content-Encoding, Authorization"


class Reading(NamedTuple):
    """A request read by its dialect: its events, and whether a write key made it a server source."""

    translated: Translated
    server: bool
    single: bool  # one event of its own: its refusal carries no batch index
    may_hold_nul: bool = True  # validate.Batch.may_hold_nul, when the dialect's JSON text says


# Reads a request into its events, raising Rejection (or psycopg.Error when the sites cannot be
# read); it adds the registered site the request names, if any, to the list (for its CORS origins).
Reader = Callable[[Request, list[Site]], Awaitable[Reading]]


class Dialect(NamedTuple):
    read: Reader
    accepted: Callable[[], Response]  # the product's own answer to a stored request


def dialect_routes(settings: Settings) -> list[BaseRoute]:
    cors = AllowedOrigins(settings.cors_origins)
    posthog_dialect = Dialect(_posthog, lambda: JSONResponse({"status": 1}))
    table: list[BaseRoute] = []
    for kind in SEGMENT_TYPES:
        table += _post(f"/v1/{kind}", Dialect(_segment(kind), lambda: JSONResponse({"success": True})), cors)
    for path in (*POSTHOG_PATHS, *(path + "/" for path in POSTHOG_PATHS), "/i/v1/analytics/events"):
        table += _post(path, posthog_dialect, cors)
    table += _post("/api/event", Dialect(_plausible, lambda: Response("ok", 202, media_type="text/plain")), cors)
    table += _post("/api/send", Dialect(_umami, lambda: JSONResponse({"ok": True})), cors)
    return table


def _post(path: str, dialect: Dialect, cors: AllowedOrigins) -> list[BaseRoute]:
    async def preflight(request: Request) -> Response:
        origin = request.headers.get("origin")
        collector = routes.collector_of(request.scope)
        allowed = origin is not None and (
            bool(cors.headers_for(origin.encode("latin-1"))) or await collector.sites.any_allows(origin)
        )
        if not allowed:
            return Response(status_code=204, headers={"Allow": "POST, OPTIONS"})
        assert origin is not None
        return preflight_answer(origin, "POST", _PREFLIGHT_HEADERS)

    return [
        Route(path, _DialectPost(path, dialect, cors), methods=["POST"]),
        Route(path, preflight, methods=["OPTIONS"]),
    ]


class _DialectPost:
    """A dialect's POST: a raw ASGI app, as routes.CollectPost is, so that sluice.routing.RawRoutesFirst
    calls it before Starlette's router and exception layer. Those cost a Segment batch of 100
    ~220,000 instructions (callgrind, bench/instructions.py --dialects: the router tries the 22
    routes before `/v1/batch` by their regexes), as much as translating nine of its messages. It
    counts its own answers in the metrics, under its route's path, as the router's CountRequests
    did; an exception is counted as its 500 by RawRoutesFirst."""

    def __init__(self, path: str, dialect: Dialect, cors: AllowedOrigins) -> None:
        self.path = path
        self.dialect = dialect
        self.cors = cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.answer(Request(scope, receive))
        count_request(self.path, response.status_code)
        await response(scope, receive, send)

    async def answer(self, request: Request) -> Response:
        received_at = datetime.now(UTC)
        found: list[Site] = []
        response: Response
        try:
            reading = await self.dialect.read(request, found)
            translated = reading.translated
            sent_at = parse_sent_at(translated.sent_at)
            batch = Batch(translated.events, sent_at, single=reading.single, may_hold_nul=reading.may_hold_nul)
            headers = routes.request_headers(request.scope)
            stored = await routes.ingest(
                request.scope, headers, batch, received_at, server=reading.server, end_users=translated.users
            )
        except Rejection as rejection:
            count_rejected(rejection.reason)
            response = JSONResponse({"status": "rejected", **rejection.as_json()}, rejection.status)
        except psycopg.Error as exc:
            response = routes.unavailable(f"the sites could not be read: {exc}")
        else:
            response = stored if isinstance(stored, Response) else self.dialect.accepted()
        origin = request.headers.get("origin")
        if origin is not None:
            response.raw_headers = [
                *response.raw_headers,
                *_cors_headers(self.cors, origin, found[0] if found else None),
            ]
        return response


def _cors_headers(cors: AllowedOrigins, origin: str, site: Site | None) -> list[tuple[bytes, bytes]]:
    raw = origin.encode("latin-1")
    headers = cors.headers_for(raw)
    if not headers and site is not None and origin in site.allowed_origins:
        headers = echoed(raw)
    return headers


def _invalid_key(product: str) -> Rejection:
    return Rejection("invalid_write_key", f"send a site's write key ({product}); `sluice sites add SITE` makes one")


async def _body(request: Request, limit: int | None = None) -> bytes:
    """The decompressed body: by Content-Encoding, and gzip also when only its bytes say so."""
    headers = routes.request_headers(request.scope)
    body = await (read_body(headers, request.receive) if limit is None else read_body(headers, request.receive, limit))
    if body[:2] == GZIP_MAGIC:
        body = await gunzip(body) if limit is None else await gunzip(body, limit)
    return body


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejection("malformed_json", f"the body is not valid JSON: {exc}") from None


async def _keyed_site(request: Request, write_key: str | None, found: list[Site], product: str) -> Site:
    """The site a write key names, else the 401."""
    if write_key is None:
        raise _invalid_key(product)
    site = await routes.collector_of(request.scope).sites.site_of_key(write_key)
    if site is None:
        raise _invalid_key("this one is not a site's")
    found.append(site)
    return site


def _basic_user(header: str | None) -> str | None:
    """The user of `Authorization: Basic base64(user:password)` (Segment's write key), else None."""
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _segment(kind: str) -> Reader:
    async def read(request: Request, found: list[Site]) -> Reading:
        try:
            body = await _body(request, segment.MAX_BATCH_BYTES)
        except Rejection as rejection:
            if rejection.reason != "body_too_large":
                raise
            raise Rejection("batch_too_large", f"the body exceeds {segment.MAX_BATCH_BYTES} bytes") from None
        doc = _json(body)
        write_key = _basic_user(request.headers.get("authorization")) or segment.write_key_of(doc)
        site = await _keyed_site(request, write_key, found, "HTTP Basic auth with the key as user, or writeKey")
        translated = segment.translate(doc, site.site_id, kind, len(body))
        # JSON writes U+0000 only as an escape: without one in the body, no event can hold it
        return Reading(translated, server=True, single=kind != "batch", may_hold_nul=b"\\u0000" in body)

    return read


async def _posthog(request: Request, found: list[Site]) -> Reading:
    body = await _body(request)
    if request.headers.get("content-type", "").split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded":
        body = posthog.decode_form(body)
        if body[:2] == GZIP_MAGIC:
            body = await gunzip(body)
    doc = _json(body)
    # (the bearer token: posthog-node's v1 capture)
    api_key = _bearer(request) or posthog.api_key_of(doc) or request.query_params.get("token")
    site = await _keyed_site(request, api_key, found, "api_key or token in the body")
    translated = posthog.translate(doc, site.site_id)
    return Reading(translated, server=True, single=len(translated.events) == 1)


async def _registered(request: Request, site_id: str, found: list[Site]) -> None:
    """A browser dialect's site, when it is registered (for its CORS origins)."""
    site = await routes.collector_of(request.scope).sites.get(site_id)
    if site is not None:
        found.append(site)


async def _plausible(request: Request, found: list[Site]) -> Reading:
    translated = plausible.translate(_json(await _body(request)))
    if len(translated.events) == 1:
        await _registered(request, translated.events[0]["siteId"], found)
    return Reading(translated, server=False, single=len(translated.events) == 1)


async def _umami(request: Request, found: list[Site]) -> Reading:
    translated = umami.translate(_json(await _body(request)))
    site_id = translated.events[0]["siteId"]
    await _registered(request, site_id, found)
    token = _bearer(request)
    if token is None:
        return Reading(translated, server=False, single=True)
    # a server sending for its end users: the write key of the site it names
    keyed = await routes.collector_of(request.scope).sites.site_of_key(token)
    if keyed is None or keyed.site_id != site_id:
        raise _invalid_key("Bearer: the write key of payload.website")
    return Reading(translated, server=True, single=True)
