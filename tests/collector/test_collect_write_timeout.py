"""A write PostgreSQL neither commits nor fails (the events table locked) is given up after the
writer's timeout and spooled: requests are answered, and once the lock is gone the spool replays
every acknowledged event exactly once. (The COMMIT that lands all the same: tests/faults/test_write_timeout.py.)"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import psycopg
from collector_testing import collector_client, event, post
from waiting import eventually

from sluice import spool_files
from sluice.collector.spool import Spool
from sluice.collector.writer import GroupCommitWriter, Row, Sender
from sluice.db import connect
from sluice.settings import Settings

TIMEOUT_S = 1
MARGIN_S = 2.0  # the cancel, the spool's fsync, a busy machine
LOCK = "lock table events in access exclusive mode"  # COPY waits; so does a new connection's PREPARE
SENDER = Sender(datetime.now(UTC), None, None, None)
MB = 1024 * 1024


def rows(n: int) -> list[Row]:
    return [(uuid.uuid4(), "s", "pageview", SENDER.received_at, None, None, None, b"{}") for _ in range(n)]


def each_once(db: psycopg.Connection) -> dict[uuid.UUID, int]:
    counts: dict[uuid.UUID, int] = dict(
        db.execute("select event_id, count(*) from events group by event_id").fetchall()
    )
    claimed = db.execute("select count(*) from event_ids").fetchone()
    assert claimed == (len(counts),)
    return counts


def test_writes_held_by_a_lock_are_spooled_within_the_timeout_and_replayed_once_after(
    settings: Settings, db: psycopg.Connection
) -> None:
    """Under load, so that a batch is in flight on one connection and the next write armed on the
    other when the lock is granted: both wait on it, both are abandoned."""
    acknowledged: list[uuid.UUID] = []
    waits: list[float] = []

    async def scenario() -> tuple[bool, int]:
        spool = Spool(settings.data_dir, MB)
        spool.open()
        writer = GroupCommitWriter(settings, spool=spool, write_timeout_s=TIMEOUT_S)
        await writer.start()
        stop = asyncio.Event()

        async def client() -> None:
            while not stop.is_set():
                batch = rows(3)
                started = time.monotonic()
                await writer.write(batch, SENDER)
                waits.append(time.monotonic() - started)
                acknowledged.extend(event_id for event_id, *_ in batch)
                await asyncio.sleep(0.01)

        clients = [asyncio.create_task(client()) for _ in range(8)]
        await asyncio.sleep(0.3)
        lock = await psycopg.AsyncConnection.connect(settings.database_url)
        await lock.execute("set search_path = sluice")
        await lock.execute(LOCK)  # granted between two batches; the writes after it wait
        await asyncio.sleep(3 * TIMEOUT_S + MARGIN_S)  # past the first timeout, and replays timing out too
        held = (not writer.online, writer.spooled_events)
        await lock.rollback()
        await lock.close()
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*clients), 10)
        await eventually(lambda: spool.waiting_events == 0 and writer.online)
        await writer.stop()
        await spool.close()
        return held

    offline, spooled = asyncio.run(scenario())
    assert offline
    assert spooled > 0
    assert max(waits) < TIMEOUT_S + MARGIN_S
    assert each_once(db) == {event_id: 1 for event_id in acknowledged}


def test_a_request_waits_no_longer_than_the_write_timeout_while_the_table_is_locked(
    settings: Settings, db: psycopg.Connection
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(6)]
    with collector_client(replace(settings, write_timeout_s=TIMEOUT_S)) as client:
        assert post(client, event(eventId=ids[0])).status_code == 202
        with connect(settings) as lock:
            lock.execute(LOCK)  # waits for the writer's armed connection to go idle (0.5 s)
            # a writer that waited for the lock would hang the test: this ends it, and the waits are too long
            release = threading.Timer(5 * (TIMEOUT_S + MARGIN_S), lock.rollback)
            release.start()
            answers = []
            for event_id in ids[1:]:
                started = time.monotonic()
                status = post(client, event(eventId=event_id)).status_code
                answers.append((status, time.monotonic() - started < TIMEOUT_S + MARGIN_S))
            assert answers == [(202, True)] * 5
            assert spool_files.contents(settings.data_dir).events == 5
            assert client.get("/health").json()["status"] == "degraded"
            release.cancel()
            lock.rollback()
        for _ in range(600):
            if client.get("/health").json()["status"] == "ok":
                break
            time.sleep(0.05)
        assert client.get("/health").json()["status"] == "ok"
    assert each_once(db) == {uuid.UUID(event_id): 1 for event_id in ids}
