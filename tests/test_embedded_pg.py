from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from serving import embedded_data_dir

from sluice.embedded_pg import EmbeddedPostgres, database_for, find_bindir
from sluice.migrations import discover, migrate
from sluice.settings import Settings


@pytest.fixture
def data_dir() -> Iterator[Path]:
    with embedded_data_dir("sluice-embedded-") as path:
        yield path


def test_serve_without_database_url_runs_a_private_server(data_dir: Path) -> None:
    settings = replace(Settings(), database_url="", data_dir=data_dir)
    with database_for(settings) as resolved:
        assert str(data_dir / "postgres") in resolved.database_url
        assert migrate(resolved) == [m.name for m in discover()]
        with psycopg.connect(resolved.database_url) as conn:
            assert conn.execute("show listen_addresses").fetchone() == ("",)  # Unix socket only
            assert conn.execute("select count(*) from sluice.events").fetchone() == (0,)
    bindir = find_bindir()
    assert bindir is not None
    assert not EmbeddedPostgres(data_dir / "postgres", bindir).is_running()  # stopped with Sluice

    # The second start reuses the cluster and its data.
    with database_for(settings) as resolved:
        assert migrate(resolved) == []


def test_a_server_found_running_is_adopted_and_stopped_with_its_last_user(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bindir = find_bindir()
    assert bindir is not None
    server = EmbeddedPostgres(data_dir / "postgres", bindir)
    assert server.start() is True  # as a `sluice serve` killed with SIGKILL leaves it
    try:
        with database_for(replace(Settings(), database_url="", data_dir=data_dir)):
            assert server.is_running()
        assert not server.is_running()
    finally:
        if server.is_running():
            server.stop()
    where = data_dir / "postgres"
    assert capsys.readouterr().err.splitlines() == [
        f"sluice: embedded PostgreSQL in {where}: adopted (an earlier run left it running; it stops with this one)",
        f"sluice: embedded PostgreSQL in {where}: stopped",
    ]


def test_the_server_stops_when_its_last_user_leaves(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bindir = find_bindir()
    assert bindir is not None
    server = EmbeddedPostgres(data_dir / "postgres", bindir)
    settings = replace(Settings(), database_url="", data_dir=data_dir)
    with database_for(settings) as first:
        # A second user (as `sluice psql` or `sluice etl run` beside `sluice serve`) comes and goes.
        with database_for(settings) as second:
            assert second.database_url == first.database_url
        assert server.is_running()
        psycopg.connect(first.database_url).close()
    assert not server.is_running()
    where = data_dir / "postgres"
    assert capsys.readouterr().err.splitlines() == [
        f"sluice: embedded PostgreSQL in {where}: started",  # the second user comes and goes unannounced
        f"sluice: embedded PostgreSQL in {where}: stopped",
    ]


def test_a_set_database_url_is_used_as_is() -> None:
    settings = replace(Settings(), database_url="postgresql://somewhere/db")
    with database_for(settings) as resolved:
        assert resolved is settings
