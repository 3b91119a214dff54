from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone

import orjson
import psycopg
import pytest

from sluice.collector.writer import GroupCommitWriter, Row, Sender, WriteFailed, copy_rows, copy_rows_of
from sluice.settings import Settings

SENDER = Sender(datetime.now(UTC), None, None, None)


def row(event_id: uuid.UUID | None = None) -> Row:
    return (event_id or uuid.uuid4(), "s", "pageview", SENDER.received_at, None, None, None, b"{}")


def test_requests_queued_while_a_write_is_in_flight_share_the_next_one(
    settings: Settings, db: psycopg.Connection
) -> None:
    async def scenario() -> None:
        writer = GroupCommitWriter(settings)
        await writer.start()
        await asyncio.gather(*(writer.write([row(), row()], SENDER) for _ in range(50)))
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
        pending = [asyncio.create_task(writer.write([row()], SENDER)) for _ in range(10)]
        await asyncio.sleep(0)  # the requests are queued, not yet written
        await writer.stop()
        await asyncio.gather(*pending)
        with pytest.raises(WriteFailed):
            await writer.write([row()], SENDER)

    asyncio.run(scenario())
    assert db.execute("select count(*) from events").fetchone() == (10,)


def stored_ids(db: psycopg.Connection) -> list[tuple[uuid.UUID, int]]:
    return db.execute("select event_id, count(*) from events group by event_id order by event_id").fetchall()


def test_new_ids_take_the_fast_write(settings: Settings, db: psycopg.Connection) -> None:
    async def scenario() -> int:
        writer = GroupCommitWriter(settings)
        await writer.start()
        for _ in range(3):
            await asyncio.gather(*(writer.write([row(), row()], SENDER) for _ in range(5)))
        await writer.stop()
        return writer.careful_writes

    assert asyncio.run(scenario()) == 0
    assert db.execute("select count(*), count(distinct event_id) from events").fetchone() == (30, 30)
    assert db.execute("select count(*) from event_ids").fetchone() == (30,)


def test_an_id_stored_by_an_earlier_batch_sends_the_batch_to_the_careful_write(
    settings: Settings, db: psycopg.Connection
) -> None:
    retried, fresh = uuid.uuid4(), uuid.uuid4()

    async def scenario() -> int:
        writer = GroupCommitWriter(settings)
        await writer.start()
        await writer.write([row(retried)], SENDER)
        await writer.write([row(fresh), row(retried)], SENDER)
        await writer.stop()
        return writer.careful_writes

    assert asyncio.run(scenario()) == 1
    assert stored_ids(db) == sorted([(retried, 1), (fresh, 1)])
    assert db.execute("select count(*) from event_ids").fetchone() == (2,)


def test_a_request_stamped_before_the_claim_window_takes_the_careful_write_and_is_claimed(
    settings: Settings, db: psycopg.Connection
) -> None:
    # The fast write claims ids from the partitions of the last day only; a request stamped earlier
    # (it cannot have queued that long, but the clock can jump) must still have its id claimed.
    event_id = uuid.uuid4()
    old = Sender(datetime.now(UTC) - timedelta(days=2), None, None, None)
    stamped_old: Row = (event_id, "s", "pageview", old.received_at, None, None, None, b"{}")

    async def scenario() -> int:
        writer = GroupCommitWriter(settings)
        await writer.start()
        await writer.write([row()], SENDER)  # arms the other connection with today's floor
        await writer.write([stamped_old], old)
        await writer.write([stamped_old], old)  # a retry
        await writer.stop()
        return writer.careful_writes

    assert asyncio.run(scenario()) == 2
    assert db.execute("select count(*) from events where event_id = %s", (event_id,)).fetchone() == (1,)
    assert db.execute("select count(*) from event_ids where event_id = %s", (event_id,)).fetchone() == (1,)


def test_an_id_twice_in_one_batch_is_stored_once(settings: Settings, db: psycopg.Connection) -> None:
    twice, other = uuid.uuid4(), uuid.uuid4()

    async def scenario() -> int:
        writer = GroupCommitWriter(settings)
        await writer.start()
        # Within one request, and across two requests that share a batch.
        await writer.write([row(twice), row(other), row(twice)], SENDER)
        await asyncio.gather(writer.write([row(other)], SENDER), writer.write([row(other)], SENDER))
        await writer.stop()
        return writer.careful_writes

    assert asyncio.run(scenario()) == 2
    assert stored_ids(db) == sorted([(twice, 1), (other, 1)])


def test_two_writers_with_the_same_ids_store_each_once_without_deadlock(
    settings: Settings, db: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    # Two workers' writers, receiving the same retried events in opposite orders at the same time.
    ids = [uuid.uuid4() for _ in range(400)]

    async def send(writer: GroupCommitWriter, order: list[uuid.UUID]) -> None:
        await asyncio.gather(
            *(writer.write([row(i) for i in order[n : n + 20]], SENDER) for n in range(0, len(order), 20))
        )

    async def scenario() -> int:
        first, second = GroupCommitWriter(settings), GroupCommitWriter(settings)
        await first.start()
        await second.start()
        for _ in range(3):
            await asyncio.gather(send(first, ids), send(second, ids[::-1]))
        await first.stop()
        await second.stop()
        return first.careful_writes + second.careful_writes

    assert asyncio.run(scenario()) > 0  # the fast writes did meet each other's ids
    assert stored_ids(db) == sorted((i, 1) for i in ids)
    assert db.execute("select count(*) from event_ids").fetchone() == (400,)
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]  # no deadlock, no retry


def test_an_idle_writer_leaves_no_transaction_open(
    settings: Settings, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sluice.collector.writer._IDLE_S", 1.0)

    async def writer_states(until: list[str]) -> list[str]:
        for _ in range(100):  # the states change a moment after the writer has sent its query
            rows = db.execute(
                """select state from pg_stat_activity
                   where application_name = 'sluice-collector-writer' and datname = current_database()"""
            ).fetchall()
            states = sorted(r[0] for r in rows)
            if states == until:
                break
            await asyncio.sleep(0.02)
        return states

    async def scenario() -> tuple[list[str], list[str]]:
        writer = GroupCommitWriter(settings)
        await writer.start()
        await writer.write([row()], SENDER)
        busy = await writer_states(until=["active", "idle"])  # the other one holds the next write's COPY
        idle = await writer_states(until=["idle", "idle"])
        await writer.stop()
        return busy, idle

    assert asyncio.run(scenario()) == (["active", "idle"], ["idle", "idle"])
    assert db.execute("select count(*) from events").fetchone() == (1,)


def test_rows_are_stored_exactly_as_given(settings: Settings, db: psycopg.Connection) -> None:
    # COPY's binary format: every kind of value the collector sends, at the edges of its range.
    india, pacific = timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))
    rows: list[Row] = [
        (uuid.uuid4(), "site", "click", datetime(1, 1, 1, tzinfo=UTC), None, None, None, b'{"a":"\\\\ \\t"}'),
        (
            uuid.uuid4(),
            "żółw 🐢\t\\N",
            "x" * 200,
            datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            datetime(2026, 5, 4, 17, 30, 0, 120001, tzinfo=india),
            "v\n1",
            "s\\1",
            b'{"props":{"n":1.5,"u":"\\u2028"}}',
        ),
        (
            uuid.uuid4(),
            "s",
            "pageview",
            SENDER.received_at,
            datetime(1999, 12, 31, 16, 0, tzinfo=pacific),
            "",
            "",
            b"[]",
        ),
    ]
    sender = Sender(SENDER.received_at, "ab" * 16, "PL", "UA\\with\ttab", "PL-14", "Warszawa")

    async def scenario() -> None:
        writer = GroupCommitWriter(settings)
        await writer.start()
        await writer.write(rows, sender)
        await writer.stop()

    asyncio.run(scenario())
    stored = db.execute(
        """select event_id, site_id, event_type, occurred_at, client_timestamp, visitor_id, session_id,
                  payload::text, received_at, ip_hash, country, user_agent, region, city
           from events"""
    ).fetchall()
    expected = [(*r[:7], orjson.dumps(orjson.loads(r[7])).decode(), *sender) for r in rows]
    normalise = [(*r[:7], orjson.dumps(orjson.loads(r[7])).decode(), *r[8:]) for r in stored]
    assert sorted(normalise) == sorted(expected)


def test_a_time_repeated_by_the_next_row_is_encoded_as_that_row_s_own() -> None:
    # copy_rows reuses the previous row's encoding of an equal time: rows that repeat, alternate,
    # change zone at the same instant, or lose their client time give the bytes each row gives alone.
    at = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    later = at + timedelta(microseconds=1)
    same_instant = at.astimezone(timezone(timedelta(hours=5, minutes=30)))
    times = [(at, at), (at, at), (later, None), (later, None), (at, later), (same_instant, at), (at, None), (at, at)]
    rows: list[Row] = [
        (uuid.uuid4(), "s", "pageview", occurred, client, None, None, b"{}") for occurred, client in times
    ]
    assert copy_rows(rows, SENDER) == b"".join(copy_rows([row], SENDER) for row in rows)


def test_copy_rows_of_many_senders_is_each_senders_copy_rows_joined() -> None:
    at = datetime(2026, 8, 1, 12, 0, tzinfo=UTC)
    later = datetime(2026, 8, 1, 14, 30, 0, 250, tzinfo=timezone(timedelta(hours=2)))  # another offset
    groups: list[tuple[list[Row], Sender]] = [
        (
            [
                (uuid.uuid4(), "s", "pageview", at, at, "v1", None, b'{"a":1}'),  # client time: the same object
                (uuid.uuid4(), "s", "pageview", later, at, "v1", "x", b"{}"),  # another client time
                (uuid.uuid4(), "t", "click", later, None, None, None, b"{}"),
            ],
            Sender(at, "h1", "US", "UA/1", "US-CA", "Zürich"),
        ),
        ([(uuid.uuid4(), "s", "pageview", at, None, "v1", None, b"{}")], Sender(at, None, None, None)),
        ([(uuid.uuid4(), "t", "pageview", later, later, "v2", "x", b"{}")], Sender(later, "h1", "US", "UA/1")),
    ]

    assert copy_rows_of(groups) == b"".join(copy_rows(rows, sender) for rows, sender in groups)
    assert copy_rows_of([]) == b""


def test_only_the_import_s_writer_commits_without_waiting_for_the_wal_flush(
    settings: Settings, db: psycopg.Connection
) -> None:
    """/collect acknowledges an event once it is durable; `sluice import` makes its writes durable
    once, at its end (importer._make_durable), and is re-runnable meanwhile."""

    async def setting_of(writer: GroupCommitWriter) -> str:
        conn = await writer._connection(0)
        found = await (await conn.execute("select current_setting('synchronous_commit')")).fetchone()
        await writer._drop_connection(0)
        assert found is not None
        return str(found[0])

    async def scenario() -> tuple[str, str]:
        return await setting_of(GroupCommitWriter(settings)), await setting_of(
            GroupCommitWriter(settings, durable_commits=False)
        )

    server = db.execute("select current_setting('synchronous_commit')").fetchone()
    assert asyncio.run(scenario()) == (server[0] if server else None, "off")
