"""`GET /metrics`: what the collector, the writer, the spool and the ETL do, in Prometheus's text format.

The metrics are defined here, in the shared package, so that the collector and the ETL each record
their own without importing the other. Under `sluice serve` every uvicorn worker is a process of its
own: the supervisor points `PROMETHEUS_MULTIPROC_DIR` at `SLUICE_DATA_DIR/metrics` (emptied before
the workers start, see sluice/serve.py), each worker writes its values to files there, and a scrape
of any worker reads all of them (prometheus-client's multiprocess mode), so one scrape counts every
worker. Without that variable (an app made in-process, as the tests do) the values are this
process's own.

Two values come from the database at scrape time, not from a process: the ETL's lag (the age of
the oldest event not yet processed) and when the last successful run finished; so they hold for
runs made by any host or by the CLI. Each is one indexed lookup.

Recording is on the hot path, so it stays cheap: requests and events are counted in plain ints
(`_Tally`) and handed to prometheus-client once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hmac
import logging
import os
import re
from bisect import bisect_left
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from functools import cache

import psycopg
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sluice.http import error_response
from sluice.settings import Settings

log = logging.getLogger("sluice.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Whether this process's values live in files: prometheus-client decides when it is imported, by
# MULTIPROC_ENV then. `sluice serve` with one worker runs the app in the process whose CLI imported
# it before the folder was named; its values are then in memory, and a scrape reads them there.
_FILE_BACKED = values.ValueClass is not values.MutexValue
_SCRAPE_TIMEOUT_S = 1.0  # the database's part of a scrape: a scrape during an outage still answers
_SCRAPE_ATTEMPTS = 3  # the pool keeps 2 connections open (sluice/db.py): both may be dead ones

# Requests, by route template (never the raw path: a bounded set of series) and status.
HTTP_REQUESTS = Counter(
    "sluice_http_requests", "HTTP requests answered, by route template and status", ["route", "status"]
)
EVENTS_ACCEPTED = Counter(
    "sluice_events_accepted", "Events acknowledged (2xx): committed to PostgreSQL or fsync'd in the spool"
)
EVENTS_SPOOLED = Counter(
    "sluice_events_spooled", "Events acknowledged from the spool while PostgreSQL could not take them"
)
EVENTS_REJECTED = Counter(
    "sluice_events_rejected",
    "Events turned away, by error code (sluice/errors.py); a request refused before its body is read counts once",
    ["reason"],
)
REQUEST_EVENTS = Histogram(
    "sluice_request_events",
    "Events per accepted request",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
WRITE_EVENTS = Histogram(
    "sluice_write_events",
    "Events per group-commit write to PostgreSQL (new requests' batches and replayed spool chunks)",
    buckets=(1, 5, 10, 50, 100, 500, 1000, 5000, 10_000, 50_000),
)
WRITE_SECONDS = Histogram(
    "sluice_write_seconds",
    "Duration of a group-commit write, COPY to COMMIT, successful or not",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# Short links' clicks (collector/links.py): counted per batch the click queue writes, not per redirect.
CLICKS_STORED = Counter(
    "sluice_clicks_stored", "Redirect clicks written after their 302: committed to PostgreSQL or fsync'd in the spool"
)
CLICKS_DROPPED = Counter(
    "sluice_clicks_dropped",
    "Redirect clicks lost: the click queue was full, or the collector stopped while PostgreSQL and the spool"
    " refused them",
)
# Gauges of a process's own state are summed over the live workers: a worker that is gone no longer counts.
QUEUE_EVENTS = Gauge(
    "sluice_write_queue_events", "Events waiting for the writer, as it last took a batch", multiprocess_mode="livesum"
)
CLICK_QUEUE = Gauge(
    "sluice_click_queue_clicks",
    "Redirect clicks waiting for the writer, as the click queue last took a batch",
    multiprocess_mode="livesum",
)
SPOOL_BYTES = Gauge(
    "sluice_spool_bytes", "Bytes in the spool not yet replayed into PostgreSQL", multiprocess_mode="livesum"
)
SPOOL_EVENTS = Gauge(
    "sluice_spool_events", "Events in the spool not yet replayed into PostgreSQL", multiprocess_mode="livesum"
)
ETL_STEP_SECONDS = Histogram(
    "sluice_etl_step_seconds",
    "Duration of each step (job) of the ETL runs this host's server made that succeeded",
    ["step"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
ETL_RUNS = Counter("sluice_etl_runs", "ETL runs this host's server made, by kind and outcome", ["kind", "status"])
SCHEDULER_LEADER = Gauge(
    "sluice_scheduler_leader", "1 in the process that leads the ETL schedule, else 0", multiprocess_mode="liveall"
)


class _Tally:
    """What the hot path counts, in plain ints, until `flush` hands it to prometheus-client.

    Each recording into a multiprocess metric takes a lock, looks up the process id and writes to
    a memory-mapped file: four of them per `POST /collect` (the request, the events, the histogram's
    bucket and sum) cost a third more CPU per single-event request (bench/README.md, "Metrics").
    Here a request costs a few dict and int operations; `flush` runs once a second in each worker
    and before each scrape, so a scrape sees the other workers' counts at most a second late.
    """

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.rejected: dict[str, int] = {}
        self.accepted = 0
        self.sizes: dict[int, int] = {}  # events per accepted request -> requests
        # the group-commit writer's, per write (collector/writer.py): events -> writes; the durations
        # as the histogram's own bucket counts and sum; its queue as it last took a batch (None: not since)
        self.writes: dict[int, int] = {}
        self.write_buckets = [0] * len(_upper_bounds(WRITE_SECONDS))
        self.write_seconds = 0.0
        self.queue_events: int | None = None

    def request(self, route: str, status: int) -> None:
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1

    def flush(self) -> None:
        requests, self.requests = self.requests, {}
        rejected, self.rejected = self.rejected, {}
        accepted, self.accepted = self.accepted, 0
        sizes, self.sizes = self.sizes, {}
        writes, self.writes = self.writes, {}
        write_buckets, self.write_buckets = self.write_buckets, [0] * len(self.write_buckets)
        write_seconds, self.write_seconds = self.write_seconds, 0.0
        queue_events, self.queue_events = self.queue_events, None
        for (route, status), n in requests.items():
            HTTP_REQUESTS.labels(route, str(status)).inc(n)
        for reason, n in rejected.items():
            EVENTS_REJECTED.labels(reason).inc(n)
        if accepted:
            EVENTS_ACCEPTED.inc(accepted)
        for events, n in sizes.items():
            _observe_many(REQUEST_EVENTS, events, n)
        for events, n in writes.items():
            _observe_many(WRITE_EVENTS, events, n)
        if any(write_buckets):
            _observe_bucketed(WRITE_SECONDS, write_buckets, write_seconds)
        if queue_events is not None:
            QUEUE_EVENTS.set(queue_events)


def _observe_many(histogram: Histogram, value: float, times: int) -> None:
    """`histogram.observe(value)` `times` times, as two writes: the bucket's count and the sum.
    prometheus-client has no such call; its Histogram keeps them as `_buckets` and `_sum`."""
    buckets, total, bounds = (getattr(histogram, name, None) for name in ("_buckets", "_sum", "_upper_bounds"))
    if buckets is None or total is None or bounds is None:  # another layout: the public way
        for _ in range(times):
            histogram.observe(value)
        return
    total.inc(value * times)
    for bucket, bound in zip(buckets, bounds, strict=True):
        if value <= bound:
            bucket.inc(times)
            return


def _upper_bounds(histogram: Histogram) -> list[float]:
    return list(getattr(histogram, "_upper_bounds", ()))


def _observe_bucketed(histogram: Histogram, counts: list[int], total: float) -> None:
    """Observations already counted per bucket of `histogram` (as `count_write` counts them), and
    their sum: one write per bucket that has any, and one for the sum."""
    buckets, sum_value = getattr(histogram, "_buckets", None), getattr(histogram, "_sum", None)
    if buckets is None or sum_value is None:  # another layout: count_write observes directly then
        return
    sum_value.inc(total)
    for bucket, n in zip(buckets, counts, strict=True):
        if n:
            bucket.inc(n)


tally = _Tally()


# The bound method itself: one call less for each request counted (the hot path counts every one).
count_request = tally.request


def count_rejected(reason: str, events: int = 1) -> None:
    tally.rejected[reason] = tally.rejected.get(reason, 0) + events


def count_accepted(events: int) -> None:
    tally.accepted += events
    tally.sizes[events] = tally.sizes.get(events, 0) + 1


def count_write(events: int, seconds: float) -> None:
    """One group-commit write, of `events`, that took `seconds`: per batch, not per request, but
    under load the writer takes a batch every few requests, and four histogram recordings each
    (a locked write to a memory-mapped file) cost about as much as a request's own work."""
    tally.writes[events] = tally.writes.get(events, 0) + 1
    if tally.write_buckets:
        tally.write_buckets[bisect_left(_WRITE_BOUNDS, seconds)] += 1
        tally.write_seconds += seconds
    else:  # prometheus-client keeps its buckets elsewhere: the public way
        WRITE_SECONDS.observe(seconds)


def count_queue(events: int) -> None:
    """The writer's queue, in events, as it takes a batch (the gauge is set once a second at most)."""
    tally.queue_events = events


_WRITE_BOUNDS = _upper_bounds(WRITE_SECONDS)
FLUSH_S = 1.0


@asynccontextmanager
async def flushing() -> AsyncIterator[None]:
    """For a serving process's lifespan: the tally flushed every FLUSH_S, and once more at the end."""

    async def every_second() -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            tally.flush()

    task = asyncio.create_task(every_second(), name="sluice-metrics-flush")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        tally.flush()


# Serving: where the values of the workers meet.


class CountRequests:
    """Counts every answered request that reaches the router, by the template of the route it chose
    (which the router puts in the scope) and its status. A request no route matched counts as
    `(unmatched)`; one that raised, as the 500 it is answered with. The raw routes that
    sluice.routing.RawRoutesFirst dispatches before (`POST /collect`) count their own answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except BaseException:
            status = status or 500
            raise
        finally:
            if status:  # 0: the client left before any answer (nothing to count as answered)
                route = scope.get("route")
                tally.request(route.path if route is not None else "(unmatched)", status)


def process_exited(pid: int | None = None) -> None:
    """A worker's gauges stop counting once it is gone (its counters stay: they are totals)."""
    if _FILE_BACKED and os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid() if pid is None else pid)  # type: ignore[no-untyped-call]


_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def _forget_dead_workers(directory: str) -> None:
    """Workers killed without a shutdown (SIGKILL, OOM) left their live gauges: drop them."""
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        found = _LIVE_FILE.search(path)
        if found and not _alive(int(found.group(1))):
            multiprocess.mark_process_dead(int(found.group(1)), directory)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Fixed(Collector):
    """Values read before the scrape (from the database), given to the registry as they are."""

    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self.families


# The ETL's state, from the tables. Lag: the event with the lowest txid at or past the watermark is
# found through the txid index of each partition; its received_at is the age of the backlog (events
# commit in about the order they arrive). Last success: etl_runs backwards by its primary key.
_LAG = """
    select extract(epoch from clock_timestamp() - received_at)::float8
    from events where txid >= (select watermark from etl_state)
    order by txid limit 1
"""
_LAST_SUCCESS = """
    select extract(epoch from finished_at)::float8
    from etl_runs where status = 'succeeded' order by run_id desc limit 1
"""


async def _database_families(pool: AsyncConnectionPool, settings: Settings) -> Iterable[GaugeMetricFamily]:
    lag = GaugeMetricFamily(
        "sluice_etl_lag_seconds", "Age of the oldest event in the log the ETL has not processed yet (0: none waits)"
    )
    last = GaugeMetricFamily(
        "sluice_etl_last_success_timestamp_seconds", "When the last successful ETL run finished (Unix time)"
    )
    up = GaugeMetricFamily("sluice_metrics_database_up", "1 if this scrape could read the ETL's state from PostgreSQL")
    for attempt in range(_SCRAPE_ATTEMPTS):
        try:
            async with pool.connection(timeout=_SCRAPE_TIMEOUT_S) as conn:
                lag_row = await (await conn.execute(_LAG)).fetchone()
                last_row = await (await conn.execute(_LAST_SUCCESS)).fetchone()
            break
        except psycopg.Error as exc:  # PoolTimeout included: the rest of the scrape is still worth having
            # Again: after an outage the pool's connections may be ones PostgreSQL closed (the pool
            # drops each when it comes back broken); a new one answers.
            broken = isinstance(exc, psycopg.OperationalError) and not isinstance(exc, PoolTimeout)
            if broken and attempt < _SCRAPE_ATTEMPTS - 1:
                continue
            log.debug("metrics: the ETL's state could not be read: %s", exc)
            up.add_metric([], 0)
            return [up]
    up.add_metric([], 1)
    lag.add_metric([], max(0.0, lag_row[0]) if lag_row else 0.0)
    families = [up, lag]
    if last_row is not None:
        last.add_metric([], last_row[0])
        families.append(last)
    return families


@cache
def _token_bytes(token: str) -> bytes:
    return token.encode()


def _authorized(request: Request, settings: Settings) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    given = token.strip().encode()
    allowed = [t for t in (settings.admin_token, settings.metrics_token) if t]
    # every token compared, in constant time each: which one matched is not told by the timing
    return any([hmac.compare_digest(given, _token_bytes(t)) for t in allowed])


async def endpoint(request: Request) -> Response:
    settings: Settings = request.state.settings
    if not (settings.admin_token or settings.metrics_token):
        return error_response("forbidden", "/metrics is disabled: set SLUICE_ADMIN_TOKEN or SLUICE_METRICS_TOKEN")
    if not _authorized(request, settings):
        message = "send 'Authorization: Bearer <SLUICE_METRICS_TOKEN or SLUICE_ADMIN_TOKEN>'"
        return error_response("unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="sluice"'})
    families = list(await _database_families(request.state.pool, settings))
    tally.flush()  # this worker's counts are exact; the others' at most FLUSH_S old
    directory = os.environ.get(MULTIPROC_ENV)
    if directory and _FILE_BACKED:
        _forget_dead_workers(directory)
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes, directory)  # type: ignore[no-untyped-call]
    else:  # this process's own values (and the client's process and GC metrics)
        processes = REGISTRY
    database = CollectorRegistry()
    database.register(_Fixed(families))
    return Response(generate_latest(processes) + generate_latest(database), media_type=CONTENT_TYPE_LATEST)
