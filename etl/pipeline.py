"""One ETL run: the jobs in order (etl/jobs.py), inside one transaction, under one advisory lock.

A run takes the events committed since the previous run (the transaction-id watermark, README
"Design"), recomputes exactly the sessions and days they touch, replaces those rows, and stores the
new watermark, all in one transaction: a run killed half-way leaves every table as it was. The
session-level advisory lock RUN_LOCK makes runs exclusive; `etl_runs` records each one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

import psycopg
from psycopg import errors, sql
from psycopg.types.json import Jsonb

from sluice.db import SKETCHES_AVAILABLE, connect
from sluice.etl.jobs import BULK_TABLES, JOBS, SINGLE_DAY_JOBS, TABLES, Job
from sluice.etl.locks import RUN_LOCK
from sluice.etl.render import Context, render, statements
from sluice.metrics import ETL_RUNS, ETL_STEP_SECONDS
from sluice.settings import Settings

Kind = Literal["incremental", "rebuild", "daily", "backfill", "cleanup"]

# The step_seconds entry of a run whose first attempt met a duplicate event_id (the seconds it took).
RETRIED_WITH_ID_CHECK = "(duplicate event_id: again with the check)"
# The step_seconds entry of a backfill that ran as a rebuild (BACKFILL_AS_REBUILD): the seconds it took.
BACKFILLED_AS_REBUILD = "(backfill as a rebuild)"
# An incremental batch of this many events or more (an import's) is loaded as a rebuild loads: typed
# in parallel (Context.bulk), and each bulk table it outweighs (more rows in the batch than in the
# table) written with its indexes dropped, rebuilt after its job, then analysed. Random index
# inserts cost more than a sorted build once they are as many as the rows already indexed: the
# import's ETL, bench/README.md "Import".
BULK_EVENTS = 100_000
# A backfill of a bulk batch (an import's) whose events outnumber the ones the tables already hold
# this many times over runs as a rebuild: the tables emptied and loaded from the whole log with
# their indexes dropped, instead of loaded as a bulk batch and then every day of the range recounted
# (1.15-1.18x a rebuild's time per event over 1,000,000 imported events into a new database:
# bench/README.md "Import"). A rebuild re-reads the events already processed, so it only pays while
# they are a small share of the batch. Never after retention trimmed the raw log: a rebuild then
# keeps the rows it cannot recompute as they were, where a backfill recounts its days from `sessions`.
BACKFILL_AS_REBUILD = 4


class AlreadyRunning(RuntimeError):
    """Another run holds the ETL lock."""


class RunFailed(RuntimeError):
    def __init__(self, run_id: int, message: str) -> None:
        super().__init__(f"ETL run {run_id} failed: {message}")
        self.run_id = run_id


@dataclass
class RunResult:
    run_id: int
    kind: Kind
    status: str = "running"
    watermark_from: str | None = None
    watermark_to: str | None = None
    events_processed: int = 0
    events_too_late: int = 0
    # per table: rows inserted or updated (cleanup: rows, or partitions, removed)
    rows_written: dict[str, int] = field(default_factory=dict)
    remaining: int = 0  # events committed but left for a later run (batch_size, or not yet below xmin)
    events_by_type: dict[str, int] = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)
    # a rebuild after retention trimmed the raw log: the first day it recomputed (covered_from);
    # the rows of the tables kept by day before it (etl/jobs.py: Keep.by), and of the months before
    # the first month it covers whole, are kept as they were
    recomputed_from: str | None = None  # YYYY-MM-DD

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def parameters(settings: Settings, **extra: Any) -> dict[str, Any]:
    """The values every job may bind; runs add the batch bounds or the target date."""
    return {
        "session_timeout": timedelta(minutes=settings.session_timeout_min),
        "lateness": timedelta(days=settings.lateness_days),
        "prop_values_cap": settings.prop_values_cap,
        **extra,
    }


def run(
    settings: Settings,
    kind: Kind = "incremental",
    *,
    batch_size: int | None = None,
    target_date: date | None = None,
    last_date: date | None = None,
    wait: bool = False,
    on_started: Callable[[int], None] | None = None,
) -> RunResult:
    """Runs the ETL once. Raises AlreadyRunning (unless `wait`), or RunFailed after recording it.
    `daily` recounts the daily tables of `target_date`; `backfill` those of every day from
    `target_date` to `last_date` (see `backfill`)."""
    with connect(settings, autocommit=True, application_name=f"sluice-etl-{kind}") as conn:
        if wait:
            conn.execute("select pg_advisory_lock(%s)", (RUN_LOCK,))
        else:
            got = conn.execute("select pg_try_advisory_lock(%s)", (RUN_LOCK,)).fetchone()
            if not (got and got[0]):
                raise AlreadyRunning(f"an ETL run is already in progress{_current_run(conn)}")
        try:
            result = RunResult(_start(conn, kind), kind)
            if on_started:
                on_started(result.run_id)
            try:
                with conn.transaction():
                    _tune(conn, settings)
                    if kind in ("incremental", "rebuild"):
                        _run_batch(conn, settings, result, rebuild=kind == "rebuild", batch_size=batch_size)
                    elif kind == "backfill":
                        if target_date is None or last_date is None:
                            raise ValueError("a backfill needs its first and last day")
                        if _backfill_as_rebuild(conn):
                            started = time.perf_counter()
                            _run_batch(conn, settings, result, rebuild=True, batch_size=None)
                            result.step_seconds[BACKFILLED_AS_REBUILD] = round(time.perf_counter() - started, 3)
                        else:
                            _run_batch(
                                conn, settings, result, rebuild=False, batch_size=None, days=(target_date, last_date)
                            )
                    elif kind == "daily":
                        if target_date is None:
                            raise ValueError("a daily recompute needs a target_date")
                        _run_jobs(
                            conn,
                            SINGLE_DAY_JOBS,
                            parameters(settings, target_date=target_date, last_date=target_date),
                            result,
                            Context(single_day=True, sketches=has_sketches(conn)),
                        )
                    else:
                        from sluice.etl.cleanup import cleanup

                        result.rows_written = cleanup(conn, settings)
            except Exception as exc:
                # A dead connection cannot record anything; the next run marks this one abandoned.
                if not conn.broken:
                    _finish(conn, result, "failed", error=f"{type(exc).__name__}: {exc}")
                ETL_RUNS.labels(kind, "failed").inc()
                raise RunFailed(result.run_id, str(exc)) from exc
            _finish(conn, result, "succeeded")
            _record(result)
            return result
        finally:
            if not conn.broken:
                conn.execute("select pg_advisory_unlock(%s)", (RUN_LOCK,))


def backfill(settings: Settings, first: date, last: date, *, wait: bool = False) -> RunResult:
    """How old events reach the tables (`sluice etl backfill`, and `sluice import` after it wrote):
    one run that takes in every event committed since the last run, as an incremental run does
    (imported ones whatever their age: batch_events, the lateness bound is for live traffic), and
    recomputes the sessions they touch; its daily tables are then recounted whole from `sessions`
    (as `sluice etl daily` does for one day) for every day from `first` to `last` and every other
    day the batch touched, instead of moved by the visitor-days it changed: an import touches most
    visitor-days of its days, and a day whose rows retention deleted while its sessions stayed
    gets them back. A bulk batch that far outnumbers what the tables hold (an import into a new
    database) runs as a rebuild instead (BACKFILL_AS_REBUILD): the same tables, sooner."""
    if last < first:
        raise ValueError(f"the backfill's last day {last} is before its first {first}")
    _wait_until_visible(settings)
    return run(settings, "backfill", target_date=first, last_date=last, wait=wait)


def _backfill_as_rebuild(conn: psycopg.Connection) -> bool:
    """The backfill's batch is a bulk one and BACKFILL_AS_REBUILD times the events the tables hold
    (stg_events' rows, as PostgreSQL last counted them: one per processed event), and the raw log
    is whole (BACKFILL_AS_REBUILD says why)."""
    if _scalar(conn, "select raw_log_from from etl_state") is not None:
        return False
    pending = int(_scalar(conn, "select count(*) from events where txid >= (select watermark from etl_state)"))
    held = int(
        _scalar(
            conn,
            """select greatest(c.reltuples::bigint, pg_stat_get_live_tuples(c.oid), 0)
               from pg_class as c where c.oid = 'stg_events'::regclass""",
        )
    )
    return pending >= BULK_EVENTS and pending >= BACKFILL_AS_REBUILD * held


def _wait_until_visible(settings: Settings, timeout_s: float = 60) -> None:
    """Waits until every transaction that committed before the call is below the snapshot xmin,
    which bounds a run's batch: the events just imported are then in it, even while another
    session holds an older transaction open for a moment. After `timeout_s` the run goes on and
    leaves the rest for the next (its `remaining` says how many)."""
    deadline = time.monotonic() + timeout_s
    with connect(settings, autocommit=True, application_name="sluice-etl-backfill") as conn:
        horizon = _scalar(conn, "select pg_snapshot_xmax(pg_current_snapshot())::text")
        while not _scalar(conn, "select pg_snapshot_xmin(pg_current_snapshot()) >= %s::xid8", (horizon,)):
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)


def _record(result: RunResult) -> None:
    """The run's metrics (sluice/metrics.py): its outcome, and each step's duration."""
    ETL_RUNS.labels(result.kind, "succeeded").inc()
    for step, seconds in result.step_seconds.items():
        ETL_STEP_SECONDS.labels(step).observe(seconds)


def _tune(conn: psycopg.Connection, settings: Settings) -> None:
    """Session settings for this transaction: sorts, the scratch (temp) tables and a rebuild's index
    builds in memory; no JIT, whose compile time (seconds on these plans) exceeds what it saves.

    The run's ANALYZE statements sample 3,000 rows instead of 30,000 (statistics target 10): they
    only steer this run's joins (hash or index, which side to build), for which row counts and rough
    distinct counts suffice, and the wide scratch tables cost ~0.2 s each per million rows at the
    default. After a rebuild autovacuum analyses the reloaded tables again at the server's target:
    a million changed rows is far past its threshold.

    random_page_cost 1.1 (default 4): what a run reads by index is in memory, in shared buffers or
    the OS cache. At 4 the planner recounted a touched day's sessions and a touched hour's clicks
    by reading the whole of `sessions` and `clicks`, which grow with history (~0.15 s of a
    10,000-event run at 150,000 sessions); at 1.1 it reads them through their (site, day) and
    (site, time) indexes.

    synchronous_commit off: the run's commit does not wait for its WAL to reach the disk. A crash in
    the next moment can lose the whole run, never part of it (its tables and its watermark are one
    transaction), and the next run does it again from the raw log, whose commits stay synchronous.
    """
    conn.execute(
        """select set_config('work_mem', %(mem)s, true), set_config('temp_buffers', %(mem)s, true),
                  set_config('maintenance_work_mem', %(mem)s, true), set_config('jit', 'off', true),
                  set_config('default_statistics_target', '10', true),
                  set_config('random_page_cost', '1.1', true),
                  set_config('synchronous_commit', 'off', true)""",
        {"mem": settings.etl_work_mem},
    )


def has_sketches(conn: psycopg.Connection) -> bool:
    """The database has postgresql-hll and the cast to bytea that migration 0013 adds with it."""
    return bool(_scalar(conn, SKETCHES_AVAILABLE))


def _current_run(conn: psycopg.Connection) -> str:
    row = conn.execute(
        "select run_id, kind from etl_runs where status = 'running' order by run_id desc limit 1"
    ).fetchone()
    return f" (run {row[0]}, {row[1]})" if row else ""


def _start(conn: psycopg.Connection, kind: Kind) -> int:
    # We hold the lock, so a run still marked running died with its process (its work rolled back).
    conn.execute(
        """update etl_runs set status = 'abandoned', finished_at = clock_timestamp(),
                  error = 'the process running it ended before it finished; nothing it did was kept'
           where status = 'running'"""
    )
    row = conn.execute("insert into etl_runs (kind) values (%s) returning run_id", (kind,)).fetchone()
    assert row is not None
    return int(row[0])


def _finish(conn: psycopg.Connection, result: RunResult, status: str, error: str | None = None) -> None:
    result.status = status
    conn.execute(
        """update etl_runs set status = %s, finished_at = clock_timestamp(), watermark_from = %s::xid8,
                  watermark_to = %s::xid8, events_processed = %s, events_too_late = %s, rows_written = %s,
                  error = %s
           where run_id = %s""",
        (
            status,
            result.watermark_from,
            result.watermark_to,
            result.events_processed,
            result.events_too_late,
            Jsonb(result.rows_written),
            error,
            result.run_id,
        ),
    )


def _run_batch(
    conn: psycopg.Connection,
    settings: Settings,
    result: RunResult,
    *,
    rebuild: bool,
    batch_size: int | None,
    days: tuple[date, date] | None = None,
) -> None:
    """`days`: a backfill's, whose daily tables are recounted for those days and the batch's."""
    # First thing in the transaction: every transaction below xmin has finished, so the events with
    # txid < xmin are all visible now and no later commit can add one below it.
    xmin = _scalar(conn, "select pg_snapshot_xmin(pg_current_snapshot())::text")
    kept: list[tuple[str, sql.Composed]] = []
    if rebuild:
        started = time.perf_counter()
        first = covered_from(conn, settings)
        if first is not None:
            result.recomputed_from = first.isoformat()
            kept = _keep_uncovered_rows(conn, first)
        for statement in reset_statements():
            conn.execute(statement)
        result.step_seconds["reset"] = round(time.perf_counter() - started, 3)
    low = _scalar(conn, "select watermark::text from etl_state")
    high = _upper_bound(conn, low, xmin, batch_size)
    result.watermark_from, result.watermark_to = low, high
    params = parameters(settings, watermark_from=low, watermark_to=high)
    if days is not None:
        params.update(target_date=days[0], last_date=days[1])
    in_range = int(_scalar(conn, "select count(*) from events where txid >= %s::xid8 and txid < %s::xid8", (low, high)))
    load = _rebuild if rebuild else _run_all_jobs
    sketches = has_sketches(conn)
    recount: dict[str, bool] = {"single_day": True, "backfill": True} if days is not None else {}
    if not rebuild and in_range >= BULK_EVENTS:
        recount["bulk"] = True
        params["bulk_events"] = in_range
    # First without the duplicate event_id checks: the event log's ids are unique but for rows
    # loaded around the collector, and stg_events' primary key (re-created after a rebuild's load)
    # fails on a duplicate. Then the savepoint undoes the attempt and the run goes again with them.
    rows_written = dict(result.rows_written)
    if not rebuild and days is None and in_range == 0:
        # Nothing committed since the last run: no job has anything to do, and a run of them all
        # costs ~0.3 s of planning and round trips (bench/README.md "ETL speed": the floor), which a
        # scheduler running every few minutes over a quiet site would pay each time.
        result.rows_written = {table: 0 for table in TABLES}
        _advance_watermark(conn, result, high)
        return
    try:
        with conn.transaction():
            load(conn, params, result, Context(rebuild=rebuild, assume_unique_ids=True, sketches=sketches, **recount))
    except errors.UniqueViolation:
        result.rows_written = rows_written
        result.step_seconds[RETRIED_WITH_ID_CHECK] = round(sum(result.step_seconds.values()), 3)
        load(conn, params, result, Context(rebuild=rebuild, sketches=sketches, **recount))
    if kept:
        started = time.perf_counter()
        for table, before_cut in kept:
            # what the rebuild made of the days the raw log no longer covers goes; the rows were kept
            conn.execute(sql.SQL("delete from {} where {}").format(sql.Identifier(table), before_cut))
            conn.execute(sql.SQL("insert into {} select * from {}").format(*map(sql.Identifier, (table, _kept(table)))))
        result.step_seconds["(kept rows)"] = round(time.perf_counter() - started, 3)

    by_type = conn.execute("select event_type, count(*) from batch_events group by event_type").fetchall()
    result.events_by_type = {str(kind): int(n) for kind, n in by_type}
    result.events_processed = sum(result.events_by_type.values())
    result.events_too_late = in_range - result.events_processed
    _advance_watermark(conn, result, high)


def _advance_watermark(conn: psycopg.Connection, result: RunResult, high: str) -> None:
    """The run's end: the watermark moves to `high`, and `result` says how many events wait above it."""
    result.remaining = int(_scalar(conn, "select count(*) from events where txid >= %s::xid8", (high,)))
    conn.execute("update etl_state set watermark = %s::xid8", (high,))


def covered_from(conn: psycopg.Connection, settings: Settings) -> date | None:
    """The first UTC day the raw log still fully covers, after retention dropped its partitions
    (etl_state.raw_log_from, set by etl/cleanup.py); None while it is whole. Every session with an
    event on that day or later must be made of events still in the log: it began (its uninterrupted
    activity too) after raw_log_from plus the session timeout plus the clock skew the collector
    believes (an earlier event would have been within reach), as `sessions` holds them before the
    rebuild. A session that began before that and lasted (a client sessionId kept for days, an
    activity cut every 24 hours) moves the day past its end."""
    since = _scalar(conn, "select raw_log_from from etl_state")
    if since is None:
        return None
    margin = since + timedelta(minutes=settings.session_timeout_min, seconds=settings.max_future_skew_s)
    row = conn.execute(
        """select greatest(
                   (%(margin)s::timestamptz at time zone 'UTC')::date + 1,
                   max((ended_at at time zone 'UTC')::date) + 1)
           from sessions
           where ended_at >= %(margin)s::timestamptz
             and (started_at < %(margin)s::timestamptz or activity_started_at < %(margin)s::timestamptz)""",
        {"margin": margin},
    ).fetchone()
    assert row is not None
    assert isinstance(row[0], date)
    return row[0]


def _kept(table: str) -> str:
    return f"kept_{table}"


def _keep_uncovered_rows(conn: psycopg.Connection, first: date) -> list[tuple[str, sql.Composed]]:
    """Copies aside the rows a rebuild cannot recompute (before `first`, or before the first whole
    month or ISO week from it for a monthly or weekly table), in temp tables; returns each table's
    condition for them."""
    month = first if first.day == 1 else (first.replace(day=1) + timedelta(days=32)).replace(day=1)
    week = first + timedelta(days=-first.weekday() % 7)  # the first Monday on or after `first`
    kept = []
    for job in JOBS:
        by = job.keep.rebuild_by
        if job.table is None or by is None:
            continue
        cut = month if job.keep.monthly else week if job.keep.weekly else first
        column_type = _scalar(
            conn,
            "select format_type(atttypid, atttypmod) from pg_attribute where attrelid = %s::regclass and attname = %s",
            (job.table, by),
        )
        value = sql.Literal(cut.isoformat())
        bound = (
            sql.SQL("{}::date").format(value)
            if column_type == "date"
            else sql.SQL("{}::timestamp at time zone 'UTC'").format(value)
        )
        before_cut = sql.SQL("{} < {}").format(sql.Identifier(by), bound)
        conn.execute(
            sql.SQL("create temp table {} on commit drop as select * from {} where {}").format(
                sql.Identifier(_kept(job.table)), sql.Identifier(job.table), before_cut
            )
        )
        kept.append((job.table, before_cut))
    return kept


def reset_statements() -> list[sql.Composed]:
    """A rebuild's first step: empties every table a job writes, and sets the watermark back to the
    start, so the batch is the whole log."""
    return [
        sql.SQL("truncate {}").format(sql.SQL(", ").join(map(sql.Identifier, TABLES))),
        sql.SQL("update etl_state set watermark = '0'::xid8").format(),
    ]


def _run_all_jobs(conn: psycopg.Connection, params: dict[str, Any], result: RunResult, context: Context) -> None:
    _run_jobs(conn, JOBS, params, result, context)


def _rebuild(conn: psycopg.Connection, params: dict[str, Any], result: RunResult, context: Context) -> None:
    # Loading emptied tables and indexing them afterwards is several times faster than
    # maintaining the indexes row by row.
    with _indexes_deferred(conn, BULK_TABLES):
        _run_jobs(conn, JOBS, params, result, context)
        started = time.perf_counter()
    result.step_seconds["(indexes)"] = round(time.perf_counter() - started, 3)


@contextmanager
def _indexes_deferred(conn: psycopg.Connection, tables: tuple[str, ...]) -> Iterator[None]:
    """Drops the tables' indexes and key constraints, and recreates them exactly on exit."""
    constraints = conn.execute(
        """select c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
           from pg_constraint as c
           where c.conrelid = any(%s::regclass[]) and c.contype in ('p', 'u')""",
        (list(tables),),
    ).fetchall()
    indexes = conn.execute(
        """select i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
           from pg_index as i
           where i.indrelid = any(%s::regclass[])
             and not exists (select 1 from pg_constraint as c where c.conindid = i.indexrelid)""",
        (list(tables),),
    ).fetchall()
    for table, name, _ in constraints:
        conn.execute(sql.SQL("alter table {} drop constraint {}").format(sql.Identifier(table), sql.Identifier(name)))
    for name, _ in indexes:
        conn.execute(sql.SQL("drop index {}").format(sql.Identifier(name)))
    yield
    for table, name, definition in constraints:
        conn.execute(
            sql.SQL("alter table {} add constraint {} {}").format(
                sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)
            )
        )
    for _, definition in indexes:
        conn.execute(sql.SQL(definition))


def _upper_bound(conn: psycopg.Connection, low: str, xmin: str, batch_size: int | None) -> str:
    """xmin, or a lower txid so the batch holds at most `batch_size` events (whole transactions)."""
    if batch_size is None:
        return xmin
    row = conn.execute(
        "select txid::text from events where txid >= %s::xid8 and txid < %s::xid8 order by txid offset %s limit 1",
        (low, xmin, batch_size),
    ).fetchone()
    if row is None:
        return xmin
    if row[0] != low:
        return str(row[0])
    # One inserting transaction alone holds more than batch_size events: take it whole.
    after = conn.execute(
        "select min(txid)::text from events where txid > %s::xid8 and txid < %s::xid8", (low, xmin)
    ).fetchone()
    return str(after[0]) if after and after[0] is not None else xmin


def _run_jobs(
    conn: psycopg.Connection,
    jobs: tuple[Job, ...],
    params: dict[str, Any],
    result: RunResult,
    context: Context,
) -> None:
    tables = [job.table for job in jobs if job.table]
    written_before = _rows_written(conn, tables)
    for job in jobs:
        started = time.perf_counter()
        text = render(job.name, context) if job.python is None else ""
        # (a job whose statements need its table's key, `on conflict`, keeps its indexes)
        deferred = context.bulk and job.bulk and "on conflict" not in text and _outweighs(conn, params, job.name)
        with _indexes_deferred(conn, (job.name,)) if deferred else nullcontext():
            if job.python is not None:
                job.python(conn)
            else:
                for statement in statements(text):
                    conn.execute(statement, params)
        for added in after_job(job, context, loaded=deferred):
            conn.execute(added)
        result.step_seconds[job.name] = round(time.perf_counter() - started, 3)
    written_after = _rows_written(conn, tables)
    for table in tables:
        _count(result, table, written_after[table] - written_before[table])


def _outweighs(conn: psycopg.Connection, params: dict[str, Any], table: str) -> bool:
    """A bulk batch holds more events than `table` has rows (as PostgreSQL last counted them)."""
    rows = _scalar(
        conn,
        """select greatest(c.reltuples::bigint, pg_stat_get_live_tuples(c.oid))
           from pg_class as c where c.oid = %s::regclass""",
        (table,),
    )
    return bool(params["bulk_events"] > int(rows))


def after_job(job: Job, context: Context, *, loaded: bool = False) -> list[sql.Composed]:
    """What the run adds after a job's own statements: a rebuild analyses a bulk-loaded table right
    after its load (as a bulk batch does a table it `loaded` with the indexes dropped), so the jobs
    after it plan for a full table and the next incremental runs get index plans right away."""
    if (context.rebuild or loaded) and job.table and job.bulk:
        return [sql.SQL("analyze {}").format(sql.Identifier(job.table))]
    return []


def _rows_written(conn: psycopg.Connection, tables: list[str]) -> dict[str, int]:
    """Rows inserted or updated in each of `tables` so far in this transaction, as PostgreSQL counted
    them (pg_stat_xact_user_tables; counted while track_counts is on, its default, which autovacuum
    needs too). A table is written by its own job only (etl/jobs.py), so the difference across the
    jobs is what its job wrote, whatever its statements look like. One query before the jobs and one
    after, not two per job: each round trip is part of a run's fixed cost."""
    counted = conn.execute(
        """select t.name, pg_stat_get_xact_tuples_inserted(t.name::regclass)
                          + pg_stat_get_xact_tuples_updated(t.name::regclass)
           from unnest(%s::text[]) as t (name)""",
        (tables,),
    ).fetchall()
    return {str(name): int(n) for name, n in counted}


def _count(result: RunResult, table: str, rows: int) -> None:
    result.rows_written[table] = result.rows_written.get(table, 0) + rows


def _scalar(conn: psycopg.Connection, query: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(query, params or None).fetchone()
    assert row is not None
    return row[0]
