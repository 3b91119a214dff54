"""The spool's gauges while a private PostgreSQL is stopped and started again (never the shared server)."""

from __future__ import annotations

import http.client
import uuid
from pathlib import Path

import orjson
from e2e.harness import wait_until
from fault_rig import private_postgres
from serving import start_serve
from test_metrics import Samples, parse, value

SCRAPER = {"Authorization": "Bearer scrape-1"}


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        # the token goes to GET only: a bearer token on /collect would make it a server source's request
        headers = {"Content-Type": "application/json"} if body is not None else SCRAPER
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def scrape(port: int) -> Samples:
    status, body = request(port, "GET", "/metrics")
    assert status == 200, body
    return parse(body.decode())


def post_batch(port: int, events: int) -> int:
    batch = [{"eventType": "pageview", "siteId": "s", "eventId": str(uuid.uuid4())} for _ in range(events)]
    return request(port, "POST", "/collect", orjson.dumps(batch))[0]


def test_the_spool_gauges_rise_while_postgresql_is_down_and_fall_after(tmp_path: Path) -> None:
    with private_postgres() as postgres:
        env = {
            "DATABASE_URL": postgres.url,
            "SLUICE_DATA_DIR": str(tmp_path / "data"),
            "SLUICE_ADMIN_TOKEN": "admin-1",
            "SLUICE_METRICS_TOKEN": "scrape-1",
            "SLUICE_ETL_SCHEDULE": "off",
            "SLUICE_DB_TIMEOUT": "1",
        }
        serving = start_serve(env, tmp_path, arguments=["--workers", "2"])
        try:
            wait_until(lambda: request(serving.port, "GET", "/health")[0] == 200, "the workers", timeout_s=60)
            assert post_batch(serving.port, 3) == 202
            up = scrape(serving.port)
            assert (value(up, "sluice_spool_events"), value(up, "sluice_spool_bytes")) == (0, 0)
            assert value(up, "sluice_metrics_database_up") == 1

            postgres.stop()
            statuses = [post_batch(serving.port, 3) for _ in range(10)]
            assert statuses == [202] * 10  # acknowledged from the spool
            down = scrape(serving.port)
            assert value(down, "sluice_spool_events") == 30
            assert value(down, "sluice_spool_bytes") > 0
            assert value(down, "sluice_events_spooled_total") == 30
            assert value(down, "sluice_metrics_database_up") == 0
            assert ("sluice_etl_lag_seconds", ()) not in down  # not read: no value rather than a wrong one

            postgres.start()

            def drained() -> bool:
                now = scrape(serving.port)
                return (value(now, "sluice_spool_events"), value(now, "sluice_spool_bytes")) == (0, 0)

            wait_until(drained, "the spool to be replayed", timeout_s=30, interval_s=0.2)
            wait_until(lambda: value(scrape(serving.port), "sluice_metrics_database_up") == 1, "the scrape's query")
            after = scrape(serving.port)
            assert value(after, "sluice_events_accepted_total") == 33
        finally:
            assert serving.stop() == 0
