from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from collector.writer import GroupCommitWriter, Row, WriteFailed
from sluice.settings import Settings


def row(event_id: uuid.UUID | None = None) -> Row:
    now = datetime.now(UTC)
    return (event_id or uuid.uuid4(), "s", "pageview", now, None, now, None, None, None, None, None, b"{}")


def test_requests_queued_while_a_write_is_in_flight_share_the_next_one(
    settings: Settings, db: psycopg.Connection
) -> None:
    async def scenario() -> None:
        writer = GroupCommitWriter(settings)
        await writer.start()
        await asyncio.gather(*(writer.write([row(), row()]) for _ in range(50)))
        await writer.stop()

    asyncio.run(scenario())
    stored = db.execute("select count(*), count(distinct txid) from events").fetchone()
    assert stored is not None
    events, transactions = stored
    assert events == 100
    assert transactions < 50  # group commit: fewer transactions than requests


def test_stop_writes_what_is_queued_then_refuses(settings: Settings, db: psycopg.Connection) -> None:
    async def scenario() -> None:
        writer = GroupCommitWriter(settings)
        await writer.start()
        pending = [asyncio.create_task(writer.write([row()])) for _ in range(10)]
        await asyncio.sleep(0)  # the requests are queued, not yet written
        await writer.stop()
        await asyncio.gather(*pending)
        with pytest.raises(WriteFailed):
            await writer.write([row()])

    asyncio.run(scenario())
    assert db.execute("select count(*) from events").fetchone() == (10,)
