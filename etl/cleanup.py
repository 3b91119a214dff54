"""Retention: drops whole raw partitions older than the retention, prunes the daily tables.

Raw: `events_YYYYMMDD` partitions whose whole day is older than `retention_days`, with the rows of
`event_ids` and `stg_events` of that age (both are copies of the raw log). Daily tables
(`daily_metrics`, `daily_breakdown`, `hourly_click_counts`): rows older than `daily_retention_days`.
Nothing else is touched: `sessions` and `clicks` stay.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

from sluice.settings import Settings

_PARTITION = re.compile(r"^events_(\d{8})$")


def cleanup(conn: psycopg.Connection, settings: Settings, today: date | None = None) -> dict[str, int]:
    """Runs inside the caller's transaction; returns rows (or partitions) removed per table."""
    today = today or datetime.now(UTC).date()
    raw_cutoff = today - timedelta(days=settings.retention_days)
    daily_cutoff = today - timedelta(days=settings.daily_retention_days)
    removed: dict[str, int] = {"events_partitions": 0}

    partitions = conn.execute(
        """select c.relname from pg_inherits as i join pg_class as c on c.oid = i.inhrelid
           where i.inhparent = 'events'::regclass order by c.relname"""
    ).fetchall()
    for (name,) in partitions:
        match = _PARTITION.match(name)
        if match and datetime.strptime(match.group(1), "%Y%m%d").date() < raw_cutoff:
            conn.execute(sql.SQL("drop table {}").format(sql.Identifier(name)))
            removed["events_partitions"] += 1

    cutoff_at = datetime(raw_cutoff.year, raw_cutoff.month, raw_cutoff.day, tzinfo=UTC)
    removed["event_ids"] = conn.execute("delete from event_ids where received_at < %s", (cutoff_at,)).rowcount
    removed["stg_events"] = conn.execute("delete from stg_events where received_at < %s", (cutoff_at,)).rowcount
    removed["daily_metrics"] = conn.execute("delete from daily_metrics where day < %s", (daily_cutoff,)).rowcount
    removed["daily_breakdown"] = conn.execute("delete from daily_breakdown where day < %s", (daily_cutoff,)).rowcount
    removed["hourly_click_counts"] = conn.execute(
        "delete from hourly_click_counts where hour < %s",
        (datetime(daily_cutoff.year, daily_cutoff.month, daily_cutoff.day, tzinfo=UTC),),
    ).rowcount
    return removed
