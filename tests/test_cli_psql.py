"""`sluice psql`: psql on Sluice's database with search_path set, its arguments passed through."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo
from serving import embedded_data_dir

from sluice.cli import main
from sluice.embedded_pg import EmbeddedPostgres, find_bindir
from sluice.psql import command
from sluice.settings import Settings


@pytest.fixture
def database_url(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SLUICE_SCHEMA", settings.schema)
    monkeypatch.setenv("PSQLRC", "/dev/null")
    return settings.database_url


def test_psql_runs_in_the_schema_with_the_arguments_given(database_url: str, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["psql", "-At", "-c", "show search_path", "-c", "select count(*) from events"]) == 0
    assert capfd.readouterr().out == "sluice,public\n0\n"


def test_psql_exits_as_psql_did(database_url: str, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["psql", "-v", "ON_ERROR_STOP=1", "-c", "select no_such_column"]) == 1
    assert 'column "no_such_column" does not exist' in capfd.readouterr().err


def test_a_password_goes_to_psql_in_its_environment_not_on_its_command_line(tmp_path: Path) -> None:
    url = make_conninfo(host="db.example", user="analyst", password="s3cret", dbname="web")
    settings = Settings(database_url=url, data_dir=tmp_path)
    argv, env = command(settings, ["-c", "select 1"])
    assert not any("s3cret" in arg for arg in argv)
    assert env["PGPASSWORD"] == "s3cret"
    assert argv[2:] == ["-c", "select 1"]
    assert "options='-c search_path=sluice,public'" in argv[1]


def test_psql_starts_the_embedded_server_for_the_session_and_stops_it_after(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    with embedded_data_dir("sluice-psql-") as data_dir:
        monkeypatch.delenv("DATABASE_URL", raising=False)
        monkeypatch.setenv("SLUICE_DATA_DIR", str(data_dir))
        monkeypatch.setenv("PSQLRC", "/dev/null")
        assert main(["psql", "-At", "-c", "select current_database(), current_setting('search_path')"]) == 0
        assert capfd.readouterr().out == "sluice|sluice,public\n"
        bindir = find_bindir()
        assert bindir is not None
        assert not EmbeddedPostgres(data_dir / "postgres", bindir).is_running()
