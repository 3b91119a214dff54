"""HTTP: `/collect` (POST and the GET pixel), `/health`, and the operators' `/events/*` views.

An event's way in, step by step: content type → body (size, decompression) → JSON shape → each
event checked into a typed `Event` → who sent it (IP hash, country) → the group-commit writer →
`202` only after COMMIT.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, LiteralString, NamedTuple

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sluice.collector import sources
from sluice.collector.body import check_content_type, read_body
from sluice.collector.client_ip import Origins
from sluice.collector.cors import AllowedOrigins, origin_of, site_headers
from sluice.collector.fault_log import FaultLog
from sluice.collector.rejections import Rejection
from sluice.collector.sites import SiteDirectory
from sluice.collector.validate import Batch, Event, parse_body, parse_sent_at, to_event
from sluice.collector.writer import GroupCommitWriter, Sender, WriteFailed
from sluice.http import JSONResponse, error_response
from sluice.metrics import count_accepted, count_rejected, count_request
from sluice.settings import Settings

log = logging.getLogger("sluice.collector")

MAX_USER_AGENT_CHARS = 1024
# A /health probe waits this long for a connection at most: a load balancer's probe must not take the
# full database timeout during an outage (issue 12), and the spool answers for the writes meanwhile.
HEALTH_PROBE_S = 0.5
RECENT_DEFAULT, RECENT_MAX = 20, 1000
_INTEGER = re.compile(r"-?[0-9]+")
# The smallest transparent 1x1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_SKEW = timedelta(0)
# Requests a worker handles at once (reading, validating, waiting for the writer), and their bodies'
# declared size. Past either a POST is answered 503 before its body is read: under a flood, each
# request's body and parsed events would otherwise stay in memory while the CPU catches up, and the
# process would grow without bound. A request is always admitted when none is in flight.
MAX_IN_FLIGHT = 256
MAX_IN_FLIGHT_BYTES = 4 * 1024 * 1024
_UNDECLARED_BYTES = 64 * 1024  # counted for a body sent without Content-Length (chunked)


class _InFlight:
    count = 0
    bytes = 0


_IN_FLIGHT = _InFlight()


@dataclass(frozen=True)
class Collector:
    """What the handlers need, opened in the lifespan and found in `request.state.collector`."""

    settings: Settings
    pool: AsyncConnectionPool
    writer: GroupCommitWriter
    origins: Origins
    migrations: tuple[str, ...]  # the versions of the package's migrations, read once at start-up
    sites: SiteDirectory
    faults: FaultLog = field(default_factory=lambda: FaultLog(log))  # the request path's repeated faults

    @cached_property  # read for every request
    def max_future(self) -> timedelta:
        return timedelta(seconds=self.settings.max_future_skew_s)


def _rejected(rejection: Rejection) -> Response:
    """A request turned away whole, before any of its events was read: counted once, by its code."""
    count_rejected(rejection.reason)
    return JSONResponse({"status": "rejected", **rejection.as_json()}, rejection.status)


def unavailable(reason: str) -> Response:
    return error_response("database_unavailable", reason, headers={"Retry-After": "1"}, status="unavailable")


def _overloaded() -> Response:
    message = "the collector is handling as many requests as it can hold; nothing was kept, retry later"
    return error_response("overloaded", message, headers={"Retry-After": "1"}, status="unavailable")


def collector_of(scope: Scope) -> Collector:
    collector: Collector = scope["state"]["collector"]  # request.state would wrap it per call
    return collector


def request_headers(scope: Scope) -> dict[str, str]:
    """The request headers as a dict: one pass, where each `request.headers.get` scans them all."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


class CollectPost:
    """`POST /collect`, the hot path: a raw ASGI app, routed like any other endpoint.

    Starlette hands a route whose endpoint is not a function the bare ASGI call, so no Request is
    built and no per-route exception wrapper or middleware runs; the CORS headers are added here
    rather than by wrapping `send`. What it raises reaches Starlette's handlers like any endpoint's.
    """

    def __init__(self, cors: AllowedOrigins) -> None:
        self.cors = cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        received_at = datetime.now(UTC)
        origin = origin_of(scope)
        cors = self.cors.headers_for(origin)  # a POST is never a preflight
        batch: Batch | None = None
        headers = request_headers(scope)
        declared = headers.get("content-length", "")
        size = int(declared) if declared.isdigit() else _UNDECLARED_BYTES
        if _IN_FLIGHT.count >= MAX_IN_FLIGHT or (_IN_FLIGHT.count and _IN_FLIGHT.bytes + size > MAX_IN_FLIGHT_BYTES):
            count_rejected("overloaded")
            response: Response | bytes = _overloaded()
        else:
            _IN_FLIGHT.count += 1
            _IN_FLIGHT.bytes += size
            try:
                check_content_type(headers)
                batch = parse_body(await read_body(headers, receive))
                response = await _ingest(scope, headers, batch, received_at, pixel=False)
            except Rejection as rejection:
                response = _rejected(rejection)
            except ClientDisconnect:
                # Nobody is left to answer, and nothing was stored: one line, no traceback.
                client = scope.get("client")
                peer = client[0] if client else "?"
                log.info("collector: a client (%s) disconnected before its body had arrived", peer)
                return
            finally:
                _IN_FLIGHT.count -= 1
                _IN_FLIGHT.bytes -= size
        if origin is not None and not cors:  # SLUICE_CORS_ORIGINS refused it: the sites' own origins
            cors = await site_headers(collector_of(scope).sites, origin, _named_sites(batch))
        # Dispatched before the router (sluice/routing.py), it counts its own answers in the metrics.
        if isinstance(response, bytes):  # the 202: the same message JSONResponse would send, built directly
            count_request("/collect", 202)
            raw = [(b"content-length", b"%d" % len(response)), (b"content-type", b"application/json"), *cors]
            await send({"type": "http.response.start", "status": 202, "headers": raw})
            await send({"type": "http.response.body", "body": response})
        else:
            count_request("/collect", response.status_code)
            if cors:
                response.raw_headers = [*response.raw_headers, *cors]
            await response(scope, receive, send)


def _named_sites(batch: Batch | None) -> set[str] | None:
    """The sites a batch's events name (None when it could not be read, or names none)."""
    if batch is None:
        return None
    named = {raw["siteId"] for raw in batch.events if isinstance(raw, dict) and isinstance(raw.get("siteId"), str)}
    return named or None


async def collect_get(request: Request) -> Response:
    if request.method != "GET":  # HEAD (a link checker, a prefetch) records nothing
        return Response(PIXEL, headers={"Cache-Control": "no-store"}, media_type="image/gif")
    received_at = datetime.now(UTC)
    event: dict[str, Any] = dict(request.query_params)
    # Objects travel in a query string as JSON text; anything else is left for validation to name.
    for name in ("props", "attribution"):
        if isinstance(event.get(name), str):
            with contextlib.suppress(orjson.JSONDecodeError):
                event[name] = orjson.loads(event[name])
    try:
        batch = Batch([event], parse_sent_at(event.get("sentAt")), single=True)
    except Rejection as rejection:
        return _rejected(rejection)
    response = await _ingest(request.scope, request_headers(request.scope), batch, received_at, pixel=True)
    assert isinstance(response, Response)
    return response


async def collect_options(request: Request) -> Response:
    # CORS preflights never get here (the CORS middleware answers them); a bare OPTIONS does.
    return Response(status_code=204, headers={"Allow": "GET, HEAD, POST, OPTIONS"})


class Accepted(NamedTuple):
    """What `ingest` stored (committed) and what of the batch it turned away."""

    event_ids: list[uuid.UUID]
    rejected: list[Rejection]


async def _ingest(
    scope: Scope, headers: dict[str, str], batch: Batch, received_at: datetime, *, pixel: bool
) -> Response | bytes:
    """The answer; for a POST's `202`, only its JSON body (`CollectPost` sends it)."""
    accepted = await ingest(scope, headers, batch, received_at)
    if isinstance(accepted, Response):
        return accepted
    if pixel:
        return Response(PIXEL, headers={"Cache-Control": "no-store"}, media_type="image/gif")
    body = {"status": "accepted", "event_ids": accepted.event_ids, "received_at": received_at}
    if accepted.rejected:
        body["rejected"] = [r.as_json() for r in accepted.rejected]
    return orjson.dumps(body)


async def ingest(
    scope: Scope,
    headers: dict[str, str],
    batch: Batch,
    received_at: datetime,
    *,
    server: bool | None = None,
    end_users: list[sources.EndUser] | None = None,
) -> Accepted | Response:
    """The one way in of every event, whatever endpoint or dialect it came by: validation, the
    known-sites rule, who sent it (IP hash, country; an end user's for a server source), then the
    group-commit writer. Accepted once committed; else the answer (a rejection, or a 503).

    `server`: whether the request is a server-side source (collector/sources.py), whose events'
    `context` names their end users. None: its Authorization header says (an ingest token); the
    dialects' endpoints pass True for a request they authenticated by a site's write key, False
    for a browser's. `end_users`: a server source's end users, one per event, when its dialect
    read them from its messages already (segment.translate); its events' `context` is then left."""
    collector: Collector = scope["state"]["collector"]  # collector_of, inlined: this runs for every request
    sent_at = batch.sent_at
    skew = received_at - sent_at if sent_at is not None else _NO_SKEW
    believed_until = received_at + collector.max_future
    may_hold_nul = batch.may_hold_nul
    if server is None:
        if "authorization" not in headers:  # a browser's: is_server_source's answer, without the call
            server = False
        else:
            try:  # a server source speaks for its end users (collector/sources.py)
                server = sources.is_server_source(headers, collector.settings.ingest_tokens)
            except sources.Unauthorized as unauthorized:
                return unauthorized.response()
    if end_users is None or not server:
        end_users = sources.take_contexts(batch.events, server)

    events = []
    indexes: list[int] = []  # each event's place in the batch
    rejected: list[Rejection] = []
    for index, raw in enumerate(batch.events):
        try:
            events.append(to_event(raw, received_at, skew, believed_until, may_hold_nul=may_hold_nul))
        except Rejection as rejection:
            rejected.append(rejection if batch.single else rejection.at(index))
        else:
            indexes.append(index)
    # the end user of each event kept (all of them, mostly)
    users: list[sources.EndUser] = []
    if end_users is not None:
        users = end_users if not rejected else [end_users[index] for index in indexes]
    if events and collector.settings.require_known_sites:
        try:
            events, users = await _of_known_sites(collector.sites, events, users, indexes, rejected, batch.single)
        except psycopg.Error as exc:
            log.error("collector: the sites could not be read: %s", exc)
            count_rejected("database_unavailable", len(events))
            return unavailable("the sites could not be read; nothing was kept, retry later")
    for turned_away in rejected:
        count_rejected(turned_away.reason)
    if not events:
        first = rejected[0]
        body = {"status": "rejected", **first.as_json()}
        if not batch.single:
            body["rejected"] = [r.as_json() for r in rejected]
        return JSONResponse(body, first.status)

    user_agent = headers.get("user-agent")
    if user_agent is not None:
        user_agent = user_agent[:MAX_USER_AGENT_CHARS].replace("\x00", "")
    try:
        client = scope.get("client")
        peer = client[0] if client else None
        if end_users is None:
            hashed, place = await collector.origins.resolve(peer, headers, received_at.date())
            await collector.writer.write(
                events, Sender(received_at, hashed, place.country, user_agent, place.region, place.city)
            )
        else:
            await collector.writer.write_many(await sources.senders(collector.origins, events, users, received_at))
    except (WriteFailed, psycopg.Error) as exc:
        # The writer has logged its failure; the salt lookup has not. Clients learn only to retry.
        if not isinstance(exc, WriteFailed):
            collector.faults.fault("salt unreadable", f"collector: the day's salt could not be read: {exc}")
        count_rejected("database_unavailable", len(events))
        return unavailable("the events could not be stored; nothing was kept, retry later")
    count_accepted(len(events))
    return Accepted([e.event_id for e in events], rejected)


async def _of_known_sites(
    directory: SiteDirectory,
    events: list[Event],
    users: list[sources.EndUser],
    indexes: list[int],
    rejected: list[Rejection],
    single: bool,
) -> tuple[list[Event], list[sources.EndUser]]:
    """SLUICE_REQUIRE_KNOWN_SITES: the events of registered sites; the others join `rejected`."""
    named = {event.site_id for event in events}
    known = await directory.known(named)
    if known == named:
        return events, users
    kept, kept_users = [], []
    for position, event in enumerate(events):
        if event.site_id in known:
            kept.append(event)
            if users:
                kept_users.append(users[position])
            continue
        message = f"site {event.site_id!r} is not registered (sluice sites add); SLUICE_REQUIRE_KNOWN_SITES is on"
        rejection = Rejection("unknown_site", message, field="siteId")
        rejected.append(rejection if single else rejection.at(indexes[position]))
    rejected.sort(key=lambda r: r.index or 0)
    return kept, kept_users


async def _scalar(request: Request, query: LiteralString) -> Any:
    """One value from a pooled connection; raises psycopg.Error when PostgreSQL is unreachable."""
    collector = collector_of(request.scope)
    async with collector.pool.connection(timeout=collector.settings.db_timeout_s) as conn:
        row = await (await conn.execute(query)).fetchone()
    return row[0] if row else None


async def health(request: Request) -> Response:
    """200 `ok` when the schema is at the package's latest migration; 200 `degraded` while events
    wait in the spool or PostgreSQL is away and the spool takes them; else 503, telling why."""
    collector = collector_of(request.scope)
    writer = collector.writer
    spool = writer.spool
    try:
        async with collector.pool.connection(timeout=min(collector.settings.db_timeout_s, HEALTH_PROBE_S)) as conn:
            applied, latest_applied = await _applied_migrations(conn, collector.settings.schema, collector.migrations)
    except psycopg.OperationalError as exc:  # PoolTimeout included: no connection could be had
        if spool is not None and spool.waiting_bytes < spool.max_bytes:  # the next write will go to the spool
            return JSONResponse({"status": "degraded", "database": "unreachable", "spool": _spool_state(writer)})
        message = f"database unreachable: {exc}"
        return error_response("database_unavailable", message, status="unavailable", database="unreachable")
    except psycopg.Error as exc:
        message = f"the schema's migrations could not be read: {exc}"
        return error_response("database_unavailable", message, status="unavailable", database="connected")
    pending = [version for version in collector.migrations if version not in applied]
    if not pending:
        if spool is not None and spool.waiting_bytes:
            spooled = _spool_state(writer)
            body = {"status": "degraded", "database": "connected", "schema_version": latest_applied, "spool": spooled}
            return JSONResponse(body)
        return JSONResponse({"status": "ok", "database": "connected", "schema_version": latest_applied})
    if latest_applied is None:
        schema, detail = "missing", f"no migration applied in schema {collector.settings.schema!r}"
    else:
        schema, detail = "behind", f"not applied: {', '.join(pending)}"
    return error_response(
        "migrations_pending",
        f"schema missing or behind: run `sluice migrate` ({detail})",
        status="unavailable",
        database="connected",
        schema=schema,
        schema_version=latest_applied,
        expected_schema_version=collector.migrations[-1],
        pending_migrations=pending,
    )


async def _applied_migrations(
    conn: psycopg.AsyncConnection[Any], schema: str, known: Sequence[str]
) -> tuple[set[str], str | None]:
    """Which of the `known` versions `schema_migrations` records, and the latest it records (None: none)."""
    cur = await conn.execute(
        "select 1 from pg_tables where schemaname = %s and tablename = 'schema_migrations'", (schema,)
    )
    if await cur.fetchone() is None:  # looked up first, so a fresh database logs no error per probe
        return set(), None
    cur = await conn.execute(
        """
        select array(select version from schema_migrations where version = any(%s)), max(version)
        from schema_migrations
        """,
        (list(known),),
    )
    row = await cur.fetchone()
    assert row is not None
    return set(row[0]), row[1]


def _spool_state(writer: GroupCommitWriter) -> dict[str, Any]:
    spool = writer.spool
    assert spool is not None
    return {
        "bytes": spool.waiting_bytes,
        "events": spool.waiting_events,
        "accepting": spool.waiting_bytes < spool.max_bytes,
    }


async def events_count(request: Request) -> Response:
    try:
        count = await _scalar(request, "select count(*) from events")
    except psycopg.Error as exc:
        return unavailable(str(exc))
    return JSONResponse({"count": count})


async def events_recent(request: Request) -> Response:
    collector = collector_of(request.scope)
    raw = request.query_params.get("limit", str(RECENT_DEFAULT))
    if not _INTEGER.fullmatch(raw):
        return _rejected(Rejection("bad_parameter", f"limit={raw[:40]!r} is not an integer", field="limit"))
    if not 1 <= int(raw) <= RECENT_MAX:
        message = f"limit={raw[:40]} is out of range: 1..{RECENT_MAX}"
        return _rejected(Rejection("invalid_value", message, field="limit"))
    try:
        async with collector.pool.connection(timeout=collector.settings.db_timeout_s) as conn:
            # Newest first by txid: its index is on every partition, so this reads `limit` rows per
            # partition at most, where ordering by received_at would sort whole partitions.
            cur = await conn.execute(
                """
                select event_id, site_id, event_type, occurred_at, client_timestamp, received_at,
                       visitor_id, session_id, ip_hash, country, user_agent, payload
                from events
                order by txid desc
                limit %s
                """,
                (int(raw),),
            )
            names = [d.name for d in cur.description or []]
            rows = await cur.fetchall()
    except psycopg.Error as exc:
        return unavailable(str(exc))
    return JSONResponse({"events": [dict(zip(names, row, strict=True)) for row in rows]})
