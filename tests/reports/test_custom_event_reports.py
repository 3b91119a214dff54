"""The reports' custom events (issue 13): `breakdown/event_name` over the known shop, exact."""

from __future__ import annotations

from typing import Any

import psycopg
from eventlog import GOOGLEBOT, event, insert
from starlette.testclient import TestClient

from sluice.etl import pipeline
from sluice.settings import Settings

from .reports_testing import READ
from .test_reports_api import API, days, get


def rows(answer: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (r["value"], r["events"], r["visitors"], r["sessions"], r["conversion_rate"], r["share"])
        for r in answer["rows"]
    ]


def test_breakdown_of_custom_events(counted_shop: TestClient) -> None:
    # v2's session on 03-10 added to cart twice and checked out; 4 sessions in the 7 days
    answer = get(counted_shop, f"{API}/breakdown/event_name?period=7d")
    assert {k: answer[k] for k in ("period", "dimension", "order", "total", "more")} == {
        "period": days("7d", "2026-03-04", "2026-03-10", "2026-03-11"),
        "dimension": "event_name",
        "order": "events",
        "total": {"events": 3},
        "more": False,
    }
    assert rows(answer) == [("Add to cart", 2, 1, 1, 0.25, 0.6667), ("Checkout", 1, 1, 1, 0.25, 0.3333)]
    # ordered by sessions, a tie: the value decides
    page = get(counted_shop, f"{API}/breakdown/event_name?period=7d&order=sessions&limit=1")
    assert (page["more"], page["total"], [r["value"] for r in page["rows"]]) == (True, {"sessions": 1}, ["Add to cart"])


def test_custom_events_count_visitors_once_and_follow_periods_and_filters(
    shop: TestClient, db: psycopg.Connection, settings: Settings
) -> None:
    def add(at_: str, visitor: str, **kwargs: Any) -> dict[str, Any]:
        return event("custom", at_=at_, site="shop", visitor=visitor, eventName="Add to cart", **kwargs)

    insert(
        db,
        [
            add("2026-03-08 10:01", "v1"),
            add("2026-03-09 09:01", "v1"),  # v1 again, another day: one visitor over the period
            add("2026-03-10 10:00:30", "bot", user_agent=GOOGLEBOT),  # left out
        ],
    )
    pipeline.run(settings)
    week = get(shop, f"{API}/breakdown/event_name?period=7d")
    # sessions: v1's of 03-08 and 03-09, v2's; 3 of the period's 4 sessions
    assert rows(week) == [("Add to cart", 4, 2, 3, 0.75, 0.8), ("Checkout", 1, 1, 1, 0.25, 0.2)]
    by_visitors = get(shop, f"{API}/breakdown/event_name?period=7d&order=visitors")
    assert (by_visitors["total"], [r["value"] for r in by_visitors["rows"]]) == (
        {"visitors": 2},
        ["Add to cart", "Checkout"],
    )
    # one day: v1's and v2's sessions of 03-10 (v1's without a custom event)
    today = get(shop, f"{API}/breakdown/event_name?period=today")
    assert rows(today) == [("Add to cart", 2, 1, 1, 0.5, 0.6667), ("Checkout", 1, 1, 1, 0.5, 0.3333)]
    # 24 whole hours (not whole days): v1's session of 03-09 09:00 is before it
    last_24h = get(shop, f"{API}/breakdown/event_name?period=24h")
    assert [r[:4] for r in rows(last_24h)] == [("Add to cart", 2, 1, 1), ("Checkout", 1, 1, 1)]
    # a filter over the sessions: France is v1's (FR), Germany v2's
    france = get(shop, f"{API}/breakdown/event_name?period=7d&filter=country:FR")
    assert rows(france) == [("Add to cart", 2, 1, 2, 0.6667, 1.0)]
    csv = shop.get(f"{API}/breakdown/event_name?period=7d&format=csv", headers=READ)
    assert csv.text.splitlines() == [
        "value,events,visitors,sessions,conversion_rate,share",
        "Add to cart,4,2,3,0.75,0.8",
        "Checkout,1,1,1,0.25,0.2",
    ]
    wrong = shop.get(f"{API}/breakdown/event_name?order=clicks", headers=READ)
    assert (wrong.status_code, wrong.json()["field"]) == (422, "order")
