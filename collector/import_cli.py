"""`sluice import FILE`: historical events into the event log (collector/importer.py), then the ETL
over the days they touch.

The import is ingestion: it never runs the ETL itself. The command line (sluice/cli.py) hands it
`then`, the ETL's backfill, which it calls with the first and last day of what it stored.

Exit codes: 0 every line imported, 1 some lines rejected (the others imported) or PostgreSQL failed
part-way, 2 usage errors (no such file, unknown format, a CSV without a header); the backfill's
own codes when it fails (1, or 3 when another run holds the lock).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date
from typing import Any

import orjson

from sluice.collector.importer import FORMATS, ImportStopped, Options, UsageError, run_import
from sluice.settings import Settings

# (settings, first day, last day) -> (exit code, the ETL run as JSON, None if it failed)
Backfill = Callable[[Settings, date, date], tuple[int, dict[str, Any] | None]]


def _print(data: Any) -> None:
    print(orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2).decode())


def _workers(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an integer") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and 64")
    return value


def add_import_command(commands: argparse._SubParsersAction[Any], then: Backfill) -> None:
    parser = commands.add_parser(
        "import",
        help="import historical events (NDJSON or CSV), validated as /collect's; then the ETL over their days",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", help="the file to read; - for standard input")
    parser.add_argument("--format", choices=FORMATS, default="ndjson", help="ndjson (default): one event per line")
    parser.add_argument("--site", help="siteId for the lines that have none")
    parser.add_argument("--dry-run", action="store_true", help="only validate: report what would be rejected")
    parser.add_argument("--no-etl", action="store_true", help="do not run the backfill afterwards")
    parser.add_argument("--workers", type=_workers, help="processes that parse and validate (default: CPUs, at most 4)")

    def handler(args: argparse.Namespace, settings: Settings) -> int:
        return _import(args, settings, then)

    parser.set_defaults(handler=handler)


def _import(args: argparse.Namespace, settings: Settings, then: Backfill) -> int:
    options = Options(args.file, args.format, args.site, args.dry_run, args.workers or 0)
    try:
        summary = run_import(options, settings)
    except UsageError as exc:
        print(f"sluice import: {exc}", file=sys.stderr)
        return 2
    except ImportStopped as exc:
        print(f"sluice import: {exc}", file=sys.stderr)
        _print(exc.summary.as_dict())
        return 1
    out = summary.as_dict()
    code = 1 if summary.rejected else 0
    if not args.dry_run and not args.no_etl and summary.first_day is not None and summary.last_day is not None:
        etl_code, out["etl"] = then(settings, summary.first_day, summary.last_day)
        code = code or etl_code
    _print(out)
    return code
