"""The seeds' endpoints (/analytics/*) over the known shop, with the seeds' shapes and exact values."""

from __future__ import annotations

from typing import Any

import pytest
from eventlog import IPHONE, event, insert
from starlette.testclient import TestClient

from sluice.etl import pipeline
from sluice.settings import Settings

from .reports_testing import ADMIN, READ

DAYS_OF_MARCH = [f"2026-03-{d:02}" for d in range(4, 11)]


def get(client: TestClient, url: str) -> Any:
    response = client.get(url, headers=READ)
    assert response.status_code == 200, response.text
    return response.json()


def test_stats_of_a_short_code(shop: TestClient) -> None:
    # the redirect of v2 (iPhone, DE, no referrer) on 2026-03-10, the only click with code "spring"
    assert get(shop, "/analytics/stats/spring?days=7") == {
        "short_code": "spring",
        "site": "shop",
        "total_clicks": 1,
        "unique_clicks": 1,
        "clicks_today": 1,
        "clicks_this_week": 1,
        "clicks_this_month": 1,
        "top_countries": [{"name": "DE", "count": 1}],
        "top_referers": [{"name": "Direct", "count": 1}],
        "click_timeline": [{"date": day, "clicks": int(day == "2026-03-10")} for day in DAYS_OF_MARCH],
        "clicks_in_range": 1,
        "date_range_days": 7,
        "device_breakdown": {"mobile": 1},
        "browser_breakdown": {"Mobile Safari": 1},
        "top_referrers": {"Direct": 1},
        "daily_clicks": {day: int(day == "2026-03-10") for day in DAYS_OF_MARCH},
    }
    assert len(get(shop, "/analytics/stats/spring")["click_timeline"]) == 30  # ?days=30 by default


def test_stats_count_unique_visitors_and_the_calendar(shop: TestClient, db: Any, settings: Settings) -> None:
    def redirect(at_: str, visitor: str, **kwargs: Any) -> dict[str, Any]:
        return event("redirect", at_=at_, site="shop", visitor=visitor, shortCode="spring", **kwargs)

    insert(
        db,
        [
            redirect("2026-03-09 08:00", "v2", user_agent=IPHONE, referrer="https://news.example/today"),  # Monday
            redirect("2026-03-01 08:00", "v9", referrer="https://www.news.example/"),  # this month, a Sunday
            redirect("2026-02-27 08:00", "v9", country="US"),  # February
            redirect("2026-03-10 09:00", "bot", user_agent="Googlebot/2.1"),  # left out
        ],
    )
    pipeline.run(settings)
    stats = get(shop, "/analytics/stats/spring?days=3")
    picked = {k: stats[k] for k in ("total_clicks", "unique_clicks", "clicks_today", "clicks_this_week")}
    assert picked == {"total_clicks": 4, "unique_clicks": 2, "clicks_today": 1, "clicks_this_week": 2}
    assert (stats["clicks_this_month"], stats["clicks_in_range"]) == (3, 2)
    assert stats["top_countries"] == [
        {"name": "FR", "count": 2},
        {"name": "DE", "count": 1},
        {"name": "US", "count": 1},
    ]
    assert stats["top_referers"] == [{"name": "Direct", "count": 2}, {"name": "news.example", "count": 2}]
    assert stats["top_referrers"] == {"Direct": 1, "news.example": 1}
    assert stats["daily_clicks"] == {"2026-03-08": 0, "2026-03-09": 1, "2026-03-10": 1}


def test_a_short_code_of_several_sites_needs_the_site(shop: TestClient, db: Any, settings: Settings) -> None:
    insert(db, [event("redirect", at_="2026-03-10 09:00", site="blog", visitor="b1", shortCode="spring")])
    pipeline.run(settings)
    response = shop.get("/analytics/stats/spring", headers=READ)
    assert response.status_code == 409
    assert response.json() == {
        "error": "ambiguous_short_code",
        "message": "short code 'spring' has clicks in several sites (blog, shop): add ?site=",
        "field": "site",
    }
    assert get(shop, "/analytics/stats/spring?site=blog")["total_clicks"] == 1
    unknown = shop.get("/analytics/stats/spring?site=docs", headers=READ)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_short_code")


def test_an_unknown_short_code_is_404(shop: TestClient) -> None:
    response = shop.get("/analytics/stats/nothing", headers=READ)
    assert response.status_code == 404
    assert response.json() == {
        "error": "unknown_short_code",
        "message": "no clicks with short code 'nothing'",
        "field": "short_code",
    }


def test_global_stats(shop: TestClient) -> None:
    # the click to out.org and the redirect, both v2's on 2026-03-10
    assert get(shop, "/analytics/global?days=7") == {
        "site": None,
        "date_range_days": 7,
        "total_clicks": 2,
        "unique_visitors": 1,
        "clicks_today": 2,
        "clicks_this_week": 2,
        "top_urls": [{"short_code": "spring", "clicks": 1}],
        "device_breakdown": {"mobile": 2},
        "browser_breakdown": {"Mobile Safari": 2},
        "top_referrers": {"Direct": 2},
        "daily_clicks": {day: 2 * int(day == "2026-03-10") for day in DAYS_OF_MARCH},
    }
    assert get(shop, "/analytics/global?days=7&site=elsewhere")["total_clicks"] == 0


def test_event_summary_of_the_last_hours(shop: TestClient) -> None:
    # 2026-03-09 13:00 .. 2026-03-10 12:59: v1's pageview at 11:00, v2's six events and the bot's pageview
    # at 10:00 (hourly_event_stats counts every event, bots included)
    assert get(shop, "/analytics/summary?hours=24") == {
        "period_hours": 24,
        "since": "2026-03-09T13:00:00+00:00",
        "timestamp": "2026-03-10T12:30:00+00:00",
        "site": None,
        "summary": {
            "click": {"count": 1, "avg_duration_ms": None},
            "custom": {"count": 3, "avg_duration_ms": 100.25},  # (120 + 80.5) / 2: one had no durationMs
            "pageview": {"count": 3, "avg_duration_ms": None},
            "redirect": {"count": 1, "avg_duration_ms": None},
        },
    }
    assert get(shop, "/analytics/summary?hours=1")["summary"] == {}  # nothing since 12:00
    assert get(shop, "/analytics/summary")["period_hours"] == 24


def test_the_summary_weighs_each_hour_by_its_timed_events(shop: TestClient, db: Any, settings: Settings) -> None:
    # 10:00 has three timed tasks (mean 20), 11:00 one (100): the mean of all four is 40, not 60
    insert(
        db,
        [
            *(
                event("task", at_=f"2026-03-10 10:0{i}", site="shop", visitor="w1", durationMs=ms)
                for i, ms in enumerate((10, 20, 30))
            ),
            event("task", at_="2026-03-10 11:00", site="shop", visitor="w1", durationMs=100),
            event("task", at_="2026-03-10 11:05", site="shop", visitor="w1"),  # no durationMs
        ],
    )
    pipeline.run(settings)
    assert get(shop, "/analytics/summary?hours=24")["summary"]["task"] == {"count": 5, "avg_duration_ms": 40.0}


def test_user_stats(shop: TestClient) -> None:
    assert get(shop, "/analytics/user/v1") == {
        "user_id": "v1",
        "sites": ["shop"],
        "events_by_type": {"pageview": 4},
        "total_events": 4,
        "sessions": 3,
        "pageviews": 4,
        "first_activity": "2026-03-08T10:00:00+00:00",
        "last_activity": "2026-03-10T11:00:00+00:00",
    }
    assert get(shop, "/analytics/user/v2")["events_by_type"] == {"click": 1, "custom": 3, "pageview": 1, "redirect": 1}
    # user_stats counts every event, bots included
    assert get(shop, "/analytics/user/bot")["events_by_type"] == {"pageview": 1}


def test_user_stats_follow_client_sessions(shop: TestClient, db: Any, settings: Settings) -> None:
    # events carrying the tracker's sessionId are found through that id
    insert(
        db,
        [
            event(at_="2026-03-05 10:00", site="shop", visitor="u-42", session="S1", url="https://shop.test/x"),
            event("custom", at_="2026-03-05 10:01", site="shop", visitor="u-42", session="S1"),
        ],
    )
    pipeline.run(settings)
    stats = get(shop, "/analytics/user/u-42")
    assert (stats["events_by_type"], stats["sessions"], stats["pageviews"]) == ({"custom": 1, "pageview": 1}, 1, 1)


def test_user_stats_of_a_user_id_in_two_sites(shop: TestClient, db: Any, settings: Settings) -> None:
    # events sending a userId are counted under it, in each site, whatever their visitor
    insert(
        db,
        [
            event("request", at_="2026-03-10 09:00", site="shop", visitor="x1", userId="alice", route="/cart"),
            event(at_="2026-03-10 09:01", site="shop", visitor="x1", userId="alice", url="https://shop.test/c"),
            event("request", at_="2026-03-10 10:00", site="api", visitor="x2", userId="alice", route="/orders"),
        ],
    )
    pipeline.run(settings)
    assert get(shop, "/analytics/user/alice") == {
        "user_id": "alice",
        "sites": ["api", "shop"],
        "events_by_type": {"pageview": 1, "request": 2},
        "total_events": 3,
        "sessions": 2,
        "pageviews": 1,
        "first_activity": "2026-03-10T09:00:00+00:00",
        "last_activity": "2026-03-10T10:00:00+00:00",
    }


def test_an_unknown_user_is_404(shop: TestClient) -> None:
    response = shop.get("/analytics/user/nobody", headers=READ)
    assert (response.status_code, response.json()["error"], response.json()["field"]) == (
        404,
        "unknown_user",
        "user_id",
    )


def test_dashboard_feed(shop: TestClient) -> None:
    feed = get(shop, "/analytics/dashboard")
    assert feed["timestamp"] == "2026-03-10T12:30:00+00:00"
    assert feed["last_24_hours"] == get(shop, "/analytics/summary?hours=24")["summary"]
    assert feed["last_7_days"] == {
        "click": {"count": 1, "avg_duration_ms": None},
        "custom": {"count": 3, "avg_duration_ms": 100.25},
        "pageview": {"count": 6, "avg_duration_ms": None},  # since 2026-03-03 13:00, the bot's included
        "redirect": {"count": 1, "avg_duration_ms": None},
    }


def test_aggregate_runs_the_etl_for_the_admin_only(shop: TestClient, db: Any) -> None:
    insert(db, [event(at_="2026-03-10 12:10", site="shop", visitor="v10", url="https://shop.test/new")])
    assert shop.post("/analytics/aggregate", headers=READ).status_code == 401
    response = shop.post("/analytics/aggregate", headers=ADMIN)
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["events_processed"]) == ("succeeded", 1)
    assert get(shop, "/api/v1/sites/shop/summary?period=today")["visitors"] == 3


@pytest.mark.parametrize(
    ("url", "status", "field"),
    [
        ("/analytics/stats/spring?days=0", 422, "days"),
        ("/analytics/stats/spring?days=week", 400, "days"),
        ("/analytics/global?days=99999", 422, "days"),
        ("/analytics/summary?hours=abc", 400, "hours"),
        ("/analytics/summary?hours=0", 422, "hours"),
    ],
)
def test_bad_parameters_are_named(shop: TestClient, url: str, status: int, field: str) -> None:
    response = shop.get(url, headers=READ)
    assert (response.status_code, response.json()["error"], response.json()["field"]) == (
        status,
        "bad_parameter" if status == 400 else "invalid_value",
        field,
    )


@pytest.mark.parametrize(
    "url",
    [
        "/analytics/stats/spring",
        "/analytics/global",
        "/analytics/summary",
        "/analytics/user/v1",
        "/analytics/dashboard",
    ],
)
def test_the_seed_endpoints_need_a_token(shop: TestClient, url: str) -> None:
    assert shop.get(url).status_code == 401
    assert shop.get(url, headers=ADMIN).status_code == 200
