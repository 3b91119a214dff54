"""The fault tests' rig: a PostgreSQL of their own to stop, a collector process to kill, and load.

The PostgreSQL is a private cluster (initdb into a temporary folder, as sluice/embedded_pg.py makes
its own, listening on a Unix socket in that folder, and on TCP only where a test asks): the tests
stop and start it at will and never touch the machine's shared server. The collector runs as
production runs it, in a uvicorn process of its own, so that it can be killed with SIGKILL.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg
from databases import private_cluster

from sluice.embedded_pg import EmbeddedPostgres
from sluice.migrations import apply

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def private_postgres(listen: Sequence[str] = ()) -> Iterator[EmbeddedPostgres]:
    """A migrated PostgreSQL cluster of the test's own (databases.private_cluster), stopped and
    removed afterwards; on TCP at `listen` too, if given."""
    with private_cluster(listen, prefix="sluice-fault-") as server:
        with psycopg.connect(server.url, autocommit=True) as conn:
            apply(conn, "sluice")
        yield server


def stored_ids(server: EmbeddedPostgres) -> set[str]:
    with psycopg.connect(server.url) as conn:
        return {str(event_id) for (event_id,) in conn.execute("select event_id from sluice.events")}


class Collector:
    """`uvicorn sluice.app:create_app` on `port`, one worker, as a process that can be killed."""

    def __init__(self, url: str, data_dir: Path, port: int, log: Path) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "SLUICE_DATA_DIR": str(data_dir),
            "SLUICE_ETL_SCHEDULE": "off",
            "SLUICE_DB_TIMEOUT": "2",
        }
        command = [sys.executable, "-m", "uvicorn", "sluice.app:create_app", "--factory", "--port", str(port)]
        command += ["--no-access-log", "--log-level", "info"]
        with log.open("ab") as out:
            self.process = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        self.port = port
        deadline = time.monotonic() + 60
        while self.health() is None:
            assert self.process.poll() is None, f"the collector exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the collector did not start"
            time.sleep(0.1)

    def health(self) -> dict[str, Any] | None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            conn.request("GET", "/health")
            body: dict[str, Any] = orjson.loads(conn.getresponse().read())
            conn.close()
        except (OSError, http.client.HTTPException, orjson.JSONDecodeError):
            return None
        return body

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> int:
        """SIGTERM, and the exit code: uvicorn, once shut down, raises the signal again (-15)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


@dataclass
class Tally:
    """What the load's clients sent and what they were told."""

    acknowledged: set[str] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)  # HTTP status (0: no answer) -> requests
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self, status: int, ids: list[str]) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                self.acknowledged.update(ids)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def share_2xx(self) -> float:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300) / max(1, self.requests)


@contextmanager
def load(
    port: int, clients: int = 16, events_per_request: int = 5, *, requests_per_s: float | None = None
) -> Iterator[Tally]:
    """`clients` threads posting batches with their own event ids, one request after another, until
    the block ends. With `requests_per_s`, each client sends at most that many a second, from an
    address of its own (127.0.0.N): as many visitors would, under nginx's per-address rate limit."""
    tally = Tally()
    stop = threading.Event()

    def client(number: int) -> None:
        conn: http.client.HTTPConnection | None = None
        source = None if requests_per_s is None else (f"127.0.0.{10 + number}", 0)
        next_at = time.monotonic()
        while not stop.is_set():
            if requests_per_s is not None:
                next_at += 1 / requests_per_s
                time.sleep(max(0.0, next_at - time.monotonic()))
            ids = [str(uuid.uuid4()) for _ in range(events_per_request)]
            events = [
                {"eventType": "pageview", "siteId": "faults", "eventId": i, "url": "https://x.test/"} for i in ids
            ]
            try:
                conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=source)
                conn.request("POST", "/collect", orjson.dumps(events), {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                tally.answered(response.status, ids)
            except (OSError, http.client.HTTPException):
                tally.answered(0, ids)
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)  # the collector is gone: as a tracker would, try again shortly
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(number,), daemon=True) for number in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield tally
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
