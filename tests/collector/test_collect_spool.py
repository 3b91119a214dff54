"""The spool: records on disk, torn tails, locks between processes, replay into PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from waiting import eventually

from sluice import spool_files
from sluice.collector.cors import AllowedOrigins
from sluice.collector.fault_log import FaultLog
from sluice.collector.routes import CollectPost
from sluice.collector.spool import Spool, SpoolFull
from sluice.collector.writer import GroupCommitWriter, Row, Sender, WriteFailed, copy_rows
from sluice.etl.status import status
from sluice.settings import Settings

AT = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
SENDER = Sender(AT, None, None, None)
MB = 1024 * 1024


def rows(n: int) -> list[Row]:
    return [(uuid.uuid4(), "s", "pageview", AT, None, None, None, b"{}") for _ in range(n)]


def down(settings: Settings) -> Settings:
    return replace(settings, database_url="host=127.0.0.1 port=1 user=postgres dbname=nothing", db_timeout_s=1)


def stored_ids(db: psycopg.Connection) -> list[uuid.UUID]:
    return [event_id for (event_id,) in db.execute("select event_id from events order by event_id")]


def test_records_read_back_in_order_and_a_torn_tail_is_ignored(tmp_path: Path) -> None:
    async def scenario() -> Path:
        spool = Spool(tmp_path, MB)
        spool.open()
        for n in (1, 2, 3):
            await spool.append(bytes([n]) * 100, n, AT)
        assert (spool.waiting_events, spool.waiting_bytes) == (6, 3 * (spool_files.HEADER.size + 100))
        [path] = spool_files.spool_files(spool.directory)
        await spool.close()
        return path

    path = asyncio.run(scenario())
    whole = path.read_bytes()
    path.write_bytes(whole[:-10])  # the last append cut short by a crash
    with path.open("rb") as file:
        records = list(spool_files.read_records(file))
    assert [(r.events, r.oldest, r.payload) for r in records] == [(1, AT, b"\x01" * 100), (2, AT, b"\x02" * 100)]
    damaged = bytearray(whole)
    damaged[spool_files.HEADER.size + 5] ^= 0xFF  # a flipped bit in the first payload
    path.write_bytes(bytes(damaged))
    with path.open("rb") as file:
        assert list(spool_files.read_records(file)) == []
    assert spool_files.contents(tmp_path) == spool_files.SpoolContents(files=1, bytes=len(whole), events=6)


def test_a_live_process_keeps_its_file_and_a_gone_one_leaves_it_to_be_adopted(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int, int]:
        first, second = Spool(tmp_path, MB), Spool(tmp_path, MB)
        first.open()
        await first.append(b"x" * 100, 5, AT)
        second.open()  # adopts what no live process holds: not `first`'s file, which is locked
        held = second.waiting_events
        await first.close()  # the file has records: it stays, unlocked
        second.adopt()
        adopted = second.waiting_events
        chunk = await second.next_chunk()
        assert chunk is not None
        assert chunk.data == b"x" * 100
        await second.replayed(chunk)
        assert await second.next_chunk() is None  # replayed to its end: removed
        files = len(spool_files.spool_files(second.directory))
        await second.close()
        return held, adopted, files

    assert asyncio.run(scenario()) == (0, 5, 1)  # the one file left is `second`'s own, until it closes
    assert spool_files.spool_files(spool_files.spool_dir(tmp_path)) == []


def test_the_spool_refuses_past_its_limit(tmp_path: Path) -> None:
    async def scenario() -> None:
        spool = Spool(tmp_path, 1000)
        spool.open()
        await spool.append(b"x" * 900, 1, AT)
        with pytest.raises(SpoolFull):
            await spool.append(b"x" * 100, 1, AT)
        await spool.close()

    asyncio.run(scenario())


def test_with_postgresql_down_writes_are_spooled_and_the_next_process_replays_them_once(
    settings: Settings, db: psycopg.Connection
) -> None:
    batches = [rows(3) for _ in range(20)]

    async def offline() -> None:
        spool = Spool(settings.data_dir, MB)
        spool.open()
        writer = GroupCommitWriter(down(settings), connect_timeout_s=1, spool=spool)
        await writer.start()
        await asyncio.gather(*(writer.write(batch, SENDER) for batch in batches))
        assert (writer.online, writer.spooled_events, spool.waiting_events) == (False, 60, 60)
        await writer.stop()
        await spool.close()

    async def online() -> None:
        spool = Spool(settings.data_dir, MB)
        spool.open()
        writer = GroupCommitWriter(settings, spool=spool)
        await writer.start()
        await eventually(lambda: spool.waiting_events == 0)
        await writer.stop()
        await spool.close()

    asyncio.run(offline())
    assert stored_ids(db) == []
    spooled = sum(spool_files.HEADER.size + len(copy_rows(batch, SENDER)) for batch in batches)  # a record each
    assert status(db, settings.data_dir)["spooled"] == {"files": 1, "bytes": spooled, "events": 60}
    [left] = spool_files.spool_files(spool_files.spool_dir(settings.data_dir))
    copy = left.with_name("copy-of-a-crashed-replay" + spool_files.SUFFIX)
    shutil.copy(left, copy)  # as if a process had committed its replay and died before removing the file
    asyncio.run(online())
    expected = sorted(event_id for batch in batches for event_id, *_ in batch)
    assert stored_ids(db) == expected  # each once, though both files held them
    assert status(db, settings.data_dir)["spooled"] == {"files": 0, "bytes": 0, "events": 0}


def test_the_writer_goes_back_online_and_empties_the_spool_while_taking_new_requests(
    settings: Settings, db: psycopg.Connection
) -> None:
    db.execute(
        """create function refuse() returns trigger language plpgsql as $$
           begin raise exception 'refused by test'; end $$;
           create trigger refuse before insert on event_ids for each statement execute function refuse()"""
    )
    early, late = [rows(2) for _ in range(10)], [rows(2) for _ in range(10)]

    async def scenario() -> None:
        spool = Spool(settings.data_dir, MB)
        spool.open()
        writer = GroupCommitWriter(settings, spool=spool)
        await writer.start()
        await asyncio.gather(*(writer.write(batch, SENDER) for batch in early))
        assert not writer.online
        db.execute("drop trigger refuse on event_ids")
        await asyncio.gather(*(writer.write(batch, SENDER) for batch in late))
        await eventually(lambda: spool.waiting_events == 0 and writer.online)
        await writer.stop()
        await spool.close()

    asyncio.run(scenario())
    assert stored_ids(db) == sorted(event_id for batch in early + late for event_id, *_ in batch)


def test_stop_spools_what_is_queued_when_postgresql_is_down(settings: Settings) -> None:
    async def scenario() -> int:
        spool = Spool(settings.data_dir, MB)
        spool.open()
        writer = GroupCommitWriter(down(settings), connect_timeout_s=1, spool=spool)
        writer.online = True  # as if PostgreSQL had gone just now: the queued batch meets the failure
        writer._task = asyncio.create_task(writer._run())
        pending = [asyncio.create_task(writer.write(rows(1), SENDER)) for _ in range(10)]
        await asyncio.sleep(0)
        await writer.stop()
        await asyncio.gather(*pending)
        with pytest.raises(WriteFailed):
            await writer.write(rows(1), SENDER)
        await spool.close()
        return spool_files.contents(settings.data_dir).events

    assert asyncio.run(scenario()) == 10


def test_a_full_queue_sends_requests_to_the_spool(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from sluice.collector import writer as writer_module

    monkeypatch.setattr(writer_module, "QUEUE_MAX_EVENTS", 2)

    async def scenario() -> int:
        spool = Spool(settings.data_dir, MB)
        spool.open()
        writer = GroupCommitWriter(settings, spool=spool)
        writer._pending_events = 2  # the queue is full: nothing is written while the test looks
        await writer.write(rows(1), SENDER)
        waiting = spool.waiting_events
        await spool.close()
        return waiting

    assert asyncio.run(scenario()) == 1


def test_copy_rows_are_the_payload_of_a_record(tmp_path: Path) -> None:
    data = copy_rows(rows(2), SENDER)

    async def scenario() -> bytes:
        spool = Spool(tmp_path, MB)
        spool.open()
        await spool.append(data, 2, AT)
        chunk = await spool.next_chunk()
        await spool.close()
        assert chunk is not None
        return chunk.data

    assert asyncio.run(scenario()) == data


def test_a_repeated_fault_is_logged_once_then_summarised(caplog: pytest.LogCaptureFixture) -> None:
    faults = FaultLog(logging.getLogger("test.faults"), interval_s=3600)
    with caplog.at_level(logging.INFO, "test.faults"):
        for n in range(1000):
            faults.fault("outage", f"write {n} failed")
        faults.cleared("outage", "back")
        faults.cleared("outage", "back")  # nothing ongoing: says nothing
    assert [r.getMessage() for r in caplog.records] == ["write 0 failed", "back (outage: 1000 in all)"]
    every = FaultLog(logging.getLogger("test.faults"), interval_s=0)
    caplog.clear()
    with caplog.at_level(logging.INFO, "test.faults"):
        every.fault("outage", "first")
        every.fault("outage", "second")
    assert (
        caplog.records[1]
        .getMessage()
        .startswith("outage: 1 more in the last 0 s (2 since it began); the latest: second")
    )


def test_a_client_gone_mid_body_is_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    messages = iter(
        [{"type": "http.request", "body": b'{"eventType":', "more_body": True}, {"type": "http.disconnect"}]
    )
    sent: list[object] = []

    async def receive() -> object:
        return next(messages)

    async def send(message: object) -> None:
        sent.append(message)

    scope = {"type": "http", "headers": [(b"content-type", b"application/json")], "client": ("203.0.113.7", 1)}
    with caplog.at_level(logging.INFO, "sluice.collector"):
        asyncio.run(CollectPost(AllowedOrigins(("*",)))(scope, receive, send))  # type: ignore[arg-type]
    assert sent == []
    assert [(r.getMessage(), r.exc_info) for r in caplog.records] == [
        ("collector: a client (203.0.113.7) disconnected before its body had arrived", None)
    ]


def test_a_collector_started_during_an_outage_uses_postgresql_once_it_is_back(
    settings: Settings, db: psycopg.Connection
) -> None:
    from collector_testing import collector_client, event, post
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(settings.database_url)
    allow = f"alter database {params['dbname']} with allow_connections %s"  # the test's own database
    with psycopg.connect(make_conninfo(settings.database_url, dbname="postgres"), autocommit=True) as admin:
        admin.execute(allow % "false")  # as if PostgreSQL were away while the collector starts
        with collector_client(replace(settings, db_timeout_s=1)) as client:
            admin.execute(allow % "true")
            assert post(client, event()).status_code == 202  # spooled: the writer found PostgreSQL away
            health = {}
            for _ in range(600):
                health = client.get("/health").json()
                if health["status"] == "ok":
                    break
                time.sleep(0.05)
            assert health["status"] == "ok"
    assert db.execute("select count(*) from events").fetchone() == (1,)
