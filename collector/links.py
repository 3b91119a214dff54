"""Short links: `GET /l/{short_code}` answers 302 to the link's target at once and records a click.

The answer never waits for PostgreSQL. Each process keeps every link in memory (`LinkTable`),
reloading those changed since it last looked every `REFRESH_S` seconds, so a redirect is a dict
lookup, also while PostgreSQL is slow or down. The click goes to the group-commit writer in a task
of its own; the visitor has their 302 before it commits (a click lost to an outage is logged).
Only registered targets are redirected to: an unknown or disabled code gets a 404 page.

Links are added and disabled (never deleted: their clicks keep their meaning) by `sluice links`
and by `POST`/`GET /api/v1/sites/{site}/links`, through the plain functions below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import urllib.parse
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sluice.collector.rejections import Rejection
from sluice.collector.validate import MAX_ID_CHARS, to_event
from sluice.collector.writer import Sender, WriteFailed
from sluice.db import connect
from sluice.http import JSONResponse, error_response
from sluice.settings import Settings

log = logging.getLogger("sluice.collector")

SHORT_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_URL_CHARS = 2048
REFRESH_S = 2.0
# A change committed late may carry an updated_at a little older than rows already read: each
# reload looks back this far (reading a row again is harmless).
_LOOK_BACK = timedelta(seconds=60)
MAX_USER_AGENT_CHARS = 1024
NOT_FOUND_PAGE = "<!doctype html><title>Not found</title><h1>Not found</h1><p>This link does not exist.</p>\n"

_COLUMNS = "short_code, site_id, target_url, created_at, disabled, updated_at"


class Link(NamedTuple):
    short_code: str
    site_id: str
    target_url: str
    created_at: datetime
    disabled: bool
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "short_code": self.short_code,
            "site_id": self.site_id,
            "target_url": self.target_url,
            "created_at": self.created_at,
            "disabled": self.disabled,
        }


class LinkError(ValueError):
    """A link that cannot be added: `field` names the culprit (the CLI and the API say it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check(site_id: str, short_code: str, target_url: str) -> None:
    if not site_id or len(site_id) > MAX_ID_CHARS:
        raise LinkError("site", f"the site must be 1 to {MAX_ID_CHARS} characters")
    if not SHORT_CODE.fullmatch(short_code):
        raise LinkError("code", f"short code {short_code[:80]!r}: use 1 to 64 letters, digits, '_' or '-'")
    parts = urllib.parse.urlsplit(target_url)
    if (
        len(target_url) > MAX_URL_CHARS
        or parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in target_url)
    ):
        message = f"target {target_url[:80]!r} must be an http:// or https:// URL with a host, no spaces"
        raise LinkError("url", f"{message}, at most {MAX_URL_CHARS} characters")


def add(conn: psycopg.Connection, site_id: str, short_code: str, target_url: str) -> Link | None:
    """The new link; None when the code is taken (by any site: codes are unique across the installation)."""
    check(site_id, short_code, target_url)
    row = conn.execute(
        f"""insert into links (short_code, site_id, target_url) values (%s, %s, %s)
            on conflict (short_code) do nothing returning {_COLUMNS}""",
        (short_code, site_id, target_url),
    ).fetchone()
    return Link(*row) if row else None


def list_links(conn: psycopg.Connection, site_id: str | None = None) -> list[Link]:
    rows = conn.execute(
        f"select {_COLUMNS} from links where %(site)s::text is null or site_id = %(site)s order by site_id, short_code",
        {"site": site_id},
    ).fetchall()
    return [Link(*row) for row in rows]


def disable(conn: psycopg.Connection, site_id: str, short_code: str) -> Link | None:
    """The disabled link; None when the site has no such code."""
    row = conn.execute(
        f"""update links set disabled = true, updated_at = clock_timestamp()
            where site_id = %s and short_code = %s returning {_COLUMNS}""",
        (site_id, short_code),
    ).fetchone()
    return Link(*row) if row else None


class LinkTable:
    """Every link, in memory, kept fresh by `run()`; the redirect reads only this."""

    def __init__(self, pool: AsyncConnectionPool, timeout_s: float) -> None:
        self._pool = pool
        self._timeout_s = timeout_s
        self._links: dict[str, Link] = {}
        self._seen_until: datetime | None = None
        self._clicks: set[asyncio.Task[None]] = set()  # clicks being written, awaited at shutdown
        self._failing = False
        self._lost_clicks = 0

    def get(self, short_code: str) -> Link | None:
        return self._links.get(short_code)

    def put(self, link: Link) -> None:
        """A change this process made itself, seen at once (the others see it at their next reload)."""
        self._links[link.short_code] = link

    async def reload(self) -> None:
        since = self._seen_until - _LOOK_BACK if self._seen_until is not None else None
        async with self._pool.connection(timeout=self._timeout_s) as conn:
            cur = await conn.execute(
                f"select {_COLUMNS} from links where %(since)s::timestamptz is null or updated_at > %(since)s",
                {"since": since},
            )
            rows = await cur.fetchall()
        for row in rows:
            link = Link(*row)
            self._links[link.short_code] = link
            if self._seen_until is None or link.updated_at > self._seen_until:
                self._seen_until = link.updated_at
        if self._seen_until is None:
            self._seen_until = datetime.now(UTC)

    async def run(self) -> None:
        while True:
            try:
                await self.reload()
            except psycopg.Error as exc:  # keep serving the links already known
                if not self._failing:
                    log.warning("links: could not reload (redirects use the links known so far): %s", exc)
                self._failing = True
            else:
                self._failing = False
            await asyncio.sleep(REFRESH_S)

    def click_lost(self, link: Link, exc: Exception) -> None:
        # once per outage: a busy link would log every click of it
        if not self._lost_clicks:
            log.warning(
                "links: a click on %r was not stored: %s (and so, until one is, are the next)", link.short_code, exc
            )
        self._lost_clicks += 1

    def click_stored(self) -> None:
        if self._lost_clicks:
            log.warning("links: clicks are stored again; %d were lost", self._lost_clicks)
            self._lost_clicks = 0

    def record(self, write: asyncio.Task[None]) -> None:
        self._clicks.add(write)
        write.add_done_callback(self._clicks.discard)

    async def drain(self) -> None:
        """Waits for the clicks still being written (before the writer stops)."""
        if self._clicks:
            await asyncio.gather(*self._clicks, return_exceptions=True)


async def redirect(request: Request) -> Response:
    state = request.scope["state"]
    table: LinkTable = state["links"]
    code = request.path_params["short_code"]
    link = table.get(code)
    if link is None or link.disabled:
        return HTMLResponse(NOT_FOUND_PAGE, 404, headers={"Cache-Control": "no-store"})
    if request.method == "GET":  # a HEAD (a link checker, a preview) is no click
        table.record(asyncio.create_task(_store_click(request, link, table)))
    # no-store: every click must reach Sluice, not a cache
    return RedirectResponse(link.target_url, 302, headers={"Cache-Control": "no-store"})


async def _store_click(request: Request, link: Link, table: LinkTable) -> None:
    collector = request.scope["state"]["collector"]
    received_at = datetime.now(UTC)
    headers = request.headers
    raw: dict[str, Any] = {"eventType": "click", "siteId": link.site_id, "shortCode": link.short_code}
    raw["target"] = link.target_url
    referrer = headers.get("referer")
    if referrer:
        raw["referrer"] = referrer[:MAX_URL_CHARS]
    user_agent = headers.get("user-agent")
    if user_agent is not None:
        user_agent = user_agent[:MAX_USER_AGENT_CHARS].replace("\x00", "")
    try:
        event = to_event(raw, received_at, timedelta(0), received_at)
        client = request.scope.get("client")
        peer = client[0] if client else None
        hashed, place = await collector.origins.resolve(peer, headers, received_at.date())
        await collector.writer.write(
            [event], Sender(received_at, hashed, place.country, user_agent, place.region, place.city)
        )
    except (WriteFailed, psycopg.Error, Rejection) as exc:
        table.click_lost(link, exc)
    else:
        table.click_stored()


async def api_list(request: Request, settings: Settings) -> Response:
    site = request.path_params["site"]
    links = await asyncio.to_thread(_with_connection, settings, list_links, site)
    return JSONResponse({"links": [link.as_json() for link in links]})


async def api_add(request: Request, settings: Settings) -> Response:
    site = request.path_params["site"]
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        return error_response("malformed_json", f"the body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return error_response("malformed_json", 'the body must be an object: {"code": ..., "url": ...}')
    for name in ("code", "url"):
        if not isinstance(body.get(name), str):
            return error_response("missing_field", f"{name} is required, as a string", field=name)
    try:
        link = await asyncio.to_thread(_with_connection, settings, add, site, body["code"], body["url"])
    except LinkError as exc:
        return error_response("invalid_value", exc.message, field=exc.field)
    if link is None:
        message = f"short code {body['code']!r} is taken (codes are unique across sites)"
        return error_response("already_exists", message, field="code")
    table: LinkTable = request.scope["state"]["links"]
    table.put(link)
    return JSONResponse(link.as_json(), 201)


def _with_connection(settings: Settings, call: Any, *args: Any) -> Any:
    with connect(settings, autocommit=True, application_name="sluice-links") as conn:
        return call(conn, *args)


@contextlib.asynccontextmanager
async def running(table: LinkTable) -> AsyncIterator[None]:
    """The reloading task for the app's lifespan; at its end, the clicks in flight are written."""
    with contextlib.suppress(psycopg.Error):
        await table.reload()  # start with the links, when PostgreSQL is there
    task = asyncio.create_task(table.run(), name="sluice-links")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await table.drain()
