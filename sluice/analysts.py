"""What SQL analysts get: the tables they read, each documented by the database's own comments, and
the read-only role `sluice_analyst` (migration 0011), which `sluice grant-analyst ROLE` gives them.

The analyst tables are read from the catalog, not listed by hand: every table and view of the
schema but its partitions and INTERNAL_TABLES. A table a migration adds is therefore an analyst
table, readable through the role's default privileges and needing comments, unless it is listed
here and its migration revokes it from sluice_analyst.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from sluice.settings import Settings

ANALYST_ROLE = "sluice_analyst"
# Kept from analysts: daily_salts would let them re-hash every address and reverse ip_hash;
# site_write_keys holds credentials (hashed); the others are Sluice's bookkeeping.
INTERNAL_TABLES = frozenset({"daily_salts", "event_ids", "etl_state", "schema_migrations", "site_write_keys"})


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    comment: str | None


@dataclass(frozen=True)
class Table:
    name: str
    comment: str | None
    key: tuple[str, ...]  # the primary key's columns; empty when it has none
    columns: tuple[Column, ...]


class GrantRefused(Exception):
    """`grant-analyst` cannot give the role; the message says why and what to do."""


def analyst_tables(conn: psycopg.Connection, schema: str) -> list[Table]:
    """Every table and view of `schema` but the internal ones and partitions, by name."""
    rows = conn.execute(
        """
        select c.relname, obj_description(c.oid, 'pg_class'), a.attname,
               format_type(a.atttypid, a.atttypmod), col_description(c.oid, a.attnum),
               array_position(k.indkey::int2[], a.attnum)  -- null: not in the primary key
        from pg_class as c
        inner join pg_namespace as n on n.oid = c.relnamespace
        inner join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        left join pg_index as k on k.indrelid = c.oid and k.indisprimary
        where n.nspname = %s
          and c.relkind in ('r', 'p', 'v', 'm', 'f')
          and not c.relispartition
          and c.relname <> all(%s)
        order by c.relname, a.attnum
        """,
        (schema, sorted(INTERNAL_TABLES)),
    ).fetchall()
    tables: dict[str, tuple[str | None, list[tuple[int, str]], list[Column]]] = {}
    for table, table_comment, column, type_name, column_comment, key_position in rows:
        _, key, columns = tables.setdefault(table, (table_comment, [], []))
        columns.append(Column(column, type_name, column_comment))
        if key_position is not None:
            key.append((key_position, column))
    return [
        Table(name, comment, tuple(column for _, column in sorted(key)), tuple(columns))
        for name, (comment, key, columns) in tables.items()
    ]


def missing_comments(tables: list[Table]) -> list[str]:
    """`table` or `table.column` for every analyst table and column without a comment."""
    missing = []
    for table in tables:
        if not (table.comment or "").strip():
            missing.append(table.name)
        missing.extend(f"{table.name}.{c.name}" for c in table.columns if not (c.comment or "").strip())
    return missing


def grant(conn: psycopg.Connection, role: str, schema: str) -> None:
    """Make `role` a member of sluice_analyst, reading `schema` first in this database."""
    if role == ANALYST_ROLE:
        raise GrantRefused(f"{ANALYST_ROLE} is the analysts' role itself: name the login role that should get it")
    found = conn.execute("select rolname from pg_roles where rolname in (%s, %s)", (role, ANALYST_ROLE))
    roles = {name for (name,) in found}
    if ANALYST_ROLE not in roles:
        raise GrantRefused(f"the role {ANALYST_ROLE} does not exist: run `sluice migrate` first")
    if role not in roles:
        raise GrantRefused(
            f"no role {role!r} on this PostgreSQL server: create it first, e.g. "
            f"create role {sql.Identifier(role).as_string(conn)} login password '...'"
        )
    usable = conn.execute(
        # (case: has_schema_privilege fails on a schema that does not exist)
        "select case when to_regnamespace(%s) is not null then has_schema_privilege(%s, %s, 'usage') end",
        (schema, ANALYST_ROLE, schema),
    ).fetchone()
    if not (usable and usable[0]):
        raise GrantRefused(
            f"the schema {schema!r} of this database is not open to {ANALYST_ROLE}: run `sluice migrate`"
        )
    with conn.transaction():
        conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(ANALYST_ROLE), sql.Identifier(role)))
        # so an analyst's psql finds `sessions` without qualifying it; public keeps its usual place
        conn.execute(
            sql.SQL("alter role {} in database {} set search_path = {}, public").format(
                sql.Identifier(role), sql.Identifier(conn.info.dbname), sql.Identifier(schema)
            )
        )


def _cmd_grant(args: argparse.Namespace, settings: Settings) -> int:
    from sluice import embedded_pg
    from sluice.db import connect

    with embedded_pg.database_for(settings) as settings, connect(settings, autocommit=True) as conn:
        try:
            grant(conn, args.role, settings.schema)
        except GrantRefused as exc:
            print(f"sluice grant-analyst: {exc}", file=sys.stderr)
            return 1
        except psycopg.errors.InsufficientPrivilege as exc:
            print(f"sluice grant-analyst: not allowed to grant {ANALYST_ROLE}: {exc}", file=sys.stderr)
            return 1
        database = conn.info.dbname
    print(
        f"granted {ANALYST_ROLE} to {args.role}: it reads the analyst tables of {settings.schema!r} in database "
        f"{database!r}, where its search_path is now {settings.schema}, public"
    )
    return 0


def _cmd_schema_docs(args: argparse.Namespace, settings: Settings) -> int:
    from sluice import embedded_pg, schema_docs
    from sluice.db import connect

    with embedded_pg.database_for(settings) as settings, connect(settings, autocommit=True) as conn:
        tables = analyst_tables(conn, settings.schema)
    if not tables:
        print(f"sluice schema-docs: no tables in the schema {settings.schema!r}: run `sluice migrate`", file=sys.stderr)
        return 1
    missing = missing_comments(tables)
    if missing:
        print(
            "sluice schema-docs: these have no comment; add `comment on` to their migration: " + ", ".join(missing),
            file=sys.stderr,
        )
        return 1
    if args.readme is None:
        print(schema_docs.document(tables), end="")
        return 0
    path: Path = args.readme
    text = path.read_text(encoding="utf-8")
    try:
        spliced = schema_docs.splice(text, tables)
    except schema_docs.SectionsMismatch as exc:
        print(f"sluice schema-docs: {path}: {exc}", file=sys.stderr)
        return 1
    if spliced == text:
        print(f"{path}: up to date")
    else:
        path.write_text(spliced, encoding="utf-8")
        print(f"{path}: rewrote the generated table sections")
    return 0


def add_analyst_commands(commands: argparse._SubParsersAction[Any]) -> None:
    grant_parser = commands.add_parser(
        "grant-analyst", help=f"let a login role read the analyst tables (gives it the role {ANALYST_ROLE})"
    )
    grant_parser.add_argument("role", help="an existing PostgreSQL role")
    grant_parser.set_defaults(handler=_cmd_grant)

    docs = commands.add_parser(
        "schema-docs", help="print the analyst tables' columns as markdown, from the comments in the database"
    )
    docs.add_argument("--readme", type=Path, help="rewrite the generated sections of this file (README.md) instead")
    docs.set_defaults(handler=_cmd_schema_docs)
