"""Read deadlines for connections that reach uvicorn without nginx in front (issue 12).

uvicorn closes a kept-alive connection idle between requests (`timeout_keep_alive`), but not one
that never sends a request, sends its headers a byte at a time, or stalls in the middle of a
`Content-Length` body: each holds a socket and a slot of the worker's in-flight limits for ever.
This protocol gives the headers of every request a deadline from the moment the connection (or
the request) starts, and a body an idle limit between the pieces it receives. A request whose
headers and body arrived is never cut here: the app may take its time to answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sluice.settings import Settings


class ReadDeadlines(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines; `sluice serve` names it by import path
    (`http=`), so each worker process reads SLUICE_HEADER_TIMEOUT and SLUICE_BODY_TIMEOUT itself."""

    limits: tuple[float, float] | None = None  # (headers, body idle) seconds, read once per process

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if ReadDeadlines.limits is None:
            settings = Settings.from_env()
            ReadDeadlines.limits = (float(settings.header_timeout_s), float(settings.body_timeout_s))
        self.headers_s, self.body_idle_s = ReadDeadlines.limits
        self._deadline: asyncio.TimerHandle | None = None
        self._since, self._in_body = 0.0, False  # when the current phase last moved; reading a body?

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
        super().connection_made(transport)
        self._since, self._in_body = self.loop.time(), False
        self._arm(self.headers_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
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
