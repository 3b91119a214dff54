"""What the dashboard page shows, built from the reports' query functions (the API's own), formatted.

Each shown number keeps its raw value beside its text (`<data value=...>` in the template), so a
reader, a script or a test can compare the page with the API's JSON without parsing "1,234".
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from psycopg import AsyncConnection

from sluice.reports import periods, queries
from sluice.reports.periods import BadParameter, Period

PERIOD_LABELS = {
    "today": "Today",
    "yesterday": "Yesterday",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "month": "This month",
    "last-month": "Last month",
    "12mo": "Last 12 months",
    "all": "All time",
    "custom": "Custom range",
}
# The lists, in the page's order: (dimension, title, heading of the value column).
LISTS = (
    ("path", "Pages", "Page"),
    ("entry_path", "Entry pages", "Page"),
    ("exit_path", "Exit pages", "Page"),
    ("referrer_domain", "Referrers", "Referrer"),
    ("channel", "Channels", "Channel"),
    ("country", "Countries", "Country"),
    ("city", "Cities", "City"),
    ("device_type", "Devices", "Device"),
    ("browser", "Browsers", "Browser"),
    ("os", "Operating systems", "OS"),
    ("utm_source", "UTM sources", "Source"),
    ("utm_medium", "UTM media", "Medium"),
    ("utm_campaign", "UTM campaigns", "Campaign"),
    ("target_domain", "Outbound clicks", "Domain"),
    ("short_code", "Short codes", "Code"),
    ("event_name", "Custom events", "Event"),
)
METRIC_TITLES = {
    "pageviews": "Pageviews",
    "visitors": "Visitors",
    "sessions": "Sessions",
    "clicks": "Clicks",
    "events": "Events",
}
CARDS = (
    ("visitors", "Visitors"),
    ("pageviews", "Pageviews"),
    ("sessions", "Sessions"),
    ("bounce_rate", "Bounce rate"),
    ("avg_session_duration_s", "Visit duration"),
    ("events", "Events"),
)
LOWER_IS_BETTER = {"bounce_rate"}
LIST_LIMIT = 10
DEFAULT_PERIOD = "7d"  # what `/` and a URL naming no period show
CHART_METRICS = ("pageviews", "visitors", "sessions")


@dataclass(frozen=True)
class Result:
    """A page to render (template, status, context), or a redirect to a better URL for it."""

    status_code: int = 200
    context: dict[str, Any] = field(default_factory=dict)
    redirect: str | None = None
    template: str = "dashboard.html"


# -- formatting ------------------------------------------------------------------------------------


def count_text(value: int | float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def rate_text(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def metric_text(name: str, value: Any) -> str:
    if name == "bounce_rate":
        return rate_text(value)
    if name == "avg_session_duration_s":
        return duration_text(value)
    return count_text(value)


def change_text(change: float) -> str:
    sign = "+" if change > 0 else "−" if change < 0 else "±"  # noqa: RUF001 (a real minus sign)
    return f"{sign}{abs(change) * 100:.1f}%"


def point_label(start: str, interval: str) -> str:
    if interval == "hour":
        return start[:16].replace("T", " ")  # 2026-12-02 14:00 (UTC)
    if interval == "month":
        return start[:7]
    return start[:10]


# -- the page's parts --------------------------------------------------------------------------------


def period_query(period: Period) -> dict[str, str]:
    """The query parameters that name `period` (for links: the API's CSV, the pickers)."""
    if period.name == "custom":
        return {"from": period.first_day.isoformat(), "to": period.last_day.isoformat()}
    return {"period": period.name}


def period_context(period: Period) -> dict[str, str]:
    before = period.previous()
    return {
        "name": period.name,
        "label": PERIOD_LABELS.get(period.name, period.name),
        "from": period.first_day.isoformat(),
        "to": period.last_day.isoformat(),
        "previous_from": before.first_day.isoformat(),
        "previous_to": before.last_day.isoformat(),
    }


def cards(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    shown = []
    for key, label in CARDS:
        change = summary["change"][key]
        trend = "flat" if not change else ("up" if (change > 0) != (key in LOWER_IS_BETTER) else "down")
        shown.append(
            {
                "key": key,
                "label": label,
                "value": summary[key],
                "text": metric_text(key, summary[key]),
                "previous": summary["previous"][key],
                "previous_text": metric_text(key, summary["previous"][key]),
                "change": change,
                "change_text": change_text(change) if change is not None else "",
                "trend": trend,
            }
        )
    return shown


def _nice_top(value: float) -> int:
    """The chart's top: the smallest of 2, 4, 6, 8, 10 times 10^k at or above `value` (its half is whole)."""
    scale = 1
    while True:
        for step in (2, 4, 6, 8, 10):
            if step * scale >= value:
                return step * scale
        scale *= 10


def chart(series: Mapping[str, Any]) -> dict[str, Any]:
    points = series["points"]
    top = _nice_top(max([1, *(max(p["pageviews"], p["visitors"]) for p in points)]))
    shown, line = [], []
    for i, p in enumerate(points):
        height = round(p["pageviews"] / top * 100, 2)
        label = point_label(p["start"], series["interval"])
        shown.append(
            {
                **{name: p[name] for name in CHART_METRICS},
                **{f"{name}_text": count_text(p[name]) for name in CHART_METRICS},
                "label": label,
                "x": i * 10 + 1,
                "w": 8,
                "y": round(100 - height, 2),
                "h": height,
            }
        )
        line.append(f"{i * 10 + 5},{round(100 - p['visitors'] / top * 100, 2)}")
    labels = [shown[0]["label"], shown[len(shown) // 2]["label"], shown[-1]["label"]] if len(shown) > 2 else []
    if 0 < len(shown) <= 2:
        labels = [s["label"] for s in shown]
    return {
        "interval": series["interval"],
        "points": shown,
        "width": max(10, len(points) * 10),
        "line": " ".join(line),
        "top_text": count_text(top),
        "middle_text": count_text(top // 2),
        "x_labels": labels,
    }


def top_list(dimension: str, title: str, value_title: str, found: Mapping[str, Any], csv: str) -> dict[str, Any]:
    order = found["order"]
    metrics = [order, *(name for name in ("visitors",) if name != order)]
    rows = [
        {
            "value": row["value"],
            "bar": round((row["share"] or 0) * 100, 1),
            "cells": [{"value": row[name], "text": count_text(row[name])} for name in metrics],
        }
        for row in found["rows"]
    ]
    return {
        "dimension": dimension,
        "title": title,
        "value_title": value_title,
        "metrics": [{"name": name, "title": METRIC_TITLES[name]} for name in metrics],
        "rows": rows,
        "csv": csv,
    }


def api_url(site: str, report: str, query: Mapping[str, str]) -> str:
    return f"/api/v1/sites/{urllib.parse.quote(site, safe='')}/{report}?{urllib.parse.urlencode(query)}"


def dashboard_url(query: Mapping[str, str]) -> str:
    return "/dashboard?" + urllib.parse.urlencode(query)


# -- the whole page -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where the page's queries run: `connect()` lends a connection of the app's pool (as the API's
    handlers borrow theirs), so each query of the page can have its own."""

    connect: Callable[[], AbstractAsyncContextManager[AsyncConnection[Any]]]

    async def ask(self, query: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        async with self.connect() as conn:
            return await query(conn, *args, **kwargs)


async def default_site(source: Source) -> str | None:
    found = await source.ask(queries.sites)
    return str(found[0]["site"]) if found else None


async def report(source: Source, site: str, period: Period, now: datetime, max_future_skew_s: int) -> dict[str, Any]:
    """Every part of the page, each from its own query function on its own pooled connection: the
    queries run side by side, so the page takes about as long as its slowest part."""
    interval = period.default_interval()  # as /timeseries without interval=
    named = period_query(period)
    dimensions = [entry for entry in LISTS if entry[0] in queries.DIMENSIONS]
    summary_task = asyncio.ensure_future(source.ask(queries.summary, site, period))

    async def listed(dimension: str) -> Any:
        # the lists' shares are of the summary's totals (the same totals() of the same period): asked
        # once for the page, not once more per list, and awaited by each list only once its rows are
        # read (the summary's two periods run one after the other)
        return await source.ask(
            queries.breakdown, site, period, dimension, limit=LIST_LIMIT, period_totals=summary_task
        )

    summary, series, live, *lists = await asyncio.gather(
        summary_task,
        source.ask(queries.timeseries, site, period, interval, CHART_METRICS),
        source.ask(queries.realtime, site, now, max_future_skew_s=max_future_skew_s),
        *(listed(dimension) for dimension, _, _ in dimensions),
    )
    shown_lists = [
        top_list(
            dimension, title, value_title, found, api_url(site, f"breakdown/{dimension}", {**named, "format": "csv"})
        )
        for (dimension, title, value_title), found in zip(dimensions, lists, strict=True)
        if dimension != "event_name" or found["rows"]  # custom events: only when the site has any
    ]
    return {
        "realtime": {"visitors": live["visitors"], "text": count_text(live["visitors"])},
        "cards": cards(summary),
        "chart": chart(series),
        "lists": shown_lists,
        "csv": {
            "summary": api_url(site, "summary", {**named, "format": "csv"}),
            "timeseries": api_url(
                site, "timeseries", {**named, "interval": interval, "metrics": ",".join(CHART_METRICS), "format": "csv"}
            ),
        },
    }


def _canonical(params: Mapping[str, str], site: str) -> dict[str, str] | None:
    """The clean query for a request, or None when it is clean already. The URL always names the
    period (none named: the last 7 days); the period picker sends `period` beside the custom range's
    `from`/`to`, and its choice wins ('custom': the range)."""
    name = params.get("period")
    ranged = "from" in params or "to" in params
    if name is None:
        return None if ranged else {"site": site, "period": DEFAULT_PERIOD}
    if not ranged:
        return None
    if name == "custom":
        return {"site": site, "from": params.get("from", ""), "to": params.get("to", "")}
    return {"site": site, "period": name}


async def dashboard(source: Source, params: Mapping[str, str], now: datetime, max_future_skew_s: int) -> Result:
    all_sites = [str(s["site"]) for s in await source.ask(queries.sites)]
    site = params.get("site")
    base: dict[str, Any] = {
        "sites": all_sites,
        "site": site,
        "period_options": [(name, PERIOD_LABELS.get(name, name)) for name in periods.NAMES],
        "report": None,
        "problem": None,
    }
    if not site:
        if all_sites:
            return Result(
                redirect=dashboard_url({"site": all_sites[0], "period": params.get("period") or DEFAULT_PERIOD})
            )
        fallback = period_context(periods.named(DEFAULT_PERIOD, now))
        text = "No data yet: a site appears here once the ETL has counted its first visit."
        return Result(200, {**base, "period": fallback, "problem": text})
    clean = _canonical(params, site)
    if clean is not None:
        return Result(redirect=dashboard_url(clean))
    days = await source.ask(queries.site_days, site)
    first_day: date | None = days[0] if days else None
    try:
        period = periods.parse(params, now, first_day)
    except BadParameter as exc:
        return Result(
            exc.status_code,
            {**base, "period": period_context(periods.named(DEFAULT_PERIOD, now)), "problem": exc.message},
        )
    if days is None:
        return Result(
            404, {**base, "period": period_context(period), "problem": f"Sluice has no data for site {site!r}."}
        )
    return Result(
        200,
        {
            **base,
            "period": period_context(period),
            "report": await report(source, site, period, now, max_future_skew_s),
        },
    )
