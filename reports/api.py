"""The reports API under /api/v1: JSON (or CSV) answers from reports/queries.py, behind the read token.

Parameters that do not parse get 400, values that mean nothing 422, each naming the parameter; an
unknown site 404; PostgreSQL out of reach 503. Always the project's error shape (sluice/http.py).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from functools import wraps
from typing import Any, cast

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sluice.http import Handler, JSONResponse, error_response, nul_parameter
from sluice.reports import periods, queries
from sluice.reports.access import readers_only
from sluice.reports.periods import BadParameter, Period
from sluice.settings import Settings

PREFIX = "/api/v1"
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000


class UnknownSite(Exception):
    def __init__(self, site: str) -> None:
        super().__init__(f"no data for site {site!r}: GET {PREFIX}/sites lists the sites with data")


def now() -> datetime:
    """The clock periods are read against (a function, so that tests can fix it)."""
    return datetime.now(UTC)


Report = Callable[[Request, AsyncConnection[Any], Settings], Awaitable[Response]]


def answer_errors(handler: Callable[[Request], Awaitable[Response]]) -> Handler:
    """Turns the reports' failures into the project's JSON errors."""

    @wraps(handler)
    async def answer(request: Request) -> Response:
        refused = nul_parameter(request)  # PostgreSQL's text cannot hold one (found by fuzzing)
        if refused is not None:
            return refused
        try:
            return await handler(request)
        except BadParameter as exc:
            # 400: the value does not parse; 422: it parses but means nothing (sluice/errors.py)
            code = "bad_parameter" if exc.status_code == 400 else "invalid_value"
            return error_response(code, exc.message, field=exc.field)
        except UnknownSite as exc:
            return error_response("site_not_found", str(exc), field="site")
        except (PoolTimeout, psycopg.OperationalError) as exc:
            message = f"PostgreSQL is unreachable: {exc}"
            return error_response("database_unavailable", message, headers={"Retry-After": "1"})

    return answer


def connection(request: Request, settings: Settings) -> AbstractAsyncContextManager[AsyncConnection[Any]]:
    """A connection of the serving process's read pool (autocommit, search_path set) for one request:
    the read replica's when SLUICE_READ_DATABASE_URL is set, else the primary's (sluice/app.py)."""
    pool: AsyncConnectionPool = request.state.read_pool
    return pool.connection(timeout=settings.db_timeout_s)


def _report(settings: Settings, report: Report) -> Handler:
    async def handler(request: Request) -> Response:
        async with connection(request, settings) as conn:
            return await report(request, conn, settings)

    return readers_only(settings, answer_errors(wraps(report)(handler)))


# Parameters -------------------------------------------------------------------------------------


def int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(400, name, f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise BadParameter(422, name, f"{name}={value} is out of range: {low}..{high}")
    return value


def choice(params: Mapping[str, str], name: str, default: str | None, allowed: tuple[str, ...]) -> str | None:
    value = params.get(name) or default
    if value is not None and value not in allowed:
        raise BadParameter(422, name, f"{name}={value!r} is not one of {', '.join(allowed)}")
    return value


def filter_param(params: Mapping[str, str]) -> queries.Filter | None:
    raw = params.get("filter")
    if not raw:
        return None
    dimension, sep, value = raw.partition(":")
    if not sep or not value:
        raise BadParameter(400, "filter", f"filter={raw!r} is not DIMENSION:VALUE")
    if dimension not in queries.FILTER_DIMENSIONS:
        allowed = ", ".join(queries.FILTER_DIMENSIONS)
        raise BadParameter(422, "filter", f"filter={raw!r}: cannot filter by {dimension!r}; filter by one of {allowed}")
    return queries.Filter(dimension, value)


def wants_csv(request: Request) -> bool:
    fmt = choice(request.query_params, "format", None, ("json", "csv"))
    if fmt is not None:
        return fmt == "csv"
    return "text/csv" in request.headers.get("accept", "")


async def site_period(request: Request, conn: AsyncConnection[Any]) -> tuple[str, Period]:
    """The path's site (404 when Sluice has no data of it) and the period the query asks for."""
    site = request.path_params["site"]
    days = await queries.site_days(conn, site)
    if days is None:
        raise UnknownSite(site)
    return site, periods.parse(request.query_params, now(), first_day=days[0])


def csv_response(request: Request, report: str, header: list[str], rows: list[list[Any]]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if value is None else value for value in row] for row in rows)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{request.path_params.get('site', 'sluice')}-{report}") + ".csv"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


# Reports ----------------------------------------------------------------------------------------


async def sites(request: Request, conn: AsyncConnection[Any], settings: Settings) -> Response:
    return JSONResponse({"sites": await queries.sites(conn)})


async def summary(request: Request, conn: AsyncConnection[Any], settings: Settings) -> Response:
    as_csv = wants_csv(request)
    site, period = await site_period(request, conn)
    data = await queries.summary(conn, site, period, filter_param(request.query_params))
    if as_csv:
        names = ["pageviews", "visitors", "sessions", "bounce_rate", "avg_session_duration_s", "events"]
        rows = [[name, data[name], data["previous"][name], data["change"][name]] for name in names]
        return csv_response(request, "summary", ["metric", "value", "previous", "change"], rows)
    return JSONResponse(data)


async def timeseries(request: Request, conn: AsyncConnection[Any], settings: Settings) -> Response:
    params = request.query_params
    as_csv = wants_csv(request)
    interval = cast(periods.Interval | None, choice(params, "interval", None, periods.INTERVALS))
    metrics = tuple(m.strip() for m in (params.get("metrics") or ",".join(queries.DEFAULT_METRICS)).split(","))
    unknown = [m for m in metrics if m not in queries.METRICS]
    if unknown or not all(metrics):
        raise BadParameter(
            422, "metrics", f"metrics={params.get('metrics')!r}: choose from {', '.join(queries.METRICS)}"
        )
    filter_ = filter_param(params)
    site, period = await site_period(request, conn)
    interval = interval or period.default_interval()
    if interval == "hour" and (period.end - period.start).days > queries.MAX_HOURLY_DAYS:
        raise BadParameter(
            422, "interval", f"interval=hour covers at most {queries.MAX_HOURLY_DAYS} days; use day, week or month"
        )
    data = await queries.timeseries(conn, site, period, interval, metrics, filter_)
    if as_csv:
        rows = [[point["start"], *(point[m] for m in metrics)] for point in data["points"]]
        return csv_response(request, "timeseries", ["start", *metrics], rows)
    return JSONResponse(data)


async def breakdown(request: Request, conn: AsyncConnection[Any], settings: Settings) -> Response:
    params = request.query_params
    as_csv = wants_csv(request)
    dimension = request.path_params["dimension"]
    if dimension not in queries.DIMENSIONS:
        raise BadParameter(422, "dimension", f"dimension {dimension!r} is not one of {', '.join(queries.DIMENSIONS)}")
    orders = queries.breakdown_orders(dimension)
    order = choice(params, "order", None, orders)
    limit = int_param(params, "limit", 10, 1, MAX_LIMIT)
    offset = int_param(params, "offset", 0, 0, MAX_OFFSET)
    filter_ = filter_param(params)
    site, period = await site_period(request, conn)
    data = await queries.breakdown(
        conn, site, period, dimension, limit=limit, offset=offset, order=order, filter_=filter_
    )
    if as_csv:
        metrics = [*orders, *(["conversion_rate"] if dimension in queries.EVENT_DIMENSIONS else [])]
        rows = [[row["value"], *(row[m] for m in metrics), row["share"]] for row in data["rows"]]
        return csv_response(request, f"breakdown-{dimension}", ["value", *metrics, "share"], rows)
    return JSONResponse(data)


async def realtime(request: Request, conn: AsyncConnection[Any], settings: Settings) -> Response:
    site = request.path_params["site"]
    if await queries.site_days(conn, site) is None:
        raise UnknownSite(site)
    return JSONResponse(await queries.realtime(conn, site, now(), max_future_skew_s=settings.max_future_skew_s))


def routes(settings: Settings) -> list[BaseRoute]:
    def route(path: str, report: Report) -> Route:
        return Route(PREFIX + path, _report(settings, report), methods=["GET"])

    return [
        route("/sites", sites),
        route("/sites/{site}/summary", summary),
        route("/sites/{site}/timeseries", timeseries),
        route("/sites/{site}/breakdown/{dimension}", breakdown),
        route("/sites/{site}/realtime", realtime),
    ]
