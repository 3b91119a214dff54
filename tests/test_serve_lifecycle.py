"""`sluice serve` as a real process: it starts only with its schema in place, and stops cleanly.

A stop (SIGTERM from systemd, Docker, Kubernetes or `kill`; SIGINT from Ctrl-C) must answer the
requests already received, store every event it acknowledged, stop the embedded PostgreSQL it used
and exit 0.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from databases import empty_database
from e2e.harness import Client, wait_until
from serving import Serving, embedded_data_dir, start_serve

from sluice.embedded_pg import EmbeddedPostgres, database_for, find_bindir
from sluice.settings import Settings

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
POSTERS = 4


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    """One embedded cluster for the module (initdb once); each test's serve starts and stops it."""
    with embedded_data_dir("sluice-serve-") as path:
        yield path


def embedded_server(data_dir: Path) -> EmbeddedPostgres:
    bindir = find_bindir()
    assert bindir is not None
    return EmbeddedPostgres(data_dir / "postgres", bindir)


def stored_ids(data_dir: Path, ids: set[str]) -> set[str]:
    with (
        database_for(replace(Settings(), data_dir=data_dir)) as settings,
        psycopg.connect(settings.database_url) as conn,
    ):
        rows = conn.execute("select event_id::text from sluice.events where event_id = any(%s::uuid[])", (list(ids),))
        return {event_id for (event_id,) in rows}


def event(event_id: str) -> bytes:
    doc = {"eventType": "pageview", "siteId": "stop-test", "eventId": event_id, "url": "https://example.com/"}
    return json.dumps(doc).encode()


class Posters:
    """Threads posting one event per request over kept-alive connections until the server goes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acknowledged: set[str] = set()
        self.statuses: set[int] = set()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._post, daemon=True) for _ in range(POSTERS)]
        for thread in self._threads:
            thread.start()

    def _post(self) -> None:
        with Client(self.url) as client:
            while True:
                event_id = str(uuid.uuid4())
                headers = {"Content-Type": "application/json", "User-Agent": BROWSER}
                try:
                    reply = client.request("POST", "/collect", event(event_id), headers)
                except (OSError, http.client.HTTPException):
                    return  # the server closed the connection or no longer listens: nothing acknowledged
                with self._lock:
                    self.statuses.add(reply.status)
                    if reply.status == 202 and reply.json()["event_ids"] == [event_id]:
                        self.acknowledged.add(event_id)

    def count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=30)
            assert not thread.is_alive()


class HeldRequest:
    """A POST whose headers the server has taken in (it answered `100 Continue`) and whose body
    is sent only when the test says: a request received before the stop, answered after it."""

    def __init__(self, port: int) -> None:
        self.event_id = str(uuid.uuid4())
        self.body = event(self.event_id)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        head = (
            "POST /collect HTTP/1.1\r\nHost: sluice\r\nContent-Type: application/json\r\n"
            f"User-Agent: {BROWSER}\r\nContent-Length: {len(self.body)}\r\nExpect: 100-continue\r\n\r\n"
        )
        self.sock.sendall(head.encode())
        assert self.sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")

    def finish(self) -> tuple[int, dict[str, object]]:
        self.sock.sendall(self.body)
        response = http.client.HTTPResponse(self.sock)
        response.begin()
        answer = (response.status, json.loads(response.read()))
        self.sock.close()
        return answer


def serve_embedded(data_dir: Path, directory: Path, workers: int = 1) -> Serving:
    env = {"DATABASE_URL": None, "SLUICE_DATA_DIR": str(data_dir), "SLUICE_ADMIN_TOKEN": None}
    return start_serve(env, directory, arguments=["--workers", str(workers)])


@pytest.mark.parametrize(
    ("sig", "workers"),
    [(signal.SIGTERM, 1), (signal.SIGINT, 1), (signal.SIGTERM, 2)],
    ids=["SIGTERM", "SIGINT", "SIGTERM-2-workers"],
)
def test_a_stop_signal_stores_every_acknowledged_event_and_stops_postgres(
    sig: signal.Signals, workers: int, data_dir: Path, tmp_path: Path
) -> None:
    served = serve_embedded(data_dir, tmp_path, workers)
    try:
        held = HeldRequest(served.port)
        posters = Posters(served.url)
        wait_until(lambda: posters.count() >= 50, "50 acknowledged events", timeout_s=60)
        served.process.send_signal(sig)
        # Every worker has begun its shutdown (it closes its listening socket first) before the held
        # request's body goes: the request was received before the stop and is answered after it.
        wait_until(lambda: served.output().count("Shutting down") == workers, "the shutdown", timeout_s=30)
        status, body = held.finish()
        assert served.process.wait(timeout=60) == 0
        posters.join()
    finally:
        served.stop(signal.SIGKILL)

    assert (status, body["event_ids"]) == (202, [held.event_id])
    assert posters.statuses == {202}
    acknowledged = {*posters.acknowledged, held.event_id}
    assert not embedded_server(data_dir).is_running()
    assert stored_ids(data_dir, acknowledged) == acknowledged
    log = served.output()
    assert f"embedded PostgreSQL in {data_dir / 'postgres'}: stopped" in log
    assert "Traceback" not in log


def test_a_server_left_behind_by_a_killed_serve_is_adopted_and_stopped(data_dir: Path, tmp_path: Path) -> None:
    for name in ("killed", "next"):
        (tmp_path / name).mkdir()
    killed = serve_embedded(data_dir, tmp_path / "killed")
    assert killed.stop(signal.SIGKILL) == -signal.SIGKILL
    assert embedded_server(data_dir).is_running()  # orphaned: nothing could stop it

    served = serve_embedded(data_dir, tmp_path / "next")
    assert served.stop(signal.SIGTERM) == 0
    assert f"embedded PostgreSQL in {data_dir / 'postgres'}: adopted" in served.output()
    assert not embedded_server(data_dir).is_running()


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "SLUICE_ADMIN_TOKEN"}


def serve_until_exit(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sluice.cli", "serve", "--port", "1"]  # never reached: it must not bind
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_serve_will_not_start_on_a_migration_that_fails(postgresql: psycopg.Connection, tmp_path: Path) -> None:
    with empty_database(postgresql) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("create schema sluice; create table sluice.events (something int)")
        env = {**_environment(), "DATABASE_URL": url, "SLUICE_DATA_DIR": str(tmp_path)}
        result = serve_until_exit(env, tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        'sluice: migration 0001_event_log failed, nothing of it was applied: relation "events" already exists\n'
    )


def test_serve_will_not_start_without_its_database(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:1/nothing?connect_timeout=2"
    result = serve_until_exit({**_environment(), "DATABASE_URL": url, "SLUICE_DATA_DIR": str(tmp_path)}, tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("sluice: cannot use PostgreSQL: connection failed: ")
    assert "Traceback" not in result.stderr
