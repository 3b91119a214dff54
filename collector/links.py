"""Short links: `GET /l/{short_code}` answers 302 to the link's target at once and records a click.

The answer never waits for PostgreSQL, nor for the click. Each process keeps every link in memory
(`LinkTable`), reloading those changed since it last looked every `REFRESH_S` seconds, so a redirect
is a dict lookup, also while PostgreSQL is slow or down. The redirect is a raw ASGI app: it writes
the 302 (its bytes made once per link) and only then appends the click's raw facts to the
`ClickQueue`, one list append. One task empties that queue in batches: it makes the events (IP
hash, country) and hands each batch to the group-commit writer as one request.

What a redirect promises (README "Short links"): its click is in this process's queue when the 302
goes out, and durable (committed, or fsync'd in the spool while PostgreSQL is away) normally
within a few milliseconds. A batch the writer refuses (PostgreSQL away with no room in the spool)
stays queued and is tried again, every `RETRY_S` at most, so an outage loses nothing; a graceful
stop (SIGTERM) writes what is queued before the writer stops. Lost are only the clicks queued
when the process dies without stopping (SIGKILL, a crash: the last few milliseconds' worth) and,
past `MAX_QUEUED_CLICKS` queued, the oldest (counted and logged). A click cannot be acknowledged
as durable before the 302 without making every redirect wait for a commit or an fsync, which
is what the short-link path must not do (seed 004).

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
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send

from sluice.collector.rejections import Rejection
from sluice.collector.validate import MAX_ID_CHARS, Event, to_event
from sluice.collector.writer import Sender, WriteFailed
from sluice.db import connect
from sluice.http import JSONResponse, error_response
from sluice.metrics import CLICK_QUEUE, CLICKS_DROPPED, CLICKS_STORED
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
# Clicks held while the writer refuses them (PostgreSQL away and the spool full); past this the
# oldest go, counted. ~300 bytes each: ~30 MB at most.
MAX_QUEUED_CLICKS = 100_000
RETRY_S = 1.0
MAX_BATCH_CLICKS = 1000  # per write: well inside the writer's queue bound, whatever waited
# Clicks made into events between two yields to the event loop: `resolve` answers from its cache
# without yielding, so a 1,000-click batch of a backlog (PostgreSQL slow, then caught up) would
# hold the loop for its whole batch, and every redirect meanwhile would wait behind it.
CLICKS_PER_YIELD = 100
# as Starlette's RedirectResponse quotes a Location (a registered target is an http(s) URL already)
_LOCATION_SAFE = ":/%#?=@[]!$&'()*+,;"

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
        self.clicks = ClickQueue()
        self._failing = False
        self._answers: dict[str, list[tuple[bytes, bytes]]] = {}  # short code -> the 302's headers

    def get(self, short_code: str) -> Link | None:
        return self._links.get(short_code)

    def put(self, link: Link) -> None:
        """A change this process made itself, seen at once (the others see it at their next reload)."""
        self._links[link.short_code] = link
        self._answers.pop(link.short_code, None)

    def answer_headers(self, link: Link) -> list[tuple[bytes, bytes]]:
        """The 302's headers for `link`, made at its first redirect (a reload of it makes them again)."""
        headers = self._answers.get(link.short_code)
        if headers is None:
            location = urllib.parse.quote(link.target_url, safe=_LOCATION_SAFE).encode("latin-1")
            # no-store: every click must reach Sluice, not a cache
            headers = [(b"location", location), (b"cache-control", b"no-store"), (b"content-length", b"0")]
            self._answers[link.short_code] = headers
        return headers

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
            self._answers.pop(link.short_code, None)
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


class _Click(NamedTuple):
    """What a redirect knows of its click; the event is made from it off the request's path."""

    link: Link
    received_at: datetime
    peer: str | None
    headers: dict[str, str]  # lowercase names


class ClickQueue:
    """The redirects' clicks on their way to the writer: appended after each 302, written in
    batches (of up to MAX_BATCH_CLICKS) by `run()`, one at a time; a batch the writer refuses
    stays at the head of the queue and is tried again."""

    def __init__(self) -> None:
        self._queue: deque[_Click] = deque()
        self._wakeup = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopping = False
        self._lost = 0  # since the last click stored (logged when they are stored again)
        self._failing = False
        self.stored = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._queue)

    def append(self, click: _Click) -> None:
        queue = self._queue
        if len(queue) >= MAX_QUEUED_CLICKS:
            queue.popleft()
            self._lose(1, "the queue of clicks waiting for the writer is full")
        queue.append(click)
        self._wakeup.set()

    def _lose(self, count: int, why: str) -> None:
        if not self._lost:
            log.warning("links: %d click(s) not stored: %s (and so, until one is, are the next)", count, why)
        self._lost += count
        self.dropped += count
        CLICKS_DROPPED.inc(count)

    async def run(self, collector: Any) -> None:
        """Writes the queued clicks until `stop()`, then what is left (before the writer stops)."""
        while True:
            if not self._queue:
                CLICK_QUEUE.set(0)
                if self._stopping:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            CLICK_QUEUE.set(len(self._queue))
            batch = [self._queue[n] for n in range(min(len(self._queue), MAX_BATCH_CLICKS))]
            if await self._write(collector, batch):
                for _ in batch:  # new clicks may have come meanwhile, behind these
                    self._queue.popleft()
            elif self._stopping:
                self._lose(len(self._queue), "the collector stopped while PostgreSQL and the spool refused them")
                self._queue.clear()
                return
            else:
                with contextlib.suppress(TimeoutError):  # wait, unless told to stop
                    await asyncio.wait_for(self._stopped.wait(), RETRY_S)

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        self._wakeup.set()

    async def _write(self, collector: Any, batch: list[_Click]) -> bool:
        """True once the batch is durable (or none of it could ever be: a click no event can be made of)."""
        groups: list[tuple[list[Event], Sender]] = []
        try:
            for n, click in enumerate(batch, 1):
                if n % CLICKS_PER_YIELD == 0:
                    await asyncio.sleep(0)
                event = _click_event(click)
                if event is None:
                    continue
                hashed, place = await collector.origins.resolve(click.peer, click.headers, click.received_at.date())
                user_agent = click.headers.get("user-agent")
                if user_agent is not None:
                    user_agent = user_agent[:MAX_USER_AGENT_CHARS].replace("\x00", "")
                sender = Sender(click.received_at, hashed, place.country, user_agent, place.region, place.city)
                groups.append(([event], sender))
            if groups:
                await collector.writer.write_many(groups)
        except (WriteFailed, psycopg.Error) as exc:
            if not self._failing:
                why = "links: %d click(s) wait to be stored, tried again every %.0f s: %s"
                log.warning(why, len(batch), RETRY_S, exc)
            self._failing = True
            return False
        if self._failing:
            log.warning("links: the clicks that waited are stored")
            self._failing = False
        if self._lost:
            log.warning("links: clicks are stored again; %d were lost", self._lost)
            self._lost = 0
        self.stored += len(groups)
        CLICKS_STORED.inc(len(groups))
        return True


def _click_event(click: _Click) -> Event | None:
    link = click.link
    raw: dict[str, Any] = {"eventType": "click", "siteId": link.site_id, "shortCode": link.short_code}
    raw["target"] = link.target_url
    referrer = click.headers.get("referer")
    if referrer:
        raw["referrer"] = referrer[:MAX_URL_CHARS]
    try:
        event = to_event(raw, click.received_at, timedelta(0), click.received_at)
    except Rejection as rejection:  # not expected: every field is the link's or bounded here
        log.warning("links: a click on %r could not be made an event: %s", link.short_code, rejection)
        return None
    return event


_NOT_FOUND = HTMLResponse(NOT_FOUND_PAGE, 404, headers={"Cache-Control": "no-store"})


class Redirect:
    """`GET`/`HEAD {prefix}/{short_code}`, a raw ASGI app: the 302 first, then the click queued."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        received_at = datetime.now(UTC)
        state = scope["state"]
        table: LinkTable = state["links"]
        link = table.get(scope["path_params"]["short_code"])
        if link is None or link.disabled:
            await _NOT_FOUND(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 302, "headers": table.answer_headers(link)})
        await send({"type": "http.response.body", "body": b""})
        if scope["method"] == "GET":  # a HEAD (a link checker, a preview) is no click
            headers: dict[str, str] = {}
            for raw_name, raw_value in scope["headers"]:
                name = raw_name.decode("latin-1")
                value = raw_value.decode("latin-1")
                headers[name] = f"{headers[name]},{value}" if name in headers else value
            client = scope.get("client")
            table.clicks.append(_Click(link, received_at, client[0] if client else None, headers))


redirect = Redirect()


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
async def running(table: LinkTable, collector: Any) -> AsyncIterator[None]:
    """The reloading task and the clicks' writer for the app's lifespan; at its end (before the
    writer stops) the queued clicks are written."""
    with contextlib.suppress(psycopg.Error):
        await table.reload()  # start with the links, when PostgreSQL is there
    task = asyncio.create_task(table.run(), name="sluice-links")
    clicks = asyncio.create_task(table.clicks.run(collector), name="sluice-clicks")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        table.clicks.stop()
        await clicks
