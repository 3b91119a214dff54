"""What the control endpoints and /health answer while a private PostgreSQL is down (never the shared server)."""

from __future__ import annotations

import http.client
import time
from pathlib import Path

import orjson
from e2e.harness import wait_until
from fault_rig import private_postgres
from serving import start_serve

ADMIN = {"Authorization": "Bearer admin-1"}


def request(port: int, method: str, path: str) -> tuple[int, dict[str, object], float]:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, headers=ADMIN)
        response = conn.getresponse()
        body = orjson.loads(response.read())
        return response.status, body, time.monotonic() - started
    finally:
        conn.close()


def test_control_endpoints_answer_json_503_and_health_answers_fast_during_an_outage(tmp_path: Path) -> None:
    with private_postgres() as postgres:
        env = {
            "DATABASE_URL": postgres.url,
            "SLUICE_DATA_DIR": str(tmp_path / "data"),
            "SLUICE_ADMIN_TOKEN": "admin-1",
            "SLUICE_ETL_SCHEDULE": "off",
            "SLUICE_DB_TIMEOUT": "3",
        }
        serving = start_serve(env, tmp_path)
        try:
            wait_until(lambda: request(serving.port, "GET", "/health")[0] == 200, "the collector", timeout_s=60)
            assert request(serving.port, "GET", "/etl/status")[0] == 200

            postgres.stop()
            for method, path in [("GET", "/etl/status"), ("POST", "/etl/run")]:
                status, body, _ = request(serving.port, method, path)
                assert status == 503, (path, body)
                assert body["error"] == "database_unavailable", (path, body)

            probes = [request(serving.port, "GET", "/health") for _ in range(5)]
            slowest = max(seconds for _, _, seconds in probes)
            print(f"/health during the outage: slowest of 5 probes {slowest * 1000:.0f} ms")
            assert slowest < 1.0
            # the spool takes the writes meanwhile: degraded, not down
            assert {(status, body["status"]) for status, body, _ in probes} == {(200, "degraded")}

            postgres.start()
            started = time.monotonic()
            wait_until(lambda: request(serving.port, "GET", "/health")[1]["status"] == "ok", "recovery", timeout_s=30)
            print(f"/health ok {time.monotonic() - started:.1f} s after PostgreSQL started again")
            assert request(serving.port, "GET", "/etl/status")[0] == 200
        finally:
            assert serving.stop() == 0
