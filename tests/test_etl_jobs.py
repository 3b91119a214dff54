"""The job declaration (etl/jobs.py) against what it drives: the schema, the templates, the rows a run
writes, a rebuild's reset, retention."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from eventlog import event, insert, primary_key, rows
from psycopg import sql

from sluice.analysts import INTERNAL_TABLES
from sluice.etl import pipeline
from sluice.etl.jobs import JOBS, SINGLE_DAY_JOBS, TABLES, Job
from sluice.etl.render import Context, job_names, render
from sluice.settings import Settings

# The schema's tables no job writes: the raw log, the record of runs, the internal tables.
NOT_WRITTEN_BY_A_JOB = {"events", "etl_runs", "links", "sites", *INTERNAL_TABLES}  # `sluice links`, `sluice sites`

# Every variant a run renders: the jobs it runs, and the context it renders them with.
RUNS = {
    "incremental": (JOBS, Context()),
    "incremental, first attempt": (JOBS, Context(assume_unique_ids=True)),
    "rebuild": (JOBS, Context(rebuild=True)),
    "rebuild, first attempt": (JOBS, Context(rebuild=True, assume_unique_ids=True)),
    "daily": (SINGLE_DAY_JOBS, Context(single_day=True)),
    # with postgresql-hll: the visitor sketch jobs render their statements
    "incremental, sketches": (JOBS, Context(sketches=True)),
    "rebuild, sketches": (JOBS, Context(rebuild=True, sketches=True)),
    "daily, sketches": (SINGLE_DAY_JOBS, Context(single_day=True, sketches=True)),
}

_CREATE_TEMP = re.compile(r"\bcreate\s+temp(?:orary)?\s+table\s+(\w+)", re.IGNORECASE)
# (`on conflict … do update set` writes the table being inserted into)
_WRITE = re.compile(r"\b(?:insert\s+into|(?<!do )update|delete\s+from|truncate)\s+(\w+)", re.IGNORECASE)


def _schema_tables(db: psycopg.Connection) -> dict[str, dict[str, str]]:
    """The schema's tables (not partitions), each with its columns' types."""
    found = db.execute(
        """select c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
           from pg_class as c
           inner join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
           where c.relnamespace = 'sluice'::regnamespace and c.relkind in ('r', 'p') and not c.relispartition"""
    ).fetchall()
    tables: dict[str, dict[str, str]] = {}
    for table, column, type_name in found:
        tables.setdefault(table, {})[column] = type_name
    return tables


def _sql(job: Job, context: Context) -> str:
    """The job's rendered SQL without its comments."""
    return re.sub(r"--[^\n]*", "", render(job.name, context))


def test_the_schema_holds_every_declared_table_and_no_table_without_a_job(db: psycopg.Connection) -> None:
    tables = _schema_tables(db)
    assert set(tables) - NOT_WRITTEN_BY_A_JOB == set(TABLES)
    assert [table for table in TABLES if not primary_key(db, table)] == []
    assert [job.name for job in JOBS if not job.writes_table and job.name in tables] == []
    kept_by = {job.name: tables[job.name][job.keep.by] for job in JOBS if job.keep.by is not None}
    assert kept_by == {
        "sessions": "date",
        "stg_events": "timestamp with time zone",
        "clicks": "timestamp with time zone",
        "hourly_click_counts": "timestamp with time zone",
        "monthly_click_counts": "date",
        "hourly_event_stats": "timestamp with time zone",
        "daily_metrics": "date",
        "daily_breakdown": "date",
        "monthly_metrics": "date",
        "monthly_breakdown": "date",
        "daily_custom_events": "date",
        "daily_custom_event_props": "date",
        "daily_visitor_sketches": "date",
        "hourly_metrics": "timestamp with time zone",
        "daily_breakdown_sketches": "date",
        "daily_click_breakdown": "date",
        "daily_breakdown_totals": "date",
        "session_columns": "date",
        "monthly_breakdown_sketches": "date",
        "weekly_breakdown_sketches": "date",
    }


def test_every_template_has_a_job_and_every_sql_job_a_template() -> None:
    assert job_names() == sorted(job.name for job in JOBS if job.python is None)
    assert len({job.name for job in JOBS}) == len(JOBS)


@pytest.mark.parametrize("run", RUNS)
def test_a_job_reads_only_temp_tables_that_scratch_jobs_before_it_created(run: str) -> None:
    jobs, context = RUNS[run]
    sql_jobs = [job for job in jobs if job.python is None]
    created = {job.name: set(_CREATE_TEMP.findall(_sql(job, context))) for job in sql_jobs}
    every_temp_table = set().union(*created.values())
    available: set[str] = set()
    reads = 0
    for job in sql_jobs:
        text = _sql(job, context)
        read = {name for name in every_temp_table if re.search(rf"\b{name}\b", text)} - created[job.name]
        assert read <= available, f"{job.name} reads {sorted(read - available)}, left by no scratch job before it"
        reads += len(read)
        if not job.writes_table:
            available |= created[job.name]
    assert reads > 0


@pytest.mark.parametrize("run", RUNS)
def test_a_table_job_writes_its_own_table_and_a_scratch_job_none(run: str) -> None:
    jobs, context = RUNS[run]
    for job in jobs:
        if job.python is not None:
            continue
        text = _sql(job, context)
        written = set(_WRITE.findall(text)) - set(_CREATE_TEMP.findall(text))
        assert written <= ({job.name} if job.writes_table else set()), job.name


def test_rows_written_counts_the_inserted_and_updated_rows_of_each_table(
    db: psycopg.Connection, settings: Settings
) -> None:
    insert(
        db,
        [
            event(at_="2026-03-01 10:00", url="https://ex.com/a"),
            event(at_="2026-03-01 10:05", url="https://ex.com/b"),
            event("click", at_="2026-03-01 10:06", target="https://out.org/"),
        ],
    )
    first = pipeline.run(settings)
    # daily_breakdown (and its sketches): 12 session dimensions and 2 paths
    assert first.rows_written == {
        "user_agents": 1,
        "sessions": 1,
        "stg_events": 3,
        "hourly_event_stats": 2,  # pageviews and clicks of 10:00
        "user_stats": 1,
        "clicks": 1,
        "hourly_click_counts": 1,
        "monthly_click_counts": 1,
        "daily_click_breakdown": 3,  # its target domain, its short code (none), the day's `all`
        "daily_metrics": 1,
        "daily_breakdown": 14,
        "monthly_metrics": 1,
        "monthly_breakdown": 14,  # as daily_breakdown
        "daily_custom_events": 0,  # no custom event
        "daily_custom_event_props": 0,
        "daily_visitor_sketches": 1,
        "hourly_metrics": 1,
        "daily_breakdown_sketches": 14,
        "daily_breakdown_totals": 12,  # the 12 session dimensions
        "session_columns": 1,  # the one site-day
        # March 2026 is closed: its rows are filled, as daily_breakdown_sketches' and the 3 click rows
        "monthly_breakdown_sketches": 17,
        "weekly_breakdown_sketches": 17,  # its ISO week (Feb 23 - Mar 1) is closed too: the same rows
    }
    # a late event starts the session earlier: its key changes, so do its three events' rows
    insert(db, [event(at_="2026-03-01 09:50", received="2026-03-01 10:10", url="https://ex.com/c")])
    second = pipeline.run(settings)
    assert second.rows_written == {
        "user_agents": 0,
        "sessions": 1,
        "stg_events": 4,  # one inserted, three updated
        "hourly_event_stats": 1,  # 09:00 counted (10:00, untouched, stays)
        "user_stats": 1,  # the visitor recounted
        "clicks": 1,  # its click rewritten
        "hourly_click_counts": 0,  # the same click in the same hour: no change
        "monthly_click_counts": 0,
        "daily_click_breakdown": 0,  # the same click of the same visitor rewritten: no row moves
        "daily_metrics": 1,
        # 11 dimensions one pageview up, entry_path's /a row emptied (then deleted) and its /c row
        # inserted, and the new path
        "daily_breakdown": 14,
        "monthly_metrics": 1,
        "monthly_breakdown": 14,  # as daily_breakdown
        "daily_custom_events": 0,
        "daily_custom_event_props": 0,
        "daily_visitor_sketches": 0,  # the same visitor on the same day: the sketch gains nobody
        # 10:00 lost its one visitor (recounted: gone), 09:00 is new (counted): one row inserted
        "hourly_metrics": 1,
        # the rows gaining a visitor: entry_path /c and path /c (entry_path /a lost its one: recounted, gone)
        "daily_breakdown_sketches": 2,
        # moved by the session's difference, as daily_breakdown: 11 dimensions one event up,
        # entry_path's /a row emptied (then deleted) and its /c row inserted
        "daily_breakdown_totals": 13,
        "session_columns": 1,  # its site-day rewritten whole
        "monthly_breakdown_sketches": 18,  # its month recomputed whole: 15 and the 3 click rows
        "weekly_breakdown_sketches": 18,  # its week recomputed whole, as its month
    }
    assert rows(db, "select count(*) as n from stg_events") == [{"n": 4}]


def _row_counts(db: psycopg.Connection) -> dict[str, int]:
    return {
        table: rows(db, sql.SQL("select count(*) as n from {}").format(sql.Identifier(table)))[0]["n"]
        for table in _schema_tables(db)
    }


def test_reset_empties_exactly_the_declared_tables(db: psycopg.Connection, settings: Settings) -> None:
    insert(db, [event(at_="2026-03-01 10:00"), event("click", at_="2026-03-01 10:01", target="https://x.org/")])
    insert(db, [event("custom", at_="2026-03-01 10:02", eventName="Signup", props={"plan": "pro"})])
    pipeline.run(settings)
    before = _row_counts(db)
    assert [table for table in TABLES if before[table] == 0] == []
    with db.transaction(force_rollback=True):
        for statement in pipeline.reset_statements():
            db.execute(statement)
        after = _row_counts(db)
        watermark = rows(db, "select watermark::text from etl_state")
    assert after == {table: 0 if table in TABLES else n for table, n in before.items()}
    assert watermark == [{"watermark": "0"}]


def test_cleanup_keeps_each_declared_table_by_its_tier(db: psycopg.Connection, settings: Settings) -> None:
    today = datetime.now(UTC).date()
    cutoffs = {
        "raw": today - timedelta(days=settings.retention_days),
        "daily": today - timedelta(days=settings.daily_retention_days),
    }
    # on either side of each cutoff, as close as a row's day or hour can be
    moments = [
        datetime(day.year, day.month, day.day, tzinfo=UTC) + offset
        for cutoff in cutoffs.values()
        for day, offset in ((cutoff - timedelta(days=1), timedelta(hours=23, minutes=30)), (cutoff, timedelta(0)))
    ] + [datetime.now(UTC) - timedelta(minutes=10)]
    for moment in moments:
        db.execute("select ensure_event_partitions(%s, 1)", (moment.date(),))
    insert(
        db,
        [
            e
            for i, moment in enumerate(moments)
            for e in (
                event(at_=moment, visitor=f"v{i}"),
                event("click", at_=moment + timedelta(seconds=10), visitor=f"v{i}", target="https://x.org/"),
                event("custom", at_=moment + timedelta(seconds=20), visitor=f"v{i}", eventName="Buy", props={"n": i}),
            )
        ],
    )
    pipeline.run(settings)
    before = {table: rows(db, sql.SQL("select * from {}").format(sql.Identifier(table))) for table in TABLES}

    # the cleanup's session far from UTC: a day is still a UTC day
    far_east = settings.database_url + " options='-c TimeZone=Pacific/Kiritimati'"
    pipeline.run(replace(settings, database_url=far_east), "cleanup")

    def kept(job: Job, row: dict[str, Any]) -> bool:
        if job.keep.by is None or job.keep.tier == "forever":
            return True
        value = row[job.keep.by]
        day = value.astimezone(UTC).date() if isinstance(value, datetime) else value
        assert isinstance(day, date)
        return day >= cutoffs[job.keep.tier]

    for job in JOBS:
        if job.table is None:
            continue
        after = rows(db, sql.SQL("select * from {}").format(sql.Identifier(job.table)))
        expected = [row for row in before[job.table] if kept(job, row)]
        assert sorted(map(repr, after)) == sorted(map(repr, expected)), job.table
        if job.keep.tier != "forever":
            assert 0 < len(expected) < len(before[job.table]), job.table  # both sides were there
    assert {job.keep.tier for job in JOBS} == {"raw", "daily", "forever"}
