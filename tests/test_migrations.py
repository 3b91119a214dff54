from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg

from sluice.migrations import apply, discover
from sluice.settings import Settings


def test_every_migration_is_recorded(db: psycopg.Connection) -> None:
    rows = db.execute("select version from schema_migrations order by version").fetchall()
    assert [r[0] for r in rows] == [m.version for m in discover()]


def test_applying_twice_changes_nothing(db: psycopg.Connection, settings: Settings) -> None:
    assert apply(db, settings.schema) == []
    assert apply(db, settings.schema) == []


def test_concurrent_migrators_apply_each_file_once(settings: Settings) -> None:
    # A fresh schema in the test database: both threads race to create everything.
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(settings.database_url, autocommit=True) as conn:
                results.append(apply(conn, "sluice_race"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    applied = sorted(name for names in results for name in names)
    assert applied == sorted(m.name for m in discover())


def test_partitions_exist_ahead_and_late_rows_move_out_of_default(db: psycopg.Connection) -> None:
    today = datetime.now(UTC).date()
    names = {r[0] for r in db.execute("select relname from pg_class where relname like 'events_2%'")}
    for i in range(-1, 8):
        assert f"events_{(today + timedelta(days=i)).strftime('%Y%m%d')}" in names

    far = today + timedelta(days=30)
    at = datetime(far.year, far.month, far.day, 12, tzinfo=UTC)
    db.execute(
        """insert into events (event_id, site_id, event_type, occurred_at, received_at, payload)
           values (gen_random_uuid(), 's', 'pageview', %s, %s, '{}')""",
        (at, at),
    )
    assert db.execute("select count(*) from events_default").fetchone() == (1,)
    assert db.execute("select ensure_event_partitions(%s, 1)", (far,)).fetchone() == (1,)
    assert db.execute("select count(*) from events_default").fetchone() == (0,)
    part = f"events_{far.strftime('%Y%m%d')}"
    assert db.execute(f"select count(*) from {part}").fetchone() == (1,)
    assert db.execute("select ensure_event_partitions(%s, 1)", (far,)).fetchone() == (0,)
