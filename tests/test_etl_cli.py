"""`sluice etl …`: the same operations from a shell, with exit codes a script can test."""

from __future__ import annotations

import json

import psycopg
import pytest
from eventlog import event, insert

from sluice.cli import main
from sluice.etl import pipeline
from sluice.etl.jobs import JOBS, TABLES
from sluice.etl.locks import RUN_LOCK
from sluice.settings import Settings


@pytest.fixture(autouse=True)
def environment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SLUICE_SCHEMA", settings.schema)


def test_run_then_status(db: psycopg.Connection, capsys: pytest.CaptureFixture[str]) -> None:
    insert(db, [event(at_="2026-03-01 10:00")])
    assert main(["etl", "run", "--batch-size", "10"]) == 0
    assert json.loads(capsys.readouterr().out)["events_processed"] == 1
    assert main(["etl", "status"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["unprocessed_total"], status["row_counts"]["sessions"]) == (0, 1)
    assert list(status["row_counts"]) == [*TABLES, "etl_runs"]


def test_rebuild_daily_and_cleanup(db: psycopg.Connection, capsys: pytest.CaptureFixture[str]) -> None:
    insert(db, [event(at_="2026-03-01 10:00")])
    assert main(["etl", "rebuild"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "rebuild"
    assert main(["etl", "daily", "2026-03-01"]) == 0
    assert json.loads(capsys.readouterr().out)["rows_written"]["daily_metrics"] == 1
    assert main(["etl", "cleanup", "--retention-days", "30"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "succeeded"


def test_a_run_in_progress_exits_3(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(%s)", (RUN_LOCK,))
        assert main(["etl", "run"]) == 3
    assert "already in progress" in capsys.readouterr().err


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["etl", "run", "--batch-size", "0"])
    assert exit_info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
    assert main(["etl", "cleanup", "--retention-days", "2"]) == 2
    assert "must exceed SLUICE_LATENESS_DAYS=3" in capsys.readouterr().err


def test_render_lists_the_declared_jobs_in_run_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["etl", "render"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["reset", *(job.name for job in JOBS)]
    described = {line.split()[0]: line.split(None, 1)[1] for line in lines}
    assert described["batch_events"] == "scratch"
    assert described["user_agents"] == "table, kept forever, Python: sluice.etl.enrich.enrich_user_agents"
    assert described["stg_events"] == "table, bulk-loaded by a rebuild, kept as long as the raw log (by received_at)"
    assert described["daily_metrics"] == (
        "table, kept SLUICE_DAILY_RETENTION_DAYS (by day), runs in `sluice etl daily`"
    )


def test_render_prints_the_sql_that_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["etl", "render", "sessions"]) == 0
    out = capsys.readouterr().out
    assert "-- sessions: one row per session" in out
    assert "insert into sessions" in out
    assert "analyze" not in out
    assert main(["etl", "render", "--rebuild", "sessions"]) == 0
    assert capsys.readouterr().out.endswith(
        '\n-- then, added by the run (etl/pipeline.py: after_job):\nanalyze "sessions";\n'
    )
    assert main(["etl", "render", "--rebuild", "batch_events"]) == 0
    assert "set_config('parallel_setup_cost'" in capsys.readouterr().out
    assert main(["etl", "render", "batch_events"]) == 0
    assert "set_config('parallel_setup_cost'" not in capsys.readouterr().out
    assert main(["etl", "render", "reset"]) == 0
    assert capsys.readouterr().out.splitlines()[2:] == [
        "truncate " + ", ".join(f'"{table}"' for table in TABLES) + ";",
        "",
        "update etl_state set watermark = '0'::xid8;",
    ]
    assert main(["etl", "render", "user_agents"]) == 0
    assert capsys.readouterr().out == "-- user_agents runs Python, no SQL: sluice.etl.enrich.enrich_user_agents\n"
    assert main(["etl", "render", "nope"]) == 2
    assert "no ETL job 'nope'; known jobs: reset, batch_user_agents, user_agents," in capsys.readouterr().err


def test_render_header_shows_the_values_bound(db: psycopg.Connection, capsys: pytest.CaptureFixture[str]) -> None:
    # The header once printed every configured value as `interval '...'` (the values cap too,
    # an integer): each line is now the literal psycopg sends, for the parameters the job uses.
    assert main(["etl", "render", "daily_custom_event_props"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1:3] == ["--   %(prop_values_cap)s = 100", ""]
    assert "interval '100'" not in out
    assert main(["etl", "render", "batch_events"]) == 0
    header = capsys.readouterr().out.split("\n\n", 1)[0].splitlines()[1:]
    assert header == [
        "--   %(watermark_from)s: the batch's lower txid bound (the previous run's watermark)",
        "--   %(watermark_to)s: the batch's upper txid bound (the snapshot xmin at the run's start)",
        "--   %(lateness)s = '3 days 0:00:00'::interval",
    ]
    # what the literal means in PostgreSQL is what a run binds
    bound = pipeline.parameters(Settings.from_env())
    for job in ("sessionized_events", "daily_custom_event_props", "batch_events"):
        assert main(["etl", "render", job]) == 0
        for line in capsys.readouterr().out.split("\n\n", 1)[0].splitlines()[1:]:
            if " = " in line:
                name, literal = line.removeprefix("--   %(").split(")s = ")
                shown = db.execute(f"select {literal} = %s", (bound[name],)).fetchone()
                assert shown == (True,), line
    assert main(["etl", "render", "sessions"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "--   (none)"
