"""The reports API over the known shop (reports_testing.py): exact answers for every report and
period, with and without visitor sketches; CSV; parameters; who may ask."""

from __future__ import annotations

import urllib.parse
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import psycopg
import pytest
from eventlog import GOOGLEBOT, event, insert
from starlette.testclient import TestClient

from sluice.app import create_app
from sluice.migrations import MIGRATIONS_DIR
from sluice.reports import periods, queries
from sluice.reports.access import SESSION_COOKIE, sign_session
from sluice.reports.routes import NO_SKETCHES
from sluice.settings import Settings

from .reports_testing import ADMIN, READ, reports_settings

API = "/api/v1/sites/shop"


def get(client: TestClient, url: str, **kwargs: Any) -> Any:
    response = client.get(url, headers=kwargs.pop("headers", READ), **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def period(name: str, first: str, last: str, start: str, end: str) -> dict[str, str]:
    return {"name": name, "from": first, "to": last, "start": start, "end": end}


def days(name: str, first: str, last: str, end: str) -> dict[str, str]:
    return period(name, first, last, f"{first}T00:00:00+00:00", f"{end}T00:00:00+00:00")


def test_sites(counted_shop: TestClient) -> None:
    assert get(counted_shop, "/api/v1/sites") == {
        "sites": [{"site": "shop", "first_day": "2026-03-02", "last_day": "2026-03-10"}]
    }


def test_summary_of_seven_days_against_the_seven_before(counted_shop: TestClient) -> None:
    # sessions: v1 on 03-08 (2 pageviews, 300 s), 03-09 and 03-10 (bounces), v2 on 03-10 (6 events,
    # 120 s); before: v3 on 03-02 (a bounce). v1's three days count one visitor.
    assert get(counted_shop, f"{API}/summary?period=7d") == {
        "site": "shop",
        "period": days("7d", "2026-03-04", "2026-03-10", "2026-03-11"),
        "filter": None,
        "pageviews": 5,
        "visitors": 2,
        "sessions": 4,
        "bounce_rate": 0.5,
        "avg_session_duration_s": 105.0,
        "events": 10,
        "previous": {
            "period": days("before 7d", "2026-02-25", "2026-03-03", "2026-03-04"),
            "pageviews": 1,
            "visitors": 1,
            "sessions": 1,
            "bounce_rate": 1.0,
            "avg_session_duration_s": 0.0,
            "events": 1,
        },
        "change": {
            "pageviews": 4.0,
            "visitors": 1.0,
            "sessions": 3.0,
            "bounce_rate": -0.5,
            "avg_session_duration_s": None,
            "events": 9.0,
        },
    }


@pytest.mark.parametrize(
    ("query", "expected_period", "numbers"),
    [
        ("period=today", days("today", "2026-03-10", "2026-03-10", "2026-03-11"), (2, 2, 2, 7)),
        ("period=yesterday", days("yesterday", "2026-03-09", "2026-03-09", "2026-03-10"), (1, 1, 1, 1)),
        (
            "period=24h",
            period("24h", "2026-03-09", "2026-03-10", "2026-03-09T13:00:00+00:00", "2026-03-10T13:00:00+00:00"),
            (2, 2, 2, 7),
        ),
        ("period=30d", days("30d", "2026-02-09", "2026-03-10", "2026-03-11"), (6, 3, 5, 11)),
        ("period=month", days("month", "2026-03-01", "2026-03-10", "2026-03-11"), (6, 3, 5, 11)),
        ("period=last-month", days("last-month", "2026-02-01", "2026-02-28", "2026-03-01"), (0, 0, 0, 0)),
        ("period=12mo", days("12mo", "2025-04-01", "2026-03-10", "2026-03-11"), (6, 3, 5, 11)),
        ("period=all", days("all", "2026-03-02", "2026-03-10", "2026-03-11"), (6, 3, 5, 11)),
        ("", days("30d", "2026-02-09", "2026-03-10", "2026-03-11"), (6, 3, 5, 11)),  # the default
        # inclusive UTC days; v1 on two days is one visitor
        ("from=2026-03-08&to=2026-03-09", days("custom", "2026-03-08", "2026-03-09", "2026-03-10"), (3, 1, 2, 3)),
        ("from=2026-03-08&to=2026-03-10", days("custom", "2026-03-08", "2026-03-10", "2026-03-11"), (5, 2, 4, 10)),
    ],
)
def test_summary_of_every_period(
    counted_shop: TestClient, query: str, expected_period: dict[str, str], numbers: tuple[int, int, int, int]
) -> None:
    summary = get(counted_shop, f"{API}/summary?{query}")
    assert summary["period"] == expected_period
    assert (summary["pageviews"], summary["visitors"], summary["sessions"], summary["events"]) == numbers


def test_one_visitor_on_three_days_counts_once(counted_shop: TestClient) -> None:
    query = "from=2026-03-08&to=2026-03-10&interval=day&metrics=visitors"
    by_day = get(counted_shop, f"{API}/timeseries?{query}&filter=country:FR")["points"]
    assert by_day == [{"start": f"2026-03-{d:02}", "visitors": 1} for d in (8, 9, 10)]
    assert get(counted_shop, f"{API}/summary?{query}&filter=country:FR")["visitors"] == 1
    assert get(counted_shop, f"{API}/summary?from=2026-03-08&to=2026-03-09")["visitors"] == 1
    assert get(counted_shop, f"{API}/timeseries?from=2026-03-04&to=2026-03-10&interval=week")["points"] == [
        {"start": "2026-03-04", "pageviews": 2, "visitors": 1, "sessions": 1},  # Wednesday to Sunday
        {"start": "2026-03-09", "pageviews": 3, "visitors": 2, "sessions": 3},
    ]


def test_a_filtered_summary_reads_only_those_sessions(counted_shop: TestClient) -> None:
    summary = get(counted_shop, f"{API}/summary?period=7d&filter=channel:search")
    assert summary["filter"] == {"dimension": "channel", "value": "search"}
    picked = {k: summary[k] for k in ("pageviews", "visitors", "sessions", "bounce_rate", "avg_session_duration_s")}
    assert picked == {"pageviews": 2, "visitors": 1, "sessions": 1, "bounce_rate": 0.0, "avg_session_duration_s": 300.0}
    assert get(counted_shop, f"{API}/summary?period=7d&filter=utm_source:(none)")["sessions"] == 3


def test_daily_timeseries_fills_gaps_with_zeros(counted_shop: TestClient) -> None:
    assert get(counted_shop, f"{API}/timeseries?period=7d") == {
        "site": "shop",
        "period": days("7d", "2026-03-04", "2026-03-10", "2026-03-11"),
        "filter": None,
        "interval": "day",
        "metrics": ["pageviews", "visitors", "sessions"],
        "points": [
            {"start": "2026-03-04", "pageviews": 0, "visitors": 0, "sessions": 0},
            {"start": "2026-03-05", "pageviews": 0, "visitors": 0, "sessions": 0},
            {"start": "2026-03-06", "pageviews": 0, "visitors": 0, "sessions": 0},
            {"start": "2026-03-07", "pageviews": 0, "visitors": 0, "sessions": 0},
            {"start": "2026-03-08", "pageviews": 2, "visitors": 1, "sessions": 1},
            {"start": "2026-03-09", "pageviews": 1, "visitors": 1, "sessions": 1},
            {"start": "2026-03-10", "pageviews": 2, "visitors": 2, "sessions": 2},
        ],
    }


def test_hourly_timeseries_of_the_last_24_hours(counted_shop: TestClient) -> None:
    series = get(counted_shop, f"{API}/timeseries?period=24h&metrics=sessions,events,bounce_rate")
    assert series["interval"] == "hour"  # the default for a period of a day or two
    points = series["points"]
    assert len(points) == 24
    assert points[0] == {"start": "2026-03-09T13:00:00+00:00", "sessions": 0, "events": 0, "bounce_rate": None}
    assert [p for p in points if p["sessions"]] == [
        {"start": "2026-03-10T11:00:00+00:00", "sessions": 2, "events": 7, "bounce_rate": 0.5}
    ]


def test_monthly_timeseries_of_twelve_months(counted_shop: TestClient) -> None:
    series = get(counted_shop, f"{API}/timeseries?period=12mo&metrics=visitors,avg_session_duration_s")
    assert series["interval"] == "month"
    assert [p["start"] for p in series["points"]] == [f"2025-{m:02}-01" for m in range(4, 13)] + [
        f"2026-{m:02}-01" for m in (1, 2, 3)
    ]
    assert series["points"][-1] == {"start": "2026-03-01", "visitors": 3, "avg_session_duration_s": 84.0}


def row(value: str, pageviews: int, visitors: int, sessions: int, share: float) -> dict[str, Any]:
    return {"value": value, "pageviews": pageviews, "visitors": visitors, "sessions": sessions, "share": share}


@pytest.mark.parametrize(
    ("dimension", "rows"),
    [
        ("path", [row("/a", 3, 1, 3, 0.6), row("/b", 2, 2, 2, 0.4)]),
        ("entry_path", [row("/a", 4, 1, 3, 0.8), row("/b", 1, 1, 1, 0.2)]),
        ("exit_path", [row("/b", 3, 2, 2, 0.6), row("/a", 2, 1, 2, 0.4)]),
        ("referrer_domain", [row("(none)", 3, 2, 3, 0.6), row("google.com", 2, 1, 1, 0.4)]),
        ("channel", [row("direct", 2, 1, 2, 0.4), row("search", 2, 1, 1, 0.4), row("email", 1, 1, 1, 0.2)]),
        ("country", [row("FR", 4, 1, 3, 0.8), row("DE", 1, 1, 1, 0.2)]),
        ("device_type", [row("desktop", 4, 1, 3, 0.8), row("mobile", 1, 1, 1, 0.2)]),
        ("browser", [row("Chrome", 4, 1, 3, 0.8), row("Mobile Safari", 1, 1, 1, 0.2)]),
        ("os", [row("Windows", 4, 1, 3, 0.8), row("iOS", 1, 1, 1, 0.2)]),
        ("utm_source", [row("(none)", 4, 1, 3, 0.8), row("news", 1, 1, 1, 0.2)]),
        ("utm_medium", [row("(none)", 4, 1, 3, 0.8), row("email", 1, 1, 1, 0.2)]),
        ("utm_campaign", [row("(none)", 4, 1, 3, 0.8), row("spring", 1, 1, 1, 0.2)]),
    ],
)
def test_breakdown_of_every_session_dimension(counted_shop: TestClient, dimension: str, rows: list[Any]) -> None:
    assert get(counted_shop, f"{API}/breakdown/{dimension}?period=7d") == {
        "site": "shop",
        "period": days("7d", "2026-03-04", "2026-03-10", "2026-03-11"),
        "filter": None,
        "dimension": dimension,
        "order": "pageviews",
        "limit": 10,
        "offset": 0,
        "more": False,
        "total": {"pageviews": 5},
        "rows": rows,
    }


@pytest.mark.parametrize(
    ("dimension", "rows"),
    [
        ("target_domain", [("(none)", 1, 1, 0.5), ("out.org", 1, 1, 0.5)]),  # the redirect has no target
        ("short_code", [("(none)", 1, 1, 0.5), ("spring", 1, 1, 0.5)]),
    ],
)
def test_breakdown_of_clicks(counted_shop: TestClient, dimension: str, rows: list[Any]) -> None:
    answer = get(counted_shop, f"{API}/breakdown/{dimension}?period=7d")
    assert (answer["order"], answer["total"]) == ("clicks", {"clicks": 2})
    assert answer["rows"] == [{"value": v, "clicks": c, "visitors": n, "share": s} for v, c, n, s in rows]
    by_visitors = get(counted_shop, f"{API}/breakdown/{dimension}?period=7d&order=visitors&limit=1")
    assert (by_visitors["total"], by_visitors["more"], len(by_visitors["rows"])) == ({"visitors": 1}, True, 1)


def test_breakdown_order_limit_offset_and_filter(counted_shop: TestClient) -> None:
    by_visitors = get(counted_shop, f"{API}/breakdown/path?period=7d&order=visitors&limit=1")
    assert (by_visitors["more"], by_visitors["total"], by_visitors["rows"]) == (
        True,
        {"visitors": 2},
        [row("/b", 2, 2, 2, 1.0)],  # both visitors viewed /b
    )
    second = get(counted_shop, f"{API}/breakdown/path?period=7d&order=visitors&limit=1&offset=1")
    assert (second["more"], second["rows"]) == (False, [row("/a", 3, 1, 3, 0.5)])
    filtered = get(counted_shop, f"{API}/breakdown/path?period=7d&filter=country:FR")
    assert filtered["rows"] == [row("/a", 3, 1, 3, 0.75), row("/b", 1, 1, 1, 0.25)]
    mobile = get(counted_shop, f"{API}/breakdown/short_code?period=7d&filter=device_type:mobile")
    assert [r["value"] for r in mobile["rows"]] == ["(none)", "spring"]
    assert get(counted_shop, f"{API}/breakdown/short_code?period=7d&filter=country:FR")["rows"] == []


def test_realtime_counts_the_raw_log_of_the_last_five_minutes(shop: TestClient, db: psycopg.Connection) -> None:
    def live(minute: int, visitor: str, path: str, site: str = "shop", **kwargs: Any) -> dict[str, Any]:
        at_ = f"2026-03-10 12:{minute:02}"
        return event(at_=at_, site=site, visitor=visitor, url=f"https://shop.test{path}", **kwargs)

    insert(
        db,
        [
            live(20, "v7", "/old"),  # ten minutes ago
            live(26, "v5", "/live"),
            live(27, "v6", "/live"),
            live(29, "v6", "/other"),
            live(29, "bot", "/live", user_agent=GOOGLEBOT),
            live(28, "v8", "/live", site="elsewhere"),
        ],
    )
    assert get(shop, f"{API}/realtime") == {
        "site": "shop",
        "since": "2026-03-10T12:25:00+00:00",
        "until": "2026-03-10T12:30:00+00:00",
        "visitors": 2,
        "pageviews": 3,
        "events": 3,
        "top_pages": [
            {"path": "/live", "visitors": 2, "pageviews": 2},
            {"path": "/other", "visitors": 1, "pageviews": 1},
        ],
    }


def test_csv_with_a_header_row(shop: TestClient) -> None:
    summary = shop.get(f"{API}/summary?period=7d&format=csv", headers=READ)
    assert summary.headers["content-type"] == "text/csv; charset=utf-8"
    assert summary.headers["content-disposition"] == 'attachment; filename="shop-summary.csv"'
    assert summary.text == (
        "metric,value,previous,change\n"
        "pageviews,5,1,4.0\n"
        "visitors,2,1,1.0\n"
        "sessions,4,1,3.0\n"
        "bounce_rate,0.5,1.0,-0.5\n"
        "avg_session_duration_s,105.0,0.0,\n"
        "events,10,1,9.0\n"
    )
    series = shop.get(f"{API}/timeseries?from=2026-03-08&to=2026-03-10", headers={**READ, "Accept": "text/csv"})
    assert series.text == ("start,pageviews,visitors,sessions\n2026-03-08,2,1,1\n2026-03-09,1,1,1\n2026-03-10,2,2,2\n")
    breakdown = shop.get(f"{API}/breakdown/channel?period=7d&format=csv", headers=READ)
    assert breakdown.text == (
        "value,pageviews,visitors,sessions,share\ndirect,2,1,2,0.4\nsearch,2,1,1,0.4\nemail,1,1,1,0.2\n"
    )
    clicks = shop.get(f"{API}/breakdown/short_code?period=7d&format=csv", headers=READ)
    assert clicks.text == "value,clicks,visitors,share\n(none),1,1,0.5\nspring,1,1,0.5\n"
    assert (
        shop.get(f"{API}/summary?period=7d&format=json", headers={**READ, "Accept": "text/csv"}).json()["visitors"] == 2
    )


@pytest.mark.parametrize(
    ("url", "status", "field"),
    [
        (f"{API}/summary?period=fortnight", 422, "period"),
        (f"{API}/summary?from=2026-3-1&to=2026-03-02", 400, "from"),
        (f"{API}/summary?from=2026-03-01", 400, "to"),
        (f"{API}/summary?to=2026-03-01", 400, "from"),
        (f"{API}/summary?from=2026-03-02&to=2026-03-01", 422, "to"),
        (f"{API}/summary?from=2000-01-01&to=2026-03-01", 422, "from"),
        (f"{API}/summary?period=7d&from=2026-03-01&to=2026-03-02", 400, "period"),
        (f"{API}/summary?filter=country", 400, "filter"),
        (f"{API}/summary?filter=country:", 400, "filter"),
        (f"{API}/summary?filter=path:/a", 422, "filter"),
        (f"{API}/summary?format=xml", 422, "format"),
        (f"{API}/timeseries?interval=minute", 422, "interval"),
        (f"{API}/timeseries?interval=hour&period=12mo", 422, "interval"),
        (f"{API}/timeseries?metrics=pageviews,clicks", 422, "metrics"),
        (f"{API}/timeseries?metrics=pageviews,", 422, "metrics"),
        (f"{API}/breakdown/planet", 422, "dimension"),
        (f"{API}/breakdown/path?limit=0", 422, "limit"),
        (f"{API}/breakdown/path?limit=ten", 400, "limit"),
        (f"{API}/breakdown/path?offset=-1", 422, "offset"),
        (f"{API}/breakdown/path?order=clicks", 422, "order"),
        (f"{API}/breakdown/short_code?order=sessions", 422, "order"),
        ("/api/v1/sites/nowhere/summary", 404, "site"),
        ("/api/v1/sites/nowhere/realtime", 404, "site"),
        ("/api/v1/sites/nowhere/breakdown/path?limit=ten", 400, "limit"),  # parameters are checked first
    ],
)
def test_bad_parameters_are_named(shop: TestClient, url: str, status: int, field: str) -> None:
    response = shop.get(url, headers=READ)
    assert response.status_code == status
    body = response.json()
    assert (body["field"], sorted(body)) == (field, ["error", "field", "message"])
    assert body["error"] == {404: "site_not_found", 400: "bad_parameter", 422: "invalid_value"}[status]


@pytest.mark.parametrize(
    "url",
    ["/api/v1/sites", f"{API}/summary", f"{API}/timeseries", f"{API}/breakdown/path", f"{API}/realtime"],
)
def test_the_reports_need_the_read_or_the_admin_token(shop: TestClient, url: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic read-t0ken"}):
        response = shop.get(url, headers=headers)
        assert response.status_code == 401
        assert response.json() == {
            "error": "unauthorized",
            "message": "send 'Authorization: Bearer <SLUICE_READ_TOKEN>' (or the admin token)",
        }
        assert response.headers["www-authenticate"] == 'Bearer realm="sluice"'
    assert shop.get(url, headers=READ).status_code == 200
    assert shop.get(url, headers=ADMIN).status_code == 200


def test_a_signed_session_cookie_reaches_the_reports(shop: TestClient, settings: Settings) -> None:
    cookie = sign_session(reports_settings(settings), "read")
    assert shop.get(f"{API}/summary", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}).status_code == 200
    assert shop.get(f"{API}/summary", headers={"Cookie": f"{SESSION_COOKIE}=read.9999999999.forged"}).status_code == 401


@pytest.mark.parametrize(
    ("method", "url"),
    [("GET", "/etl/status"), ("POST", "/etl/run-sync"), ("GET", "/events/count"), ("GET", "/events/recent")],
)
def test_the_read_token_does_not_reach_the_controls(shop: TestClient, method: str, url: str) -> None:
    assert shop.request(method, url, headers=READ).status_code == 401
    cookie = sign_session(replace(Settings(), read_token="read-t0ken", admin_token="admin-t0ken"), "read")
    assert shop.request(method, url, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}).status_code == 401
    assert shop.request(method, url, headers=ADMIN).status_code == 200


def test_without_any_token_configured_the_reports_are_forbidden(settings: Settings, fixed_clock: datetime) -> None:
    with TestClient(create_app(settings)) as client:
        response = client.get("/api/v1/sites", headers=READ)
    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "message": "reports are disabled: set SLUICE_READ_TOKEN (or SLUICE_ADMIN_TOKEN) to enable them",
    }


def test_without_postgresql_hll_start_up_says_how_visitors_are_counted(
    db: psycopg.Connection, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(reports_settings(settings))):
        pass
    assert NO_SKETCHES not in caplog.text
    db.execute("drop extension hll cascade")
    with TestClient(create_app(reports_settings(settings))):
        pass
    assert NO_SKETCHES in caplog.text


def test_every_filter_from_the_daily_tables_equals_the_count_from_sessions(
    shop: TestClient, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With postgresql-hll a filtered summary or series of days, weeks or months reads the filter's
    own daily rows (daily_breakdown, daily_breakdown_totals, their sketches); each answer equals the
    exact count over sessions, for every filter dimension and every value the shop has."""
    filters = rows_of(
        db,
        """select distinct dimension, value from daily_breakdown
           where site_id = 'shop' and dimension <> 'path' order by 1, 2""",
    )
    assert len(filters) > 20
    urls = [
        f"{API}/{report}&filter={dimension}:{urllib.parse.quote(value)}"
        for dimension, value in filters
        for report in (
            "summary?period=30d",
            "summary?from=2026-03-09&to=2026-03-09",  # one day: its exact count
            "timeseries?period=7d&metrics=pageviews,visitors,sessions,events,bounce_rate,avg_session_duration_s",
            "timeseries?period=12mo&interval=week&metrics=visitors,events",
        )
    ]
    from_tables = [get(shop, url) for url in urls]
    monkeypatch.setattr(queries, "_from_filtered_daily_tables", _never)
    assert [get(shop, url) for url in urls] == from_tables


def test_click_breakdowns_from_daily_click_breakdown_equal_the_count_from_clicks(
    shop: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = [
        f"{API}/breakdown/{dimension}?{query}&order={order}&limit={limit}"
        for dimension in ("target_domain", "short_code")
        for query in ("period=7d", "period=12mo", "from=2026-03-10&to=2026-03-10", "from=2026-02-01&to=2026-02-02")
        for order in ("clicks", "visitors")
        for limit in (1, 10)
    ]
    from_table = [get(shop, url) for url in urls]
    assert any(answer["rows"] for answer in from_table)
    monkeypatch.setattr(queries, "_from_daily_tables", _never)
    assert [get(shop, url) for url in urls] == from_table


def test_breakdowns_over_whole_months_read_the_monthly_sketches_and_answer_as_the_days(
    shop: TestClient, db: psycopg.Connection
) -> None:
    """A closed month the period covers whole is one row per value of monthly_breakdown_sketches
    (the ETL runs in a later month than the shop's March): the answers equal those from the days'
    rows alone, and those rows' sketches and sums are what the lists read."""
    dimensions = ("path", "entry_path", "country", "device_type", "target_domain", "short_code")
    orders = {"target_domain": ("clicks", "visitors"), "short_code": ("clicks", "visitors")}
    urls = [
        f"{API}/breakdown/{dimension}?{query}&order={order}&limit={limit}"
        for dimension in dimensions
        # March whole; February and March whole (no February rows); March and some of April
        for query in ("from=2026-03-01&to=2026-03-31", "from=2026-02-01&to=2026-03-31", "from=2026-03-01&to=2026-04-03")
        for order in orders.get(dimension, ("pageviews", "visitors"))
        for limit in (1, 10)
    ]
    march = rows_of(db, "select count(*) from monthly_breakdown_sketches where month = '2026-03-01'")
    assert march[0][0] > 14
    with_months = [get(shop, url) for url in urls]
    several_days = [r for a in with_months for r in a["rows"] if r["visitors"] > 1]
    assert several_days  # (a value with a single day row answers with that day's exact count)
    # the months' rows are read: with their sketches emptied, those visitors are gone
    db.execute("update monthly_breakdown_sketches set visitor_sketch = hll_empty(14)::bytea")
    emptied = [get(shop, url) for url in urls]
    assert emptied != with_months
    # and so are their sums: with each doubled, the lists' pageviews, sessions and clicks change
    db.execute(
        "update monthly_breakdown_sketches"
        " set pageviews = pageviews * 2, sessions = sessions * 2, clicks = clicks * 2, day_visitors = day_visitors * 2"
    )
    doubled = [get(shop, url) for url in urls]
    assert [[(r["value"], r.get("pageviews"), r.get("clicks")) for r in a["rows"]] for a in doubled] != [
        [(r["value"], r.get("pageviews"), r.get("clicks")) for r in a["rows"]] for a in emptied
    ]
    # and without them, the days' sketches give the same answers
    db.execute("truncate monthly_breakdown_sketches")
    assert [get(shop, url) for url in urls] == with_months


def test_breakdowns_over_whole_weeks_read_the_weekly_sketches_and_answer_as_the_days(
    shop: TestClient, db: psycopg.Connection
) -> None:
    """A closed ISO week the period covers whole, in no whole month of it, is one row per value of
    weekly_breakdown_sketches (the shop's week of Monday March 2 holds its March 2 and 8): the
    answers equal those from the days' rows alone. A week inside a month the period covers whole
    is read as part of that month, never twice."""
    dimensions = ("path", "entry_path", "country", "target_domain", "short_code")
    orders = {"target_domain": ("clicks", "visitors"), "short_code": ("clicks", "visitors")}
    # the week of March 2 and two days; the week and the partial week before; March whole (its weeks
    # are the month's); March whole and the week of February 23 partly in it
    periods = (
        "from=2026-03-02&to=2026-03-10",
        "from=2026-02-25&to=2026-03-10",
        "from=2026-03-01&to=2026-03-31",
        "from=2026-02-23&to=2026-03-31",
    )
    urls = [
        f"{API}/breakdown/{dimension}?{query}&order={order}&limit={limit}"
        for dimension in dimensions
        for query in periods
        for order in orders.get(dimension, ("pageviews", "visitors"))
        for limit in (1, 10)
    ]
    week = rows_of(db, "select count(*) from weekly_breakdown_sketches where week = '2026-03-02'")
    assert week[0][0] > 14
    with_weeks = [get(shop, url) for url in urls]
    # the first period's /a (v1 on March 8, 9 and 10; v3 on March 2): three rows read, a week's
    # union and two days'
    path = get(shop, f"{API}/breakdown/path?from=2026-03-02&to=2026-03-10&order=visitors")
    assert [(r["value"], r["visitors"]) for r in path["rows"]][:1] == [("/a", 2)]
    # the weeks' rows are read where no month is: with their sketches emptied, those visitors are
    # gone, but not from March whole
    db.execute("update weekly_breakdown_sketches set visitor_sketch = hll_empty(14)::bytea")
    emptied = [get(shop, url) for url in urls]
    march = [i for i, url in enumerate(urls) if "to=2026-03-31" in url]
    by_weeks = [i for i in range(len(urls)) if i not in march]
    assert [emptied[i] for i in by_weeks] != [with_weeks[i] for i in by_weeks]
    assert [emptied[i] for i in march] == [with_weeks[i] for i in march]
    # and so are their sums
    db.execute(
        "update weekly_breakdown_sketches"
        " set pageviews = pageviews * 2, sessions = sessions * 2, clicks = clicks * 2, day_visitors = day_visitors * 2"
    )
    doubled = [get(shop, url) for url in urls]
    assert [[(r["value"], r.get("pageviews"), r.get("clicks")) for r in a["rows"]] for a in doubled] != [
        [(r["value"], r.get("pageviews"), r.get("clicks")) for r in a["rows"]] for a in emptied
    ]
    assert [doubled[i] for i in march] == [with_weeks[i] for i in march]
    # and without them, the days' sketches give the same answers
    db.execute("truncate weekly_breakdown_sketches")
    assert [get(shop, url) for url in urls] == with_weeks


async def _never(*args: Any) -> bool:
    return False


def rows_of(db: psycopg.Connection, query: str) -> list[tuple[Any, ...]]:
    return db.execute(query).fetchall()


def test_the_weeks_a_period_reads_are_its_whole_iso_weeks_outside_its_whole_months() -> None:
    now = datetime(2026, 12, 3, 19, tzinfo=UTC)
    thirty = periods.named("30d", now)  # Wed 11-04 .. Thu 12-03: no whole month
    assert queries._weeks_outside_months(thirty, queries._whole_months(thirty)) == [
        date(2026, 11, 9),
        date(2026, 11, 16),
        date(2026, 11, 23),
    ]
    twelve = periods.named("12mo", now)  # Jan .. Nov whole: every whole week lies in them
    assert queries._weeks_outside_months(twelve, queries._whole_months(twelve)) == []
    # March whole: the weeks of Feb 16 and Apr 6; those of Feb 23 and Mar 30 have days in March
    spanning = periods.parse({"from": "2026-02-16", "to": "2026-04-12"}, now)
    assert queries._whole_months(spanning) == (date(2026, 3, 1), date(2026, 3, 1))
    assert queries._weeks_outside_months(spanning, queries._whole_months(spanning)) == [
        date(2026, 2, 16),
        date(2026, 4, 6),
    ]


def test_filtered_breakdowns_from_session_columns_equal_the_count_from_sessions(
    shop: TestClient, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With postgresql-hll a filtered breakdown over whole days reads session_columns (migration
    0050): every filter value the shop has ('(none)' included), session dimensions and path, each
    order, a page with an offset (ties ranked by value): the same answers as from `sessions`."""
    filters = rows_of(
        db,
        """select distinct dimension, value from daily_breakdown
           where site_id = 'shop' and dimension in ('device_type', 'utm_source', 'country', 'entry_path')
           order by 1, 2""",
    )
    assert any(value == "(none)" for _, value in filters)
    urls = [
        f"{API}/breakdown/{dimension}?{period}&filter={name}:{urllib.parse.quote(value)}&order={order}&{page}"
        for name, value in filters
        for dimension in ("path", "os", "utm_source", name)
        for period in ("period=30d", "from=2026-03-09&to=2026-03-09")
        for order, page in (("pageviews", "limit=10"), ("visitors", "limit=2&offset=1"), ("sessions", "limit=1"))
    ]
    from_columns = [get(shop, url) for url in urls]
    assert sum(len(answer["rows"]) for answer in from_columns) > 100
    monkeypatch.setattr(queries, "_from_filtered_daily_tables", _never)
    assert [get(shop, url) for url in urls] == from_columns


def test_the_fill_migration_writes_session_columns_as_the_etl_does(shop: TestClient, db: psycopg.Connection) -> None:
    """Migration 0051 fills session_columns from the stored sessions of a database upgraded with data
    in it (a run rewrites only the site-days it touches): the same rows as the ETL wrote."""
    written = rows_of(db, "select * from session_columns order by site_id, started_on")
    assert len(written) > 1
    fill = (MIGRATIONS_DIR / "0051_session_columns_fill.sql").read_text()
    db.execute("delete from session_columns where started_on = (select min(started_on) from session_columns)")
    db.execute(fill)
    assert rows_of(db, "select * from session_columns order by site_id, started_on") == written
    db.execute(fill)  # over rows already there (a database that ran 0050 before 0051 existed)
    assert rows_of(db, "select * from session_columns order by site_id, started_on") == written
    assert db.execute("show enable_hashagg").fetchone() == ("on",)
