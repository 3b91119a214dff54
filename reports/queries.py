"""The reports' questions, answered from the ETL's tables: one async function per report, shared by
the API (reports/api.py) and the dashboard page.

Each takes an open `psycopg.AsyncConnection` (autocommit, search_path set: a connection of the app's
pool), the site, a `Period` (reports/periods.py) and, where it applies, one `Filter`, and returns
plain dicts and lists ready for JSON. They never write.

Where the numbers come from:
- unfiltered, whole-day periods: `daily_metrics` and `daily_breakdown`, one index range each; the
  distinct visitors of several days from the union of the rows' visitor sketches (postgresql-hll,
  migration 0013), or, in a database without the extension, counted exactly from `sessions`; a
  breakdown's closed months that the period covers whole from `monthly_breakdown_sketches`
  (migration 0048: one sketch and the sums per value and month instead of its days, the same
  union and the same sums), and its closed ISO weeks outside those months from
  `weekly_breakdown_sketches` (migration 0049, the same by week);
- unfiltered, the `24h` period (whole hours, not whole days) and hourly points: `hourly_metrics`
  (migration 0026; visitors of several hours from the union of its sketches), with postgresql-hll;
- filtered summaries and series over whole days (days, weeks, months), with postgresql-hll: the
  filter's own daily_breakdown rows (pageviews, sessions, a day's visitors), daily_breakdown_totals
  (migration 0027: events, bounces, durations) and daily_breakdown_sketches (visitors of several
  days); filtered breakdowns over whole days, with postgresql-hll: session_columns (migration 0050:
  a site-day's sessions as hashed arrays, decoded from daily_breakdown's values); filtered hourly
  points, breakdowns of partial days, or without the extension: `sessions`;
- `target_domain` and `short_code` over whole days, unfiltered, with postgresql-hll:
  `daily_click_breakdown` (migration 0028: clicks, a day's visitors, sketches); else `clicks` (exact);
- realtime: the raw log's last minutes (the ETL has not seen them yet).
Bots are left out everywhere, as in the daily tables.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from sluice.db import SKETCHES_AVAILABLE
from sluice.reports.periods import Interval, Period

# Session dimensions: a session's value, from its first event (exit_path: its last).
SESSION_DIMENSIONS = (
    "entry_path",
    "exit_path",
    "referrer_domain",
    "channel",
    "country",
    "city",
    "device_type",
    "browser",
    "os",
    "utm_source",
    "utm_medium",
    "utm_campaign",
)
CLICK_DIMENSIONS = ("target_domain", "short_code")
EVENT_DIMENSIONS = ("event_name",)  # custom events (sluice.track), from stg_events
DIMENSIONS = ("path", *SESSION_DIMENSIONS, *CLICK_DIMENSIONS, *EVENT_DIMENSIONS)
FILTER_DIMENSIONS = SESSION_DIMENSIONS
NONE_VALUE = "(none)"  # a session without a value for the dimension, as in daily_breakdown

MAX_HOURLY_DAYS = 31
METRICS = ("pageviews", "visitors", "sessions", "events", "bounce_rate", "avg_session_duration_s")
DEFAULT_METRICS = ("pageviews", "visitors", "sessions")
ORDERS = ("pageviews", "visitors", "sessions")
CLICK_ORDERS = ("clicks", "visitors")
EVENT_ORDERS = ("events", "visitors", "sessions")


def breakdown_orders(dimension: str) -> tuple[str, ...]:
    """The metrics a breakdown of `dimension` has, which its `order` may name (the first: the default)."""
    if dimension in CLICK_DIMENSIONS:
        return CLICK_ORDERS
    if dimension in EVENT_DIMENSIONS:
        return EVENT_ORDERS
    return ORDERS


Row = dict[str, Any]


@dataclass(frozen=True)
class Filter:
    """`filter=DIMENSION:VALUE`: only the sessions whose DIMENSION is VALUE ('(none)': has none)."""

    dimension: str
    value: str

    def as_dict(self) -> dict[str, str]:
        return {"dimension": self.dimension, "value": self.value}


# per connection: a pooled connection asks once in its life
_sketch_support: WeakKeyDictionary[AsyncConnection[Any], bool] = WeakKeyDictionary()


async def uses_sketches(conn: AsyncConnection[Any]) -> bool:
    """Whether this database keeps visitor sketches (postgresql-hll, migration 0013)."""
    if conn not in _sketch_support:
        cursor = await conn.execute(SKETCHES_AVAILABLE)
        row = await cursor.fetchone()
        _sketch_support[conn] = bool(row and row[0])
    return _sketch_support[conn]


async def all_rows(
    conn: AsyncConnection[Any], query: sql.Composed | sql.SQL | str, params: dict[str, Any]
) -> list[Row]:
    """The query's rows as dicts; also the seed endpoints' (reports/compat.py) one way to read."""
    cursor = conn.cursor(row_factory=dict_row)
    # Never as a prepared statement: psycopg prepares a query on its 5th run on a connection, and
    # PostgreSQL then switches it to a generic plan after 5 more, one that cannot see the period's
    # dates or the days' array (`_period_rows`). On the 10M-event set that turned `path` over 12mo
    # from ~20 ms into 120-200 ms from the 11th request of a pooled connection on (bench/README.md,
    # "Reports", 2026-12-03); planning each time costs ~1-4 ms.
    await cursor.execute(query, params, prepare=False)
    return await cursor.fetchall()


async def _one(conn: AsyncConnection[Any], query: sql.Composed | sql.SQL | str, params: dict[str, Any]) -> Row:
    found = await all_rows(conn, query, params)
    assert len(found) == 1
    return found[0]


def _session_filter(filter_: Filter | None, alias: str = "s") -> sql.Composable:
    """`and <alias>.<dimension> = %(filter_value)s` (or `is null` for '(none)'), or nothing."""
    if filter_ is None:
        return sql.SQL("")
    column = sql.Identifier(alias, filter_.dimension)
    if filter_.value == NONE_VALUE:
        return sql.SQL("and {} is null").format(column)
    return sql.SQL("and {} = %(filter_value)s").format(column)


def _params(site: str, period: Period, filter_: Filter | None, **extra: Any) -> dict[str, Any]:
    params = {
        "site": site,
        "first": period.first_day,
        "last": period.last_day,
        "start": period.start,
        "end": period.end,
    }
    if filter_ is not None:
        params["filter_value"] = filter_.value
    return {**params, **extra}


# The sessions of the period (`sessions as s`), non-bot: the exact source of every report.
_IN_PERIOD = """
    where s.site_id = %(site)s
      and s.started_on >= %(first)s and s.started_on <= %(last)s
      and s.started_at >= %(start)s and s.started_at < %(end)s
      and not s.is_bot
"""

# Visitors of several days: the union of the days' sketches (a `sketched` row joined to the sums);
# over a single day, the row's exact count.
_DAY_ROWS = "count(*) as day_rows, sum(visitors)::bigint as day_visitors"
_VISITORS = "(case when s.day_rows = 1 then s.day_visitors else coalesce(k.visitors, 0) end)"
_UNION = "round(hll_cardinality(hll_union_agg(visitor_sketch::hll)))::bigint"

_SKETCHED_VISITORS = "round(hll_cardinality(hll_add_agg(hll_hash_text(s.visitor_key), 14)))::bigint"

_RATES = """round(bounces::numeric / nullif(sessions, 0), 4) as bounce_rate,
       round(total_duration_s::numeric / nullif(sessions, 0), 1) as avg_session_duration_s"""


async def _from_daily_tables(conn: AsyncConnection[Any], period: Period, filter_: Filter | None) -> bool:
    return filter_ is None and period.whole_days and await uses_sketches(conn)


async def _from_filtered_daily_tables(conn: AsyncConnection[Any], period: Period, filter_: Filter | None) -> bool:
    """A filter over whole days, with sketches: the filter's own rows of the daily tables answer it
    (daily_breakdown, daily_breakdown_totals, daily_breakdown_sketches)."""
    return filter_ is not None and period.whole_days and await uses_sketches(conn)


def _filter_params(filter_: Filter | None) -> dict[str, Any]:
    """The filter as a daily table's (dimension, value): '(none)' is the tables' value for none."""
    assert filter_ is not None
    return {"filter_dimension": filter_.dimension, "filter_row_value": filter_.value}


_FILTER_ROWS = (
    "site_id = %(site)s and dimension = %(filter_dimension)s and value = %(filter_row_value)s"
    " and day >= %(first)s and day <= %(last)s"
)


async def _from_hourly_table(conn: AsyncConnection[Any], period: Period, filter_: Filter | None) -> bool:
    whole_hours = all(t.minute == t.second == t.microsecond == 0 for t in (period.start, period.end))
    return filter_ is None and whole_hours and await uses_sketches(conn)


_IN_HOURS = "site_id = %(site)s and hour >= %(start)s and hour < %(end)s"


def _sketch_union(table: str, where: str, visitors: bool) -> str:
    """The k CTE's query: the union of `table`'s sketches `where`; or, when the caller needs no
    visitors, none read (a null: only an answer of one day, with its exact count, has visitors)."""
    return f"select {_UNION} as visitors from {table} where {where}" if visitors else "select null::bigint as visitors"


def _whole_months(period: Period) -> tuple[date, date] | None:
    """The first days of the first and the last UTC month the period covers whole, or None."""
    first, after = period.first_day, period.last_day + timedelta(days=1)
    start = first if first.day == 1 else (first.replace(day=1) + timedelta(days=32)).replace(day=1)
    last = (after.replace(day=1) - timedelta(days=1)).replace(day=1)
    return (start, last) if start <= last else None


def _weeks_outside_months(period: Period, months: tuple[date, date] | None) -> list[date]:
    """The Mondays of the ISO weeks the period covers whole that have no day in a month it covers
    whole (those weeks' days are read as part of their month, or as days)."""
    first = period.first_day + timedelta(days=-period.first_day.weekday() % 7)  # the first Monday on or after
    whole_weeks = ((period.last_day - first).days + 1) // 7
    mondays = [first + timedelta(weeks=i) for i in range(whole_weeks)]
    if months is None:
        return mondays
    start, last = months  # (first days of months)
    return [
        monday
        for monday in mondays
        if not (start <= monday.replace(day=1) <= last or start <= (monday + timedelta(days=6)).replace(day=1) <= last)
    ]


def _period_rows(
    daily_table: str, columns: str, dimension: str, period: Period, values: str = "", month_columns: str | None = None
) -> tuple[str, dict[str, Any]]:
    """A subquery of the rows of `columns` over the period: the daily table's rows of the period's
    days (`dimension`: SQL, `values`: an `and ...` condition on `value`), but for each whole month of
    the period that monthly_breakdown_sketches holds (the closed ones), its one row instead of the
    month's days, and for each whole ISO week with no day in a whole month of the period
    (_weeks_outside_months) that weekly_breakdown_sketches holds, its one row instead of the week's
    days (`month_columns`: the same columns in those two
    tables, if named otherwise)."""
    days = f"site_id = %(site)s and dimension = {dimension} and day >= %(first)s and day <= %(last)s {values}"
    months = _whole_months(period)
    weeks = _weeks_outside_months(period, months)
    if months is None and not weeks:
        return f"select {columns} from {daily_table} where {days}", {}
    of = f"site_id = %(site)s and dimension = {dimension}"
    params: dict[str, Any] = {}
    # (each list of months, weeks or days computed once, as an array: `day = any(...)` is then a
    # condition of the index scan, so the covered days' rows, wide with their sketches, are never
    # fetched; a month or a week is used when its table holds it for the dimension, one index probe)
    used_months = "select null::date as month where false"
    if months is not None:
        used_months = f"""select m::date as month
                          from generate_series(%(whole_from)s::date, %(whole_to)s::date, '1 month') as m
                          where exists (select from monthly_breakdown_sketches where {of} and month = m::date)"""
        params.update(whole_from=months[0], whole_to=months[1])
    used_weeks = "select null::date as week where false"
    if weeks:
        used_weeks = f"""select w as week
                         from unnest(%(weeks)s::date[]) as w
                         where exists (select from weekly_breakdown_sketches where {of} and week = w)"""
        params.update(weeks=weeks)
    parts = []
    if months is not None:
        parts.append(f"""select {month_columns or columns} from monthly_breakdown_sketches
                         where {of} and month >= %(whole_from)s and month <= %(whole_to)s {values}""")
    if weeks:
        parts.append(f"""select {month_columns or columns} from weekly_breakdown_sketches
                         where {of} and week = any(array(select week from used_weeks)) {values}""")
    # the days left: from the table's first day of the dimension, since each day of the array is
    # one index descent per value (12mo over 91 days of data asked 274 days, of which only the open
    # month's had rows)
    parts.append(f"""select {columns} from {daily_table}
        where {days}
          and day = any(array(
              select d::date
              from generate_series(
                  greatest(%(first)s::date, (select min(day) from {daily_table} where {of})),
                  %(last)s::date,
                  '1 day'
              ) as d
              where date_trunc('month', d)::date not in (select month from used_months)
                and date_trunc('week', d)::date not in (select week from used_weeks)
          ))""")
    union = "\n        union all\n        ".join(parts)
    query = f"""
        with used_months as ({used_months}),

        used_weeks as ({used_weeks})

        {union}
    """
    return query, params


def _period_sketches(daily_table: str, dimension: str, period: Period, values: str = "") -> tuple[str, dict[str, Any]]:
    """A subquery of the (value, visitor_sketch) rows whose union is each value's distinct visitors
    over the period (_period_rows). A union of unions is the same sketch, so this answers as the
    days would."""
    return _period_rows(daily_table, "value, visitor_sketch", dimension, period, values)


def _period_sums(daily_table: str, sums: tuple[str, ...], period: Period) -> tuple[str, dict[str, Any]]:
    """A query of each value's `sums` over the period and its day rows and their visitors
    (_DAY_ROWS), from the daily table's rows (parameter `dimension`) and the closed months' sums
    (_period_rows): the same sums as of the days alone."""
    rows, params = _period_rows(
        daily_table,
        f"value, {', '.join(sums)}, 1 as day_rows, visitors as day_visitors",
        "%(dimension)s",
        period,
        month_columns=f"value, {', '.join(sums)}, day_rows, day_visitors",
    )
    summed = ", ".join(f"sum({name})::bigint as {name}" for name in sums)
    query = f"""select value, {summed}, sum(day_rows)::bigint as day_rows, sum(day_visitors)::bigint as day_visitors
                from ({rows}) as period_rows
                group by value"""
    return query, params


async def totals(
    conn: AsyncConnection[Any], site: str, period: Period, filter_: Filter | None = None, *, visitors: bool = True
) -> Row:
    """pageviews, visitors, sessions, bounce_rate, avg_session_duration_s and events of the period.
    `visitors=False`: the caller will not use the visitors (a breakdown's total of pageviews), so no
    sketch is read for them."""
    if await _from_daily_tables(conn, period, filter_):
        whole_site = _sketch_union(
            "daily_visitor_sketches", "site_id = %(site)s and day >= %(first)s and day <= %(last)s", visitors
        )
        query: sql.Composed | sql.SQL = sql.SQL(
            f"""
            with s as (
                select coalesce(sum(pageviews), 0)::bigint as pageviews,
                       coalesce(sum(sessions), 0)::bigint as sessions, coalesce(sum(bounces), 0)::bigint as bounces,
                       coalesce(sum(total_duration_s), 0)::bigint as total_duration_s,
                       coalesce(sum(events), 0)::bigint as events, {_DAY_ROWS}
                from daily_metrics
                where site_id = %(site)s and day >= %(first)s and day <= %(last)s
            ),

            k as (
                {whole_site}
            )

            select pageviews, {_VISITORS} as visitors, sessions, {_RATES}, events from s cross join k
            """
        )
    elif await _from_filtered_daily_tables(conn, period, filter_):
        query = sql.SQL(
            f"""
            with s as (
                select coalesce(sum(pageviews), 0)::bigint as pageviews,
                       coalesce(sum(sessions), 0)::bigint as sessions, {_DAY_ROWS}
                from daily_breakdown
                where {_FILTER_ROWS}
            ),

            t as (
                select coalesce(sum(events), 0)::bigint as events, coalesce(sum(bounces), 0)::bigint as bounces,
                       coalesce(sum(total_duration_s), 0)::bigint as total_duration_s
                from daily_breakdown_totals
                where {_FILTER_ROWS}
            ),

            k as (
                {_sketch_union("daily_breakdown_sketches", _FILTER_ROWS, visitors)}
            )

            select pageviews, {_VISITORS} as visitors, sessions, {_RATES}, events
            from s cross join t cross join k
            """
        )
    elif await _from_hourly_table(conn, period, filter_):
        query = sql.SQL(
            f"""
            with s as (
                select coalesce(sum(pageviews), 0)::bigint as pageviews,
                       coalesce(sum(sessions), 0)::bigint as sessions, coalesce(sum(bounces), 0)::bigint as bounces,
                       coalesce(sum(total_duration_s), 0)::bigint as total_duration_s,
                       coalesce(sum(events), 0)::bigint as events, {_DAY_ROWS},
                       {_UNION} as union_visitors
                from hourly_metrics
                where {_IN_HOURS}
            )

            select pageviews, (case when day_rows = 1 then day_visitors else coalesce(union_visitors, 0) end)
                       as visitors,
                   sessions, {_RATES}, events
            from s
            """
        )
    else:
        query = sql.SQL(
            f"""
            with period_sessions as (
                select coalesce(sum(s.pageview_count), 0)::bigint as pageviews,
                       count(distinct s.visitor_key) as visitors, count(*) as sessions,
                       count(*) filter (where s.is_bounce) as bounces,
                       coalesce(sum(s.duration_s), 0)::bigint as total_duration_s,
                       coalesce(sum(s.event_count), 0)::bigint as events
                from sessions as s
                {_IN_PERIOD} {{filter}}
            )
            select pageviews, visitors, sessions, {_RATES}, events from period_sessions
            """
        ).format(filter=_session_filter(filter_))
    params = _params(site, period, filter_)
    if filter_ is not None:
        params.update(_filter_params(filter_))
    row = await _one(conn, query, params)
    return {name: _number(value) for name, value in row.items()}


def _number(value: Any) -> Any:
    """numeric -> float (rates, averages); counts stay int."""
    return value if value is None or isinstance(value, int) else float(value)


def _change(current: Any, previous: Any) -> float | None:
    if current is None or not previous:
        return None
    return round(float(current - previous) / float(previous), 4)


async def summary(conn: AsyncConnection[Any], site: str, period: Period, filter_: Filter | None = None) -> Row:
    """The period's totals, the previous period's (of equal length, just before), and the relative
    change of each ((current - previous) / previous; null when the previous is 0 or null)."""
    before = period.previous()
    current = await totals(conn, site, period, filter_)
    previous = await totals(conn, site, before, filter_)
    return {
        "site": site,
        "period": period.as_dict(),
        "filter": filter_.as_dict() if filter_ else None,
        **current,
        "previous": {"period": before.as_dict(), **previous},
        "change": {name: _change(current[name], previous[name]) for name in current},
    }


def buckets(period: Period, interval: Interval) -> list[date | datetime]:
    """The start of every point of the period: hours (UTC), days, ISO weeks (Mondays) or months;
    the first week or month starts with the period."""
    if interval == "hour":
        hours = int((period.end - period.start) / timedelta(hours=1))
        return [period.start + timedelta(hours=i) for i in range(hours)]
    starts: list[date | datetime] = []
    day = period.first_day
    while day <= period.last_day:
        starts.append(day)
        if interval == "day":
            day += timedelta(days=1)
        elif interval == "week":
            day += timedelta(days=7 - day.weekday())
        else:
            day = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
    return starts


async def timeseries(
    conn: AsyncConnection[Any],
    site: str,
    period: Period,
    interval: Interval | None = None,
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    filter_: Filter | None = None,
) -> Row:
    """One point per interval of the period, with the metrics asked for; zeros where there is no data
    (rates: null). Visitors are distinct within each point. Interval: the period's default."""
    interval = interval or period.default_interval()
    params = _params(site, period, filter_, unit=interval)
    if interval != "hour" and await _from_daily_tables(conn, period, filter_):
        start_of = "greatest(date_trunc(%(unit)s, day::timestamp)::date, %(first)s)"
        in_range = "site_id = %(site)s and day >= %(first)s and day <= %(last)s"
        # (days: each row's exact count, no sketches read)
        sketches = "where false" if interval == "day" else f"where {in_range}"
        query: sql.Composed | sql.SQL = sql.SQL(
            f"""
            with s as (
                select {start_of} as start,
                       sum(pageviews)::bigint as pageviews, sum(sessions)::bigint as sessions,
                       sum(bounces)::bigint as bounces, sum(total_duration_s)::bigint as total_duration_s,
                       sum(events)::bigint as events, {_DAY_ROWS}
                from daily_metrics
                where {in_range}
                group by 1
            ),

            k as (
                select {start_of} as start, {_UNION} as visitors
                from daily_visitor_sketches
                {sketches}
                group by 1
            )

            select s.start, pageviews, {_VISITORS} as visitors, sessions, {_RATES}, events
            from s left join k on k.start = s.start
            """
        )
    elif interval != "hour" and await _from_filtered_daily_tables(conn, period, filter_):
        params.update(_filter_params(filter_))
        start_of = "greatest(date_trunc(%(unit)s, day::timestamp)::date, %(first)s)"
        sketches = "where false" if interval == "day" else f"where {_FILTER_ROWS}"
        query = sql.SQL(
            f"""
            with s as (
                select {start_of} as start, sum(pageviews)::bigint as pageviews, sum(sessions)::bigint as sessions,
                       {_DAY_ROWS}
                from daily_breakdown
                where {_FILTER_ROWS}
                group by 1
            ),

            t as (
                select {start_of} as start, sum(events)::bigint as events, sum(bounces)::bigint as bounces,
                       sum(total_duration_s)::bigint as total_duration_s
                from daily_breakdown_totals
                where {_FILTER_ROWS}
                group by 1
            ),

            k as (
                select {start_of} as start, {_UNION} as visitors
                from daily_breakdown_sketches
                {sketches}
                group by 1
            )

            select s.start, pageviews, {_VISITORS} as visitors, sessions, {_RATES}, events
            from s
            inner join t on t.start = s.start
            left join k on k.start = s.start
            """
        )
    elif interval == "hour" and await _from_hourly_table(conn, period, filter_):
        # (an hour's row has its exact visitors: no sketch read)
        query = sql.SQL(
            f"""
            select hour as start, pageviews, visitors, sessions, {_RATES}, events
            from hourly_metrics
            where {_IN_HOURS}
            """
        )
    else:
        start = (
            "date_trunc('hour', s.started_at, 'UTC')"
            if interval == "hour"
            else "greatest(date_trunc(%(unit)s, s.started_on::timestamp)::date, %(first)s)"
        )
        query = sql.SQL(
            f"""
            with points as (
                select {start} as start,
                       sum(s.pageview_count)::bigint as pageviews, count(distinct s.visitor_key) as visitors,
                       count(*) as sessions, count(*) filter (where s.is_bounce) as bounces,
                       sum(s.duration_s)::bigint as total_duration_s, sum(s.event_count)::bigint as events
                from sessions as s
                {_IN_PERIOD} {{filter}}
                group by 1
            )
            select start, pageviews, visitors, sessions, {_RATES}, events from points
            """
        ).format(filter=_session_filter(filter_))
    found = {row["start"]: row for row in await all_rows(conn, query, params)}
    points = []
    for bucket in buckets(period, interval):
        row = found.get(bucket, {})
        point: Row = {"start": bucket.isoformat()}
        for name in metrics:
            default = None if name in ("bounce_rate", "avg_session_duration_s") else 0
            point[name] = _number(row.get(name, default))
        points.append(point)
    return {
        "site": site,
        "period": period.as_dict(),
        "filter": filter_.as_dict() if filter_ else None,
        "interval": interval,
        "metrics": list(metrics),
        "points": points,
    }


async def breakdown(
    conn: AsyncConnection[Any],
    site: str,
    period: Period,
    dimension: str,
    *,
    limit: int = 10,
    offset: int = 0,
    order: str | None = None,
    filter_: Filter | None = None,
    period_totals: Row | Awaitable[Row] | None = None,
) -> Row:
    """The values of `dimension` in the period, best first by `order`, each with its metrics and its
    share of the period's total of that metric (for `path`: pageviews of the page; sessions and
    visitors that viewed it, so shares of those add up to more than 1).

    `period_totals`: what `totals(conn, site, period, filter_)` answers, when the caller has it
    already (the dashboard's summary): its 13 session lists would otherwise each ask again for the
    same total. Or an awaitable of it (the summary still running): awaited once the rows are read,
    so the list's own query need not wait for it.

    Session dimensions and `path` have pageviews, visitors and sessions (order by any, default
    pageviews); `target_domain` and `short_code`, clicks and visitors (default clicks); `event_name`
    events, visitors and sessions (default events) and conversion_rate."""
    extra: tuple[str, ...] = ()
    if dimension in CLICK_DIMENSIONS:
        order = order or "clicks"
        rows, total = await _click_rows(conn, site, period, dimension, filter_, order, limit + 1, offset)
        metrics: tuple[str, ...] = CLICK_ORDERS
    elif dimension in EVENT_DIMENSIONS:
        order = order or "events"
        rows, total = await _custom_event_rows(conn, site, period, filter_, order, limit + 1, offset)
        known = await _resolved(period_totals)
        sessions = (known or await totals(conn, site, period, filter_, visitors=False))["sessions"]
        for row in rows:
            row["conversion_rate"] = round(row["sessions"] / sessions, 4) if sessions else None
        metrics, extra = EVENT_ORDERS, ("conversion_rate",)
    else:
        order = order or "pageviews"
        rows = await _value_rows(conn, site, period, dimension, filter_, order, limit + 1, offset)
        known = await _resolved(period_totals)
        if known is None:
            known = await totals(conn, site, period, filter_, visitors=order == "visitors")
        total = known[order]
        metrics = ORDERS
    return {
        "site": site,
        "period": period.as_dict(),
        "filter": filter_.as_dict() if filter_ else None,
        "dimension": dimension,
        "order": order,
        "limit": limit,
        "offset": offset,
        "more": len(rows) > limit,
        "total": {order: total},
        "rows": [
            {
                "value": row["value"],
                **{name: row[name] for name in (*metrics, *extra)},
                "share": round(row[order] / total, 4) if total else None,
            }
            for row in rows[:limit]
        ],
    }


async def _resolved(period_totals: Row | Awaitable[Row] | None) -> Row | None:
    return await period_totals if inspect.isawaitable(period_totals) else period_totals


async def _value_rows(
    conn: AsyncConnection[Any],
    site: str,
    period: Period,
    dimension: str,
    filter_: Filter | None,
    order: str,
    limit: int,
    offset: int,
) -> list[Row]:
    params = _params(site, period, filter_, dimension=dimension, limit=limit, offset=offset)
    ordering = sql.SQL("order by {} desc, value limit %(limit)s offset %(offset)s").format(sql.Identifier(order))
    # From sessions with postgresql-hll (a filtered breakdown): each value's visitors from a sketch
    # built on the fly, a hash aggregate, rather than count(distinct), which sorts the period's
    # sessions (3x faster at 10M events, bench/README.md "Reports"); exact up to ~1,280 visitors.
    visitors = _SKETCHED_VISITORS if await uses_sketches(conn) else "count(distinct s.visitor_key)"
    if order == "visitors" and await _from_daily_tables(conn, period, filter_):
        return await _value_rows_by_visitors(conn, period, params, limit, offset)
    if await _from_filtered_daily_tables(conn, period, filter_):
        return await _session_column_rows(conn, dimension, filter_, order, params)
    if await _from_daily_tables(conn, period, filter_):
        # Ranked by visitors, every value's sketches are unioned; else the values are ranked by their
        # sums first and only the page's values' sketches are read.
        page = "" if order == "visitors" else "{ordering}"
        sketched = "" if order == "visitors" else "and value in (select value from s)"
        sketches, more = _period_sketches("daily_breakdown_sketches", "%(dimension)s", period, sketched)
        sums, _ = _period_sums("daily_breakdown", ("pageviews", "sessions"), period)
        params.update(more)
        query: sql.Composed | sql.SQL = sql.SQL(
            f"""
            with s as (
                {sums}
                {page}
            ),

            k as (
                select value, {_UNION} as visitors
                from ({sketches}) as period_sketches
                group by value
            ),

            final as (
                select s.value, pageviews, {_VISITORS} as visitors, sessions
                from s left join k on k.value = s.value
            )

            select * from final
            {{final_ordering}}
            """
        ).format(
            ordering=ordering,
            final_ordering=ordering
            if order == "visitors"
            else sql.SQL("order by {} desc, value").format(sql.Identifier(order)),
        )
    elif dimension == "path":
        query = sql.SQL(
            f"""
            select p.key as value, sum(p.value::bigint)::bigint as pageviews, {visitors} as visitors,
                   count(*) as sessions
            from sessions as s
            cross join lateral jsonb_each_text(s.path_pageviews) as p
            {_IN_PERIOD} {{filter}}
            group by p.key
            {{ordering}}
            """
        ).format(filter=_session_filter(filter_), ordering=ordering)
    else:
        query = sql.SQL(
            f"""
            select coalesce({{column}}, '{NONE_VALUE}') as value, sum(s.pageview_count)::bigint as pageviews,
                   {visitors} as visitors, count(*) as sessions
            from sessions as s
            {_IN_PERIOD} {{filter}}
            group by 1
            {{ordering}}
            """
        ).format(column=sql.Identifier("s", dimension), filter=_session_filter(filter_), ordering=ordering)
    return await all_rows(conn, query, params)


class CodeCollision(RuntimeError):
    """Two values of a dimension share a 64-bit code of session_columns: its answer would be wrong."""


async def _session_column_rows(
    conn: AsyncConnection[Any], dimension: str, filter_: Filter | None, order: str, params: dict[str, Any]
) -> list[Row]:
    """_value_rows of a filtered breakdown over whole days, with postgresql-hll, from session_columns
    (migration 0050): the period's ~30 rows of the site, each unnesting only the arrays it needs
    (the breakdown's, the filter's, pageviews and visitor hashes; for `path` the four page arrays of
    the same), instead of the period's sessions (~650,000 heap rows of
    400 bytes for the big site over 30 days; bench/README.md "Filtered breakdowns"). The rows are
    the same as from `sessions`: the same sums, and each value's sketch built from the same
    hll_hash_text hashes. Codes are decoded from the period's daily_breakdown values of the dimension
    (which counts the same sessions); a null code is '(none)', and codes decoding to the same value
    (a stored '(none)') are merged as `sessions`' coalesce does."""
    assert filter_ is not None
    filter_column = sql.Identifier("c", filter_.dimension)
    matches = (
        sql.SQL("f is null") if filter_.value == NONE_VALUE else sql.SQL("f = hashtextextended(%(filter_value)s, 0)")
    )
    if dimension == "path":
        # (unnest in the select list streams; in FROM, each call materializes its rows first)
        per_row = sql.SQL(
            """
            select code, pageviews, visitor
            from (
                select unnest(c.page_code) as code, unnest({filter_column}) as f,
                       unnest(c.page_views) as pageviews, unnest(c.page_visitor_hash) as visitor
            ) as u
            where {matches}
            """
        ).format(filter_column=sql.Identifier("c", f"page_{filter_.dimension}"), matches=matches)
    else:
        per_row = sql.SQL(
            """
            select code, pageviews, visitor
            from (
                select unnest({column}) as code, unnest({filter_column}) as f,
                       unnest(c.pageview_count) as pageviews, unnest(c.visitor_hash) as visitor
            ) as u
            where {matches}
            """
        ).format(column=sql.Identifier("c", dimension), filter_column=filter_column, matches=matches)
    query = sql.SQL(
        """
        with by_code as (
            select u.code, sum(u.pageviews)::bigint as pageviews,
                   hll_add_agg(u.visitor::hll_hashval, 14) as sketch, count(*) as sessions
            from session_columns as c
            cross join lateral ({per_row}) as u
            where c.site_id = %(site)s and c.started_on >= %(first)s and c.started_on <= %(last)s
            group by u.code
        ),

        dictionary as (
            select value, hashtextextended(value, 0) as code
            from (
                select distinct value from daily_breakdown
                where site_id = %(site)s and dimension = %(dimension)s and day >= %(first)s and day <= %(last)s
            ) as v
        ),

        decoded as (
            select coalesce(d.value, case when b.code is null then {none} end) as value, b.*
            from by_code as b
            left join dictionary as d on d.code = b.code
        ),

        final as (
            select value, sum(pageviews)::bigint as pageviews,
                   round(hll_cardinality(hll_union_agg(sketch)))::bigint as visitors,
                   sum(sessions)::bigint as sessions,
                   count(*) filter (where value is null) as unknown
            from decoded
            group by value
        )

        select *, (select count(*) from (select from dictionary group by code having count(*) > 1) as d)
                  as collisions
        from final
        order by {order} desc, value
        limit %(limit)s offset %(offset)s
        """
    ).format(per_row=per_row, none=sql.Literal(NONE_VALUE), order=sql.Identifier(order))
    # Planned without statistics on the arrays (an unnest is guessed at 10 elements), the ~600,000
    # unnested elements would be sorted to be grouped, spilling to disk (0.37 s against 0.21 s
    # hashed, os by utm_source:(none) over 30 days at 10M events): only this query is told not to.
    # That makes its cost huge, which would compile it (JIT, ~0.4 s): not either. And `path`'s ~200
    # sketches (10 kB each, with the hash table) outgrow 4 MB of work_mem and spill (~0.2 s).
    async with conn.transaction():
        await conn.execute("set local enable_sort = off")
        await conn.execute("set local jit = off")
        await conn.execute("set local work_mem = '64MB'")
        rows = await all_rows(conn, query, params)
    for row in rows:
        if row["collisions"] or row["value"] is None or row["unknown"]:
            raise CodeCollision(
                f"session_columns: the codes of {dimension} over {params['first']}..{params['last']} do not"
                " decode to one value each; filtered breakdowns need another hash"
            )
    return [{name: row[name] for name in ("value", "pageviews", "visitors", "sessions")} for row in rows]


# A value's distinct visitors over several days are at most the sum of its days' (exact) visitors;
# its sketch union, an estimate, is allowed this much above that (log2m 14: ~0.8% standard error).
_UNION_MARGIN = 1.05
_BATCH = 4


async def _value_rows_by_visitors(
    conn: AsyncConnection[Any], period: Period, params: dict[str, Any], limit: int, offset: int
) -> list[Row]:
    """_value_rows from the daily tables ranked by visitors, without unioning every value's sketches
    (`path` over 30 days: 200 values x 30 days). Each value's sum of daily visitors bounds its
    distinct visitors from above; the values are unioned in the order of that bound, a batch at a
    time, until the page's last value has more visitors than the next value's bound: no value left
    can then rank on the page. The page equals the one from unioning every value's sketches."""
    sums, more = _period_sums("daily_breakdown", ("pageviews", "sessions"), period)
    candidates = await all_rows(conn, f"{sums} order by day_visitors desc, value", params | more)
    needed = offset + limit
    counted: list[Row] = []
    position = 0
    while position < len(candidates):
        if len(counted) >= needed:
            best = sorted((r["visitors"] for r in counted), reverse=True)
            if candidates[position]["day_visitors"] * _UNION_MARGIN < best[needed - 1]:
                break
        # first the page's worth, then a few more at a time (a sketch union costs ~0.1 ms)
        batch = candidates[position : position + max(_BATCH, needed - len(counted))]
        position += len(batch)
        several = [r["value"] for r in batch if r["day_rows"] > 1]
        unions: dict[str, int] = {}
        if several:
            sketches, more = _period_sketches(
                "daily_breakdown_sketches", "%(dimension)s", period, "and value = any(%(values)s)"
            )
            found = await all_rows(
                conn,
                f"""select value, {_UNION} as visitors
                    from ({sketches}) as period_sketches
                    group by value""",
                params | more | {"values": several},
            )
            unions = {r["value"]: r["visitors"] for r in found}
        for r in batch:
            visitors = r["day_visitors"] if r["day_rows"] == 1 else unions.get(r["value"], 0)
            counted.append(
                {"value": r["value"], "pageviews": r["pageviews"], "visitors": visitors, "sessions": r["sessions"]}
            )
    # the page in the database's order (ties by value, in its collation)
    page = await all_rows(
        conn,
        """select value from unnest(%(values)s::text[], %(visitors)s::bigint[]) as v (value, visitors)
           order by visitors desc, value limit %(limit)s offset %(offset)s""",
        params | {"values": [r["value"] for r in counted], "visitors": [r["visitors"] for r in counted]},
    )
    by_value = {r["value"]: r for r in counted}
    return [by_value[r["value"]] for r in page]


async def _click_rows(
    conn: AsyncConnection[Any],
    site: str,
    period: Period,
    dimension: str,
    filter_: Filter | None,
    order: str,
    limit: int,
    offset: int,
) -> tuple[list[Row], int]:
    """Clicks and distinct clicking visitors per target domain or short code, and the total of
    `order`: from daily_click_breakdown (unfiltered, whole days, with sketches), else exact from
    `clicks`, whose (site_id, occurred_at) index holds the period's clicks."""
    params = _params(site, period, filter_, limit=limit, offset=offset)
    if await _from_daily_tables(conn, period, filter_):
        return await _daily_click_rows(conn, period, params | {"dimension": dimension}, order)
    join = (
        sql.SQL("inner join sessions as s on s.site_id = c.site_id and s.session_key = c.session_key")
        if filter_
        else sql.SQL("")
    )
    query = sql.SQL(
        f"""
        with period_clicks as (
            select coalesce(c.{{column}}, '{NONE_VALUE}') as value, c.visitor_key
            from clicks as c
            {{join}}
            where c.site_id = %(site)s and c.occurred_at >= %(start)s and c.occurred_at < %(end)s and not c.is_bot
              {{filter}}
        ),

        by_value as (
            select value, count(*) as clicks, count(distinct visitor_key) as visitors
            from period_clicks
            group by value
        ),

        total as (
            select count(*) as clicks, count(distinct visitor_key) as visitors from period_clicks
        ),

        page as (
            select * from by_value
            {{ordering}}
        )

        -- (one row even when the page is empty: it carries the total)
        select p.value, p.clicks, p.visitors, t.{{order}} as total
        from total as t
        left join page as p on true
        order by p.{{order}} desc, p.value
        """
    ).format(
        column=sql.Identifier(dimension),
        join=join,
        filter=_session_filter(filter_),
        order=sql.Identifier(order),
        ordering=sql.SQL("order by {} desc, value limit %(limit)s offset %(offset)s").format(sql.Identifier(order)),
    )
    rows = await all_rows(conn, query, params)
    return [r for r in rows if r["value"] is not None], int(rows[0]["total"])


async def _daily_click_rows(
    conn: AsyncConnection[Any], period: Period, params: dict[str, Any], order: str
) -> tuple[list[Row], int]:
    """_click_rows from daily_click_breakdown: ranked by clicks, the values are ranked by their sums
    first and only the page's values' sketches are read; ranked by visitors, every value's are."""
    in_range = "site_id = %(site)s and day >= %(first)s and day <= %(last)s"
    ordering = sql.SQL("order by {} desc, value limit %(limit)s offset %(offset)s").format(sql.Identifier(order))
    by_clicks = order == "clicks"
    values = "and value in (select value from s)" if by_clicks else ""
    sketches, more = _period_sketches("daily_click_breakdown", "%(dimension)s", period, values)
    every_click, _ = _period_sketches("daily_click_breakdown", "'all'", period)
    sums, _ = _period_sums("daily_click_breakdown", ("clicks",), period)
    every_union = f"select {_UNION} as visitors from ({every_click}) as every_click"
    params = params | more
    query = sql.SQL(
        f"""
        with s as (
            {sums}
            {{page}}
        ),

        k as (
            select value, {_UNION} as visitors
            from ({sketches}) as period_sketches
            group by value
        ),

        by_value as (
            select s.value, s.clicks, {_VISITORS} as visitors
            from s left join k on k.value = s.value
        ),

        page as (
            select * from by_value
            {{final_ordering}}
        ),

        total_sums as (
            select coalesce(sum(clicks), 0)::bigint as clicks, {_DAY_ROWS}
            from daily_click_breakdown
            where {in_range} and dimension = 'all'
        ),

        total_union as (
            {every_union if not by_clicks else "select 0 as visitors"}
        ),

        total as (
            select t.clicks, (case when t.day_rows = 1 then t.day_visitors else coalesce(u.visitors, 0) end) as visitors
            from total_sums as t cross join total_union as u
        )

        -- (one row even when the page is empty: it carries the total)
        select p.value, p.clicks, p.visitors, t.{{order}} as total
        from total as t
        left join page as p on true
        order by p.{{order}} desc, p.value
        """
    ).format(
        page=ordering if by_clicks else sql.SQL(""),
        final_ordering=sql.SQL("") if by_clicks else ordering,
        order=sql.Identifier(order),
    )
    rows = await all_rows(conn, query, params)
    return [r for r in rows if r["value"] is not None], int(rows[0]["total"])


async def _custom_event_rows(
    conn: AsyncConnection[Any],
    site: str,
    period: Period,
    filter_: Filter | None,
    order: str,
    limit: int,
    offset: int,
) -> tuple[list[Row], int]:
    """Per custom event name, the period's custom events of non-bot sessions, their distinct visitors
    and sessions (exact, from stg_events: its custom events by site and session day are one range of
    stg_events_custom_day_idx; sessions joined only for a filter or a period of partial days), and
    the total of `order` over every custom event of the period. As in daily_custom_events, an event
    counts in the period its session started in."""
    params = _params(site, period, filter_, limit=limit, offset=offset)
    join = (
        sql.SQL(
            """inner join sessions as s on s.site_id = e.site_id and s.session_key = e.session_key
               and s.started_at >= %(start)s and s.started_at < %(end)s"""
        )
        if filter_ or not period.whole_days
        else sql.SQL("")
    )
    query = sql.SQL(
        """
        with period_events as (
            select coalesce(e.event_name, '(none)') as value, e.visitor_key, e.session_key
            from stg_events as e
            {join}
            where e.site_id = %(site)s and e.event_type = 'custom'
              and e.session_started_on >= %(first)s and e.session_started_on <= %(last)s and not e.is_bot
              {filter}
        ),

        by_value as (
            select value, count(*) as events, count(distinct visitor_key) as visitors,
                   count(distinct session_key) as sessions
            from period_events
            group by value
        ),

        total as (
            select count(*) as events, count(distinct visitor_key) as visitors, count(distinct session_key) as sessions
            from period_events
        ),

        page as (
            select * from by_value
            {ordering}
        )

        -- (one row even when the page is empty: it carries the total)
        select p.value, p.events, p.visitors, p.sessions, t.{order} as total
        from total as t
        left join page as p on true
        order by p.{order} desc, p.value
        """
    ).format(
        join=join,
        filter=_session_filter(filter_),
        order=sql.Identifier(order),
        ordering=sql.SQL("order by {} desc, value limit %(limit)s offset %(offset)s").format(sql.Identifier(order)),
    )
    rows = await all_rows(conn, query, params)
    return [r for r in rows if r["value"] is not None], int(rows[0]["total"])


async def realtime(
    conn: AsyncConnection[Any],
    site: str,
    now: datetime | None = None,
    *,
    minutes: int = 5,
    top: int = 10,
    max_future_skew_s: int = 60,
) -> Row:
    """Visitors, pageviews and events of the last `minutes` (by occurred_at) from the raw log, and
    the top pages by visitors. Bots (a known bot user agent, or none) are left out; the visitor is
    the ETL's (visitorId, else the day's IP hash with the user agent)."""
    until = now or datetime.now(UTC)
    since = until - timedelta(minutes=minutes)
    params = {
        "site": site,
        "since": since,
        "until": until,
        # an event's occurred_at is at most the skew allowance after its received_at: the partitions
        # of older arrivals cannot hold one of these minutes
        "received_since": since - timedelta(seconds=max_future_skew_s),
        "top": top,
    }
    query = """
        with recent as (
            select
                e.event_type,
                coalesce(
                    nullif(e.visitor_id, ''), 'anon:' || coalesce(e.ip_hash, '') || '|' || e.user_agent
                ) as visitor,
                coalesce(nullif(e.payload ->> 'path', ''), url_path(e.payload ->> 'url')) as path
            from events as e
            left join user_agents as a on a.ua_hash = md5(e.user_agent)::uuid
            where e.site_id = %(site)s
              and e.occurred_at >= %(since)s and e.occurred_at <= %(until)s
              and e.received_at >= %(received_since)s
              and e.user_agent is not null
              and not coalesce(a.is_bot, false)
        ),

        pages as (
            select
                path,
                count(distinct visitor) as visitors,
                count(*) filter (where event_type = 'pageview') as pageviews
            from recent
            where path is not null
            group by path
            order by visitors desc, pageviews desc, path
            limit %(top)s
        )

        select
            (select count(distinct visitor) from recent) as visitors,
            (select count(*) from recent where event_type = 'pageview') as pageviews,
            (select count(*) from recent) as events,
            coalesce((select jsonb_agg(to_jsonb(pages)) from pages), '[]'::jsonb) as top_pages
    """
    row = await _one(conn, query, params)
    top_pages = sorted(row["top_pages"], key=lambda p: (-p["visitors"], -p["pageviews"], p["path"]))
    return {
        "site": site,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "visitors": row["visitors"],
        "pageviews": row["pageviews"],
        "events": row["events"],
        "top_pages": [{"path": p["path"], "visitors": p["visitors"], "pageviews": p["pageviews"]} for p in top_pages],
    }


async def sites(conn: AsyncConnection[Any]) -> list[Row]:
    """Every site with data in the daily tables: its first and last day."""
    rows = await all_rows(
        conn,
        """select site_id as site, min(day) as first_day, max(day) as last_day
           from daily_metrics group by site_id order by site_id""",
        {},
    )
    return [
        {"site": r["site"], "first_day": r["first_day"].isoformat(), "last_day": r["last_day"].isoformat()}
        for r in rows
    ]


async def site_days(conn: AsyncConnection[Any], site: str) -> tuple[date, date] | None:
    """The site's first and last day with data, or None for a site Sluice has no data of."""
    row = await _one(
        conn,
        "select min(day) as first_day, max(day) as last_day from daily_metrics where site_id = %(site)s",
        {"site": site},
    )
    return (row["first_day"], row["last_day"]) if row["first_day"] is not None else None
