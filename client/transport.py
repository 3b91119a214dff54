"""One batch, one HTTP request: `POST {endpoint}/collect`, gzipped, over a kept-alive connection.

The standard library's http.client, not an HTTP client package: the client runs inside other
people's services, where every dependency it adds is one they must accept; one worker thread
sending one request at a time needs nothing more than a persistent HTTP/1.1 connection, and
http.client has that. (httpx, in the development set, would bring its own dependency tree; urllib
opens a new connection per request.)
"""

from __future__ import annotations

import email.utils
import gzip
import http.client
import json
import socket
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from sluice.client.version import USER_AGENT


@dataclass(frozen=True)
class Answer:
    """What the collector said. `status` 0: no answer at all (the connection failed)."""

    status: int
    body: Any = None  # the decoded JSON body, when there is one
    retry_after_s: float | None = None
    reason: str = ""  # for the log: the error code and message, or the connection error
    rejected: list[dict[str, Any]] = field(default_factory=list)  # a 202's per-event rejections

    @property
    def retryable(self) -> bool:
        return self.status == 0 or self.status == 429 or self.status >= 500


class Transport:
    """Not thread-safe: the one worker thread owns it."""

    def __init__(self, endpoint: str, token: str | None, timeout_s: float) -> None:
        url = urllib.parse.urlsplit(endpoint.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"endpoint {endpoint!r} must be an http:// or https:// base URL")
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port
        self._path = (url.path or "") + "/collect"
        self._timeout_s = timeout_s
        self._headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": USER_AGENT,
        }
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes) -> Answer:
        data = gzip.compress(body, compresslevel=5)
        for attempt in (1, 2):
            conn = self._connection()
            try:
                if conn.sock is None:
                    conn.connect()
                    assert conn.sock is not None
                    # http.client writes the headers and the body in two sends: without this, Nagle's
                    # algorithm holds the body until the server's delayed ACK (40 ms per batch)
                    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.request("POST", self._path, body=data, headers=self._headers)
                response = conn.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                # A kept-alive connection the server closed while idle fails at once: one fresh try.
                if attempt == 1 and isinstance(exc, http.client.RemoteDisconnected | BrokenPipeError):
                    continue
                return Answer(0, reason=f"{type(exc).__name__}: {exc}")
            if response.getheader("connection", "").lower() == "close":
                self.close()
            return _answer(response.status, raw, response.getheader("retry-after"))
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def forget_connection(self) -> None:
        """In a forked child: the socket is the parent's, so it is left to the parent, unclosed."""
        self._conn = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = kind(self._host, self._port, timeout=self._timeout_s)
        return self._conn


def _answer(status: int, raw: bytes, retry_after: str | None) -> Answer:
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    reason = f"HTTP {status}"
    rejected: list[dict[str, Any]] = []
    if isinstance(body, dict):
        if "error" in body:
            reason = f"HTTP {status} {body.get('error')}: {body.get('message')}"
        if isinstance(body.get("rejected"), list):
            rejected = [r for r in body["rejected"] if isinstance(r, dict)]
    return Answer(status, body, parse_retry_after(retry_after), reason, rejected)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait: `Retry-After` is a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
