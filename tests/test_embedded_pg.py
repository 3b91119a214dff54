from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from sluice.embedded_pg import EmbeddedPostgres, database_for, find_bindir
from sluice.migrations import discover, migrate
from sluice.settings import Settings


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: as root the server runs as another user, who must be able to reach it.
    with tempfile.TemporaryDirectory(prefix="sluice-embedded-", dir="/tmp") as tmp:
        Path(tmp).chmod(0o755)
        yield Path(tmp)


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


def test_a_running_server_is_reused_and_left_running(data_dir: Path) -> None:
    bindir = find_bindir()
    assert bindir is not None
    server = EmbeddedPostgres(data_dir / "postgres", bindir)
    assert server.start() is True
    try:
        with database_for(replace(Settings(), database_url="", data_dir=data_dir)):
            pass
        assert server.is_running()
        assert server.start() is False
    finally:
        server.stop()


def test_a_set_database_url_is_used_as_is() -> None:
    settings = replace(Settings(), database_url="postgresql://somewhere/db")
    with database_for(settings) as resolved:
        assert resolved is settings
