"""Plumbing for the end-to-end tests: waiting, ports, processes, a little HTTP, a static site.

The rig itself, one piece per module: `netns` (the browser's network), `sluice_server`,
`nginx_conf` (the shipped nginx.conf, rendered and run), `chromium` (ChromeDriver in the namespace).
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 15.0, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"gave up after {timeout_s}s waiting for {what}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """HTTP/1.1 over one kept-alive connection (the standard library's, so the suite needs no client)."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        url = urllib.parse.urlsplit(base_url)
        self.conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout_s)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Reply:
        self.conn.request(method, path, body=body, headers=dict(headers or {}))
        response = self.conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)

    def post_json(self, path: str, doc: Any) -> Reply:
        return self.request("POST", path, json.dumps(doc).encode(), {"Content-Type": "application/json"})

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fetch(method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None) -> Reply:
    parts = urllib.parse.urlsplit(url)
    with Client(f"{parts.scheme}://{parts.netloc}") as client:
        return client.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body, headers)


def run_etl_until_caught_up(base_url: str, admin_token: str) -> None:
    """POST /etl/run-sync until no event is left unprocessed. One run is not always enough: a run
    takes the events below its snapshot's xmin (README, "unprocessed" events), which any open
    transaction on the server holds back, another suite's on the same server included."""
    auth = {"Authorization": f"Bearer {admin_token}"}

    def caught_up() -> bool:
        run = fetch("POST", f"{base_url}/etl/run-sync", headers=auth)
        assert run.status == 200, run.body
        status = fetch("GET", f"{base_url}/etl/status", headers=auth)
        assert status.status == 200, status.body
        return bool(status.json()["unprocessed_total"] == 0)

    wait_until(caught_up, "the ETL to process every event", timeout_s=60, interval_s=0.5)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def static_site(host: str, pages: Mapping[str, str]) -> Iterator[str]:
    """Serves `pages` (path -> HTML) on `host` at a free port; every other path is the "/" page,
    as a single-page app's server does. Yields the port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            body = pages.get(path, pages["/"]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield str(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
