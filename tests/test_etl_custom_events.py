"""daily_custom_events and daily_custom_event_props (issue 13: sluice.track(name, props)): exact rows,
the value cap, bots left out, rows that move with their sessions, incremental = rebuild."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from eventlog import GOOGLEBOT, event, insert
from test_etl_runs import assert_a_rebuild_gives_the_same_tables

from sluice.etl import pipeline
from sluice.settings import ConfigError, Settings


def track(at_: str, name: str | None, props: Any = None, **fields: Any) -> dict[str, Any]:
    return event("custom", at_=at_, eventName=name, props=props, **fields)


def custom_events(db: psycopg.Connection) -> list[tuple[Any, ...]]:
    return db.execute(
        """select site_id, day::text, event_name, events, visitors, sessions, conversion_rate
           from daily_custom_events order by site_id, day, event_name"""
    ).fetchall()


def props(db: psycopg.Connection) -> list[tuple[Any, ...]]:
    return db.execute(
        """select day::text, event_name, prop_key, prop_value, events, visitors
           from daily_custom_event_props order by site_id, day, event_name, prop_key, prop_value"""
    ).fetchall()


def test_custom_events_count_per_name_with_their_scalar_props(db: psycopg.Connection, settings: Settings) -> None:
    insert(
        db,
        [
            # v1: one session, two Signups and a Buy
            event("pageview", at_="2026-03-01 10:00", visitor="v1"),
            track("2026-03-01 10:01", "Signup", {"plan": "pro", "seats": 3, "trial": True}, visitor="v1"),
            track("2026-03-01 10:02", "Signup", {"plan": "free", "cart": {"n": 1}, "tags": ["a"]}, visitor="v1"),
            track("2026-03-01 10:03", "Buy", {"amount": 9.5, "gift": None}, visitor="v1"),
            # v2: two sessions (a 3-hour gap), a Signup in each
            track("2026-03-01 11:00", "Signup", {"plan": "pro"}, visitor="v2"),
            track("2026-03-01 14:00", "Signup", {"plan": "pro"}, visitor="v2"),
            # v3: a pageview only; v4: a custom event without a name nor props
            event("pageview", at_="2026-03-01 12:00", visitor="v3"),
            track("2026-03-01 12:30", None, visitor="v4"),
            # a crawler's Signup: left out, as its session
            track("2026-03-01 13:00", "Signup", {"plan": "bot"}, visitor="b1", user_agent=GOOGLEBOT),
            # another site, another day
            track("2026-03-02 09:00", "Buy", {"amount": 1}, site="s2", visitor="w1"),
        ],
    )
    pipeline.run(settings)
    # s1 on 03-01: 5 non-bot sessions (v1, v2 twice, v3, v4)
    assert custom_events(db) == [
        ("s1", "2026-03-01", "(none)", 1, 1, 1, Decimal("0.2000")),
        ("s1", "2026-03-01", "Buy", 1, 1, 1, Decimal("0.2000")),
        ("s1", "2026-03-01", "Signup", 4, 2, 3, Decimal("0.6000")),
        ("s2", "2026-03-02", "Buy", 1, 1, 1, Decimal("1.0000")),
    ]
    # objects, arrays and null left out; numbers and booleans as JSON writes them
    assert props(db) == [
        ("2026-03-01", "Buy", "amount", "9.5", 1, 1),
        ("2026-03-01", "Signup", "plan", "free", 1, 1),
        ("2026-03-01", "Signup", "plan", "pro", 3, 2),
        ("2026-03-01", "Signup", "seats", "3", 1, 1),
        ("2026-03-01", "Signup", "trial", "true", 1, 1),
        ("2026-03-02", "Buy", "amount", "1", 1, 1),
    ]
    assert db.execute("select event_name, props from stg_events where visitor_key = 'v4'").fetchall() == [(None, None)]
    assert_a_rebuild_gives_the_same_tables(db, settings)


def test_values_past_the_cap_count_under_other(db: psycopg.Connection, settings: Settings) -> None:
    settings = replace(settings, prop_values_cap=2)
    values = ["a", "a", "a", "c", "b", "c", "b", "d"]  # a 3, b 2, c 2, d 1: b before c on a tie
    insert(
        db,
        [
            track(f"2026-03-01 10:{i:02d}", "Play", {"song": v, "n": 1}, visitor=f"v{i % 3}")
            for i, v in enumerate(values)
        ],
    )
    pipeline.run(settings)
    # the eight events' visitors: v0 (0, 3, 6), v1 (1, 4, 7), v2 (2, 5); (other) holds c (3, 5) and d (7)
    assert props(db) == [
        ("2026-03-01", "Play", "n", "1", 8, 3),
        ("2026-03-01", "Play", "song", "(other)", 3, 3),
        ("2026-03-01", "Play", "song", "a", 3, 3),
        ("2026-03-01", "Play", "song", "b", 2, 2),
    ]
    # a later run makes d the most frequent value: the day is ranked again, whole
    insert(db, [track(f"2026-03-01 11:{i:02d}", "Play", {"song": "d"}, visitor="v9") for i in range(4)])
    pipeline.run(settings)
    assert [r[3:] for r in props(db) if r[2] == "song"] == [("(other)", 4, 3), ("a", 3, 3), ("d", 5, 2)]  # b and c now
    assert_a_rebuild_gives_the_same_tables(db, settings)


def test_rows_move_with_their_sessions_and_go_with_bots(db: psycopg.Connection, settings: Settings) -> None:
    insert(
        db,
        [
            track("2026-03-02 00:10", "Signup", {"plan": "pro"}, session="s1"),
            event("pageview", at_="2026-03-02 01:00", visitor="v2"),
        ],
    )
    pipeline.run(settings)
    assert custom_events(db) == [("s1", "2026-03-02", "Signup", 1, 1, 1, Decimal("0.5000"))]
    # a late event of s1 from the day before: the session, and its Signup, now count on 03-01
    insert(db, [event("pageview", at_="2026-03-01 23:55", received="2026-03-02 02:00", session="s1")])
    pipeline.run(settings)
    assert custom_events(db) == [("s1", "2026-03-01", "Signup", 1, 1, 1, Decimal("1.0000"))]
    assert [r[0] for r in props(db)] == ["2026-03-01"]
    # then a crawler's event in s1 makes it a bot session: its rows go
    insert(db, [event("pageview", at_="2026-03-02 00:20", session="s1", user_agent=GOOGLEBOT)])
    pipeline.run(settings)
    assert custom_events(db) == []
    assert props(db) == []
    assert_a_rebuild_gives_the_same_tables(db, settings)


def test_the_conversion_rate_follows_the_days_sessions(db: psycopg.Connection, settings: Settings) -> None:
    insert(db, [track("2026-03-01 10:00", "Signup", visitor="v1")])
    pipeline.run(settings)
    assert custom_events(db) == [("s1", "2026-03-01", "Signup", 1, 1, 1, Decimal("1.0000"))]
    # three more sessions that day, none with a custom event: the row is not touched by an event of
    # its own, yet its rate goes down
    insert(db, [event("pageview", at_=f"2026-03-01 1{i}:00", visitor=f"v{i + 2}") for i in range(3)])
    pipeline.run(settings)
    assert custom_events(db) == [("s1", "2026-03-01", "Signup", 1, 1, 1, Decimal("0.2500"))]
    before = (custom_events(db), props(db))
    pipeline.run(settings, "daily", target_date=date(2026, 3, 1))  # sluice etl daily recounts the same
    assert (custom_events(db), props(db)) == before
    assert_a_rebuild_gives_the_same_tables(db, settings)


def test_the_cap_setting() -> None:
    assert Settings.from_env({}).prop_values_cap == 100
    assert Settings.from_env({"SLUICE_PROP_VALUES_CAP": "20"}).prop_values_cap == 20
    with pytest.raises(ConfigError, match="SLUICE_PROP_VALUES_CAP='0' must be at least 1"):
        Settings.from_env({"SLUICE_PROP_VALUES_CAP": "0"})


def test_a_value_written_other_counts_under_other(db: psycopg.Connection, settings: Settings) -> None:
    insert(db, [track(f"2026-03-01 10:0{i}", "Play", {"song": v}, visitor=f"v{i}") for i, v in enumerate("x(y")])
    insert(db, [track("2026-03-01 10:09", "Play", {"song": "(other)"}, visitor="v0")])
    pipeline.run(settings)
    # a value sent as the text '(other)' never takes one of the key's places: one row per value still
    assert [r[3:] for r in props(db)] == [("(", 1, 1), ("(other)", 1, 1), ("x", 1, 1), ("y", 1, 1)]
    # with one place: '(' first in byte order; x (v0), y (v2) and the text '(other)' (v0) under '(other)'
    pipeline.run(replace(settings, prop_values_cap=1), "rebuild")
    assert sorted(r[3:] for r in props(db)) == [("(", 1, 1), ("(other)", 3, 2)]
