"""Every ETL job, in run order, one line each: the one list the rest of the ETL derives from.

A job is a template `sql/etl/<name>.sql.j2` (or, with `python`, a function). A `table` job writes
the table of its name and no other; a `scratch` job writes no table: it only creates temp tables
(`on commit drop`) for the jobs after it. From this list come the run order (a rebuild's and an
incremental run's: all of it; `sluice etl daily`'s: the `single_day` jobs), `rows_written` (each
table's rows inserted or updated by its job), a rebuild's reset (it empties every table below) and
its bulk load (`bulk`: indexes dropped while the job loads the emptied table, the table analysed
right after), retention (`keep`), the row counts of `sluice etl status`, the listing of
`sluice etl render` and the tests' table lists.

Adding an aggregate: a migration creating its table, a template `sql/etl/<table>.sql.j2`, and one
`table(...)` line below, after the jobs whose tables or temp tables it reads.

A job reads the tables of the jobs before it and the temp tables of the scratch jobs before it,
never a temp table a table job created: a step two tables share is a scratch job of its own
(tests/test_etl_jobs.py checks this on every template).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import psycopg

from sluice.etl.enrich import enrich_user_agents


@dataclass(frozen=True)
class Keep:
    """How long `sluice etl cleanup` keeps a table's rows, judged by the date or timestamptz column `by`:
    `raw` as long as the raw log (SLUICE_RETENTION_DAYS), `daily` SLUICE_DAILY_RETENTION_DAYS;
    `forever`: never deleted.

    `by` (or `placed_by`) also places a row in time for a rebuild after retention trimmed the raw
    log: the rows before the days the raw log still fully covers are kept as they were, not
    recomputed (etl/pipeline.py: covered_from). `placed_by`: when a row's content depends on a day
    other than the one retention judges it by (stg_events: an event received late or imported
    carries its session's attributes, of the day it occurred). `monthly`: `by` is a month's first
    day, and every month the raw log does not cover whole is kept; `weekly`: likewise an ISO week's
    Monday, and every week."""

    tier: Literal["raw", "daily", "forever"]
    by: str | None = None
    monthly: bool = False
    placed_by: str | None = None
    weekly: bool = False

    @property
    def rebuild_by(self) -> str | None:
        return self.placed_by or self.by


FOREVER = Keep("forever")


def forever(by: str, *, monthly: bool = False) -> Keep:
    return Keep("forever", by, monthly)


def raw(by: str, *, placed_by: str | None = None) -> Keep:
    return Keep("raw", by, placed_by=placed_by)


def daily(by: str) -> Keep:
    return Keep("daily", by)


@dataclass(frozen=True)
class Job:
    name: str
    writes_table: bool  # the table `name`; False: a scratch job
    bulk: bool = False
    keep: Keep = FOREVER
    single_day: bool = False  # has a variant for one given day, which `sluice etl daily` runs
    python: Callable[[psycopg.Connection], object] | None = None

    @property
    def table(self) -> str | None:
        return self.name if self.writes_table else None


def table(
    name: str,
    *,
    bulk: bool = False,
    keep: Keep = FOREVER,
    single_day: bool = False,
    python: Callable[[psycopg.Connection], object] | None = None,
) -> Job:
    return Job(name, True, bulk=bulk, keep=keep, single_day=single_day, python=python)


def scratch(name: str, *, single_day: bool = False) -> Job:
    return Job(name, False, single_day=single_day)


JOBS: tuple[Job, ...] = (
    scratch("batch_user_agents"),  # the batch's distinct User-Agent strings
    table("user_agents", python=enrich_user_agents),  # each new one parsed once (etl/enrich.py)
    scratch("batch_events"),  # the batch, typed: the only job that reads the JSONB payload
    scratch("sessionized_events"),  # the batch plus every stored event of the sessions it touches
    scratch("sessions_this_run"),  # the sessions this run writes, and the stored ones they replace
    scratch("visitor_days_this_run"),  # the visitor-days those touch, their sessions before and after
    scratch("visitor_months_this_run"),  # the visitor-months those touch, their sessions before and after
    table("sessions", bulk=True, keep=forever("started_on")),
    table("stg_events", bulk=True, keep=raw("received_at", placed_by="occurred_at")),
    table("hourly_event_stats", bulk=True, keep=raw("hour")),  # seed 002: per event type and route
    table("user_stats", bulk=True),  # seed 002: per user
    scratch("clicks_this_run"),  # the clicks this run writes, and the stored ones they replace
    table("clicks", bulk=True, keep=forever("occurred_at")),
    table("hourly_click_counts", bulk=True, keep=raw("hour")),
    table("monthly_click_counts", bulk=True, keep=forever("month", monthly=True)),
    table("daily_click_breakdown", bulk=True, keep=daily("day")),  # click dimensions by day, with sketches
    scratch("affected_days", single_day=True),  # the days a rebuild or a one-day recompute recounts
    table("daily_metrics", keep=daily("day"), single_day=True),
    table("daily_breakdown", bulk=True, keep=daily("day"), single_day=True),
    table("monthly_metrics", keep=forever("month", monthly=True)),  # visitors distinct over the month
    table("monthly_breakdown", bulk=True, keep=forever("month", monthly=True)),
    scratch("custom_events_this_run", single_day=True),  # the site-days whose custom event rows are recounted
    table("daily_custom_events", bulk=True, keep=daily("day"), single_day=True),  # issue 13: sluice.track(name)
    table("daily_custom_event_props", bulk=True, keep=daily("day"), single_day=True),  # its props, values capped
    # with postgresql-hll (Context.sketches); the site-days whose sketches are recomputed, their sessions
    scratch("sketch_sessions", single_day=True),
    table("daily_visitor_sketches", keep=daily("day"), single_day=True),
    table("hourly_metrics", keep=raw("hour"), single_day=True),  # 24h and hourly points, with sketches
    table("daily_breakdown_sketches", bulk=True, keep=daily("day"), single_day=True),
    table("daily_breakdown_totals", bulk=True, keep=daily("day"), single_day=True),  # for filtered reports
    # the site-days' sessions as hashed arrays, for filtered breakdowns (kept as daily_breakdown, which decodes them)
    table("session_columns", bulk=True, keep=daily("started_on"), single_day=True),
    # the two sketch tables' closed months, unioned: long periods' breakdowns read months, not days
    table("monthly_breakdown_sketches", keep=Keep("daily", "month", monthly=True), single_day=True),
    # and their closed ISO weeks: periods of weeks (30 days) read weeks, not days
    table("weekly_breakdown_sketches", keep=Keep("daily", "week", weekly=True), single_day=True),
)

# Derived, in run order.
TABLES: tuple[str, ...] = tuple(job.name for job in JOBS if job.writes_table)
BULK_TABLES: tuple[str, ...] = tuple(job.name for job in JOBS if job.writes_table and job.bulk)
SINGLE_DAY_JOBS: tuple[Job, ...] = tuple(job for job in JOBS if job.single_day)


_KEPT = {
    "raw": "kept as long as the raw log",
    "daily": "kept SLUICE_DAILY_RETENTION_DAYS",
    "forever": "kept forever",
}


def describe(job: Job) -> str:
    """One line for `sluice etl render`'s listing."""
    if not job.writes_table:
        parts = ["scratch"]
    else:
        parts = ["table"]
        if job.bulk:
            parts.append("bulk-loaded by a rebuild")
        parts.append(_KEPT[job.keep.tier] + (f" (by {job.keep.by})" if job.keep.by else ""))
    if job.single_day:
        parts.append("runs in `sluice etl daily`")
    if job.python is not None:
        parts.append(f"Python: {job.python.__module__}.{job.python.__name__}")
    return ", ".join(parts)
