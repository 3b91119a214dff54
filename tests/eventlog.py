"""Writes events into the raw log the way the collector does (COPY, one transaction per call), and
reads the ETL's tables back."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg import sql

from sluice.etl import jobs

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

_COLUMNS = (
    "event_id, site_id, event_type, occurred_at, client_timestamp, received_at, visitor_id, session_id, "
    "ip_hash, country, region, city, user_agent, payload"
)


def at(text: str) -> datetime:
    """'2026-03-01 12:00' (UTC) -> an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def event(
    event_type: str = "pageview",
    *,
    at_: str | datetime,
    site: str = "s1",
    visitor: str | None = "v1",
    session: str | None = None,
    received: str | datetime | None = None,
    ip_hash: str | None = "ab12",
    country: str | None = "FR",
    region: str | None = None,
    city: str | None = None,
    user_agent: str | None = CHROME,
    **payload: Any,
) -> dict[str, Any]:
    """One event as the collector would store it; `payload` holds the extra camelCase fields."""
    occurred = at(at_) if isinstance(at_, str) else at_
    received_at = (
        occurred + timedelta(seconds=1)
        if received is None
        else (at(received) if isinstance(received, str) else received)
    )
    body: dict[str, Any] = {"eventType": event_type, "siteId": site, "timestamp": occurred.isoformat(), **payload}
    body.setdefault("eventId", str(uuid.uuid4()))
    if visitor is not None:
        body["visitorId"] = visitor
    if session is not None:
        body["sessionId"] = session
    if "url" in body and "path" not in body:
        body["path"] = "/" + body["url"].split("://", 1)[-1].partition("/")[2].split("?")[0]
    return {
        "event_id": body["eventId"],
        "site_id": site,
        "event_type": event_type,
        "occurred_at": occurred,
        "client_timestamp": occurred,
        "received_at": received_at,
        "visitor_id": visitor,
        "session_id": session,
        "ip_hash": ip_hash,
        "country": country,
        "region": region,
        "city": city,
        "user_agent": user_agent,
        "payload": body,
    }


def insert(conn: psycopg.Connection, events: Iterable[Mapping[str, Any]]) -> None:
    """COPYs the events in one transaction, then waits until an ETL run can see them."""
    with conn.transaction(), conn.cursor().copy(f"copy events ({_COLUMNS}) from stdin") as copy:
        for e in events:
            copy.write_row([*(e[c] for c in _COLUMNS.split(", ")[:-1]), orjson.dumps(e["payload"]).decode()])
    settle(conn)


def settle(conn: psycopg.Connection, timeout_s: float = 20) -> None:
    """Waits until every inserted event is below the snapshot xmin (other sessions on a shared
    server may hold it back for a moment), so the next run processes all of them."""
    deadline = time.monotonic() + timeout_s
    while True:
        row = conn.execute(
            "select coalesce(max(txid) < pg_snapshot_xmin(pg_current_snapshot()), true) from events"
        ).fetchone()
        if row and row[0]:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("events still above the snapshot xmin: a long transaction is open somewhere")
        time.sleep(0.02)


def rows(conn: psycopg.Connection, query: str | sql.Composed, params: Any = None) -> list[dict[str, Any]]:
    cursor = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cursor.execute(query, params).fetchall()


def primary_key(conn: psycopg.Connection, table: str) -> list[str]:
    found = conn.execute(
        """select a.attname
           from pg_index as i
           cross join lateral unnest(i.indkey) with ordinality as k (attnum, position)
           inner join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = k.attnum
           where i.indrelid = %s::regclass and i.indisprimary
           order by k.position""",
        (table,),
    ).fetchall()
    return [str(name) for (name,) in found]


def snapshot(conn: psycopg.Connection) -> dict[str, list[dict[str, Any]]]:
    """Every table an ETL job writes (etl/jobs.py), each in the order of its primary key."""
    return {
        table: rows(
            conn,
            sql.SQL("select * from {} order by {}").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, primary_key(conn, table)))
            ),
        )
        for table in jobs.TABLES
    }
