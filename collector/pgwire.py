"""The writer's fast write at the protocol level: every use of psycopg's internals is in this module.

Why not psycopg's public API: the fast write is ONE simple-protocol query, `begin; copy …; execute
…; commit`, sent ahead on an idle connection ("armed") so that COPY's go-ahead is back before the
rows are. A transaction then costs one round trip once its rows are ready: send them, read every
result. psycopg's public `cursor.copy()` refuses a COPY that shares its query with other statements
and waits for the COPY's result before the next statement can be sent: even with `begin` and the
go-ahead taken ahead, two round trips once the rows are ready, each waiting its turn behind the
HTTP work on the event loop, and more of the writer's CPU per event. bench/README.md ("The
writer's COPY: psycopg internals or its public API") has the measurements; the rest of the writer
uses the public API.

What is internal here: `psycopg.generators` and `psycopg.waiting` (the non-blocking protocol steps
psycopg itself is built from), `AsyncConnection.wait` (runs such a step on the event loop), and
`error_from_result` with the connection's encoding (psycopg's own exception for a failed result).
`conn.pgconn` and `psycopg.pq` are public.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import generators, pq
from psycopg.abc import PQGen
from psycopg.pq.abc import PGconn, PGresult
from psycopg.waiting import Wait

_CHUNK = 128 * 1024  # libpq takes copy data in pieces this size without blocking


async def send_query(conn: psycopg.AsyncConnection[Any], query: bytes) -> None:
    """Sends `query` (simple protocol: it may hold several statements) without waiting for an answer."""
    conn.pgconn.send_query(query)
    await conn.wait(generators.send(conn.pgconn))


async def until_copy_in(conn: psycopg.AsyncConnection[Any]) -> None:
    """Reads the results of a sent query up to COPY's go-ahead; raises the first error among them."""
    pgconn = conn.pgconn
    pgconn.consume_input()  # the go-ahead has usually arrived: then it is read without a wait
    _raise_on_error(await conn.wait(generators.fetch_many(pgconn)), pgconn)


async def copy_and_finish(conn: psycopg.AsyncConnection[Any], data: bytes) -> None:
    """Sends a whole binary COPY stream and its end, flushed at once (waiting only if the socket is full)."""
    await conn.wait(_send_rows(conn.pgconn, data))


async def results(conn: psycopg.AsyncConnection[Any]) -> None:
    """Reads every remaining result of the query (the COPY's, then the statements after it)."""
    pgconn = conn.pgconn
    _raise_on_error(await conn.wait(generators.fetch_many(pgconn)), pgconn)


def _send_rows(pgconn: PGconn, data: bytes) -> PQGen[None]:
    for start in range(0, len(data), _CHUNK):
        while pgconn.put_copy_data(data[start : start + _CHUNK]) == 0:
            while not (yield Wait.W):
                continue
    while pgconn.put_copy_end(None) == 0:
        while not (yield Wait.W):
            continue
    while pgconn.flush() != 0:
        while not (yield Wait.W):
            continue


def _raise_on_error(found: list[PGresult], pgconn: PGconn) -> None:
    for result in found:
        if result.status == pq.ExecStatus.FATAL_ERROR:
            raise psycopg.errors.error_from_result(result, encoding=pgconn._encoding)
