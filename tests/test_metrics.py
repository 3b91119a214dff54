"""`GET /metrics`: its tokens, and what the collector and the ETL count (in-process: this process's values).

The default registry lives as long as the test process, so each test compares the values before
and after what it does. `sluice serve` with several workers: tests/test_metrics_serve.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx2
import orjson
import psycopg
import pytest
from e2e.harness import wait_until
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from sluice.app import create_app
from sluice.collector import links
from sluice.etl import pipeline
from sluice.settings import Settings

ADMIN = {"Authorization": "Bearer admin-1"}
SCRAPER = {"Authorization": "Bearer scrape-1"}
VISITOR = ("203.0.113.7", 50000)


def event(**fields: Any) -> dict[str, Any]:
    """A valid pageview; keyword arguments override or add fields (None removes one)."""
    base: dict[str, Any] = {"eventType": "pageview", "siteId": "site-1", "url": "https://example.com/"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def post(client: TestClient, body: Any) -> httpx2.Response:
    return client.post("/collect", content=orjson.dumps(body), headers={"Content-Type": "application/json"})


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client: TestClient, headers: dict[str, str] = SCRAPER) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    tokens = replace(settings, admin_token="admin-1", metrics_token="scrape-1")
    with TestClient(create_app(tokens), client=VISITOR) as client:
        yield client


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic scrape-1"}])
def test_a_missing_or_wrong_token_is_unauthorized(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_metrics_token_and_the_admin_token_both_scrape(client: TestClient) -> None:
    assert client.get("/metrics", headers=SCRAPER).status_code == 200
    assert client.get("/metrics", headers=ADMIN).status_code == 200
    # the metrics token opens /metrics only, not the operators' endpoints
    assert client.get("/etl/status", headers=SCRAPER).status_code == 401


def test_without_any_token_metrics_are_forbidden(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        response = client.get("/metrics", headers=SCRAPER)
    assert (response.status_code, response.json()["error"]) == (403, "forbidden")


def test_requests_are_counted_by_route_template_and_status(client: TestClient) -> None:
    before = scrape(client)
    assert post(client, event()).status_code == 202
    assert post(client, event()).status_code == 202
    for site in ("shop", "other", "third"):  # three paths, one template
        assert client.get(f"/api/v1/sites/{site}/links", headers=ADMIN).status_code == 200
    assert client.get("/no/such/path").status_code == 404
    assert client.get("/health").status_code == 200
    after = scrape(client)

    def delta(route: str, status: str) -> float:
        name = "sluice_http_requests_total"
        return value(after, name, route=route, status=status) - value(before, name, route=route, status=status)

    assert delta("/collect", "202") == 2
    assert delta("/api/v1/sites/{site}/links", "200") == 3
    assert delta("(unmatched)", "404") == 1
    assert delta("/health", "200") == 1
    assert delta("/metrics", "200") == 1  # the first scrape; the second is counted once it has answered
    routes = {dict(labels)["route"] for name, labels in after if name == "sluice_http_requests_total"}
    assert not any("shop" in route or "/no/such" in route for route in routes)


def test_accepted_and_rejected_events_are_counted_by_reason(client: TestClient) -> None:
    before = scrape(client)
    batch = [event(), event(eventId="not-a-uuid"), event(siteId=""), event(eventType=None)]
    answer = post(client, batch)
    assert answer.status_code == 202
    assert len(answer.json()["rejected"]) == 3
    whole = client.post("/collect", content=b"{not json", headers={"Content-Type": "application/json"})
    assert whole.status_code == 400
    assert post(client, {"events": [event()] * 3}).status_code == 202
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("sluice_events_accepted_total") == 4
    assert delta("sluice_events_rejected_total", reason="invalid_value") == 2
    assert delta("sluice_events_rejected_total", reason="missing_field") == 1
    assert delta("sluice_events_rejected_total", reason="malformed_json") == 1
    # events per accepted request: one of 1, one of 3
    assert delta("sluice_request_events_count") == 2
    assert delta("sluice_request_events_sum") == 4
    assert delta("sluice_request_events_bucket", le="1.0") == 1
    assert delta("sluice_request_events_bucket", le="2.0") == 1
    assert delta("sluice_request_events_bucket", le="5.0") == 2
    # each accepted request went through a group-commit write, which was timed
    assert delta("sluice_write_seconds_count") >= 1
    assert delta("sluice_write_events_sum") == 4
    assert value(after, "sluice_spool_bytes") == 0
    assert value(after, "sluice_write_queue_events") == 0


def test_etl_metrics_after_a_run(client: TestClient, settings: Settings) -> None:
    before = scrape(client)
    assert post(client, [event(eventId=str(uuid.uuid4())) for _ in range(5)]).status_code == 202
    time.sleep(0.05)
    waiting = scrape(client)
    assert value(waiting, "sluice_metrics_database_up") == 1
    assert value(waiting, "sluice_etl_lag_seconds") > 0  # five events wait for the ETL
    assert value(waiting, "sluice_etl_lag_seconds") < 60

    # A run takes the events below the oldest open transaction's snapshot (README, "Design"): on a
    # shared server another session's transaction may hold the five back for a while.
    results = [pipeline.run(settings)]
    deadline = time.monotonic() + 60
    while sum(r.events_processed for r in results) < 5 and time.monotonic() < deadline:
        time.sleep(0.2)
        results.append(pipeline.run(settings))
    assert sum(r.events_processed for r in results) == 5
    after = scrape(client)
    assert value(after, "sluice_etl_lag_seconds") == 0
    assert abs(value(after, "sluice_etl_last_success_timestamp_seconds") - time.time()) < 60
    runs = "sluice_etl_runs_total"
    labels = {"kind": "incremental", "status": "succeeded"}
    assert value(after, runs, **labels) - value(before, runs, **labels) == len(results)
    for step in results[0].step_seconds:
        name = "sluice_etl_step_seconds_count"
        assert value(after, name, step=step) - value(before, name, step=step) == len(results), step
    assert "sessions" in results[0].step_seconds
    # in-process, the scheduler is off: this process is no leader
    assert any(name == "sluice_scheduler_leader" and v == 0 for (name, _), v in after.items())


def test_a_collect_post_that_fails_is_counted_as_its_500(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """POST /collect is dispatched before the router and counts its own answers; one that raised
    (a bug) is counted as the 500 that ServerErrorMiddleware answers."""
    from sluice.collector import routes

    def broken(body: bytes) -> Any:
        raise RuntimeError("a bug in parsing")

    monkeypatch.setattr(routes, "parse_body", broken)
    tokens = replace(settings, admin_token="admin-1", metrics_token="scrape-1")
    with TestClient(create_app(tokens), client=VISITOR, raise_server_exceptions=False) as client:
        before = value(scrape(client), "sluice_http_requests_total", route="/collect", status="500")
        answer = post(client, event())
        assert (answer.status_code, answer.json()["error"]) == (500, "internal_error")
        after = value(scrape(client), "sluice_http_requests_total", route="/collect", status="500")
    assert after - before == 1


def test_redirect_clicks_are_counted_once_written(settings: Settings, db: psycopg.Connection) -> None:
    assert links.add(db, "shop", "spring", "https://shop.example/spring") is not None
    tokens = replace(settings, admin_token="admin-1", metrics_token="scrape-1")
    with TestClient(create_app(tokens), client=VISITOR) as client:
        before = scrape(client)
        for _ in range(3):
            assert client.get("/l/spring", follow_redirects=False).status_code == 302

        def stored() -> float:
            return value(scrape(client), "sluice_clicks_stored_total") - value(before, "sluice_clicks_stored_total")

        wait_until(lambda: stored() == 3, "three clicks counted as stored")
        after = scrape(client)
    assert value(after, "sluice_clicks_dropped_total") == value(before, "sluice_clicks_dropped_total")
    assert value(after, "sluice_click_queue_clicks") == 0
    assert db.execute("select count(*) from events where event_type = 'click'").fetchone() == (3,)
