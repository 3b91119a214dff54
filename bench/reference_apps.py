"""The reference servers `bench/ingest.py` compares the collector with, as uvicorn app factories.

(a) `no_database`: the same Starlette/uvicorn stack, reading and parsing the body and answering 202
    without touching the database: the HTTP ceiling.
(b) `insert_per_request`: one INSERT (into event_ids and events) and one COMMIT per request through
    an async connection pool: what the collector would be without group commit.
(a') `collector_without_database`: the collector whose writer acknowledges without writing.
(p) `collector_public_copy`: the collector whose fast write goes through psycopg's public COPY API
    (bench/public_copy.py) instead of collector/pgwire.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def _accepted(event_ids: list[uuid.UUID], received_at: datetime) -> Response:
    body = {"status": "accepted", "event_ids": event_ids, "received_at": received_at}
    return Response(orjson.dumps(body), 202, media_type="application/json")


def _events(doc: Any) -> list[Any]:
    if isinstance(doc, dict) and "events" in doc:
        return list(doc["events"])
    return doc if isinstance(doc, list) else [doc]


def no_database() -> Starlette:
    async def collect(request: Request) -> Response:
        received_at = datetime.now(UTC)
        events = _events(orjson.loads(await request.body()))
        return _accepted([uuid.uuid4() for _ in events], received_at)

    return Starlette(routes=[Route("/collect", collect, methods=["POST"])])


def insert_per_request() -> Starlette:
    from sluice.collector.validate import new_event_id

    pool = AsyncConnectionPool(
        os.environ["DATABASE_URL"] + " options='-c search_path=sluice'",
        min_size=20,
        max_size=20,
        open=False,
        kwargs={"autocommit": True},
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with pool:
            await pool.wait()
            yield

    async def collect(request: Request) -> Response:
        received_at = datetime.now(UTC)
        events = _events(orjson.loads(await request.body()))
        ids = [new_event_id() for _ in events]  # as the collector makes them
        async with pool.connection() as conn, conn.transaction():
            for event_id, event in zip(ids, events, strict=True):
                await conn.execute(
                    """
                    with fresh as (
                        insert into event_ids (event_id, received_at) values (%(id)s, %(at)s)
                        on conflict do nothing returning event_id
                    )
                    insert into events (event_id, site_id, event_type, occurred_at, received_at, payload)
                    select %(id)s, %(site)s, %(type)s, %(at)s, %(at)s, %(payload)s from fresh
                    """,
                    {
                        "id": event_id,
                        "at": received_at,
                        "site": event["siteId"],
                        "type": event["eventType"],
                        "payload": Jsonb(event),
                    },
                )
        return _accepted(ids, received_at)

    return Starlette(routes=[Route("/collect", collect, methods=["POST"])], lifespan=lifespan)


def collector_without_database() -> Starlette:
    """(a') The collector itself, every step the same, but its writer acknowledges without writing.

    The database is still used once per process, for the day's IP salt.
    """
    import sluice.collector.app
    from sluice.app import create_app
    from sluice.collector.writer import GroupCommitWriter, Row, Sender, copy_rows

    class AckingWriter(GroupCommitWriter):
        async def start(self) -> None:
            pass

        async def stop(self) -> None:
            pass

        async def write(self, rows: Sequence[Row], sender: Sender) -> None:
            copy_rows(rows, sender)  # the same per-event work as the real writer, minus the database

    sluice.collector.app.GroupCommitWriter = AckingWriter  # type: ignore[misc]
    return create_app()


def collector_public_copy() -> Starlette:
    """(p) The collector, every step the same, but its fast write on psycopg's public COPY API."""
    from public_copy import PublicCopyWriter  # bench/ is on the servers' PYTHONPATH

    import sluice.collector.app
    from sluice.app import create_app

    sluice.collector.app.GroupCommitWriter = PublicCopyWriter  # type: ignore[misc]
    return create_app()
