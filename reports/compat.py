"""The endpoints of the systems Sluice replaces (shared/seeds), with their shapes, under /analytics.

A client built against those documents switches to Sluice without changes. Same token rules as the
reports API (the read or the admin token). Clicks are the `clicks` table's rows: click events and
events carrying a `shortCode`, bots left out; unique means distinct visitors. The event summaries
and the per-user statistics read hourly_event_stats and user_stats, which count every event, bots
included. Days and hours are UTC; "today" is since 00:00, "this week" since Monday 00:00, "this
month" since the 1st.
`POST /analytics/aggregate` is the ETL's own endpoint (etl/api.py), as it runs the ETL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sluice.http import Handler, JSONResponse, error_response
from sluice.reports import api
from sluice.reports.access import readers_only
from sluice.reports.periods import midnight
from sluice.reports.queries import all_rows
from sluice.settings import Settings

TOP = 10
MAX_DAYS = 3660
MAX_HOURS = 24 * 366

Row = dict[str, Any]


class NotFound(Exception):
    """Nothing to answer about what was asked: `error` is a code of sluice/errors.py (its status too)."""

    def __init__(self, error: str, message: str, field: str) -> None:
        super().__init__(message)
        self.error, self.message, self.field = error, message, field


def _calendar(now: datetime) -> dict[str, datetime]:
    today = now.date()
    return {
        "today": midnight(today),
        "week": midnight(today - timedelta(days=today.weekday())),
        "month": midnight(today.replace(day=1)),
    }


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# Click statistics -------------------------------------------------------------------------------


async def _click_stats(
    conn: AsyncConnection[Any], where: sql.Composable, params: dict[str, Any], now: datetime, days: int
) -> Row:
    """Counts, breakdowns and daily clicks of the non-bot clicks matching `where` (on `clicks as c`)."""
    first = now.date() - timedelta(days=days - 1)
    params = {**params, **_calendar(now), "range_start": midnight(first), "top": TOP}
    base = sql.SQL("from clicks as c where not c.is_bot and {}").format(where)

    def grouped(key: str, *, in_range: bool, nulls: str) -> sql.Composed:
        # key: a fixed SQL expression over `c`; nulls: the name shown for a missing value
        range_clause = "and c.occurred_at >= %(range_start)s" if in_range else ""
        return sql.SQL(
            "select coalesce({key}, {nulls}) as name, count(*) as count {base} " + range_clause + " group by 1"
            " order by count desc, name limit %(top)s"
        ).format(key=sql.SQL(key), nulls=sql.Literal(nulls), base=base)

    totals = (
        await all_rows(
            conn,
            sql.SQL(
                """select count(*) as total_clicks, count(distinct c.visitor_key) as unique_clicks,
                          count(*) filter (where c.occurred_at >= %(today)s) as clicks_today,
                          count(*) filter (where c.occurred_at >= %(week)s) as clicks_this_week,
                          count(*) filter (where c.occurred_at >= %(month)s) as clicks_this_month,
                          count(*) filter (where c.occurred_at >= %(range_start)s) as clicks_in_range,
                          count(distinct c.visitor_key) filter (where c.occurred_at >= %(range_start)s)
                              as visitors_in_range
                   {base}"""
            ).format(base=base),
            params,
        )
    )[0]
    daily = {
        r["day"]: r["clicks"]
        for r in await all_rows(
            conn,
            sql.SQL(
                "select (c.occurred_at at time zone 'UTC')::date as day, count(*) as clicks {base}"
                " and c.occurred_at >= %(range_start)s group by 1"
            ).format(base=base),
            params,
        )
    }
    return {
        **totals,
        "top_countries": await all_rows(conn, grouped("c.country", in_range=False, nulls="Unknown"), params),
        "top_referers": await all_rows(conn, grouped("url_host(c.referrer)", in_range=False, nulls="Direct"), params),
        "range_referrers": await all_rows(conn, grouped("url_host(c.referrer)", in_range=True, nulls="Direct"), params),
        "devices": await all_rows(conn, grouped("c.device_type", in_range=True, nulls="unknown"), params),
        "browsers": await all_rows(conn, grouped("c.browser", in_range=True, nulls="unknown"), params),
        "daily": [(day.isoformat(), daily.get(day, 0)) for day in _days(first, now.date())],
    }


def _as_map(rows: list[Row]) -> dict[str, int]:
    return {row["name"]: row["count"] for row in rows}


async def short_code_stats(
    conn: AsyncConnection[Any], short_code: str, now: datetime, *, days: int = 30, site: str | None = None
) -> Row:
    """Seed 001's per-link statistics (all time, with today, this week and this month) and seed
    000's for the last `days` days. NotFound when no site has clicks with that code, or (409) when
    several have and `site` does not say which."""
    found = await all_rows(
        conn,
        "select distinct site_id from clicks where short_code = %(code)s and not is_bot order by site_id",
        {"code": short_code},
    )
    sites = [r["site_id"] for r in found]
    if site is not None and site not in sites:
        raise NotFound("unknown_short_code", f"no clicks with short code {short_code!r} in site {site!r}", "site")
    if not sites:
        raise NotFound("unknown_short_code", f"no clicks with short code {short_code!r}", "short_code")
    if site is None and len(sites) > 1:
        message = f"short code {short_code!r} has clicks in several sites ({', '.join(sites)}): add ?site="
        raise NotFound("ambiguous_short_code", message, "site")
    where = sql.SQL("c.short_code = %(code)s and c.site_id = %(site)s")
    stats = await _click_stats(conn, where, {"code": short_code, "site": site or sites[0]}, now, days)
    return {
        "short_code": short_code,
        "site": site or sites[0],
        "total_clicks": stats["total_clicks"],
        "unique_clicks": stats["unique_clicks"],
        "clicks_today": stats["clicks_today"],
        "clicks_this_week": stats["clicks_this_week"],
        "clicks_this_month": stats["clicks_this_month"],
        "top_countries": stats["top_countries"],
        "top_referers": stats["top_referers"],
        "click_timeline": [{"date": day, "clicks": n} for day, n in stats["daily"]],
        "clicks_in_range": stats["clicks_in_range"],
        "date_range_days": days,
        "device_breakdown": _as_map(stats["devices"]),
        "browser_breakdown": _as_map(stats["browsers"]),
        "top_referrers": _as_map(stats["range_referrers"]),
        "daily_clicks": dict(stats["daily"]),
    }


async def global_stats(conn: AsyncConnection[Any], now: datetime, *, days: int = 30, site: str | None = None) -> Row:
    """Seed 001's global statistics over the last `days` days (every site, or `site`)."""
    where = sql.SQL("c.site_id = %(site)s") if site else sql.SQL("true")
    first = midnight(now.date() - timedelta(days=days - 1))
    where_in_range = sql.SQL("{} and c.occurred_at >= %(first)s").format(where)
    stats = await _click_stats(conn, where_in_range, {"site": site, "first": first}, now, days)
    top_urls = await all_rows(
        conn,
        sql.SQL(
            """select c.short_code, count(*) as clicks from clicks as c
               where not c.is_bot and c.short_code is not null and {}
               group by 1 order by clicks desc, c.short_code limit %(top)s"""
        ).format(where_in_range),
        {"site": site, "first": first, "top": TOP},
    )
    return {
        "site": site,
        "date_range_days": days,
        "total_clicks": stats["clicks_in_range"],
        "unique_visitors": stats["visitors_in_range"],
        "clicks_today": stats["clicks_today"],
        "clicks_this_week": stats["clicks_this_week"],
        "top_urls": top_urls,
        "device_breakdown": _as_map(stats["devices"]),
        "browser_breakdown": _as_map(stats["browsers"]),
        "top_referrers": _as_map(stats["range_referrers"]),
        "daily_clicks": dict(stats["daily"]),
    }


# Events -----------------------------------------------------------------------------------------


async def event_summary(conn: AsyncConnection[Any], now: datetime, *, hours: int = 24, site: str | None = None) -> Row:
    """Seed 002's summary from hourly_event_stats: per event type over the last `hours` whole UTC
    hours (the current one included), `count` (every event, bots included, as that table counts)
    and `avg_duration_ms` (over the events carrying a durationMs, each hour and route weighed by
    its timed_count; null if none)."""
    current_hour = now.replace(minute=0, second=0, microsecond=0)
    since = current_hour - timedelta(hours=hours - 1)
    rows = await all_rows(
        conn,
        sql.SQL(
            """select event_type, sum(count)::bigint as count,
                      round((sum(avg_duration_ms * timed_count) / nullif(sum(timed_count), 0))::numeric, 3)
                          as avg_duration_ms
               from hourly_event_stats
               where hour >= %(since)s and hour <= %(until)s {}
               group by event_type order by event_type"""
        ).format(sql.SQL("and site_id = %(site)s") if site else sql.SQL("")),
        {"since": since, "until": current_hour, "site": site},
    )
    return {
        "period_hours": hours,
        "since": since.isoformat(),
        "timestamp": now.isoformat(),
        "site": site,
        "summary": {
            r["event_type"]: {
                "count": r["count"],
                "avg_duration_ms": None if r["avg_duration_ms"] is None else float(r["avg_duration_ms"]),
            }
            for r in rows
        },
    }


async def user_stats(conn: AsyncConnection[Any], user_id: str) -> Row:
    """Seed 002's per-user statistics from user_stats, summed over the sites that know the user: a
    userId the events sent, else a visitor key (a visitorId). Events by type, sessions, pageviews,
    first and last activity; every event counts, bots included, as that table counts. NotFound
    when no site has events of it."""
    found = await all_rows(
        conn,
        """select site_id, first_seen_at, last_seen_at, events, events_by_type, sessions, pageviews
           from user_stats where user_key = %(id)s order by site_id""",
        {"id": user_id},
    )
    if not found:
        raise NotFound("unknown_user", f"no events of user or visitor {user_id!r}", "user_id")
    by_type: dict[str, int] = {}
    for row in found:
        for event_type, events in row["events_by_type"].items():
            by_type[event_type] = by_type.get(event_type, 0) + events
    return {
        "user_id": user_id,
        "sites": [r["site_id"] for r in found],
        "events_by_type": dict(sorted(by_type.items())),
        "total_events": sum(r["events"] for r in found),
        "sessions": sum(r["sessions"] for r in found),
        "pageviews": sum(r["pageviews"] for r in found),
        "first_activity": min(r["first_seen_at"] for r in found).astimezone(UTC).isoformat(),
        "last_activity": max(r["last_seen_at"] for r in found).astimezone(UTC).isoformat(),
    }


# Routes -----------------------------------------------------------------------------------------

Endpoint = Callable[[Request, AsyncConnection[Any]], Awaitable[Row]]


def _endpoint(settings: Settings, endpoint: Endpoint) -> Handler:
    async def handler(request: Request) -> Response:
        try:
            async with api.connection(request, settings) as conn:
                return JSONResponse(await endpoint(request, conn))
        except NotFound as exc:
            return error_response(exc.error, exc.message, field=exc.field)

    return readers_only(settings, api.answer_errors(handler))


async def _stats(request: Request, conn: AsyncConnection[Any]) -> Row:
    days = api.int_param(request.query_params, "days", 30, 1, MAX_DAYS)
    site = request.query_params.get("site") or None
    return await short_code_stats(conn, request.path_params["short_code"], api.now(), days=days, site=site)


async def _global(request: Request, conn: AsyncConnection[Any]) -> Row:
    days = api.int_param(request.query_params, "days", 30, 1, MAX_DAYS)
    return await global_stats(conn, api.now(), days=days, site=request.query_params.get("site") or None)


async def _summary(request: Request, conn: AsyncConnection[Any]) -> Row:
    hours = api.int_param(request.query_params, "hours", 24, 1, MAX_HOURS)
    return await event_summary(conn, api.now(), hours=hours, site=request.query_params.get("site") or None)


async def _user(request: Request, conn: AsyncConnection[Any]) -> Row:
    return await user_stats(conn, request.path_params["user_id"])


async def _dashboard(request: Request, conn: AsyncConnection[Any]) -> Row:
    now, site = api.now(), request.query_params.get("site") or None
    return {
        "last_24_hours": (await event_summary(conn, now, hours=24, site=site))["summary"],
        "last_7_days": (await event_summary(conn, now, hours=7 * 24, site=site))["summary"],
        "timestamp": now.isoformat(),
    }


def routes(settings: Settings) -> list[BaseRoute]:
    def route(path: str, endpoint: Endpoint) -> Route:
        return Route(path, _endpoint(settings, endpoint), methods=["GET"])

    return [
        route("/analytics/stats/{short_code}", _stats),
        route("/analytics/global", _global),
        route("/analytics/summary", _summary),
        route("/analytics/user/{user_id}", _user),
        route("/analytics/dashboard", _dashboard),
    ]
