"""Group commit: one writer per process appends every queued event to `events` in one transaction.

Requests hand their rows to `write()` and wait. The writer takes everything that queued while its
previous write was in flight, `COPY`s it into a temporary staging table and moves the new rows into
`events` (skipping event ids already in `event_ids`) in ONE transaction, then wakes every waiting
request: with success after COMMIT, or all of them with `WriteFailed`, in which case nothing of the
batch is stored. When idle it writes at once; there is no fixed wait window.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from psycopg import generators, pq
from psycopg.abc import PQGen
from psycopg.pq.abc import PGconn, PGresult
from psycopg.waiting import Wait

from sluice.db import conninfo
from sluice.settings import Settings

log = logging.getLogger("sluice.collector")

# One row of `events`, minus txid (the database stamps it): the order of _COLUMNS.
Row = tuple[
    uuid.UUID,  # event_id
    str,  # site_id
    str,  # event_type
    datetime,  # occurred_at
    datetime | None,  # client_timestamp
    datetime,  # received_at
    str | None,  # visitor_id
    str | None,  # session_id
    str | None,  # ip_hash
    str | None,  # country
    str | None,  # user_agent
    bytes,  # payload: JSON text, sent to jsonb as it is
]
_COLUMNS = (
    "event_id, site_id, event_type, occurred_at, client_timestamp, received_at,"
    " visitor_id, session_id, ip_hash, country, user_agent, payload"
)
_TYPES = [
    "uuid",
    "text",
    "text",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "text",
    "text",
    "text",
    "text",
    "text",
    "jsonb",
]
_CREATE_STAGING = f"""
    create temporary table collector_staging (
        {", ".join(f"{name} {type_}" for name, type_ in zip(_COLUMNS.split(", "), _TYPES, strict=True))}
    ) on commit delete rows
"""
# The whole write as ONE simple-protocol query, so one transaction costs two round trips (send it and
# get COPY's go-ahead; send the rows and get every result) instead of five, each of which would
# wait its turn behind the HTTP work queued on the event loop.
#
# The move keeps the first copy of each id in the batch, claims the ids that are new in event_ids,
# and inserts only those. Sorting by id makes concurrent writers (other workers) take index locks in
# the same order, so they cannot deadlock on a retried event.
_WRITE = f"""
    begin;
    copy collector_staging ({_COLUMNS}) from stdin;
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
    select {_COLUMNS} from firsts join fresh using (event_id);
    commit
""".encode()
_CHUNK = 128 * 1024  # libpq takes copy data in pieces this size without blocking


def copy_lines(rows: Sequence[Row]) -> bytes:
    """Rows in COPY's text format: tab-separated, \\N for null, backslash escapes."""
    iso: dict[datetime | None, str] = {None: "\\N"}  # rows share received_at; occurred_at is often one of the others
    lines = []
    for event_id, site_id, event_type, occurred_at, client_timestamp, received_at, *texts, payload in rows:
        times = []
        for at in (occurred_at, client_timestamp, received_at):
            found = iso.get(at)
            if found is None:
                found = iso[at] = at.isoformat()  # type: ignore[union-attr]  # None is in the dict
            times.append(found)
        fields = [event_id.hex, _text(site_id), _text(event_type), *times, *map(_text, texts)]  # uuid takes bare hex
        # orjson writes no raw control characters, so only the backslash needs escaping.
        lines.append(b"%s\t%s\n" % ("\t".join(fields).encode(), payload.replace(b"\\", b"\\\\")))
    return b"".join(lines)


def _text(value: str | None) -> str:
    if value is None:
        return "\\N"
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


class WriteFailed(Exception):
    """The batch holding these events was not committed; none of it is stored."""


class GroupCommitWriter:
    def __init__(self, settings: Settings, *, connect_timeout_s: int = 5) -> None:
        self._conninfo = conninfo(settings, "sluice-collector-writer")
        self._connect_timeout_s = connect_timeout_s
        self._partitions_ahead = settings.partitions_ahead_days
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._partitions_day: date | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        try:  # create partitions ahead now if the database is there; else at the first write
            await self._ensure_partitions(await self._connection())
        except psycopg.Error as exc:
            log.warning("collector writer: PostgreSQL unavailable at start-up (%s); will retry on first write", exc)
        self._task = asyncio.create_task(self._run(), name="sluice-group-commit")

    async def stop(self) -> None:
        """Writes what is still queued, then closes the connection."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        await self._drop_connection()

    async def write(self, rows: Sequence[Row]) -> None:
        """Returns once `rows` are committed; raises WriteFailed if their batch was not."""
        if self._stopping:
            raise WriteFailed("the collector is shutting down")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((copy_lines(rows), future))
        self._wakeup.set()
        await future

    async def _run(self) -> None:
        while True:
            while not self._pending:
                if self._stopping:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            batch, self._pending = self._pending, []
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[bytes, asyncio.Future[None]]]) -> None:
        try:
            await self._write(b"".join(data for data, _ in batch))
        except Exception as exc:
            log.error("collector writer: a batch of %d requests was not stored: %s", len(batch), exc)
            for _, future in batch:
                if not future.done():  # a request cancelled while waiting has nobody to tell
                    future.set_exception(WriteFailed(f"the events could not be stored: {type(exc).__name__}"))
        else:
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    async def _write(self, data: bytes) -> None:
        # One retry, on a fresh connection when the old one broke. Retrying is safe even if the
        # first COMMIT did land before the error: the ids are then in event_ids and nothing is stored twice.
        for attempt in (1, 2):
            conn = await self._connection()
            try:
                await self._ensure_partitions(conn)
                await self._copy_and_move(conn, data)
                return
            except psycopg.OperationalError as exc:  # a lost connection, or a deadlock / serialization failure
                if conn.broken or conn.closed or conn.pgconn.status != pq.ConnStatus.OK:
                    await self._drop_connection()
                if attempt == 2:
                    raise
                log.warning("collector writer: retrying a write after: %s", exc)

    async def _copy_and_move(self, conn: psycopg.AsyncConnection[Any], data: bytes) -> None:
        """Runs _WRITE with `data` as the COPY rows, at libpq level (psycopg's copy() takes one statement)."""
        pgconn = conn.pgconn
        async with conn.lock:
            try:
                pgconn.send_query(_WRITE)
                _raise_on_error(await conn.wait(generators.execute(pgconn)), pgconn)  # begin, then COPY_IN
                for start in range(0, len(data), _CHUNK):
                    await conn.wait(generators.copy_to(pgconn, data[start : start + _CHUNK], flush=False))
                _raise_on_error(await conn.wait(_end_copy(pgconn)), pgconn)  # copy, insert, commit
            except psycopg.DatabaseError:
                if pgconn.transaction_status == pq.TransactionStatus.INERROR:
                    pgconn.send_query(b"rollback")
                    await conn.wait(generators.execute(pgconn))
                raise

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            conn = await psycopg.AsyncConnection.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=self._connect_timeout_s,
                client_encoding="utf8",  # the COPY text is UTF-8 whatever the server's default
            )
            await conn.execute(_CREATE_STAGING)
            self._conn = conn
        return self._conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def _ensure_partitions(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Partitions for the coming days, checked at start-up and on the first write of each UTC day."""
        today = datetime.now(UTC).date()
        if self._partitions_day == today:
            return
        await conn.execute("select ensure_event_partitions(%s, %s)", (today, self._partitions_ahead + 1))
        self._partitions_day = today


def _end_copy(pgconn: PGconn) -> PQGen[list[PGresult]]:
    """Like psycopg's copy_end, but collects the results of the statements that follow the COPY."""
    while pgconn.put_copy_end(None) == 0:
        while not (yield Wait.W):
            continue
    # Flush at once, and wait for the socket only if it is full: a wait costs a turn of the event loop.
    while pgconn.flush() != 0:
        while not (yield Wait.W):
            continue
    results: list[PGresult] = yield from generators.fetch_many(pgconn)
    return results


def _raise_on_error(results: list[PGresult], pgconn: PGconn) -> None:
    for result in results:
        if result.status == pq.ExecStatus.FATAL_ERROR:
            raise psycopg.errors.error_from_result(result, encoding=pgconn._encoding)
