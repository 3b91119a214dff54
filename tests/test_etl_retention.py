"""Retention tiers (issue 13): the monthly tables, what cleanup keeps per tier, and a rebuild after the
raw log was trimmed, which keeps what it can no longer recompute."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import psycopg
from eventlog import event, insert, rows, snapshot
from test_etl_runs import assert_a_rebuild_gives_the_same_tables

from sluice.etl import pipeline
from sluice.etl.cleanup import cleanup
from sluice.etl.jobs import JOBS
from sluice.etl.status import status
from sluice.settings import Settings

MONTHLY = "select month, pageviews, events, visitors, sessions, bounces from monthly_metrics order by month"


def _pageview(at_: str, visitor: str, path: str = "/", **fields: Any) -> dict[str, Any]:
    return event(at_=at_, visitor=visitor, url=f"https://ex.com{path}", **fields)


def test_monthly_metrics_count_each_visitor_once_a_month(db: psycopg.Connection, settings: Settings) -> None:
    insert(db, [_pageview("2026-03-02 10:00", "v1"), _pageview("2026-03-02 11:00", "v2", "/a")])
    pipeline.run(settings)
    # v1 again later in March (another day, another run) and in April; v3 new in March
    insert(db, [_pageview("2026-03-20 09:00", "v1", "/a"), _pageview("2026-03-20 09:01", "v1", "/b")])
    pipeline.run(settings)
    insert(db, [_pageview("2026-03-31 23:59", "v3"), _pageview("2026-04-01 00:10", "v1")])
    pipeline.run(settings)
    assert rows(db, MONTHLY) == [
        {"month": date(2026, 3, 1), "pageviews": 5, "events": 5, "visitors": 3, "sessions": 4, "bounces": 3},
        {"month": date(2026, 4, 1), "pageviews": 1, "events": 1, "visitors": 1, "sessions": 1, "bounces": 1},
    ]
    # the month's visitors are distinct over the month, not the sum of its days'
    by_day = rows(db, "select sum(visitors) as n from daily_metrics where day < '2026-04-01'")
    assert by_day == [{"n": 4}]
    paths = rows(
        db,
        """select value, pageviews, visitors, sessions from monthly_breakdown
           where dimension = 'path' and month = '2026-03-01' order by value""",
    )
    assert paths == [
        {"value": "/", "pageviews": 2, "visitors": 2, "sessions": 2},
        {"value": "/a", "pageviews": 2, "visitors": 2, "sessions": 2},
        {"value": "/b", "pageviews": 1, "visitors": 1, "sessions": 1},
    ]
    assert rows(
        db, "select visitors, sessions from monthly_breakdown where dimension = 'channel' and month = '2026-03-01'"
    ) == [{"visitors": 3, "sessions": 4}]
    assert_a_rebuild_gives_the_same_tables(db, settings)


def test_monthly_rows_move_with_their_sessions_and_go_with_the_last(db: psycopg.Connection, settings: Settings) -> None:
    insert(db, [_pageview("2026-03-02 10:00", "v1", session="s1"), _pageview("2026-03-05 10:00", "v1")])
    pipeline.run(settings)
    assert [(r["visitors"], r["sessions"]) for r in rows(db, MONTHLY)] == [(1, 2)]
    # s1 turns out a crawler's: v1 is still a visitor of March by its other session
    insert(db, [_pageview("2026-03-02 10:05", "v1", session="s1", user_agent="Googlebot/2.1")])
    pipeline.run(settings)
    assert [(r["visitors"], r["sessions"], r["pageviews"]) for r in rows(db, MONTHLY)] == [(1, 1, 1)]
    insert(db, [_pageview("2026-03-05 10:05", "v1", user_agent="Googlebot/2.1")])
    pipeline.run(settings)
    assert rows(db, MONTHLY) == []
    assert rows(db, "select * from monthly_breakdown") == []
    assert_a_rebuild_gives_the_same_tables(db, settings)


def test_monthly_click_counts_count_a_visitor_once_a_month(db: psycopg.Connection, settings: Settings) -> None:
    def click(at_: str, visitor: str, session: str | None = None) -> dict[str, Any]:
        return event("click", at_=at_, visitor=visitor, session=session, target="https://out.org/x")

    first = [click("2026-03-02 10:00", "v1", "s1"), click("2026-03-09 10:00", "v1"), click("2026-03-09 11:00", "v2")]
    insert(db, first)
    pipeline.run(settings)
    insert(db, [click("2026-03-30 10:00", "v2"), click("2026-04-01 10:00", "v2")])
    pipeline.run(settings)
    query = "select month, target_domain, clicks, visitors from monthly_click_counts order by month"
    assert rows(db, query) == [
        {"month": date(2026, 3, 1), "target_domain": "out.org", "clicks": 4, "visitors": 2},
        {"month": date(2026, 4, 1), "target_domain": "out.org", "clicks": 1, "visitors": 1},
    ]
    # v1's first session becomes a crawler's: its click goes, v1 stays by its other click
    insert(db, [event(at_="2026-03-02 10:01", visitor="v1", session="s1", user_agent="Googlebot/2.1")])
    pipeline.run(settings)
    assert [(r["clicks"], r["visitors"]) for r in rows(db, query)] == [(3, 2), (1, 1)]
    assert_a_rebuild_gives_the_same_tables(db, settings)


# --- tiers ---------------------------------------------------------------------------------------

# Six weeks of a site: March 2 and 10 (v2 only then), March 20, April 2 and 5.
DAYS = [date(2026, 3, 2), date(2026, 3, 10), date(2026, 3, 20), date(2026, 4, 2), date(2026, 4, 5)]


def _history(db: psycopg.Connection) -> None:
    for day in DAYS:
        db.execute("select ensure_event_partitions(%s, 1)", (day,))
    events = []
    for day in DAYS:
        for visitor in ("v1", "v2") if day == DAYS[1] else ("v1", "v3"):
            events.append(_pageview(f"{day} 10:00", visitor, "/a" if day.month == 3 else "/b", userId=f"u-{visitor}"))
        events.append(event("click", at_=f"{day} 10:01", visitor="v1", target="https://out.org/"))
    insert(db, events)


def _trim(db: psycopg.Connection, settings: Settings, today: date) -> dict[str, int]:
    with db.transaction():
        removed = cleanup(db, settings, today=today)
    db.execute("reset timezone")  # (cleanup sets it for its transaction only)
    return removed


def _without(tables: dict[str, list[dict[str, Any]]], *names: str) -> dict[str, list[dict[str, Any]]]:
    return {table: content for table, content in tables.items() if table not in names}


def test_a_rebuild_after_the_raw_log_was_trimmed_keeps_what_it_cannot_recompute(
    db: psycopg.Connection, settings: Settings
) -> None:
    _history(db)
    pipeline.run(settings)
    # 30 days' retention on April 14 (the cutoff March 15) drops the partitions of March 2 and 10
    removed = _trim(db, replace(settings, retention_days=30), today=date(2026, 4, 14))
    assert removed["events_partitions"] == 2
    # from the cutoff on, the raw tier (the log, stg_events, the hourly tables) is whole
    assert rows(db, "select raw_log_from::date as d from etl_state") == [{"d": date(2026, 3, 15)}]
    before = snapshot(db)
    march = rows(db, MONTHLY)[0]
    assert (march["visitors"], march["sessions"]) == (3, 6)  # v2 only on March 10, which the log lost

    result = pipeline.run(settings, "rebuild")
    # the first day every session of which is still in the log: the day after the cutoff
    assert result.recomputed_from == "2026-03-16"
    after = snapshot(db)
    # the days and months the log no longer covers are as they were (March 2 and 10, the sessions
    # and clicks of those days, the month of March, covered in part) and the newer rows equal
    # before: a recount from the log. user_stats counts each user over the raw log, as incremental
    # runs recount a user (over stg_events, which retention trims like the log).
    assert _without(after, "user_stats") == _without(before, "user_stats")
    assert rows(db, MONTHLY)[0] == march
    assert [r["day"] for r in rows(db, "select day from daily_metrics order by day")] == DAYS
    assert rows(db, "select user_key, events from user_stats order by 1") == [
        {"user_key": "u-v1", "events": 3},
        {"user_key": "u-v3", "events": 3},
        {"user_key": "v1", "events": 3},  # (the clicks, without a userId)
    ]

    # later runs move the kept rows: v2 back in March counts once in the month (its March 10
    # session is still in `sessions`), and a rebuild still gives what the runs did
    db.execute("select ensure_event_partitions(%s, 1)", (date(2026, 3, 21),))
    insert(db, [_pageview("2026-03-21 10:00", "v2", received="2026-03-21 10:00:01")])
    pipeline.run(settings)
    march_after = rows(db, MONTHLY)[0]
    assert (march_after["visitors"], march_after["sessions"]) == (3, 7)
    assert_a_rebuild_gives_the_same_tables(db, settings)


def test_a_month_the_raw_log_covers_whole_is_recomputed(db: psycopg.Connection, settings: Settings) -> None:
    _history(db)
    pipeline.run(settings)
    # every March partition dropped, and April's rows are still recomputed from the log
    _trim(db, replace(settings, retention_days=10), today=date(2026, 4, 1))
    db.execute("update monthly_metrics set pageviews = 0")  # what a rebuild recounts shows
    result = pipeline.run(settings, "rebuild")
    assert result.recomputed_from == "2026-03-23"
    assert [(r["month"], r["pageviews"]) for r in rows(db, MONTHLY)] == [(date(2026, 3, 1), 0), (date(2026, 4, 1), 4)]


def test_a_long_session_across_the_trim_moves_the_covered_day_past_its_end(
    db: psycopg.Connection, settings: Settings
) -> None:
    # a client session from March 10 to 12 (its sessionId kept): the log loses March 10
    for day in (date(2026, 3, 10), date(2026, 3, 11), date(2026, 3, 12), date(2026, 3, 20)):
        db.execute("select ensure_event_partitions(%s, 1)", (day,))
    insert(
        db,
        [
            _pageview("2026-03-10 23:00", "v1", session="long"),
            _pageview("2026-03-11 20:00", "v1", session="long"),
            _pageview("2026-03-12 05:00", "v1", session="long"),
            _pageview("2026-03-20 10:00", "v2"),
        ],
    )
    pipeline.run(settings)
    with db.transaction():
        cleanup(db, replace(settings, retention_days=30), today=date(2026, 4, 10))  # drops March 10 only
    db.execute("reset timezone")
    assert rows(db, "select raw_log_from::date as d from etl_state") == [{"d": date(2026, 3, 11)}]
    before = snapshot(db)
    result = pipeline.run(settings, "rebuild")
    assert result.recomputed_from == "2026-03-13"  # not March 12: the session lasted until then
    assert _without(snapshot(db), "user_stats") == _without(before, "user_stats")


def test_cleanup_without_old_partitions_leaves_the_log_whole(db: psycopg.Connection, settings: Settings) -> None:
    _history(db)
    pipeline.run(settings)
    _trim(db, settings, today=date(2026, 4, 14))  # 90 days: nothing that old
    assert rows(db, "select raw_log_from from etl_state") == [{"raw_log_from": None}]
    before = snapshot(db)
    assert pipeline.run(settings, "rebuild").recomputed_from is None
    assert snapshot(db) == before


def test_status_shows_what_each_tier_holds(db: psycopg.Connection, settings: Settings) -> None:
    _history(db)
    pipeline.run(settings)
    _trim(db, replace(settings, retention_days=30), today=date(2026, 4, 14))
    retention = status(db, settings.data_dir, settings)["retention"]
    assert {tier: retention[tier]["kept_days"] for tier in ("raw", "daily", "forever")} == {
        "raw": settings.retention_days,
        "daily": settings.daily_retention_days,
        "forever": None,
    }
    assert retention["raw"]["tables"]["events"] == {"rows": 9, "oldest_day": date(2026, 3, 20)}
    assert retention["raw"]["tables"]["stg_events"] == {"rows": 9, "oldest_day": date(2026, 3, 20)}
    assert retention["daily"]["tables"]["daily_metrics"] == {"rows": 5, "oldest_day": date(2026, 3, 2)}
    assert retention["forever"]["tables"]["monthly_metrics"] == {"rows": 2, "oldest_day": date(2026, 3, 1)}
    assert retention["forever"]["tables"]["user_stats"] == {"rows": 4, "oldest_day": None}
    assert retention["recomputable_from"] == "2026-03-16"
    assert retention["raw_log_whole_from"].date() == date(2026, 3, 15)
    # every table a job writes, under its declared tier
    listed = {table for tier in ("raw", "daily", "forever") for table in retention[tier]["tables"]}
    assert listed == {"events", *(job.table for job in JOBS if job.table)}


def test_hourly_tables_are_kept_as_long_as_the_raw_log(db: psycopg.Connection, settings: Settings) -> None:
    _history(db)
    pipeline.run(settings)
    # daily rows are kept two years; the hourly ones go with the raw log
    _trim(db, replace(settings, retention_days=30), today=date(2026, 4, 14))
    oldest = rows(db, "select (min(hour) at time zone 'UTC')::date as d from hourly_click_counts")
    assert oldest == [{"d": date(2026, 3, 20)}]
    assert rows(db, "select min(day) as d from daily_metrics") == [{"d": date(2026, 3, 2)}]
    assert rows(db, "select count(*) as n from monthly_click_counts") == [{"n": 2}]
    assert timedelta(days=settings.daily_retention_days) > timedelta(days=settings.retention_days)
