"""Read deadlines for connections that reach uvicorn without nginx in front (issue 12).

uvicorn closes a kept-alive connection idle between requests (`timeout_keep_alive`), but not one
that never sends a request, sends its headers a byte at a time, or stalls in the middle of a
`Content-Length` body: each holds a socket and a slot of the worker's in-flight limits for ever.
This protocol gives the headers of every request a deadline from the moment the connection (or
the request) starts, and a body an idle limit between the pieces it receives. A request whose
headers and body arrived is never cut here: the app may take its time to answer.

It also bounds the connections a worker holds (SLUICE_MAX_CONNECTIONS). Under a flood every open
connection costs memory (the protocol, its parser, and the body uvicorn buffers for a request the
app refuses unread), and at twice the capacity a worker grew past 150 MB with thousands of them
(bench/README.md). A connection past the limit is answered at once, before anything of it is
read, with the project's JSON `503 overloaded` and `Retry-After`, then closed: the worker sends
its FIN and discards what the client still sends until the client closes (at most a second), so
the client reads the answer instead of a reset.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sluice.metrics import count_rejected
from sluice.settings import Settings

REFUSED_LINGER_S = 1.0  # how long a refused connection may go on sending before it is closed
_REFUSAL_BODY = orjson.dumps(
    {
        "error": "overloaded",
        "message": "the collector holds as many connections as it can; nothing was read or kept, retry later",
        "status": "unavailable",
    }
)
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_REFUSAL_BODY), _REFUSAL_BODY)
)


class ReadDeadlines(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines; `sluice serve` names it by import path
    (`http=`), so each worker process reads SLUICE_HEADER_TIMEOUT and SLUICE_BODY_TIMEOUT itself."""

    # (headers, body idle) seconds, connections at most: read once per process
    limits: tuple[float, float, int] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if ReadDeadlines.limits is None:
            settings = Settings.from_env()
            headers_s, body_s = float(settings.header_timeout_s), float(settings.body_timeout_s)
            ReadDeadlines.limits = (headers_s, body_s, settings.max_connections)
        self.headers_s, self.body_idle_s, self.max_connections = ReadDeadlines.limits
        self._deadline: asyncio.TimerHandle | None = None
        self._since, self._in_body = 0.0, False  # when the current phase last moved; reading a body?
        self._refused = False

    # One timer per request at most (a timer costs ~2 µs to make and cancel, a tenth of a request's
    # CPU): the pieces of a body only note the time, and the timer, when it fires, looks at the
    # phase and the time of the last piece, and sleeps again for what is left.

    def _arm(self, seconds: float) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        allowed = self.body_idle_s if self._in_body else self.headers_s
        left = self._since + allowed - self.loop.time()
        if left > 0:
            self._arm(left)
        elif not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:  # this worker's open connections
            self._refuse(transport)
            return
        super().connection_made(transport)
        self._since, self._in_body = self.loop.time(), False
        self._arm(self.headers_s)

    def _refuse(self, transport: asyncio.Transport) -> None:
        """Past the limit: the 503 and our FIN at once, nothing parsed; closed when the client closes."""
        self._refused = True
        self.transport = transport
        count_rejected("overloaded")
        transport.write(REFUSAL)
        if transport.can_write_eof():
            transport.write_eof()
        self._deadline = self.loop.call_later(REFUSED_LINGER_S, transport.close)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read and dropped: unread data would make the close a reset, losing the answer
        super().data_received(data)

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._refused:
            return  # never joined the server's connections, nor parsed anything
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a later request on a kept-alive connection: its headers' own time
            self._since, self._in_body = self.loop.time(), False
            self._arm(self.headers_s)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.parser.should_upgrade() or not self._expects_body():
            self._disarm()
        else:
            self._since, self._in_body = self.loop.time(), True

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._since = self.loop.time()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def _expects_body(self) -> bool:
        for name, value in self.headers:
            if name == b"content-length":
                return value.strip() not in (b"", b"0")
            if name == b"transfer-encoding":
                return True
        return False
