"""`sluice etl run|status|rebuild|cleanup|daily|backfill|render`: the control endpoints, from a shell.

Exit codes: 0 done, 1 the run failed (recorded in etl_runs), 2 bad arguments, 3 another run holds
the lock (try --wait).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace
from datetime import date
from typing import Any

import orjson
from psycopg import sql as psql

from sluice.etl import pipeline
from sluice.etl.jobs import JOBS, describe
from sluice.etl.render import Context, render
from sluice.settings import Settings


def _print(data: Any) -> None:
    print(orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2).decode())


def _run(settings: Settings, kind: pipeline.Kind, args: argparse.Namespace, **kwargs: Any) -> int:
    from sluice import embedded_pg

    try:
        with embedded_pg.database_for(settings) as settings:
            result = pipeline.run(settings, kind, wait=args.wait, **kwargs)
    except pipeline.AlreadyRunning as exc:
        print(f"sluice etl: {exc}; pass --wait to wait for it", file=sys.stderr)
        return 3
    except pipeline.RunFailed as exc:
        print(f"sluice etl: {exc}", file=sys.stderr)
        return 1
    _print(result.as_dict())
    return 0


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    return _run(settings, "incremental", args, batch_size=args.batch_size)


def _cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    return _run(settings, "rebuild", args)


def _cmd_daily(args: argparse.Namespace, settings: Settings) -> int:
    return _run(settings, "daily", args, target_date=args.date)


def _cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    if args.last < args.first:
        print(f"sluice etl backfill: --to {args.last} is before --from {args.first}", file=sys.stderr)
        return 2
    code, result = backfill(settings, args.first, args.last, wait=args.wait)
    if result is not None:
        _print(result)
    return code


def backfill(settings: Settings, first: date, last: date, *, wait: bool) -> tuple[int, dict[str, Any] | None]:
    """pipeline.backfill from a shell (`sluice import` runs it too, after it wrote): the exit code
    (as `_run`'s, the failure said on stderr) and the run (None if it failed)."""
    from sluice import embedded_pg

    try:
        with embedded_pg.database_for(settings) as settings:
            result = pipeline.backfill(settings, first, last, wait=wait)
    except pipeline.AlreadyRunning as exc:
        print(f"sluice etl: {exc}; pass --wait to wait for it", file=sys.stderr)
        return 3, None
    except pipeline.RunFailed as exc:
        print(f"sluice etl: {exc}", file=sys.stderr)
        return 1, None
    return 0, result.as_dict()


def _cmd_cleanup(args: argparse.Namespace, settings: Settings) -> int:
    days = args.retention_days or settings.retention_days
    if days <= settings.lateness_days:
        print(
            f"sluice etl: --retention-days {days} must exceed SLUICE_LATENESS_DAYS={settings.lateness_days}",
            file=sys.stderr,
        )
        return 2
    return _run(replace(settings, retention_days=days), "cleanup", args)


def _cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from sluice import embedded_pg
    from sluice.db import connect
    from sluice.etl.status import status

    with embedded_pg.database_for(settings) as settings, connect(settings, autocommit=True) as conn:
        _print(status(conn, settings.data_dir, settings))
    return 0


def _cmd_render(args: argparse.Namespace, settings: Settings) -> int:
    if not args.job:
        # in the order a rebuild runs them (etl/jobs.py)
        width = max(len(job.name) for job in JOBS)
        print(f"{'reset':<{width}}  a rebuild's first step: empties every table below, watermark to 0")
        for job in JOBS:
            print(f"{job.name:<{width}}  {describe(job)}")
        return 0
    if args.job == "reset":
        print("-- reset (etl/pipeline.py: reset_statements), run first by a rebuild:\n")
        print("\n\n".join(f"{statement.as_string()};" for statement in pipeline.reset_statements()))
        return 0
    declared = {job.name: job for job in JOBS}
    found = declared.get(args.job)
    if found is None:
        known = ", ".join(["reset", *declared])
        print(f"sluice etl render: no ETL job {args.job!r}; known jobs: {known}", file=sys.stderr)
        return 2
    if found.python is not None:
        print(f"-- {found.name} runs Python, no SQL: {found.python.__module__}.{found.python.__name__}")
        return 0
    # as a run renders it in a database with postgresql-hll (the visitor sketches' statements shown)
    context = Context(
        single_day=args.single_day or args.backfill, rebuild=args.rebuild, sketches=True, backfill=args.backfill
    )
    text = render(args.job, context)
    added = pipeline.after_job(found, context)
    if added:
        text = text.rstrip("\n") + "\n\n-- then, added by the run (etl/pipeline.py: after_job):\n"
        text += "\n".join(f"{statement.as_string()};" for statement in added)
    print(f"-- sql/etl/{args.job}.sql.j2, rendered. Parameters bound at run time:")
    print("\n".join(parameter_lines(text, pipeline.parameters(settings))) + "\n")
    print(text.rstrip("\n"))
    return 0


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
# The parameters a run adds to pipeline.parameters: the batch's bounds, a one-day or backfill
# recompute's days, a bulk batch's size.
_PER_RUN = {
    "watermark_from": "the batch's lower txid bound (the previous run's watermark)",
    "watermark_to": "the batch's upper txid bound (the snapshot xmin at the run's start)",
    "target_date": "the first day recounted (`sluice etl daily` or backfill)",
    "last_date": "the last day recounted",
    "bulk_events": "the events of a bulk batch",
}


def parameter_lines(text: str, values: dict[str, Any]) -> list[str]:
    """One comment line per parameter the statements use, in order of first use: the SQL literal
    psycopg sends for a configured value (sql.Literal, the same adaptation as a bound one, so the
    line can be pasted into the statement), or what a run binds. A header built by hand once printed
    `interval '100'` for the integer values cap."""
    lines = []
    for name in dict.fromkeys(_PLACEHOLDER.findall(text)):
        if name in values:
            lines.append(f"--   %({name})s = {psql.Literal(values[name]).as_string(None)}")
        else:
            lines.append(f"--   %({name})s: {_PER_RUN.get(name, 'set by the run')}")
    return lines or ["--   (none)"]


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _date(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a date (YYYY-MM-DD)") from None


def add_etl_commands(commands: argparse._SubParsersAction[Any]) -> None:
    etl = commands.add_parser("etl", help="drive the ETL", description=__doc__)
    sub = etl.add_subparsers(dest="etl_command", required=True)

    def command(name: str, handler: Any, help_text: str, *, runs: bool = True) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
        if runs:
            parser.add_argument("--wait", action="store_true", help="wait for a run in progress instead of exiting 3")
        parser.set_defaults(handler=handler)
        return parser

    run = command("run", _cmd_run, "process the events committed since the last run")
    run.add_argument("--batch-size", type=_positive, help="at most this many events (whole transactions)")
    command("rebuild", _cmd_rebuild, "recompute every ETL table from the raw log")
    daily = command("daily", _cmd_daily, "recompute the daily tables of one UTC day")
    daily.add_argument("date", type=_date, help="YYYY-MM-DD")
    backfill_cmd = command(
        "backfill",
        _cmd_backfill,
        "a run over the events waiting (imported ones whatever their age), recounting these days",
    )
    backfill_cmd.add_argument("--from", dest="first", type=_date, required=True, help="first UTC day, YYYY-MM-DD")
    backfill_cmd.add_argument("--to", dest="last", type=_date, required=True, help="last UTC day, YYYY-MM-DD")
    cleanup = command("cleanup", _cmd_cleanup, "enforce the retention tiers (raw log and hourly tables, daily tables)")
    cleanup.add_argument("--retention-days", type=_positive, help="raw retention (SLUICE_RETENTION_DAYS, default 90)")
    command("status", _cmd_status, "unprocessed events, lag, last run, row counts, retention tiers", runs=False)
    render_cmd = command("render", _cmd_render, "print a job's SQL as it runs (no job: list them)", runs=False)
    render_cmd.add_argument("job", nargs="?", help="a job name, e.g. sessions")
    variant = render_cmd.add_mutually_exclusive_group()
    variant.add_argument("--single-day", action="store_true", help="the variant for one target date")
    variant.add_argument("--rebuild", action="store_true", help="the variant a rebuild runs (emptied tables)")
    variant.add_argument("--backfill", action="store_true", help="the variant `sluice etl backfill` runs")
