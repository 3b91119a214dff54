"""PostgreSQL restarted in the middle of an ETL rebuild (a private cluster, never the shared server):
nothing of the run is kept, the run is on record as not finished, and the next run succeeds."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import psycopg
from eventlog import at, event, insert, snapshot
from fault_rig import private_postgres

from sluice.etl import pipeline
from sluice.settings import Settings

DAYS, VISITORS, PAGES = 6, 2000, 5  # 60,000 events: a rebuild of a few seconds here


def history() -> list[dict[str, object]]:
    start = at("2026-03-01 08:00")
    return [
        event(
            at_=start + timedelta(days=day, minutes=v % 600, seconds=page * 20),
            visitor=f"v{v}",
            url=f"https://shop.example/p{(v + page) % 40}",
            site=f"s{v % 3}",
        )
        for day in range(DAYS)
        for v in range(VISITORS)
        for page in range(PAGES)
    ]


def test_a_rebuild_cut_by_a_postgresql_restart_keeps_the_tables_and_the_next_run_succeeds(tmp_path: Path) -> None:
    with private_postgres() as postgres:
        settings = replace(
            Settings(), database_url=postgres.url, schema="sluice", etl_schedule="off", data_dir=tmp_path / "data"
        )
        options = "-c search_path=sluice"
        with psycopg.connect(postgres.url, autocommit=True, options=options) as conn:
            insert(conn, history())
        pipeline.run(settings)
        with psycopg.connect(postgres.url, autocommit=True, options=options) as conn:
            before = snapshot(conn)
        assert before["sessions"], "the first run made sessions"

        failures: list[BaseException] = []

        def rebuild() -> None:
            try:
                pipeline.run(settings, "rebuild")
            except BaseException as exc:  # the test reads what the run raised
                failures.append(exc)

        runner = threading.Thread(target=rebuild)
        started = time.monotonic()
        runner.start()
        with psycopg.connect(postgres.url, autocommit=True, options=options) as watcher:
            while not watcher.execute(
                "select 1 from etl_runs where kind = 'rebuild' and status = 'running'"
            ).fetchone():
                assert runner.is_alive(), "the rebuild ended before it could be cut"
                time.sleep(0.01)
        time.sleep(0.3)  # well inside the rebuild's jobs
        assert runner.is_alive(), "the rebuild ended before it could be cut"
        postgres.stop()
        cut_at = time.monotonic() - started
        postgres.start()
        runner.join(60)
        assert not runner.is_alive()
        assert len(failures) == 1, failures
        assert isinstance(failures[0], pipeline.RunFailed), failures
        print(f"rebuild cut {cut_at:.2f} s after it started")

        with psycopg.connect(postgres.url, autocommit=True, options=options) as conn:
            assert snapshot(conn) == before  # the run was one transaction: nothing of it kept
            (cut,) = conn.execute("select status from etl_runs where kind = 'rebuild'").fetchone() or (None,)
            assert cut == "running"  # its connection died with the server: nothing could record more yet

        after = pipeline.run(settings, "rebuild")
        assert after.status == "succeeded"
        with psycopg.connect(postgres.url, autocommit=True, options=options) as conn:
            statuses = conn.execute(
                "select status, error from etl_runs where kind = 'rebuild' order by run_id"
            ).fetchall()
            assert [status for status, _ in statuses] == ["abandoned", "succeeded"]
            assert "nothing it did was kept" in statuses[0][1]
            assert snapshot(conn) == before  # and the rebuild equals what the incremental run made
