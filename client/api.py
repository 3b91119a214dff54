"""`Client` (for threads and sync code) and `AsyncClient` (for asyncio): record events, send in batches.

Recording never blocks and never raises: the event is put on a bounded queue and a background
thread sends it (`sluice.client.worker`). Both classes share that machinery; they differ only in
how `flush` and `close` wait: `Client` blocks, `AsyncClient` awaits (the waiting happens on a
thread, so the event loop goes on meanwhile). The sending stays on a thread for asyncio too: it
then needs no running loop, survives the loop that made it, and costs the loop nothing.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from sluice.client.transport import Transport
from sluice.client.worker import Retry, Stats, Worker

log = logging.getLogger("sluice.client")

_time_ns = time.time_ns


class _Recorder:
    def __init__(
        self,
        endpoint: str,
        site_id: str,
        token: str | None = None,
        *,
        max_queue: int = 10_000,
        flush_interval_s: float = 1.0,
        timeout_s: float = 5.0,
        close_timeout_s: float = 5.0,
        retry: Retry | None = None,
        max_batch_events: int = 500,
        max_batch_bytes: int = 1 << 20,
    ) -> None:
        """`endpoint`: Sluice's base URL (`http://sluice.internal:8000`); events go to its `/collect`.
        `token`: an ingest token (`SLUICE_INGEST_TOKENS`), never the admin token. `max_queue`:
        events held while Sluice is slow or away; beyond it the oldest go. `timeout_s`: one HTTP
        request's. `close_timeout_s`: what `close()` (and interpreter exit) waits at most."""
        if not isinstance(site_id, str) or not site_id:
            raise ValueError("site_id must be a non-empty string")
        self.site_id = site_id
        self._close_timeout_s = close_timeout_s
        self._worker = Worker(
            Transport(endpoint, token, timeout_s),
            max_queue=max_queue,
            flush_interval_s=flush_interval_s,
            max_batch_events=max_batch_events,
            max_batch_bytes=max_batch_bytes,
            retry=retry,
        )
        atexit.register(self._at_exit)

    def track(self, name: str, props: Mapping[str, Any] | None = None, **fields: Any) -> None:
        """A custom event, as the tracker's `sluice.track(name, props)`: `eventType` "custom", the
        name in `eventName`, a copy of `props`. `fields` are added as given (camelCase: `visitorId`,
        `userId`, `url`, ...; `siteId` overrides the client's)."""
        try:
            if not isinstance(name, str) or not name:
                self._worker.drop("an event name must be a non-empty string")
                return
            event: dict[str, Any] = {"eventType": "custom", "siteId": self.site_id, "eventName": name}
            if props is not None:
                event["props"] = dict(props)
            if fields:
                event.update(fields)
            self._worker.put(_time_ns(), event)
        except Exception as exc:  # never into the caller
            self._dropped(exc)

    def pageview(self, url: str, **fields: Any) -> None:
        """A `pageview` of `url` (`path`, `referrer`, `title`, ... as fields)."""
        try:
            event: dict[str, Any] = {"eventType": "pageview", "siteId": self.site_id, "url": url}
            if fields:
                event.update(fields)
            self._worker.put(_time_ns(), event)
        except Exception as exc:
            self._dropped(exc)

    def click(self, target: str, **fields: Any) -> None:
        """A `click` on a link to `target` (`text`, `shortCode`, `referrer`, ... as fields)."""
        try:
            event: dict[str, Any] = {"eventType": "click", "siteId": self.site_id, "target": target}
            if fields:
                event.update(fields)
            self._worker.put(_time_ns(), event)
        except Exception as exc:
            self._dropped(exc)

    def send(self, event: Mapping[str, Any]) -> None:
        """Any `/collect`-shaped event (a copy of it); `siteId` defaults to the client's."""
        try:
            copied = dict(event)
            if copied.get("siteId") is None:
                copied["siteId"] = self.site_id
            self._worker.put(_time_ns(), copied)
        except Exception as exc:
            self._dropped(exc)

    def _record(self, at_ns: int, event: dict[str, Any]) -> None:
        """An event built here in the package (the middleware's), stamped with `at_ns`, not now."""
        self._worker.put(at_ns, event)

    @property
    def stats(self) -> Stats:
        """sent, retried, dropped and queued events, counted since the client was made."""
        return self._worker.stats

    def _dropped(self, exc: Exception) -> None:
        try:
            self._worker.drop(f"{type(exc).__name__}: {exc}")
        except Exception:  # the last guard: nothing reaches the caller
            log.debug("sluice client: could not count a dropped event", exc_info=True)

    def _close(self, timeout_s: float | None) -> bool:
        atexit.unregister(self._at_exit)
        try:
            return self._worker.close(self._close_timeout_s if timeout_s is None else timeout_s)
        except Exception:
            log.exception("sluice client: close failed")
            return False

    def _flush(self, timeout_s: float | None) -> bool:
        try:
            return self._worker.flush(self._close_timeout_s if timeout_s is None else timeout_s)
        except Exception:
            log.exception("sluice client: flush failed")
            return False

    def _at_exit(self) -> None:
        self._close(None)


class Client(_Recorder):
    """Thread-safe: one client for the whole process is the intended use."""

    def flush(self, timeout_s: float | None = None) -> bool:
        """Sends what was recorded before the call; True when all of it is sent (or dropped) in time."""
        return self._flush(timeout_s)

    def close(self, timeout_s: float | None = None) -> bool:
        """Sends what is queued within the deadline (default `close_timeout_s`) and stops; events
        recorded afterwards are dropped. Runs by itself at interpreter exit."""
        return self._close(timeout_s)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


class AsyncClient(_Recorder):
    """For asyncio code: recording is the same non-blocking call; `flush` and `close` are awaited."""

    async def flush(self, timeout_s: float | None = None) -> bool:
        return await asyncio.to_thread(self._flush, timeout_s)

    async def close(self, timeout_s: float | None = None) -> bool:
        return await asyncio.to_thread(self._close, timeout_s)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()
