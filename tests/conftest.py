"""Real PostgreSQL for every test, through pytest-postgresql.

A reachable server (PGHOST/PGPORT, default 127.0.0.1:5432) is used as it is (`postgresql_noproc`);
otherwise the fixtures start a throwaway server from the system's binaries (`postgresql_proc`).
Migrations run once into a template database; each test gets a fresh copy of it (a cheap
`CREATE DATABASE … TEMPLATE`), so tests never see each other's rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from pytest_postgresql import factories

from sluice.migrations import apply
from sluice.settings import Settings

PG_HOST = os.environ.get("PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PGPORT", "5432"))
PG_USER = os.environ.get("PGUSER", "postgres")
SCHEMA = "sluice"


def _server_reachable() -> bool:
    try:
        psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


def load_schema(host: str, port: int, user: str, dbname: str, password: str | None, **_: Any) -> None:
    with psycopg.connect(host=host, port=port, user=user, dbname=dbname, password=password, autocommit=True) as conn:
        apply(conn, SCHEMA)


# Several checkouts may run their suites against one server at once: names carry the pid.
_DBNAME = f"sluice_test_{os.getpid()}"
postgresql_server: Any
if _server_reachable():
    postgresql_server = factories.postgresql_noproc(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=_DBNAME, load=[load_schema]
    )
else:
    postgresql_server = factories.postgresql_proc(dbname=_DBNAME, load=[load_schema])
postgresql = factories.postgresql("postgresql_server")


@pytest.fixture
def settings(postgresql: psycopg.Connection, tmp_path: Path) -> Settings:
    """Settings pointing at this test's own freshly migrated database, and a data folder of its own."""
    info = postgresql.info
    url = make_conninfo(host=info.host, port=info.port, user=info.user, dbname=info.dbname)
    return replace(Settings(), database_url=url, schema=SCHEMA, etl_schedule="off", data_dir=tmp_path / "data")


@pytest.fixture
def db(settings: Settings) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test database with `search_path` set to Sluice's schema."""
    from sluice.db import connect

    with connect(settings, autocommit=True) as conn:
        yield conn
