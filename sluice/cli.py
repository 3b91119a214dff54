"""`sluice`: serve, migrate, and drive the ETL from a shell."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace

import psycopg

from sluice.embedded_pg import EmbeddedPostgresError
from sluice.settings import ConfigError, Settings


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from sluice import embedded_pg
    from sluice.migrations import migrate

    settings = replace(
        settings,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers or settings.workers,
    )
    with embedded_pg.database_for(settings) as settings:
        applied = migrate(settings)
        if applied:
            print(f"sluice: applied migrations {', '.join(applied)}", file=sys.stderr)
        # Workers re-read settings from the environment: hand the resolved URL down.
        embedded_pg.export(settings)
        uvicorn.run(
            "sluice.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            proxy_headers=False,  # the collector trusts X-Forwarded-For itself, from configured proxies only
            server_header=False,
            access_log=False,  # an access log would write every visitor's raw IP; nginx in front keeps its own
            log_level="info",
        )
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from sluice import embedded_pg
    from sluice.migrations import migrate

    with embedded_pg.database_for(settings) as settings:
        applied = migrate(settings)
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from sluice.analysts import add_analyst_commands
    from sluice.etl.cli import add_etl_commands

    parser = argparse.ArgumentParser(prog="sluice", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the collector, control endpoints and ETL scheduler")
    serve.add_argument("--host", help="address to listen on (SLUICE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (SLUICE_PORT, default 8000)")
    serve.add_argument("--workers", type=int, help="uvicorn worker processes (SLUICE_WORKERS, default 1)")
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="apply pending migrations from sql/migrations")
    migrate.set_defaults(handler=_migrate)

    add_etl_commands(commands)
    add_analyst_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        return int(args.handler(args, settings))
    except ConfigError as exc:
        print(f"sluice: configuration error: {exc}", file=sys.stderr)
        return 2
    except EmbeddedPostgresError as exc:
        print(f"sluice: {exc}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as exc:
        # Unreachable server, unknown database, bad credentials: say so, without a traceback.
        print(f"sluice: cannot use PostgreSQL: {str(exc).strip()}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `sluice etl status | head`: the reader left. Silence the flush at exit, as Python's docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
