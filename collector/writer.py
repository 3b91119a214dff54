"""Group commit: one writer per process appends every queued event to `events` in one transaction.

Requests hand their rows to `write()` and wait. The writer takes everything that queued while its
previous write was in flight and writes it in ONE transaction, then wakes every waiting request:
with success after COMMIT, or all of them with `WriteFailed`, in which case nothing of the batch is
stored. When idle it writes at once; there is no fixed wait window.

The write is optimistic. The fast write COPYs the rows straight into `events` and claims their ids in
`event_ids` with a plain insert. When an id is already there (a retried event, or one sent twice in
the batch) that fails, the transaction rolls back, and the careful write does the batch again: COPY
into a temporary staging table, then move only the first copy of each id that is new.

With a spool (collector/spool.py), a batch PostgreSQL does not take is appended to it instead and
acknowledged once fsync'd there; the writer is then "offline": new requests go straight to the
spool, and every `_PROBE_S` the writer tries to replay the spool's oldest chunk. The first that
commits brings it back online; it then replays a chunk after each batch of new requests until the
spool is empty. The queue of requests waiting for the next write is bounded (`QUEUE_MAX_EVENTS`,
`QUEUE_MAX_BYTES`): past it, requests go to the spool, or with none, are refused.

A write that PostgreSQL neither commits nor fails is bounded too (`write_timeout_s`, the collector's
`SLUICE_WRITE_TIMEOUT`): a table locked by someone's `LOCK TABLE` or a long DDL, a stalled disk. Past
the bound the writer gives up on it as on a failed one (cancels what its connections have in flight
in the server, drops both connections, spools the batch). A COMMIT that landed all the same, just
before the cancel, is harmless: the spooled copy's replay finds the ids claimed and stores nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import struct
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from sluice.collector import pgwire
from sluice.collector.fault_log import FaultLog
from sluice.collector.spool import Spool, SpoolFull
from sluice.db import conninfo
from sluice.metrics import EVENTS_SPOOLED, SPOOL_BYTES, SPOOL_EVENTS, count_queue, count_write
from sluice.settings import Settings

log = logging.getLogger("sluice.collector")

# One event's own columns of `events`: the first eight of _COLUMN_TYPES (validate.Event has this shape).
Row = tuple[
    uuid.UUID,  # event_id
    str,  # site_id
    str,  # event_type
    datetime,  # occurred_at
    datetime | None,  # client_timestamp
    str | None,  # visitor_id
    str | None,  # session_id
    bytes,  # payload: JSON text, sent to jsonb as it is
]


class Sender(NamedTuple):
    """The columns every event of one request shares: the last six of _COLUMN_TYPES."""

    received_at: datetime
    ip_hash: str | None
    country: str | None
    user_agent: str | None
    region: str | None = None  # with a City database only (collector/client_ip.py: Place)
    city: str | None = None


_COLUMN_TYPES = {  # the fields of a COPY row, in order: a Row's, then a Sender's
    "event_id": "uuid",
    "site_id": "text",
    "event_type": "text",
    "occurred_at": "timestamptz",
    "client_timestamp": "timestamptz",
    "visitor_id": "text",
    "session_id": "text",
    "payload": "jsonb",
    "received_at": "timestamptz",
    "ip_hash": "text",
    "country": "text",
    "user_agent": "text",
    "region": "text",
    "city": "text",
}
_COLUMNS = ", ".join(_COLUMN_TYPES)
_CREATE_STAGING = f"""
    create temporary table collector_staging (
        {", ".join(f"{name} {type_}" for name, type_ in _COLUMN_TYPES.items())}
    ) on commit delete rows
"""
_BINARY = "(format binary)"
# The fast write claims the ids of the rows its transaction has just copied into `events`. A plain
# insert: an id already in event_ids (a retried event, or one sent twice in the batch) fails it with
# a unique violation. Sorted by id, so that concurrent writers (other workers) take index locks in one
# order and cannot deadlock. `_if_assigned`: a transaction that copied no rows stays without an id,
# finds nothing, and commits without a WAL flush. The received_at floor ($1, a day before the write
# was prepared) leaves the day partitions the rows cannot be in unread: without it each commit would
# look its txid up in every partition (some 100 at 90 days' retention), a fixed cost per commit.
_PREPARE_CLAIM = b"""
    prepare sluice_claim_ids(timestamptz) as
    insert into event_ids (event_id, received_at)
    select event_id, received_at from events
    where txid = pg_current_xact_id_if_assigned()
      and received_at >= $1
    order by event_id
"""
_CLAIM_WINDOW = timedelta(days=1)
# Each write is ONE simple-protocol query, so one transaction costs two round trips (send it and get
# COPY's go-ahead; send the rows and get every result) instead of five, each of which would wait its
# turn behind the HTTP work queued on the event loop. The fast write's first round trip is taken
# while the previous batch commits (see GroupCommitWriter).
_FAST = f"begin; copy events ({_COLUMNS}) from stdin {_BINARY}; execute sluice_claim_ids('%s'); commit".encode()
# The careful write, after the fast one met a claimed id: the rows go to the staging table, then the
# first copy of each id that is new in event_ids moves into `events` (sorted by id, as above). It is
# rare, so it takes psycopg's public API and its extra round trips.
_CAREFUL_COPY = f"copy collector_staging ({_COLUMNS}) from stdin {_BINARY}"
_CAREFUL_MOVE = f"""
    with firsts as (
        select distinct on (event_id) * from collector_staging order by event_id
    ),
    fresh as (
        insert into event_ids (event_id, received_at)
        select event_id, received_at from firsts
        on conflict (event_id) do nothing
        returning event_id
    )
    insert into events ({_COLUMNS})
    select {_COLUMNS} from firsts join fresh using (event_id)
""".encode()
_IDLE_S = 0.5  # an armed connection idle this long commits its empty COPY (an open transaction holds locks)
_PROBE_S = 0.5  # while offline, how often the writer tries PostgreSQL again (with the spool's oldest chunk)
_ADOPT_S = 2.0  # how often the writer looks for spool files left by processes that are gone
# The queue of requests waiting for the write in flight. It fills only when PostgreSQL is slower than
# the requests come; then these bound the memory it takes (COPY rows are ~0.6 KB per event).
QUEUE_MAX_EVENTS = 20_000
QUEUE_MAX_BYTES = 16 * 1024 * 1024
_UNREACHABLE = "PostgreSQL unavailable"  # the fault's kind in the log


# COPY's binary format: no text for the server to parse (timestamps, uuids) and nothing to escape
# here. A header, then per row a field count and each field as a
# length (-1 for null) and its bytes; timestamptz is microseconds since 2000-01-01 UTC; jsonb is a
# version byte and the JSON text.
_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
_TRAILER = b"\xff\xff"
_ROW_START = struct.pack("!hi", len(_COLUMN_TYPES), 16)  # field count, then the uuid's length
_NULL = struct.pack("!i", -1)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_length = struct.Struct("!i").pack
_timestamp = struct.Struct("!iq").pack
_jsonb_head = struct.Struct("!iB").pack


def copy_rows(rows: Sequence[Row], sender: Sender) -> bytes:
    """The rows in COPY's binary format, without the header and trailer (`framed` adds them)."""
    return copy_rows_of(((rows, sender),))


def copy_rows_of(groups: Iterable[tuple[Sequence[Row], Sender]]) -> bytes:
    """`copy_rows` of each (rows, sender) in turn, joined, with what they share encoded once for
    all of them: a server source's request (an end user each), and `sluice import`'s batch, where
    a sender (an address, a User-Agent) has some 2-3 rows."""
    # A request's events mostly share their times, site, type, visitor and session: each is
    # encoded once. The texts are remembered in a dict; a time only while the rows repeat it (the
    # previous row's): each event's datetime is an object of its own, and hashing an aware
    # datetime calls its utcoffset(), ~3,200 instructions (callgrind), more than encoding it.
    texts: dict[str | None, bytes] = {None: _NULL}
    parts: list[bytes] = []
    last_received: Any = _NO_TIME
    last_occurred: Any = _NO_TIME
    last_client: Any = _NO_TIME
    received = occurred = client = _NULL
    for rows, (received_at, ip_hash, country, user_agent, region, city) in groups:
        if received_at != last_received:
            last_received, received = received_at, _stamp(received_at)
        shared = b"".join(  # unrolled: region and city are mostly None, found in `texts` without a call
            (
                received,
                texts.get(ip_hash) or _known_text(ip_hash, texts),  # type: ignore[arg-type]  # None is in
                texts.get(country) or _known_text(country, texts),  # type: ignore[arg-type]  # None is in
                texts.get(user_agent) or _known_text(user_agent, texts),  # type: ignore[arg-type]  # None is in
                texts.get(region) or _known_text(region, texts),  # type: ignore[arg-type]  # None is in
                texts.get(city) or _known_text(city, texts),  # type: ignore[arg-type]  # None is in
            )
        )
        for event_id, site_id, event_type, occurred_at, client_timestamp, visitor_id, session_id, payload in rows:
            if occurred_at != last_occurred:  # (equal instants encode alike, whatever their zones)
                last_occurred, occurred = occurred_at, _stamp(occurred_at)
            if client_timestamp is occurred_at:  # an event whose time is its client's (an import's line)
                last_client, client = client_timestamp, occurred
            elif client_timestamp != last_client:
                last_client, client = client_timestamp, _NULL if client_timestamp is None else _stamp(client_timestamp)
            parts += (
                _ROW_START,
                event_id.int.to_bytes(16),  # (UUID.bytes, without its Python-level property)
                texts.get(site_id) or _known_text(site_id, texts),
                texts.get(event_type) or _known_text(event_type, texts),
                occurred,
                client,
                texts.get(visitor_id) or _known_text(visitor_id, texts),  # type: ignore[arg-type]  # None is in
                texts.get(session_id) or _known_text(session_id, texts),  # type: ignore[arg-type]  # None is in
                _jsonb_head(len(payload) + 1, 1),  # the field's length, then jsonb's version byte
                payload,
                shared,
            )
    return b"".join(parts)


def framed(*requests: bytes) -> bytes:
    """Rows from `copy_rows`, of one request or many, as a whole binary COPY stream (one copy of them)."""
    return b"".join((_HEADER, *requests, _TRAILER))


def _stamp(at: datetime) -> bytes:
    delta = at - _PG_EPOCH
    return _timestamp(8, (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


_NO_TIME = object()  # the time of the row before the first: equal to none


def _known_text(value: str, texts: dict[str | None, bytes]) -> bytes:
    """The text field's COPY bytes (its length, then its UTF-8), remembered in `texts` (which holds
    None, the null field, from the start)."""
    encoded = value.encode()
    found = texts[value] = _length(len(encoded)) + encoded
    return found


class WriteFailed(Exception):
    """The batch holding these events was not committed; none of it is stored."""


class WriteTimedOut(Exception):
    """PostgreSQL did not finish a write within the writer's bound (it may have committed it all the same)."""


class _Request(NamedTuple):
    """One request's rows, waiting for the next write."""

    data: bytes  # COPY rows
    events: int
    received_at: datetime
    done: asyncio.Future[None]


_DATA = operator.attrgetter("data")
_RECEIVED_AT = operator.attrgetter("received_at")


def _fail(batch: list[_Request], failed: WriteFailed) -> None:
    for request in batch:
        if not request.done.done():
            request.done.set_exception(failed)


class GroupCommitWriter:
    """One per process: a queue of pending requests and two connections that take turns.

    Only one batch is in flight at a time. While it commits on one connection, the other is "armed":
    the next fast write's query is sent and COPY's go-ahead is on its way, so the next batch's rows go
    out the moment the commit returns instead of after a round trip that would wait its turn behind
    the HTTP work on the event loop.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        connect_timeout_s: int = 5,
        spool: Spool | None = None,
        write_timeout_s: float | None = None,
        durable_commits: bool = True,
    ) -> None:
        self._conninfo = conninfo(settings, "sluice-collector-writer")
        if not durable_commits:
            # `sluice import` only: its commits do not each wait for the WAL flush (synchronous_commit
            # off for these sessions alone). A crash of the server can then lose the last fraction of
            # a second of them, which importing again restores (by eventId); the import's end makes
            # all of them durable at once (importer.py). /collect's acknowledged events never.
            options = str(conninfo_to_dict(self._conninfo).get("options") or "")
            self._conninfo = make_conninfo(self._conninfo, options=f"{options} -c synchronous_commit=off")
        self._connect_timeout_s = connect_timeout_s
        # the most one write (connect, COPY, commit; or a replayed chunk, or a probe) may take; None:
        # no bound (`sluice import`, whose writes are big and which has no spool to fall back to)
        self._write_timeout_s = write_timeout_s
        self._partitions_ahead = settings.partitions_ahead_days
        self._pending: list[_Request] = []
        self._pending_events = 0
        self._pending_bytes = 0
        self.spool = spool
        self.online = True  # False from a failed write until a write commits again (only with a spool)
        self._next_probe = 0.0
        self._next_adopt = 0.0
        self._faults = FaultLog(log)
        self._wakeup = asyncio.Event()
        self._conns: list[psycopg.AsyncConnection[Any] | None] = [None, None]
        self._armed: int | None = None  # the connection whose fast write waits for its rows
        # per connection, the received_at floor its armed fast write claims from
        self._claim_floors: list[datetime] = [_PG_EPOCH, _PG_EPOCH]
        self._turn = 0  # the connection the next write uses when none is armed
        self._partitions_day: date | None = None
        self._task: asyncio.Task[None] | None = None
        self._deadline: float | None = None  # the write in flight's, on the loop's clock (see _write)
        self._watchdog: asyncio.TimerHandle | None = None
        self._expired = False  # the watchdog cancelled the writer's task: _write turns that into WriteTimedOut
        self._stopping = False
        self.careful_writes = 0  # batches the fast write handed to the careful one
        self.spooled_events = 0  # events acknowledged from the spool rather than after a commit
        self.replayed_events = 0  # events the spool's replay committed (already claimed ones included)

    async def start(self) -> None:
        try:  # create partitions ahead now if the database is there; else at the first write
            async with self._bounded():
                await self._ensure_partitions(await self._connection(0))
        except (psycopg.Error, WriteTimedOut) as exc:
            if self.spool is None:
                log.warning("collector writer: PostgreSQL unavailable at start-up (%s); will retry on first write", exc)
            else:
                self._faults.fault(
                    _UNREACHABLE, f"collector writer: PostgreSQL unavailable at start-up ({exc}); spooling meanwhile"
                )
                self.online = False
        self._task = asyncio.create_task(self._run(), name="sluice-group-commit")

    async def stop(self) -> None:
        """Writes what is still queued (to PostgreSQL, else to the spool), then closes the connections."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for slot in (0, 1):
            await self._drop_connection(slot)

    async def write(self, rows: Sequence[Row], sender: Sender) -> None:
        """Returns once `rows` are committed, or fsync'd in the spool; raises WriteFailed if neither."""
        if self._stopping:
            raise WriteFailed("the collector is shutting down")
        data, events = copy_rows(rows, sender), len(rows)
        # _enqueue's common case inline: one coroutine less per request on the hot path
        if self.online and self._pending_events < QUEUE_MAX_EVENTS and self._pending_bytes < QUEUE_MAX_BYTES:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._pending.append(_Request(data, events, sender.received_at, future))
            self._pending_events += events
            self._pending_bytes += len(data)
            self._wakeup.set()
            await future
            return
        await self._enqueue(data, events, sender.received_at)

    async def _enqueue(self, data: bytes, events: int, oldest: datetime) -> None:
        full = self._pending_events >= QUEUE_MAX_EVENTS or self._pending_bytes >= QUEUE_MAX_BYTES
        if self.spool is not None and (full or not self.online):
            await self._to_spool(data, events, oldest)
            return
        if full:
            raise WriteFailed("the collector is overloaded: its queue is full")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(data, events, oldest, future))
        self._pending_events += events
        self._pending_bytes += len(data)
        self._wakeup.set()
        await future

    async def write_copy_rows(self, data: bytes, events: int, oldest: datetime) -> None:
        """Like `write`, for rows already in COPY's format (`copy_rows`, of any senders; `oldest`
        their earliest received_at): `sluice import` encodes them in worker processes."""
        if self._stopping:
            raise WriteFailed("the collector is shutting down")
        await self._enqueue(data, events, oldest)

    async def write_many(self, groups: Sequence[tuple[Sequence[Row], Sender]]) -> None:
        """Like `write`, for one request whose events have different senders (a server source's,
        each on behalf of its own end user): all of them in the same transaction, or spool record."""
        if self._stopping:
            raise WriteFailed("the collector is shutting down")
        data = copy_rows_of(groups)
        events = sum(len(rows) for rows, _ in groups)
        await self._enqueue(data, events, min(sender.received_at for _, sender in groups))

    async def _to_spool(self, data: bytes, events: int, oldest: datetime) -> None:
        assert self.spool is not None
        try:
            await self.spool.append(data, events, oldest)
        except SpoolFull as exc:
            self._faults.fault("spool refusing batches", f"collector writer: the spool refused a batch: {exc}")
            raise WriteFailed(str(exc)) from None
        self.spooled_events += events
        EVENTS_SPOOLED.inc(events)
        self._spool_gauges()

    def _spool_gauges(self) -> None:
        """The spool's gauges (sluice/metrics.py): set when it grows, shrinks, or adopts a file."""
        if self.spool is not None:
            SPOOL_BYTES.set(self.spool.held_bytes)
            SPOOL_EVENTS.set(self.spool.waiting_events)

    async def _run(self) -> None:
        while True:
            if self._pending:
                batch, self._pending = self._pending, []
                events = self._pending_events
                count_queue(events)
                self._pending_events = self._pending_bytes = 0
                await self._commit(batch, events)
            if self._stopping and not self._pending:
                return
            # One chunk of the spool after each batch of new requests: neither waits long for the other.
            # (What _tend_spool checks first, here: with nothing due, no coroutine is made per batch.)
            spool = self.spool
            if (
                spool is not None
                and (spool.has_backlog or not self.online or time.monotonic() >= self._next_adopt)
                and await self._tend_spool()
            ):
                continue
            if self._pending:
                continue
            self._wakeup.clear()
            count_queue(0)
            # An armed connection is an open transaction: it must not stay open while idle. A bare
            # timer rather than asyncio.timeout: under load the writer idles between most batches.
            timeout = _IDLE_S if self._armed is not None else (_PROBE_S if self.spool is not None else None)
            if timeout is None:
                await self._wakeup.wait()
            else:
                timer = asyncio.get_running_loop().call_later(timeout, self._wakeup.set)
                await self._wakeup.wait()
                timer.cancel()
            if not self._pending and self._armed is not None:
                await self._disarm()

    async def _commit(self, batch: list[_Request], events: int) -> None:
        """Writes `batch` (`events` in all) to PostgreSQL, else to the spool, and answers its requests."""
        try:
            if not self.online:  # queued before the write that failed: straight to the spool
                raise WriteFailed("PostgreSQL is unavailable")
            # map() over the requests rather than generators: no Python frame resumed per request
            await self._write(framed(*map(_DATA, batch)), min(map(_RECEIVED_AT, batch)), events)
        except Exception as exc:
            if self.spool is None:
                self._faults.fault(
                    _UNREACHABLE, f"collector writer: a batch of {len(batch)} requests was not stored: {exc}"
                )
                _fail(batch, WriteFailed(f"the events could not be stored: {type(exc).__name__}"))
                return
            self._went_offline(exc)
            try:
                await self._to_spool(b"".join(map(_DATA, batch)), events, min(map(_RECEIVED_AT, batch)))
            except WriteFailed as failed:
                _fail(batch, failed)
                return
        else:
            self._came_online()
        for request in batch:
            if not request.done.done():  # a request cancelled while waiting has nobody to tell
                request.done.set_result(None)

    def _went_offline(self, exc: BaseException) -> None:
        if not isinstance(exc, WriteFailed):
            where = self.spool.directory if self.spool is not None else None
            message = f"collector writer: PostgreSQL did not take a write ({exc}); spooling to {where}"
            self._faults.fault(_UNREACHABLE, message)
        self.online = False
        self._next_probe = time.monotonic() + _PROBE_S

    def _came_online(self) -> None:
        if not self.online:
            self.online = True
            self._faults.cleared(_UNREACHABLE, "collector writer: PostgreSQL takes writes again; replaying the spool")
        else:
            self._faults.cleared(_UNREACHABLE, "collector writer: PostgreSQL takes writes again")

    async def _tend_spool(self) -> bool:
        """Adopts orphaned spool files now and then; replays one chunk when due. True if it replayed one."""
        spool = self.spool
        assert spool is not None
        now = time.monotonic()
        if now >= self._next_adopt:
            spool.adopt()
            self._next_adopt = now + _ADOPT_S
            self._spool_gauges()
        if not self.online and now < self._next_probe:
            return False
        chunk = await spool.next_chunk() if spool.has_backlog else None
        try:
            if chunk is not None:
                await self._write(framed(chunk.data), chunk.oldest, chunk.events)
            elif not self.online:  # nothing to replay, but a write failed: is PostgreSQL back?
                async with self._bounded():  # connecting PREPAREs a read of `events`: a lock holds it
                    await self._connection(self._turn)
        except Exception as exc:
            self._went_offline(exc)
            return False
        self._came_online()
        if chunk is None:
            return False
        await spool.replayed(chunk)
        self.replayed_events += chunk.events
        self._spool_gauges()
        return True

    async def _write(self, data: bytes, oldest: datetime, events: int) -> None:
        """One write, bounded by the write timeout: the watchdog cancels it once it runs out of time.

        Not asyncio.timeout: that makes a timer per write (and three coroutines), some 8 µs here, which
        under load is paid every few requests (bench/README.md). A write only notes its deadline; one
        timer, re-armed at most once per timeout, looks at the write in flight when it fires."""
        started = time.monotonic()  # the event loop's clock (loop.time()), for the deadline
        if self._write_timeout_s is not None:
            self._deadline = deadline = started + self._write_timeout_s
            if self._watchdog is None:
                self._watchdog = asyncio.get_running_loop().call_at(deadline, self._watch)
        try:
            await self._write_once_or_twice(data, oldest)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._expired or task is None:  # not the watchdog's: a real cancellation
                raise
            self._expired = False
            task.uncancel()
            raise await self._gave_up() from None
        finally:
            self._deadline = None
            count_write(events, time.monotonic() - started)

    def _watch(self) -> None:
        """The watchdog's timer: cancels the write in flight if it is past its deadline, else waits
        for that deadline; with no write in flight it stops (the next write starts it again)."""
        self._watchdog = None
        deadline = self._deadline
        if deadline is None or self._task is None:
            return
        if time.monotonic() < deadline:
            self._watchdog = asyncio.get_running_loop().call_at(deadline, self._watch)
            return
        self._expired = True
        self._task.cancel()  # the writer's task: _write runs only in it

    async def _write_once_or_twice(self, data: bytes, oldest: datetime) -> None:
        # One retry, on a fresh connection when the old one broke. Retrying is safe even if the
        # first COMMIT did land before the error: the ids are then in event_ids and nothing is stored twice.
        slot = self._armed if self._armed is not None else self._turn
        armed, self._armed = self._armed is not None, None
        for attempt in (1, 2):
            try:
                conn = await self._connection(slot)
                if not armed:
                    await self._arm(conn, slot)
                # A request stamped before the armed claim's floor (queued a day: never, short of
                # the clock jumping back) would go unclaimed: the armed write then commits nothing.
                claimable = oldest >= self._claim_floors[slot]
                fast = await self._fast_write(conn, data if claimable else framed(), next_slot=1 - slot)
                if not (fast and claimable):
                    self.careful_writes += 1
                    await self._careful_write(conn, data)
                self._turn = 1 - slot
                return
            except psycopg.OperationalError as exc:  # a lost connection, or a deadlock / serialization failure
                armed = False
                conn_now = self._conns[slot]
                if conn_now is None or conn_now.broken or conn_now.closed or conn_now.pgconn.status != pq.ConnStatus.OK:
                    await self._drop_connection(slot)
                if attempt == 2:
                    raise
                self._faults.fault("write retried", f"collector writer: retrying a write after: {exc}", logging.WARNING)

    async def _fast_write(self, conn: psycopg.AsyncConnection[Any], data: bytes, *, next_slot: int) -> bool:
        """COPY straight into `events` and claim the ids; False, rolled back, if an id was taken."""
        try:
            await pgwire.until_copy_in(conn)  # begin, then COPY's go-ahead
            await pgwire.copy_and_finish(conn, data)
            await self._arm_next(next_slot)  # its go-ahead travels while this batch commits
            await pgwire.results(conn)  # copy, claim, commit
        except psycopg.errors.UniqueViolation:
            await _rollback(conn)
            return False
        except psycopg.DatabaseError:
            await _rollback(conn)
            raise
        return True

    async def _careful_write(self, conn: psycopg.AsyncConnection[Any], data: bytes) -> None:
        async with conn.transaction():  # rolled back if anything in it fails
            async with conn.cursor().copy(_CAREFUL_COPY) as copy:
                await copy.write(data)
            await conn.execute(_CAREFUL_MOVE)

    async def _arm(self, conn: psycopg.AsyncConnection[Any], slot: int) -> None:
        """Sends the fast write's query; the rows follow once COPY's go-ahead is back."""
        await self._ensure_partitions(conn)
        floor = datetime.now(UTC) - _CLAIM_WINDOW
        await pgwire.send_query(conn, _FAST % floor.isoformat().encode())
        self._claim_floors[slot] = floor

    async def _arm_next(self, slot: int) -> None:
        """Best effort: if the other connection cannot be armed, the next write arms one itself."""
        if self._armed is not None:  # armed already, by the first attempt of a write being retried
            return
        try:
            await self._arm(await self._connection(slot), slot)
        except psycopg.Error as exc:
            self._faults.fault(
                "arming failed", f"collector writer: could not prepare the next write: {exc}", logging.WARNING
            )
            await self._drop_connection(slot)
        else:
            self._armed = slot

    async def _disarm(self) -> None:
        """Ends the armed transaction with an empty COPY, which commits nothing."""
        slot, self._armed = self._armed, None
        conn = self._conns[slot] if slot is not None else None
        if slot is None or conn is None:
            return
        try:
            async with self._bounded():  # armed before a lock was taken, its COPY waits on the lock
                await pgwire.until_copy_in(conn)
                await pgwire.copy_and_finish(conn, framed())
                await pgwire.results(conn)
        except WriteTimedOut as exc:  # PostgreSQL is stuck: the next batch goes to the spool, not to a wait
            if self.spool is not None:
                self._went_offline(exc)
        except psycopg.Error as exc:
            self._faults.fault(
                "idle connection lost", f"collector writer: dropping an idle connection after: {exc}", logging.WARNING
            )
            await self._drop_connection(slot)

    @contextlib.asynccontextmanager
    async def _bounded(self) -> AsyncIterator[None]:
        """Raises WriteTimedOut if the block takes longer than the write timeout, once what the
        connections had in flight is cancelled in the server and they are dropped."""
        try:
            async with asyncio.timeout(self._write_timeout_s):
                yield
        except TimeoutError:
            raise await self._gave_up() from None

    async def _gave_up(self) -> WriteTimedOut:
        await self._abandon()
        return WriteTimedOut(f"PostgreSQL did not finish a write within {self._write_timeout_s} s")

    async def _abandon(self) -> None:
        """Cancels in the server what either connection has in flight (the write that ran out of time,
        the next one armed behind it: both wait on the same lock), then drops both. Without the cancel
        a backend waiting on a lock would run its COPY once the lock is released, and hold back the
        cluster's snapshot xmin meanwhile; psycopg cancels the query it was waiting on itself, not the
        other connection's."""
        for slot in (0, 1):
            conn = self._conns[slot]
            if conn is not None and not conn.closed and conn.pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
                try:
                    await conn.cancel_safe(timeout=self._connect_timeout_s)
                except psycopg.Error as exc:  # the connection is dropped all the same
                    log.debug("collector writer: cancelling a timed-out write failed: %s", exc)
            await self._drop_connection(slot)

    async def _connection(self, slot: int) -> psycopg.AsyncConnection[Any]:
        conn = self._conns[slot]
        if conn is None or conn.closed:
            conn = await psycopg.AsyncConnection.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=self._connect_timeout_s,
                client_encoding="utf8",  # COPY's text fields are UTF-8 whatever the server's default
            )
            try:
                await conn.execute(_CREATE_STAGING)
                await conn.execute(_PREPARE_CLAIM)  # fails in a database not migrated yet
            except BaseException:  # an error, or the write's timeout (a lock holds the PREPARE's read of `events`)
                await conn.close()
                raise
            self._conns[slot] = conn
        return conn

    async def _drop_connection(self, slot: int) -> None:
        conn, self._conns[slot] = self._conns[slot], None
        if self._armed == slot:
            self._armed = None
        if conn is not None:
            await conn.close()

    async def _ensure_partitions(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Partitions for the coming days, checked at start-up and on the first write of each UTC day."""
        today = datetime.now(UTC).date()
        if self._partitions_day == today:
            return
        await conn.execute("select ensure_event_partitions(%s, %s)", (today, self._partitions_ahead + 1))
        self._partitions_day = today


async def _rollback(conn: psycopg.AsyncConnection[Any]) -> None:
    """Ends a failed transaction; a lost connection has none to end (it is dropped and replaced)."""
    if conn.pgconn.transaction_status == pq.TransactionStatus.INERROR:
        await conn.rollback()
