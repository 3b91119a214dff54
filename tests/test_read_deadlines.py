"""Read deadlines without nginx (sluice/read_limits.py): a real `sluice serve`, raw sockets on loopback."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import orjson
import psycopg
from serving import start_serve

from sluice.settings import Settings

LIMIT_S = 1  # SLUICE_HEADER_TIMEOUT and SLUICE_BODY_TIMEOUT here (default 10)


def closed_after(sock: socket.socket, trickle: bytes = b"", every_s: float = 0.3) -> float:
    """Seconds until the server closes `sock`, sending `trickle` a byte every `every_s` meanwhile."""
    started = time.monotonic()
    sock.settimeout(every_s)
    sent = 0
    while time.monotonic() - started < 15:
        try:
            if not sock.recv(65536):  # EOF: the server closed it
                return time.monotonic() - started
        except TimeoutError:
            pass
        except ConnectionResetError:
            return time.monotonic() - started
        if sent < len(trickle):
            try:
                sock.send(trickle[sent : sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
            sent += 1
    raise AssertionError("the connection stayed open")


def test_idle_slow_and_stalled_connections_are_closed(settings: Settings, tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": settings.database_url,
        "SLUICE_SCHEMA": settings.schema,
        "SLUICE_DATA_DIR": str(tmp_path / "data"),
        "SLUICE_ETL_SCHEDULE": "off",
        "SLUICE_HEADER_TIMEOUT": str(LIMIT_S),
        "SLUICE_BODY_TIMEOUT": str(LIMIT_S),
    }
    serving = start_serve(env, tmp_path)
    try:
        address = ("127.0.0.1", serving.port)
        with socket.create_connection(address) as silent:
            nothing = closed_after(silent)
        with socket.create_connection(address) as slow:
            headers = closed_after(slow, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40)
        with socket.create_connection(address) as stalled:
            stalled.sendall(b"POST /collect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
            stalled.sendall(b"Content-Length: 100\r\n\r\n" + b'{"eventType": "pageview"')
            body = closed_after(stalled)
        print(f"closed after: nothing sent {nothing:.2f} s, headers a byte each 0.3 s {headers:.2f} s,", end=" ")
        print(f"body stalled {body:.2f} s")
        for seconds in (nothing, headers, body):
            assert LIMIT_S - 0.2 < seconds < LIMIT_S + 2

        # a request that arrives in time is answered, on the same kind of raw connection
        with socket.create_connection(address) as prompt:
            prompt.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            prompt.settimeout(10)
            answer = b""
            while chunk := prompt.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    finally:
        assert serving.stop() == 0


def _answer(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def test_connections_past_the_limit_get_a_json_503_at_once(settings: Settings, tmp_path: Path) -> None:
    """SLUICE_MAX_CONNECTIONS per worker: a connection past it is answered 503 overloaded with
    Retry-After before anything of it is read, and closed; nothing of its request is stored."""
    env = {
        "DATABASE_URL": settings.database_url,
        "SLUICE_SCHEMA": settings.schema,
        "SLUICE_DATA_DIR": str(tmp_path / "data"),
        "SLUICE_ETL_SCHEDULE": "off",
        "SLUICE_MAX_CONNECTIONS": "2",
    }
    serving = start_serve(env, tmp_path)
    event = b'{"siteId": "limit.example", "eventType": "pageview"}'
    post = b"POST /collect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
    post += b"Content-Length: %d\r\n\r\n%s" % (len(event), event)
    try:
        address = ("127.0.0.1", serving.port)
        with socket.create_connection(address) as first, socket.create_connection(address) as second:
            first.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # kept alive: both stay open
            first.settimeout(10)
            assert first.recv(65536).startswith(b"HTTP/1.1 200")
            with socket.create_connection(address) as third:
                third.sendall(post)  # sent at once, as a client would: still answered, not reset
                refused = _answer(third)
            head, _, body = refused.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503"), refused[:300]
            assert b"retry-after: 1" in head.lower()
            assert b"content-type: application/json" in head.lower()
            assert orjson.loads(body)["error"] == "overloaded"
            second.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert _answer(second).startswith(b"HTTP/1.1 200")  # the two within the limit are served
        time.sleep(0.2)  # both closed: a new connection is served again
        with socket.create_connection(address) as fourth:
            fourth.sendall(post)
            assert _answer(fourth).startswith(b"HTTP/1.1 202")
        with psycopg.connect(settings.database_url) as conn:
            row = conn.execute("select count(*) from sluice.events where site_id = 'limit.example'").fetchone()
        assert row == (1,)  # the accepted one only
    finally:
        assert serving.stop() == 0
