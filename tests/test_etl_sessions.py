"""Known event streams in, exact rows out: sessions, daily tables, clicks."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from eventlog import GOOGLEBOT, IPHONE, at, event, insert, rows

from sluice.etl import pipeline
from sluice.settings import Settings


def sessions(db: psycopg.Connection) -> list[dict[str, object]]:
    return rows(
        db,
        """select visitor_key, started_at, ended_at, started_on, duration_s, event_count, pageview_count,
                  entry_path, exit_path, is_bounce, is_bot
           from sessions order by started_at, visitor_key""",
    )


def test_inactivity_splits_sessions_and_a_session_belongs_to_the_utc_day_it_starts(
    db: psycopg.Connection, settings: Settings
) -> None:
    insert(
        db,
        [
            event(at_="2026-03-01 23:50", url="https://ex.com/a"),
            event(at_="2026-03-01 23:55", url="https://ex.com/b"),
            event(at_="2026-03-02 00:10", url="https://ex.com/c"),  # same session, next UTC day
            event(at_="2026-03-02 00:41", url="https://ex.com/d"),  # 31 minutes later: a new session
        ],
    )
    result = pipeline.run(settings)
    assert result.events_processed == 4

    assert sessions(db) == [
        {
            "visitor_key": "v1",
            "started_at": at("2026-03-01 23:50"),
            "ended_at": at("2026-03-02 00:10"),
            "started_on": date(2026, 3, 1),
            "duration_s": 1200,
            "event_count": 3,
            "pageview_count": 3,
            "entry_path": "/a",
            "exit_path": "/c",
            "is_bounce": False,
            "is_bot": False,
        },
        {
            "visitor_key": "v1",
            "started_at": at("2026-03-02 00:41"),
            "ended_at": at("2026-03-02 00:41"),
            "started_on": date(2026, 3, 2),
            "duration_s": 0,
            "event_count": 1,
            "pageview_count": 1,
            "entry_path": "/d",
            "exit_path": "/d",
            "is_bounce": True,
            "is_bot": False,
        },
    ]
    daily = "select day, pageviews, events, visitors, sessions, bounces, total_duration_s from daily_metrics"
    assert [tuple(r.values()) for r in rows(db, daily + " order by day")] == [
        (date(2026, 3, 1), 3, 3, 1, 1, 0, 1200),
        (date(2026, 3, 2), 1, 1, 1, 1, 1, 0),
    ]


def test_client_session_id_is_the_session_whatever_the_gaps(db: psycopg.Connection, settings: Settings) -> None:
    insert(
        db,
        [
            event(at_="2026-03-01 10:00", session="s-abc", url="https://ex.com/"),
            event(at_="2026-03-01 12:00", session="s-abc", url="https://ex.com/later"),
            event(at_="2026-03-01 12:01", url="https://ex.com/x"),  # same visitor, no sessionId: its own session
        ],
    )
    pipeline.run(settings)
    got = rows(db, "select session_key, is_client_session, event_count, duration_s from sessions order by started_at")
    assert got[0] == {"session_key": "s-abc", "is_client_session": True, "event_count": 2, "duration_s": 7200}
    assert got[1]["is_client_session"] is False
    assert got[1]["event_count"] == 1


def test_cookieless_visitors_are_the_daily_ip_hash_and_user_agent(db: psycopg.Connection, settings: Settings) -> None:
    insert(
        db,
        [
            event(at_="2026-03-01 10:00", visitor=None, ip_hash="aaa"),
            event(at_="2026-03-01 10:05", visitor=None, ip_hash="aaa"),
            event(at_="2026-03-01 10:05", visitor=None, ip_hash="aaa", user_agent=IPHONE),
            event(at_="2026-03-01 10:06", visitor=None, ip_hash="bbb"),
        ],
    )
    pipeline.run(settings)
    got = rows(db, "select visitor_key, event_count, device_type from sessions order by event_count desc, device_type")
    assert [(r["event_count"], r["device_type"]) for r in got] == [(2, "desktop"), (1, "desktop"), (1, "mobile")]
    assert all(str(r["visitor_key"]).startswith("anon:") for r in got)
    assert len({r["visitor_key"] for r in got}) == 3
    assert rows(db, "select visitors, sessions from daily_metrics") == [{"visitors": 3, "sessions": 3}]


def test_a_session_is_cut_at_24_hours_however_active(db: psycopg.Connection, settings: Settings) -> None:
    start = at("2026-03-01 06:00")
    insert(db, [event(at_=start + timedelta(minutes=20 * i)) for i in range(76)])  # 25 hours, never idle
    pipeline.run(settings)
    got = rows(db, "select started_at, ended_at, event_count, activity_started_at from sessions order by started_at")
    assert [(r["started_at"], r["ended_at"], r["event_count"]) for r in got] == [
        (start, start + timedelta(hours=23, minutes=40), 72),
        (start + timedelta(hours=24), start + timedelta(hours=25), 4),
    ]
    assert {r["activity_started_at"] for r in got} == {start}


def test_bots_are_flagged_and_left_out_of_metrics(db: psycopg.Connection, settings: Settings) -> None:
    insert(
        db,
        [
            event(at_="2026-03-01 10:00", visitor="human"),
            event(at_="2026-03-01 10:00", visitor="crawler", user_agent=GOOGLEBOT),
            event(at_="2026-03-01 10:01", visitor="crawler", user_agent=GOOGLEBOT),
            event("click", at_="2026-03-01 10:02", visitor="crawler", user_agent=GOOGLEBOT, target="https://x.org/"),
            event(at_="2026-03-01 10:03", visitor="script", user_agent=None),
        ],
    )
    pipeline.run(settings)
    assert rows(db, "select visitor_key, is_bot from sessions order by visitor_key") == [
        {"visitor_key": "crawler", "is_bot": True},
        {"visitor_key": "human", "is_bot": False},
        {"visitor_key": "script", "is_bot": True},
    ]
    assert rows(db, "select pageviews, visitors, sessions from daily_metrics") == [
        {"pageviews": 1, "visitors": 1, "sessions": 1}
    ]
    assert rows(db, "select is_bot from clicks") == [{"is_bot": True}]
    assert rows(db, "select count(*) as n from hourly_click_counts") == [{"n": 0}]
    assert rows(db, "select count(*) as n from events") == [{"n": 5}]  # the raw log keeps everything


def test_referrer_channels_and_utm(db: psycopg.Connection, settings: Settings) -> None:
    cases: dict[str, dict[str, Any]] = {
        "direct": {},
        "search": {"referrer": "https://www.google.co.uk/search?q=x"},
        "social": {"referrer": "https://t.co/xyz"},
        "referral": {"referrer": "https://blog.example.org/post"},
        "email": {"url": "https://ex.com/?utm_source=n%C3%A9ws+letter&utm_medium=email"},
        "campaign": {"attribution": {"utmParams": {"utm_source": "ads", "utm_campaign": "spring%20sale"}}},
        "internal": {"referrer": "https://ex.com/other"},
    }
    insert(
        db,
        [
            event(at_="2026-03-01 10:00", visitor=name, **{"url": "https://ex.com/", **fields})
            for name, fields in cases.items()
        ],
    )
    pipeline.run(settings)
    got = {
        r["visitor_key"]: (r["channel"], r["referrer_domain"], r["utm_source"], r["utm_campaign"])
        for r in rows(db, "select * from sessions")
    }
    assert got == {
        "direct": ("direct", None, None, None),
        "search": ("search", "google.co.uk", None, None),
        "social": ("social", "t.co", None, None),
        "referral": ("referral", "blog.example.org", None, None),
        "email": ("email", None, "néws letter", None),  # percent-decoded from the URL
        "campaign": ("campaign", None, "ads", "spring%20sale"),  # attribution values are taken as sent
        "internal": ("direct", None, None, None),
    }
    top = rows(
        db,
        """select value, sessions from daily_breakdown where dimension = 'channel'
           order by sessions desc, value limit 2""",
    )
    assert top == [{"value": "direct", "sessions": 2}, {"value": "campaign", "sessions": 1}]


def test_clicks_and_hourly_click_counts(db: psycopg.Connection, settings: Settings) -> None:
    insert(
        db,
        [
            event(at_="2026-03-01 10:00", url="https://ex.com/p"),
            event("click", at_="2026-03-01 10:01", url="https://ex.com/p", target="https://www.other.org/a", text="A"),
            event("click", at_="2026-03-01 10:59", visitor="v2", target="https://www.other.org/a"),
            event("redirect", at_="2026-03-01 11:00", visitor="v2", shortCode="xyz", target="https://dest.io/"),
        ],
    )
    pipeline.run(settings)
    clicks = "select source_path, target_url, target_domain, short_code, link_text from clicks order by occurred_at"
    assert [tuple(r.values()) for r in rows(db, clicks)] == [
        ("/p", "https://www.other.org/a", "other.org", None, "A"),
        (None, "https://www.other.org/a", "other.org", None, None),
        (None, "https://dest.io/", "dest.io", "xyz", None),
    ]
    hourly = "select hour, target_url, short_code, clicks, visitors from hourly_click_counts order by hour"
    assert [tuple(r.values()) for r in rows(db, hourly)] == [
        (at("2026-03-01 10:00"), "https://www.other.org/a", "", 2, 2),
        (at("2026-03-01 11:00"), "https://dest.io/", "xyz", 1, 1),
    ]
    same_session = """select c.session_key = s.session_key as same from clicks as c, sessions as s
                      where s.visitor_key = 'v1' and c.visitor_key = 'v1'"""
    assert rows(db, same_session) == [{"same": True}]


def test_a_late_event_merges_the_sessions_of_an_earlier_run(db: psycopg.Connection, settings: Settings) -> None:
    insert(db, [event(at_="2026-03-01 10:00"), event(at_="2026-03-01 10:40")])
    pipeline.run(settings)
    assert len(sessions(db)) == 2
    assert rows(db, "select sessions from daily_metrics") == [{"sessions": 2}]

    insert(db, [event(at_="2026-03-01 10:20", received="2026-03-01 18:00")])  # bridges the 40-minute gap
    pipeline.run(settings)
    got = sessions(db)
    assert [(r["started_at"], r["ended_at"], r["event_count"]) for r in got] == [
        (at("2026-03-01 10:00"), at("2026-03-01 10:40"), 3)
    ]
    assert rows(db, "select sessions, pageviews, bounces from daily_metrics") == [
        {"sessions": 1, "pageviews": 3, "bounces": 0}
    ]


def test_an_event_hours_after_its_session_extends_it(db: psycopg.Connection, settings: Settings) -> None:
    insert(db, [event(at_="2026-03-01 10:00", session="s1", url="https://ex.com/in")])
    pipeline.run(settings)
    insert(db, [event(at_="2026-03-01 15:00", session="s1", url="https://ex.com/out")])
    pipeline.run(settings)
    got = rows(db, "select session_key, duration_s, event_count, entry_path, exit_path, is_bounce from sessions")
    assert [tuple(r.values()) for r in got] == [("s1", 5 * 3600, 2, "/in", "/out", False)]
    assert rows(db, "select sessions, bounces, avg_session_duration_s from daily_metrics") == [
        {"sessions": 1, "bounces": 0, "avg_session_duration_s": Decimal("18000.0")}
    ]


def test_events_later_than_the_lateness_bound_stay_out(db: psycopg.Connection, settings: Settings) -> None:
    insert(
        db,
        [
            event(at_="2026-03-01 10:00", received="2026-03-04 09:59"),  # 2 days 23:59 late: counted
            event(at_="2026-03-01 10:00", visitor="v2", received="2026-03-04 10:01"),  # 3 days 1 minute: not
        ],
    )
    result = pipeline.run(settings)
    assert (result.events_processed, result.events_too_late) == (1, 1)
    assert rows(db, "select visitor_key from sessions") == [{"visitor_key": "v1"}]


def test_daily_recompute_for_one_date(db: psycopg.Connection, settings: Settings) -> None:
    insert(db, [event(at_="2026-03-01 10:00"), event(at_="2026-03-02 10:00")])
    pipeline.run(settings)
    db.execute("delete from daily_metrics")
    db.execute("insert into daily_metrics select 'gone', '2026-03-01', 9, 9, 9, 9, 0, 0, 0, 0")
    result = pipeline.run(settings, "daily", target_date=date(2026, 3, 1))
    assert result.rows_written["daily_metrics"] == 1
    assert rows(db, "select site_id, day, pageviews from daily_metrics") == [
        {"site_id": "s1", "day": date(2026, 3, 1), "pageviews": 1}
    ]


def test_a_session_straddling_two_runs_keeps_its_key(db: psycopg.Connection, settings: Settings) -> None:
    insert(db, [event(at_="2026-03-01 10:00", url="https://ex.com/a"), event(at_="2026-03-01 10:10")])
    pipeline.run(settings)
    (first,) = rows(db, "select session_key, event_count from sessions")
    insert(db, [event(at_="2026-03-01 10:20"), event(at_="2026-03-01 10:25", url="https://ex.com/z")])
    pipeline.run(settings)
    assert rows(db, "select session_key, event_count, entry_path, exit_path from sessions") == [
        {"session_key": first["session_key"], "event_count": 4, "entry_path": "/a", "exit_path": "/z"}
    ]
    assert rows(db, "select count(distinct session_key) as n from stg_events") == [{"n": 1}]
