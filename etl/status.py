"""Read-only questions operators ask: how far behind is the ETL, what did the last runs do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from sluice import spool_files
from sluice.etl import jobs
from sluice.settings import Settings

# Every table the ETL writes: the jobs' tables in run order, and its record of runs.
TABLES = (*jobs.TABLES, "etl_runs")


def _rows(conn: psycopg.Connection, query: str | sql.Composed, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(query, params).fetchall()


def runs(conn: psycopg.Connection, limit: int = 20) -> list[dict[str, Any]]:
    return _rows(
        conn,
        """select run_id, kind, status, started_at, finished_at,
                  extract(epoch from finished_at - started_at)::float8 as duration_s,
                  watermark_from::text, watermark_to::text, events_processed, events_too_late, rows_written, error
           from etl_runs order by run_id desc limit %s""",
        (limit,),
    )


def recent_sessions(conn: psycopg.Connection, limit: int = 20) -> list[dict[str, Any]]:
    return _rows(conn, "select * from sessions order by started_at desc, session_key limit %s", (limit,))


def tiers(conn: psycopg.Connection, settings: Settings) -> dict[str, Any]:
    """What each retention tier holds (etl/jobs.py: Keep; etl/cleanup.py enforces them): per tier
    its retention in days (null: forever) and per table its rows and its oldest UTC day (by the
    column retention judges it by; null for a table kept whole or empty). `raw` leads with the raw
    log itself (`events`); `raw_log_whole_from` is from when retention left it whole (null: it
    never dropped a partition), `recomputable_from` the first day a rebuild recomputes (earlier
    rows are kept as they are)."""
    days = {"raw": settings.retention_days, "daily": settings.daily_retention_days, "forever": None}
    found: dict[str, Any] = {tier: {"kept_days": kept, "tables": {}} for tier, kept in days.items()}
    events = _rows(
        conn, "select count(*) as rows, (min(received_at) at time zone 'UTC')::date as oldest_day from events"
    )[0]
    found["raw"]["tables"]["events"] = events
    for job in jobs.JOBS:
        if job.table is None:
            continue
        by = job.keep.by
        if by is None:
            oldest: sql.Composable = sql.SQL("null::date")
        elif _is_timestamptz(conn, job.table, by):
            oldest = sql.SQL("(min({}) at time zone 'UTC')::date").format(sql.Identifier(by))
        else:
            oldest = sql.SQL("min({})").format(sql.Identifier(by))
        query = sql.SQL("select count(*) as rows, {} as oldest_day from {}").format(oldest, sql.Identifier(job.table))
        found[job.keep.tier]["tables"][job.table] = _rows(conn, query)[0]
    whole_from = _rows(conn, "select raw_log_from from etl_state")[0]["raw_log_from"]
    from sluice.etl.pipeline import covered_from

    first = covered_from(conn, settings)
    return {
        **found,
        "raw_log_whole_from": whole_from,
        "recomputable_from": first.isoformat() if first else None,
    }


def _is_timestamptz(conn: psycopg.Connection, table: str, column: str) -> bool:
    found = _rows(
        conn,
        "select format_type(atttypid, atttypmod) as t from pg_attribute where attrelid = %s::regclass and attname = %s",
        (table, column),
    )
    return bool(found and found[0]["t"] == "timestamp with time zone")


def status(conn: psycopg.Connection, data_dir: Path, settings: Settings | None = None) -> dict[str, Any]:
    """`data_dir` is this host's SLUICE_DATA_DIR: events its collector acknowledged into the spool
    while PostgreSQL was away are not in the log yet, and are counted apart (`spooled`). With
    `settings`, `retention` says what each tier holds (`tiers`)."""
    watermark = _rows(conn, "select watermark::text as watermark from etl_state")[0]["watermark"]
    unprocessed = _rows(
        conn,
        """select event_type, count(*) as events, min(received_at) as oldest_received_at
           from events where txid >= %s::xid8 group by event_type order by event_type""",
        (watermark,),
    )
    lag = _rows(
        conn,
        """select extract(epoch from clock_timestamp() - min(received_at))::float8 as lag_s
           from events where txid >= %s::xid8""",
        (watermark,),
    )[0]["lag_s"]
    counts = {
        table: _rows(conn, sql.SQL("select count(*) as n from {}").format(sql.Identifier(table)))[0]["n"]
        for table in TABLES
    }
    last = runs(conn, 1)
    retention = {"retention": tiers(conn, settings)} if settings is not None else {}
    return {
        "watermark": watermark,
        "unprocessed_events": {row["event_type"]: row["events"] for row in unprocessed},
        "unprocessed_total": sum(row["events"] for row in unprocessed),
        "oldest_unprocessed_lag_s": lag,
        # read from the spool's files (their headers), not from the collector: the two share no code
        "spooled": spool_files.contents(data_dir).as_json(),
        "last_run": last[0] if last else None,
        "row_counts": counts,
        **retention,
    }
