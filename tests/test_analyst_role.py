"""`sluice_analyst` reads the analyst tables and nothing else; `sluice grant-analyst ROLE` gives it.

Roles are cluster-wide and several suites share one server: every login role made here has a
unique name and is dropped at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date

import psycopg
import pytest
from eventlog import event, insert
from psycopg import errors, sql
from psycopg.conninfo import make_conninfo

from sluice.analysts import ANALYST_ROLE, INTERNAL_TABLES, analyst_tables
from sluice.cli import main
from sluice.migrations import apply
from sluice.settings import Settings


def _unique_role(purpose: str) -> str:
    return f"sluice_test_{purpose}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def _connect_as(settings: Settings, role: str) -> psycopg.Connection:
    """A login as `role`, with no search_path of its own: what grant-analyst set applies."""
    return psycopg.connect(make_conninfo(settings.database_url, user=role), autocommit=True)


@pytest.fixture
def login_role(db: psycopg.Connection) -> Iterator[str]:
    """A new LOGIN role (trust authentication lets it in), dropped with what it owns afterwards."""
    name = _unique_role("analyst")
    role = sql.Identifier(name)
    db.execute(sql.SQL("create role {} login").format(role))
    try:
        yield name
    finally:
        db.execute(sql.SQL("drop owned by {}").format(role))
        db.execute(sql.SQL("drop role {}").format(role))


@pytest.fixture
def environment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SLUICE_SCHEMA", settings.schema)


@pytest.fixture
def analyst(environment: None, login_role: str, settings: Settings) -> Iterator[psycopg.Connection]:
    """A connection as a login role that `sluice grant-analyst` was run for."""
    assert main(["grant-analyst", login_role]) == 0
    with _connect_as(settings, login_role) as conn:
        yield conn


def _refused(conn: psycopg.Connection, statement: str) -> bool:
    try:
        conn.execute(statement)
    # (a view with GROUP BY, such as visitor_users, refuses writes from anyone before privileges
    # are checked: not updatable, and not a table to truncate)
    except (errors.InsufficientPrivilege, errors.ObjectNotInPrerequisiteState, errors.WrongObjectType):
        return True
    return False


@pytest.mark.usefixtures("environment")
def test_grant_analyst_says_what_it_did(
    db: psycopg.Connection, login_role: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["grant-analyst", login_role]) == 0
    database = db.info.dbname
    assert capsys.readouterr().out == (
        f"granted sluice_analyst to {login_role}: it reads the analyst tables of 'sluice' in database "
        f"'{database}', where its search_path is now sluice, public\n"
    )
    # twice is fine: the role is already a member
    assert main(["grant-analyst", login_role]) == 0


@pytest.mark.usefixtures("environment")
def test_an_unknown_role_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    name = _unique_role("missing")
    assert main(["grant-analyst", name]) == 1
    assert capsys.readouterr().err == (
        f"sluice grant-analyst: no role {name!r} on this PostgreSQL server: create it first, e.g. "
        f"create role \"{name}\" login password '...'\n"
    )
    assert main(["grant-analyst", ANALYST_ROLE]) == 1
    assert capsys.readouterr().err == (
        "sluice grant-analyst: sluice_analyst is the analysts' role itself: name the login role that should get it\n"
    )


def test_a_role_without_the_right_to_grant_is_refused(
    db: psycopg.Connection,
    login_role: str,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    operator = _unique_role("operator")
    db.execute(sql.SQL("create role {} login").format(sql.Identifier(operator)))
    try:
        monkeypatch.setenv("DATABASE_URL", make_conninfo(settings.database_url, user=operator))
        assert main(["grant-analyst", login_role]) == 1
    finally:
        db.execute(sql.SQL("drop role {}").format(sql.Identifier(operator)))
    assert capsys.readouterr().err.startswith("sluice grant-analyst: not allowed to grant sluice_analyst: ")
    assert db.execute("select pg_has_role(%s, %s, 'member')", (login_role, ANALYST_ROLE)).fetchone() == (False,)


@pytest.mark.usefixtures("environment")
def test_a_schema_not_migrated_is_refused(
    login_role: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLUICE_SCHEMA", "sluice_elsewhere")
    assert main(["grant-analyst", login_role]) == 1
    assert capsys.readouterr().err == (
        "sluice grant-analyst: the schema 'sluice_elsewhere' of this database is not open to sluice_analyst: "
        "run `sluice migrate`\n"
    )


def test_the_analyst_reads_every_analyst_table(
    db: psycopg.Connection, settings: Settings, analyst: psycopg.Connection
) -> None:
    insert(db, [event(at_="2026-03-01 10:00"), event("click", at_="2026-03-01 10:01", target="https://x.org/")])
    assert main(["etl", "run"]) == 0
    tables = [t.name for t in analyst_tables(db, settings.schema)]

    # unqualified names: grant-analyst set the role's search_path in this database
    assert analyst.execute("show search_path").fetchone() == ("sluice, public",)
    counts = {t: analyst.execute(f"select count(*) from {t}").fetchone() for t in tables}
    assert counts == {t: db.execute(f"select count(*) from {t}").fetchone() for t in tables}
    assert (counts["events"], counts["sessions"], counts["clicks"]) == ((2,), (1,), (1,))


def test_the_analyst_cannot_change_anything(
    db: psycopg.Connection, settings: Settings, analyst: psycopg.Connection
) -> None:
    for table in analyst_tables(db, settings.schema):
        column = table.columns[0].name
        assert _refused(analyst, f"insert into {table.name} default values"), table.name
        assert _refused(analyst, f"update {table.name} set {column} = default"), table.name
        assert _refused(analyst, f"delete from {table.name}"), table.name
        assert _refused(analyst, f"truncate {table.name}"), table.name
    assert _refused(analyst, "create table sluice.analyst_scratch (a integer)")
    assert _refused(analyst, "create view sluice.analyst_view as select 1 as a")
    assert _refused(analyst, "alter table sessions add column note text")
    assert _refused(analyst, "create index on sessions (country)")
    assert _refused(analyst, "comment on table sessions is 'mine'")
    assert _refused(analyst, "drop table sessions")


def test_the_analyst_cannot_read_the_internal_tables(analyst: psycopg.Connection) -> None:
    refused = {table for table in INTERNAL_TABLES if _refused(analyst, f"select * from {table}")}
    assert refused == {"daily_salts", "event_ids", "etl_state", "schema_migrations", "site_write_keys"}


def test_the_role_holds_select_on_the_analyst_tables_and_nothing_else(
    db: psycopg.Connection, settings: Settings
) -> None:
    granted = db.execute(
        """
        select c.relname, p.privilege_type
        from pg_class as c
        cross join lateral aclexplode(c.relacl) as p
        where c.relnamespace = %s::regnamespace
          and p.grantee = %s::regrole
          and not c.relispartition
        """,
        (settings.schema, ANALYST_ROLE),
    ).fetchall()
    assert sorted(granted) == [(t.name, "SELECT") for t in analyst_tables(db, settings.schema)]
    on_partitions = db.execute(
        """
        select distinct p.privilege_type
        from pg_class as c
        cross join lateral aclexplode(c.relacl) as p
        where c.relnamespace = %s::regnamespace and p.grantee = %s::regrole and c.relispartition
        """,
        (settings.schema, ANALYST_ROLE),
    ).fetchall()
    assert on_partitions == [("SELECT",)]  # the parent's rows, nothing more
    on_schema = db.execute(
        """
        select p.privilege_type
        from pg_namespace as n
        cross join lateral aclexplode(n.nspacl) as p
        where n.nspname = %s and p.grantee = %s::regrole
        """,
        (settings.schema, ANALYST_ROLE),
    ).fetchall()
    assert on_schema == [("USAGE",)]
    assert db.execute("select rolcanlogin from pg_roles where rolname = %s", (ANALYST_ROLE,)).fetchone() == (False,)


def test_a_table_a_later_migration_adds_is_readable_unless_revoked(
    db: psycopg.Connection, analyst: psycopg.Connection
) -> None:
    # as a migration would: the migrating role, in the schema
    db.execute("create table weekly_pages (week date primary key)")
    db.execute("insert into weekly_pages values ('2026-03-02')")
    db.execute("create table job_queue (id bigint)")
    db.execute("revoke all on job_queue from sluice_analyst")

    assert analyst.execute("select week from weekly_pages").fetchall() == [(date(2026, 3, 2),)]
    assert _refused(analyst, "select * from job_queue")
    assert _refused(analyst, "insert into weekly_pages values ('2026-03-09')")


def test_a_non_superuser_migrates_its_own_schema_for_analysts(
    db: psycopg.Connection, settings: Settings, analyst: psycopg.Connection
) -> None:
    # The role already exists on the server (cluster-wide): the migration uses it, needing no CREATEROLE.
    owner = _unique_role("owner")
    owner_id = sql.Identifier(owner)
    database = sql.Identifier(db.info.dbname)
    db.execute(sql.SQL("create role {} login").format(owner_id))
    try:
        db.execute(sql.SQL("grant create on database {} to {}").format(database, owner_id))
        with _connect_as(settings, owner) as conn:
            assert "0011_analyst_role_and_comments" in apply(conn, "sluice_owned")
            conn.execute("create table sluice_owned.weekly_pages (week date)")

        assert analyst.execute("select count(*) from sluice_owned.sessions").fetchone() == (0,)
        assert analyst.execute("select count(*) from sluice_owned.weekly_pages").fetchone() == (0,)
        assert _refused(analyst, "select * from sluice_owned.daily_salts")
        assert _refused(analyst, "delete from sluice_owned.sessions")
    finally:
        db.execute(sql.SQL("drop owned by {}").format(owner_id))
        db.execute(sql.SQL("drop role {}").format(owner_id))
