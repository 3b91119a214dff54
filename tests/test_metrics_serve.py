"""`GET /metrics` of a real `sluice serve` with two workers: one scrape counts both.

Every worker writes its values to files in SLUICE_DATA_DIR/metrics (prometheus-client's
multiprocess mode, sluice/metrics.py); the scrape, answered by whichever worker takes it, adds them up.
"""

from __future__ import annotations

import http.client
import threading
import uuid
from pathlib import Path

import orjson
import psycopg
from e2e.harness import wait_until
from prometheus_client.multiprocess import MultiProcessCollector
from serving import start_serve
from test_metrics import Samples, parse, value

from sluice.settings import Settings

SCRAPER = {"Authorization": "Bearer scrape-1"}


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def scrape(port: int) -> Samples:
    status, body = get(port, "/metrics", SCRAPER)
    assert status == 200, body
    return parse(body.decode())


def accepted_by_worker(directory: Path) -> dict[int, float]:
    """Each worker's own count of accepted events, read from its file."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for metric in MultiProcessCollector.merge([str(path)]):  # type: ignore[no-untyped-call]
            for sample in metric.samples:
                if sample.name == "sluice_events_accepted_total":
                    counts[pid] = sample.value
    return counts


def test_one_scrape_counts_every_worker(settings: Settings, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {
        "DATABASE_URL": settings.database_url,
        "SLUICE_DATA_DIR": str(data_dir),
        "SLUICE_ADMIN_TOKEN": "admin-1",
        "SLUICE_METRICS_TOKEN": "scrape-1",
        "SLUICE_ETL_SCHEDULE": "3600",  # the election runs; the first ETL run finds nothing to do
    }
    serving = start_serve(env, tmp_path, arguments=["--workers", "2"])
    acknowledged = 0
    lock = threading.Lock()

    def post_some(n: int) -> None:
        nonlocal acknowledged
        for _ in range(n):  # each on a connection of its own: the kernel hands them to either worker
            body = orjson.dumps({"eventType": "pageview", "siteId": "two", "eventId": str(uuid.uuid4())})
            conn = http.client.HTTPConnection("127.0.0.1", serving.port, timeout=10)
            conn.request("POST", "/collect", body, {"Content-Type": "application/json"})
            status = conn.getresponse().status
            conn.close()
            if status == 202:
                with lock:
                    acknowledged += 1

    try:
        wait_until(lambda: get(serving.port, "/health")[0] == 200, "both workers to serve", timeout_s=60)
        directory = data_dir / "metrics"
        for _ in range(20):  # until both workers have taken some
            threads = [threading.Thread(target=post_some, args=(25,)) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wait_until(lambda: sum(accepted_by_worker(directory).values()) == acknowledged, "the flush", 5)
            if len([n for n in accepted_by_worker(directory).values() if n > 0]) == 2:
                break
        per_worker = accepted_by_worker(directory)
        assert len([n for n in per_worker.values() if n > 0]) == 2, per_worker
        assert acknowledged >= 200

        samples = scrape(serving.port)
        assert value(samples, "sluice_events_accepted_total") == acknowledged == sum(per_worker.values())
        requests = value(samples, "sluice_http_requests_total", route="/collect", status="202")
        assert requests == acknowledged
        with psycopg.connect(settings.database_url) as conn:
            row = conn.execute("select count(*) from sluice.events where site_id = 'two'").fetchone()
        assert row is not None
        assert row[0] == acknowledged

        # exactly one worker leads the schedule: one series per live worker, their sum 1
        def leaders() -> list[float]:
            return [v for (name, _), v in scrape(serving.port).items() if name == "sluice_scheduler_leader"]

        wait_until(lambda: len(leaders()) == 2 and sum(leaders()) == 1, "one leader of two workers", 20)
    finally:
        assert serving.stop() == 0
    # a new server starts counting afresh: the folder is emptied before its workers start
    serving = start_serve(env, tmp_path, arguments=["--workers", "2"])
    try:
        wait_until(lambda: get(serving.port, "/health")[0] == 200, "the workers to serve", timeout_s=60)
        assert value(scrape(serving.port), "sluice_events_accepted_total") == 0
    finally:
        assert serving.stop() == 0
