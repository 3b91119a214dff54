"""Faults that repeat, logged once when they start, then as a summary at most every few seconds.

During an outage every request meets the same fault; a line per request buries the log (a
31-second outage wrote 18,260 lines). A `FaultLog` writes the first occurrence of each kind of fault
as it is, then at most one line per `interval_s` saying how many more occurred and the latest, and
one line when the fault is over.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

SUMMARY_INTERVAL_S = 5.0


@dataclass
class _Ongoing:
    logged_at: float
    since_logged: int = 0
    total: int = 1
    latest: str = ""


class FaultLog:
    def __init__(self, logger: logging.Logger, interval_s: float = SUMMARY_INTERVAL_S) -> None:
        self._log = logger
        self._interval_s = interval_s
        self._ongoing: dict[str, _Ongoing] = {}

    def fault(self, kind: str, message: str, level: int = logging.ERROR) -> None:
        """One occurrence of the fault `kind`, described by `message`."""
        now = time.monotonic()
        ongoing = self._ongoing.get(kind)
        if ongoing is None:
            self._ongoing[kind] = _Ongoing(now)
            self._log.log(level, "%s", message)
            return
        ongoing.since_logged += 1
        ongoing.total += 1
        ongoing.latest = message
        if now - ongoing.logged_at >= self._interval_s:
            self._log.log(
                level,
                "%s: %d more in the last %.0f s (%d since it began); the latest: %s",
                kind,
                ongoing.since_logged,
                now - ongoing.logged_at,
                ongoing.total,
                message,
            )
            ongoing.logged_at, ongoing.since_logged = now, 0

    def cleared(self, kind: str, message: str) -> None:
        """The fault `kind` is over: says so once, with how often it occurred, if it was ongoing."""
        ongoing = self._ongoing.pop(kind, None)
        if ongoing is not None:
            self._log.warning("%s (%s: %d in all)", message, kind, ongoing.total)

    def ongoing(self, kind: str) -> bool:
        return kind in self._ongoing
