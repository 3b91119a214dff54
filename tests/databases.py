"""Databases beside the test's own: empty ones, for what must start from nothing (`sluice migrate`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

_numbers = count()


@contextmanager
def empty_database(server: psycopg.Connection) -> Iterator[str]:
    """A new, empty database on `server`'s PostgreSQL (dropped afterwards); yields its URL."""
    info = server.info
    name = f"sluice_empty_{os.getpid()}_{next(_numbers)}"
    admin = make_conninfo(host=info.host, port=info.port, user=info.user, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(host=info.host, port=info.port, user=info.user, dbname=name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def table_names(url: str, schema: str) -> set[str]:
    """The tables of `schema`, partitions left out (their names carry the day they were made)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """
            select c.relname
            from pg_class as c
            join pg_namespace as n on n.oid = c.relnamespace
            where n.nspname = %s and c.relkind in ('r', 'p') and not c.relispartition
            """,
            (schema,),
        ).fetchall()
    return {name for (name,) in rows}
