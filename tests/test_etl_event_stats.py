"""hourly_event_stats and user_stats (seed 002's statistics): exact rows, incremental = rebuild."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
from eventlog import event, insert
from test_etl_runs import assert_a_rebuild_gives_the_same_tables

from sluice.etl import pipeline
from sluice.settings import Settings


def request(at_: str, route: str, status: Any, duration: Any, **fields: Any) -> dict[str, Any]:
    return event("request", at_=at_, method="GET", route=route, status=status, durationMs=duration, **fields)


def hourly(db: psycopg.Connection) -> list[tuple[Any, ...]]:
    return db.execute(
        """select site_id, to_char(hour at time zone 'UTC', 'HH24:MI'), event_type, route, count, error_count,
                  success_rate, timed_count, avg_duration_ms, min_duration_ms, max_duration_ms, p50_duration_ms,
                  p95_duration_ms
           from hourly_event_stats order by 2, 3, 4"""
    ).fetchall()


def users(db: psycopg.Connection) -> list[tuple[Any, ...]]:
    return db.execute(
        """select user_key, is_user_id, to_char(first_seen_at at time zone 'UTC', 'HH24:MI'),
                  to_char(last_seen_at at time zone 'UTC', 'HH24:MI'), events, events_by_type, sessions, pageviews,
                  errors, avg_duration_ms
           from user_stats order by 1"""
    ).fetchall()


def test_hourly_event_stats_and_user_stats_count_every_event(db: psycopg.Connection, settings: Settings) -> None:
    insert(
        db,
        [
            request("2026-03-01 10:00", "/users/{id}", 200, 10.0, userId="u1"),
            request("2026-03-01 10:10", "/users/{id}", 404, 30.0, userId="u1"),
            request("2026-03-01 10:20", "/users/{id}", 200, 20.0, userId="u2"),
            request("2026-03-01 10:30", "/users/{id}", 500, 40.0, userId="u2"),
            request("2026-03-01 10:40", "/health", 200, "slow", userId="u2"),  # not a number: no duration
            event("pageview", at_="2026-03-01 10:05", visitor="v9"),
            event("custom", at_="2026-03-01 10:06", visitor="v9", error="payment declined", durationMs=7),
            event("request", at_="2026-03-01 11:00", visitor="v9", status="oops", route="/x"),  # no status
        ],
    )
    pipeline.run(settings)
    assert hourly(db) == [
        ("s1", "10:00", "custom", "", 1, 1, Decimal("0.0000"), 1, 7.0, 7.0, 7.0, 7.0, 7.0),
        ("s1", "10:00", "pageview", "", 1, 0, Decimal("1.0000"), 0, None, None, None, None, None),
        ("s1", "10:00", "request", "/health", 1, 0, Decimal("1.0000"), 0, None, None, None, None, None),
        ("s1", "10:00", "request", "/users/{id}", 4, 2, Decimal("0.5000"), 4, 25.0, 10.0, 40.0, 25.0, 38.5),
        ("s1", "11:00", "request", "/x", 1, 0, Decimal("1.0000"), 0, None, None, None, None, None),
    ]
    assert users(db) == [
        ("u1", True, "10:00", "10:10", 2, {"request": 2}, 1, 0, 1, 20.0),
        ("u2", True, "10:20", "10:40", 3, {"request": 3}, 1, 0, 1, 30.0),
        ("v9", False, "10:05", "11:00", 3, {"pageview": 1, "custom": 1, "request": 1}, 2, 1, 1, 7.0),  # 54 min apart
    ]

    # a later batch in the same hour, and a new user: both recounted whole
    insert(db, [request("2026-03-01 10:50", "/users/{id}", 201, 50.0, userId="u1")])
    pipeline.run(settings)
    assert hourly(db)[3] == (
        "s1",
        "10:00",
        "request",
        "/users/{id}",
        5,
        2,
        Decimal("0.6000"),
        5,
        30.0,
        10.0,
        50.0,
        30.0,
        48.0,
    )
    assert users(db)[0] == ("u1", True, "10:00", "10:50", 3, {"request": 3}, 1, 0, 1, 30.0)
    assert_a_rebuild_gives_the_same_tables(db, settings)
