"""Connections to PostgreSQL: every Sluice connection works inside the configured schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool

from sluice.settings import Settings

# Whether the database can keep visitor sketches (migration 0013): postgresql-hll is installed in it,
# with the cast to bytea that the migration adds. The ETL fills them, the reports union them.
SKETCHES_AVAILABLE = """select to_regtype('hll') is not null and exists (
    select from pg_cast where castsource = to_regtype('hll') and casttarget = 'bytea'::regtype)"""


def conninfo(settings: Settings, application_name: str = "sluice", *, read: bool = False) -> str:
    """The DSN with `search_path` set, so SQL files use unqualified table names. `read`: the read
    replica's (SLUICE_READ_DATABASE_URL) when there is one, else the primary's."""
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set (sluice serve starts an embedded PostgreSQL when it is empty)")
    url = (read and settings.read_database_url) or settings.database_url
    params = conninfo_to_dict(url)
    options = str(params.get("options") or "")
    options = f"{options} -c search_path={settings.schema},public".strip()
    return make_conninfo(url, options=options, application_name=application_name)


def connect(settings: Settings, *, autocommit: bool = False, application_name: str = "sluice") -> psycopg.Connection:
    return psycopg.connect(conninfo(settings, application_name), autocommit=autocommit)


@contextmanager
def command_connection(settings: Settings, application_name: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection for a CLI command: to the embedded server when no DATABASE_URL is set."""
    from sluice import embedded_pg

    with (
        embedded_pg.database_for(settings) as settings,
        connect(settings, autocommit=True, application_name=application_name) as conn,
    ):
        yield conn


def async_pool(
    settings: Settings, *, min_size: int = 2, max_size: int = 10, name: str = "sluice", read: bool = False
) -> AsyncConnectionPool:
    """A pool that is opened (and awaited) in the app's lifespan, never at import time. `read`: on
    the read replica (only worth a pool of its own when SLUICE_READ_DATABASE_URL is set)."""
    return AsyncConnectionPool(
        conninfo(settings, name, read=read),
        min_size=min_size,
        max_size=max_size,
        open=False,
        name=name,
        kwargs={"autocommit": True},
    )
