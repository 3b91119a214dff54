"""Read-only questions operators ask: how far behind is the ETL, what did the last runs do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from sluice import spool_files
from sluice.etl import jobs

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


def status(conn: psycopg.Connection, data_dir: Path) -> dict[str, Any]:
    """`data_dir` is this host's SLUICE_DATA_DIR: events its collector acknowledged into the spool
    while PostgreSQL was away are not in the log yet, and are counted apart (`spooled`)."""
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
    return {
        "watermark": watermark,
        "unprocessed_events": {row["event_type"]: row["events"] for row in unprocessed},
        "unprocessed_total": sum(row["events"] for row in unprocessed),
        "oldest_unprocessed_lag_s": lag,
        # read from the spool's files (their headers), not from the collector: the two share no code
        "spooled": spool_files.contents(data_dir).as_json(),
        "last_run": last[0] if last else None,
        "row_counts": counts,
    }
