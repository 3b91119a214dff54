"""Retention: drops whole raw partitions older than the retention, and each ETL table's rows older
than its tier (etl/jobs.py: `keep`).

Raw: `events_YYYYMMDD` partitions whose whole day is older than `retention_days`, with the rows of
`event_ids` of that age (the collector's copy of the ids); etl_state.raw_log_from then says from
when the log is whole, so that a rebuild keeps what it can no longer recompute (etl/pipeline.py:
covered_from). Every table a job writes is kept by its declared tier: `raw` (`stg_events`, a copy
of the raw log, and the hourly tables) as long as the raw log, `daily` (the daily tables)
`daily_retention_days`, `forever` (`sessions`, `clicks`, the monthly tables, `user_agents`,
`user_stats`) untouched.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

from sluice.etl.jobs import JOBS
from sluice.settings import Settings

_PARTITION = re.compile(r"^events_(\d{8})$")


def cleanup(conn: psycopg.Connection, settings: Settings, today: date | None = None) -> dict[str, int]:
    """Runs inside the caller's transaction; returns rows (or partitions) removed per table."""
    today = today or datetime.now(UTC).date()
    raw_cutoff = today - timedelta(days=settings.retention_days)
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

    cutoffs = {
        "raw": _midnight(raw_cutoff),
        "daily": _midnight(today - timedelta(days=settings.daily_retention_days)),
    }
    removed["event_ids"] = conn.execute("delete from event_ids where received_at < %s", (cutoffs["raw"],)).rowcount
    # Days are UTC days: under UTC a date column compares with the cutoff as its midnight does.
    conn.execute("select set_config('timezone', 'UTC', true)")
    for job in JOBS:
        if job.table and job.keep.tier != "forever":
            assert job.keep.by is not None
            delete = sql.SQL("delete from {} where {} < %s").format(
                sql.Identifier(job.table), sql.Identifier(job.keep.by)
            )
            removed[job.table] = conn.execute(delete, (cutoffs[job.keep.tier],)).rowcount
    raw_tables = [job.table for job in JOBS if job.table and job.keep.tier == "raw"]
    if removed["events_partitions"] or any(removed[table] for table in raw_tables):
        # what the raw tier held before the cutoff is gone: a rebuild must not count those days again
        conn.execute("update etl_state set raw_log_from = greatest(raw_log_from, %s)", (cutoffs["raw"],))
    return removed


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
