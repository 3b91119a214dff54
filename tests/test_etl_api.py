"""The control endpoints: bearer token, parameters, and what each one does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest
from eventlog import event, insert
from starlette.testclient import TestClient

from sluice.app import create_app
from sluice.settings import Settings

AUTH = {"Authorization": "Bearer s3cret"}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(replace(settings, admin_token="s3cret"))) as client:
        yield client


def test_without_a_configured_token_the_endpoints_are_forbidden(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        response = client.get("/etl/status", headers=AUTH)
    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "message": "operator endpoints are disabled: set SLUICE_ADMIN_TOKEN to enable them",
    }


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}])
def test_a_missing_or_wrong_token_is_unauthorized(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/etl/run-sync", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("method", "url", "status", "error", "field"),
    [
        ("POST", "/etl/run-sync?batch_size=ten", 400, "bad_parameter", "batch_size"),
        ("POST", "/etl/run-sync?batch_size=0", 422, "invalid_value", "batch_size"),
        ("POST", "/etl/calculate-daily-metrics", 400, "missing_field", "target_date"),
        ("POST", "/etl/calculate-daily-metrics?target_date=2026-13-01", 400, "bad_parameter", "target_date"),
        ("POST", "/etl/calculate-daily-metrics?target_date=2999-01-01", 422, "invalid_value", "target_date"),
        ("POST", "/etl/cleanup?retention_days=-1", 422, "invalid_value", "retention_days"),
        # not above the lateness bound
        ("POST", "/etl/cleanup?retention_days=2", 422, "invalid_value", "retention_days"),
        ("POST", "/etl/cleanup?retention_days=x", 400, "bad_parameter", "retention_days"),
        ("POST", "/etl/process/no%20spaces", 422, "invalid_value", "event_type"),
        ("GET", "/etl/runs?limit=5000", 422, "invalid_value", "limit"),
        ("GET", "/etl/recent-sessions?limit=abc", 400, "bad_parameter", "limit"),
    ],
)
def test_bad_parameters_get_a_reason(
    client: TestClient, method: str, url: str, status: int, error: str, field: str
) -> None:
    response = client.request(method, url, headers=AUTH)
    assert response.status_code == status
    body = response.json()
    assert (body["error"], body["field"]) == (error, field)
    assert field in body["message"]


def test_run_sync_status_runs_and_recent_sessions(client: TestClient, db: psycopg.Connection) -> None:
    insert(db, [event(at_="2026-03-01 10:00"), event("click", at_="2026-03-01 10:01", target="https://x.org/")])
    status = client.get("/etl/status", headers=AUTH).json()
    assert status["unprocessed_events"] == {"click": 1, "pageview": 1}
    assert status["oldest_unprocessed_lag_s"] > 0
    assert status["scheduler"] == {"enabled": False, "leader": False, "jobs": []}

    run = client.post("/etl/run-sync?batch_size=100", headers=AUTH).json()
    assert (run["status"], run["events_processed"], run["rows_written"]["sessions"]) == ("succeeded", 2, 1)

    status = client.get("/etl/status", headers=AUTH).json()
    assert (status["unprocessed_total"], status["oldest_unprocessed_lag_s"]) == (0, None)
    assert status["last_run"]["run_id"] == run["run_id"]
    assert status["row_counts"]["sessions"] == 1
    assert status["row_counts"]["clicks"] == 1

    runs = client.get("/etl/runs?limit=1", headers=AUTH).json()
    assert [r["run_id"] for r in runs] == [run["run_id"]]
    sessions = client.get("/etl/recent-sessions?limit=5", headers=AUTH).json()
    assert [(s["visitor_key"], s["event_count"]) for s in sessions] == [("v1", 2)]


def test_run_starts_in_the_background_and_returns_its_id(client: TestClient, db: psycopg.Connection) -> None:
    insert(db, [event(at_="2026-03-01 10:00")])
    response = client.post("/etl/run", headers=AUTH)
    assert response.status_code == 202
    run_id = response.json()["run_id"]
    for _ in range(100):
        runs = client.get("/etl/runs", headers=AUTH).json()
        if runs[0]["run_id"] == run_id and runs[0]["status"] != "running":
            break
        time.sleep(0.05)
    assert (runs[0]["status"], runs[0]["events_processed"]) == ("succeeded", 1)


def test_a_run_in_progress_answers_409(client: TestClient, settings: Settings) -> None:
    from sluice.etl.locks import RUN_LOCK

    with psycopg.connect(settings.database_url, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(%s)", (RUN_LOCK,))
        for url in ("/etl/run", "/etl/run-sync", "/etl/rebuild"):
            response = client.post(url, headers=AUTH)
            assert response.status_code == 409
            assert response.json()["error"] == "already_running"


def test_process_daily_rebuild_and_cleanup(client: TestClient, db: psycopg.Connection) -> None:
    insert(db, [event(at_="2026-03-01 10:00"), event("click", at_="2026-03-01 10:01", target="https://x.org/")])
    processed = client.post("/etl/process/click", headers=AUTH).json()
    assert (processed["event_type"], processed["events_processed"], processed["run"]["events_processed"]) == (
        "click",
        1,
        2,
    )

    daily = client.post("/etl/calculate-daily-metrics?target_date=2026-03-01", headers=AUTH).json()
    assert daily["rows_written"]["daily_metrics"] == 1

    rebuild = client.post("/etl/rebuild", headers=AUTH)
    assert rebuild.status_code == 202
    for _ in range(100):
        last = client.get("/etl/runs?limit=1", headers=AUTH).json()[0]
        if last["status"] != "running":
            break
        time.sleep(0.05)
    assert (last["kind"], last["status"], last["events_processed"]) == ("rebuild", "succeeded", 2)

    cleanup = client.post("/etl/cleanup?retention_days=30", headers=AUTH).json()
    assert cleanup["retention_days"] == 30
    assert cleanup["status"] == "succeeded"
    assert "events_partitions" in cleanup["rows_written"]
