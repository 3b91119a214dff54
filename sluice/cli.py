"""`sluice`: serve, migrate, open psql, and drive the ETL from a shell."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import psycopg

from sluice.embedded_pg import EmbeddedPostgresError
from sluice.migrations import MigrationFailed, NoMigrations
from sluice.psql import PsqlNotFound
from sluice.settings import ConfigError, Settings
from sluice.stopping import Stopped, stop_on_signals

# Failures that are the user's to fix, said in one line (exit 1); never a traceback.
_FAILURES = (EmbeddedPostgresError, NoMigrations, MigrationFailed, PsqlNotFound)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from sluice.serve import serve

    return serve(
        replace(
            settings,
            host=args.host or settings.host,
            port=args.port or settings.port,
            workers=args.workers or settings.workers,
        )
    )


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from sluice import embedded_pg
    from sluice.migrations import migrate

    with embedded_pg.database_for(settings) as settings:
        applied = migrate(settings)
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    from sluice.admin_token import with_admin_token

    print(with_admin_token(settings).admin_token)
    return 0


def _psql(args: argparse.Namespace, settings: Settings) -> int:
    from sluice.psql import psql

    return psql(settings, args.passthrough, read=args.read)


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """This module's commands; each part of Sluice adds its own the same way (see build_parser)."""
    serve = commands.add_parser("serve", help="run the collector, control endpoints and ETL scheduler")
    serve.add_argument("--host", help="address to listen on (SLUICE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (SLUICE_PORT, default 8000)")
    serve.add_argument("--workers", type=int, help="uvicorn worker processes (SLUICE_WORKERS, default 1)")
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="apply pending migrations from sql/migrations")
    migrate.set_defaults(handler=_migrate)

    token = commands.add_parser("token", help="print the bearer token of /etl/* and /events/*")
    token.set_defaults(handler=_token)

    # Every argument after `psql` is psql's own (add_help=False: `sluice psql --help` is psql's help),
    # but --read (allow_abbrev=False: none of psql's options is taken for it).
    psql = commands.add_parser(
        "psql", add_help=False, allow_abbrev=False,
        help="psql on Sluice's database (search_path set); arguments go to psql",
    )  # fmt: skip
    psql.add_argument("--read", action="store_true", help="on the read replica (SLUICE_READ_DATABASE_URL), if set")
    psql.set_defaults(handler=_psql, passthrough=[])


def build_parser() -> argparse.ArgumentParser:
    from sluice.analysts import add_analyst_commands
    from sluice.collector.import_cli import add_import_command
    from sluice.collector.links_cli import add_links_commands
    from sluice.collector.sites_cli import add_sites_commands
    from sluice.etl.cli import add_etl_commands, backfill

    parser = argparse.ArgumentParser(prog="sluice", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    add_commands(commands)
    add_etl_commands(commands)
    add_analyst_commands(commands)
    add_links_commands(commands)
    add_sites_commands(commands)
    # ingestion and the ETL meet here, not in each other: the import then runs the ETL's backfill
    add_import_command(commands, then=lambda settings, first, last: backfill(settings, first, last, wait=True))
    return parser


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if not hasattr(args, "passthrough"):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        # What argparse did not know, in order; a leading "--" only separated it.
        args.passthrough = unknown[1:] if unknown[0] == "--" else unknown
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        with stop_on_signals():
            settings = Settings.from_env()
            return int(args.handler(args, settings))
    except ConfigError as exc:
        print(f"sluice: configuration error: {exc}", file=sys.stderr)
        return 2
    except _FAILURES as exc:
        print(f"sluice: {exc}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as exc:
        # Unreachable server, unknown database, bad credentials: say so, without a traceback.
        print(f"sluice: cannot use PostgreSQL: {str(exc).strip()}", file=sys.stderr)
        return 1
    except Stopped as stop:
        # A command other than serve, cut short: the shell's convention for "ended by a signal".
        print(f"sluice: interrupted ({stop})", file=sys.stderr)
        return 128 + stop.signum
    except BrokenPipeError:
        # `sluice etl status | head`: the reader left. Silence the flush at exit, as Python's docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
