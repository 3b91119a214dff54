"""SLUICE_READ_DATABASE_URL: the reports, the dashboard's data and `sluice psql --read` read a real
streaming replica (README, "Scaling"), everything else the primary.

The proof that they read the replica: its replay is paused, then the primary gets more events and an
ETL run; the reports still answer the replica's numbers, and `sluice psql --read` is in recovery.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from databases import private_cluster, streaming_replica, wait_for_replay
from eventlog import event, insert
from reports.reports_testing import NOW, READ, reports_settings, shop_events
from starlette.testclient import TestClient

from sluice.app import create_app
from sluice.cli import main
from sluice.db import connect
from sluice.etl import pipeline
from sluice.migrations import apply
from sluice.reports import api
from sluice.settings import ConfigError, Settings


def pageviews(client: TestClient) -> int:
    reply = client.get("/api/v1/sites/shop/summary?period=7d", headers=READ)
    assert reply.status_code == 200, reply.text
    return int(reply.json()["pageviews"])


def test_the_reports_and_psql_read_read_the_replica(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(api, "now", lambda: NOW)
    with private_cluster(prefix="sluice-primary-") as primary, streaming_replica(primary) as replica:
        settings = reports_settings(Settings(database_url=primary.url, data_dir=tmp_path, etl_schedule="off"))
        # Everything happens on the primary, after the replica was made: it sees it all by replay.
        with psycopg.connect(primary.url, autocommit=True) as conn:
            apply(conn, settings.schema)
        with connect(settings, autocommit=True) as conn:
            insert(conn, shop_events())
        pipeline.run(settings)
        replayed_s = wait_for_replay(primary, replica)
        with TestClient(create_app(replace(settings, read_database_url=replica.url))) as client:
            seen = pageviews(client)
            assert seen > 0
            with psycopg.connect(replica.url, autocommit=True) as conn:
                conn.execute("select pg_wal_replay_pause()")
            with connect(settings, autocommit=True) as conn:
                insert(conn, [event(at_="2026-03-10 12:00", site="shop", visitor="v9", url="https://shop.test/c")])
            pipeline.run(settings)
            assert pageviews(client) == seen  # the replica's number: it has not replayed the run
        with TestClient(create_app(settings)) as client:
            assert pageviews(client) == seen + 1  # without a replica the reports read the primary

        monkeypatch.setenv("DATABASE_URL", primary.url)
        monkeypatch.setenv("SLUICE_READ_DATABASE_URL", replica.url)
        monkeypatch.setenv("PSQLRC", "/dev/null")
        query = "select pg_is_in_recovery(), sum(pageviews) from daily_metrics where site_id = 'shop'"
        capfd.readouterr()
        assert main(["psql", "--read", "-At", "-c", query]) == 0
        on_replica = capfd.readouterr().out
        assert main(["psql", "-At", "-c", query]) == 0
        on_primary = capfd.readouterr().out
        with psycopg.connect(replica.url, autocommit=True) as conn:
            conn.execute("select pg_wal_replay_resume()")
        caught_up_s = wait_for_replay(primary, replica)
        assert main(["psql", "--read", "-At", "-c", query]) == 0
        resumed = capfd.readouterr().out
    print(f"\nreplica replayed migrations + ETL in {replayed_s:.2f} s; caught up {caught_up_s:.2f} s after resuming")
    replica_total, primary_total = int(on_replica.split("|")[1]), int(on_primary.split("|")[1])
    assert on_replica.startswith("t|")
    assert on_primary.startswith("f|")
    assert primary_total == replica_total + 1
    assert resumed == f"t|{primary_total}\n"


def test_a_read_url_needs_database_url() -> None:
    with pytest.raises(ConfigError, match="SLUICE_READ_DATABASE_URL needs DATABASE_URL"):
        Settings.from_env({"SLUICE_READ_DATABASE_URL": "postgresql://replica/sluice"})
    both = Settings.from_env({"DATABASE_URL": "postgresql://p/s", "SLUICE_READ_DATABASE_URL": "postgresql://r/s"})
    assert both.read_database_url == "postgresql://r/s"
