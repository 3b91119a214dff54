"""The bounded queue and the one background thread that empties it, batch by batch.

A caller's only work is `put`: a size estimate and one append under a lock (no serialisation, no
id, no clock formatting: the thread does those). The thread sends a batch when 500 events are
queued, when 1 MiB of them is (by the estimate), when the oldest queued event has waited 1 s, or
when `flush`/`close` ask; it serialises the batch there and cuts it at 1 MiB (the rest goes first
into the next batch, at once). The caller's side knows no event's JSON size, only an estimate
(`estimated_bytes`: its strings' and keys' lengths, two levels deep, never over the JSON's): a
queue of big events wakes the thread before the timer; events whose bulk is deeper wait for the
timer or the count. A failed send (no connection, 5xx, 429) is retried with exponential backoff
and jitter, never sooner than `Retry-After`; a 4xx is
logged once per error code and the batch dropped. Each event's `eventId` is made before its first
send and kept through retries, so the collector stores it once.

When the queue is full the OLDEST event goes: recent data is worth more. Everything given up is
counted in `Stats.dropped`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any

from sluice.client.ids import uuid7
from sluice.client.transport import Answer, Transport

log = logging.getLogger("sluice.client")

MAX_BATCH_EVENTS = 500  # the collector's limit per request
MAX_BATCH_BYTES = 1 << 20  # the collector's limit per request, after decompression
_ENVELOPE = len(b'{"sentAt":"2026-01-01T00:00:00.000Z","events":[]}')

Item = tuple[int, dict[str, Any], int]  # (time.time_ns() when recorded, the event, estimated_bytes)


@dataclass(frozen=True)
class Stats:
    """Counts of events since the client was made (a snapshot)."""

    sent: int  # acknowledged by the collector (stored, or already stored: a retry)
    retried: int  # sent again after a failed attempt (each resend counts each event again)
    dropped: int  # given up: pushed out of a full queue, refused by the collector, out of retries, not JSON
    queued: int  # recorded and neither sent nor dropped yet (waiting or in flight)


@dataclass(frozen=True)
class Retry:
    """Waits between attempts: `base_s` doubling per attempt up to `max_s`, the upper half jittered."""

    base_s: float = 0.5
    max_s: float = 30.0
    attempts: int = 10  # retries of one batch before it is dropped

    def delay(self, attempt: int, retry_after_s: float | None) -> float:
        ceiling = min(self.max_s, self.base_s * 2.0 ** (attempt - 1))
        wait = ceiling / 2 + random.uniform(0, ceiling / 2)
        return max(wait, retry_after_s) if retry_after_s is not None else wait


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
# the last whole second formatted, with its text: most events of a batch share it (one tuple,
# replaced whole, so that the sending threads of several clients never see half of an update)
_last_second: list[tuple[int, str]] = [(-1, "")]


def estimated_bytes(event: dict[str, Any]) -> int:
    """At most the event's JSON size, and close to it, cheap enough for the caller's side: keys and
    string values, and those of the objects and arrays it holds (props), one level down; every
    other value counts as one byte (and a non-ASCII character as one)."""
    size = 1 + len(event)  # the braces and the commas
    for key, value in event.items():
        size += len(key) + 3  # "key":
        kind = value.__class__
        if kind is str:
            size += len(value) + 2
        elif kind is dict:
            size += 1 + len(value) if value else 2
            for inner_key, inner in value.items():
                size += len(inner_key) + 3 + (len(inner) + 2 if inner.__class__ is str else 1)
        elif kind is list:
            size += 1 + len(value) if value else 2
            for inner in value:
                size += len(inner) + 2 if inner.__class__ is str else 1
        else:
            size += 1
    return size


def _timestamp(ns: int) -> str:
    """ISO 8601 in UTC with milliseconds, as the tracker sends: '2026-05-04T12:00:00.120Z'."""
    second, ms = divmod(ns // 1_000_000, 1000)
    cached = _last_second[0]
    if cached[0] != second:
        cached = _last_second[0] = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{ms:03d}Z"


class Worker:
    def __init__(
        self,
        transport: Transport,
        *,
        max_queue: int,
        flush_interval_s: float = 1.0,
        max_batch_events: int = MAX_BATCH_EVENTS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        retry: Retry | None = None,
    ) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, not {max_queue}")
        self._transport = transport
        self._max_queue = max_queue
        self._interval_s = flush_interval_s
        self._max_events = max(1, min(max_batch_events, MAX_BATCH_EVENTS))
        self._max_bytes = max_batch_bytes
        self._retry = retry or Retry()
        self._logged: set[str] = set()
        self._reset()
        _workers.add(self)

    def _reset(self) -> None:
        """The state a new worker starts with (and a forked child's copy, whose thread did not survive)."""
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the thread waits here for events
        self._drained = threading.Condition(self._lock)  # flush() and close() wait here
        self._queue: deque[Item] = deque(maxlen=self._max_queue)
        self._carry: list[bytes] = []  # serialised events cut off the previous batch by the size limit
        self._first_at = 0.0  # monotonic time the oldest queued event was put
        self._queued_bytes = 0  # the queue's events' estimated_bytes
        self._recorded = self._done = self._sent = self._retried = self._dropped = 0
        self._flush_upto = 0  # `_done` must reach this before the thread waits again
        self._deadline: float | None = None  # set by close(): the thread gives up at this monotonic time
        self._closing = threading.Event()
        self._cut_short = False  # close()'s deadline came before everything was sent
        self._thread: threading.Thread | None = None

    # -- the callers' side --------------------------------------------------------------------

    def put(self, ns: int, event: dict[str, Any]) -> None:
        nbytes = estimated_bytes(event)  # outside the lock
        with self._lock:
            if self._deadline is not None:  # closed: nobody will send it
                self._recorded += 1
                self._done += 1
                self._dropped += 1
                return
            queue = self._queue
            if len(queue) == self._max_queue:  # the deque's maxlen pushes the oldest out on append
                self._done += 1
                self._dropped += 1
                self._queued_bytes -= queue[0][2]
            queue.append((ns, event, nbytes))
            self._recorded += 1
            before = self._queued_bytes
            self._queued_bytes = queued = before + nbytes
            size = len(queue)
            if size == 1:
                self._first_at = time.monotonic()
                if self._thread is None:
                    self._start()
                self._work.notify()
            elif size == self._max_events or (queued >= self._max_bytes > before):
                self._work.notify()

    def drop(self, why: str) -> None:
        """An event the caller's side could not even record (e.g. a bad name): counted, logged once."""
        with self._lock:
            self._recorded += 1
            self._done += 1
            self._dropped += 1
        self._log_once(why, f"sluice client: dropped an event: {why}")

    @property
    def stats(self) -> Stats:
        with self._lock:
            return Stats(self._sent, self._retried, self._dropped, self._recorded - self._done)

    def flush(self, timeout_s: float) -> bool:
        """Sends what was recorded before the call; True when all of it is sent or dropped in time."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            target = self._recorded
            self._flush_upto = max(self._flush_upto, target)
            self._work.notify()
            while self._done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    break
                self._drained.wait(remaining)
            return self._done >= target

    def close(self, timeout_s: float) -> bool:
        """Sends what is queued within `timeout_s`, drops what is left then; later events are dropped.
        True when nothing had to be dropped for want of time."""
        with self._lock:
            if self._deadline is None:
                self._deadline = time.monotonic() + timeout_s
            deadline = self._deadline
            thread = self._thread
            self._work.notify()
        self._closing.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()) + 0.05)
        with self._lock:
            if self._thread is None:  # never started: nothing was queued
                self._transport.close()
            return self._done >= self._recorded and not self._cut_short

    # -- the thread's side ----------------------------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sluice-client", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                items = self._next_items()
                if items is None:
                    return
                self._send(items)
        except Exception:  # a bug here must not take the host's process down, only the sending
            log.exception("sluice client: the sending thread stopped")
        finally:
            self._transport.close()
            with self._lock:
                lost = self._recorded - self._done
                self._cut_short = self._cut_short or lost > 0
                self._done += lost
                self._dropped += lost
                self._queue.clear()
                self._queued_bytes = 0
                self._carry = []
                self._drained.notify_all()

    def _next_items(self) -> list[Item] | None:
        """The next batch's events once one is due; None when closing and nothing is left to send."""
        with self._lock:
            while True:
                queue = self._queue
                deadline = self._deadline
                closing = deadline is not None
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                if not queue and not self._carry:
                    if closing:
                        return None
                    self._work.wait()
                    continue
                due = (
                    closing
                    or self._carry
                    or len(queue) >= self._max_events
                    or self._queued_bytes >= self._max_bytes
                    or self._flush_upto > self._done
                    or time.monotonic() >= self._first_at + self._interval_s
                )
                if due:
                    break
                self._work.wait(self._first_at + self._interval_s - time.monotonic())
            take = min(len(queue), self._max_events - len(self._carry))
            items = [queue.popleft() for _ in range(take)]
            self._queued_bytes -= sum(item[2] for item in items)
            if queue:
                self._first_at = time.monotonic()
            return items

    def _send(self, items: list[Item]) -> None:
        pending = self._carry + [p for p in (self._serialise(ns, event) for ns, event, _ in items) if p is not None]
        self._carry = []
        batch: list[bytes] = []
        size = _ENVELOPE
        for position, piece in enumerate(pending):
            if _ENVELOPE + len(piece) > self._max_bytes:
                self._finish(dropped=1)
                self._log_once("too_large", f"sluice client: dropped an event of {len(piece)} bytes (over a batch)")
                continue
            if size + len(piece) + 1 > self._max_bytes:
                self._carry = pending[position:]  # sent next, at once
                break
            batch.append(piece)
            size += len(piece) + 1
        if batch:
            self._deliver(batch)

    def _serialise(self, ns: int, event: dict[str, Any]) -> bytes | None:
        if event.get("eventId") is None:
            event["eventId"] = uuid7(ns)
        if event.get("timestamp") is None:
            event["timestamp"] = _timestamp(ns)
        try:
            return _encode(event).encode()
        except (TypeError, ValueError) as exc:
            self._finish(dropped=1)
            self._log_once("not_json", f"sluice client: dropped an event that is not JSON: {exc}")
            return None

    def _deliver(self, pieces: list[bytes]) -> None:
        count = len(pieces)
        events = b",".join(pieces)
        attempt = 0
        while True:
            sent_at = _timestamp(time.time_ns()).encode()  # fresh on each attempt: the collector corrects skew with it
            answer = self._transport.post(b'{"sentAt":"' + sent_at + b'","events":[' + events + b"]}")
            if 200 <= answer.status < 300:
                for rejection in answer.rejected:
                    code = str(rejection.get("error"))
                    self._log_once(f"rejected:{code}", f"sluice client: the collector refused an event: {rejection}")
                refused = min(len(answer.rejected), count)
                self._finish(sent=count - refused, dropped=refused)
                return
            if not answer.retryable:
                self._log_once(
                    f"refused:{answer.status}", f"sluice client: dropped {count} events: {answer.reason} (not retried)"
                )
                self._finish(dropped=count)
                return
            attempt += 1
            if attempt > self._retry.attempts:
                why = f"sluice client: dropped {count} events after {attempt} attempts: {answer.reason}"
                self._log_once("gave_up", why)
                self._finish(dropped=count)
                return
            if not self._wait(self._retry.delay(attempt, answer.retry_after_s)):
                self._cut_short = True
                why = f"sluice client: dropped {count} events at close's deadline: {answer.reason}"
                self._log_once("deadline", why)
                self._finish(dropped=count)
                return
            self._note_retry(answer, count)

    def _note_retry(self, answer: Answer, count: int) -> None:
        with self._lock:
            self._retried += count
        log.debug("sluice client: retrying %d events after %s", count, answer.reason)

    def _wait(self, delay_s: float) -> bool:
        """Sleeps before a retry; False when close()'s deadline comes first (then nothing is retried)."""
        until = time.monotonic() + delay_s
        if not self._closing.wait(delay_s):
            return True
        deadline = self._deadline
        if deadline is None or deadline < until:
            return False
        time.sleep(max(0.0, until - time.monotonic()))
        return True

    def _finish(self, *, sent: int = 0, dropped: int = 0) -> None:
        with self._lock:
            self._sent += sent
            self._dropped += dropped
            self._done += sent + dropped
            self._drained.notify_all()

    def _log_once(self, key: str, message: str) -> None:
        if key in self._logged:
            log.debug("%s", message)
        else:
            self._logged.add(key)
            log.warning("%s", message)


# A forked child (a pre-fork server's worker) inherits the queue but not the thread: it starts
# empty, and its own thread starts with its first event. What the parent had queued, the parent sends.
_workers: weakref.WeakSet[Worker] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for worker in list(_workers):
        worker._transport.forget_connection()
        worker._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
