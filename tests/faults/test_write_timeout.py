"""A write that times out after its COMMIT landed: spooled all the same, replayed, stored once.

The COMMIT is made to land and then wait, where a cancel cannot undo it: a private cluster (never
the shared server) with `synchronous_standby_names` naming a standby that does not exist. Each
commit is then written locally and waits for that standby; the writer's timeout cancels the wait
(PostgreSQL warns that the transaction "has already committed locally"), and the writer, which
cannot tell, spools the batch. Once the standby is no longer asked for, the replay finds every id
claimed and stores nothing twice."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from fault_rig import private_postgres
from waiting import eventually

from sluice.collector.spool import Spool
from sluice.collector.writer import GroupCommitWriter, Sender
from sluice.settings import Settings

SENDER = Sender(datetime.now(UTC), None, None, None)


def test_a_batch_committed_and_spooled_after_a_timeout_is_stored_once(tmp_path: Path) -> None:
    with private_postgres() as server:
        admin_url = server.url.replace("/sluice?", "/postgres?")
        settings = replace(Settings(), database_url=server.url, data_dir=tmp_path / "data", etl_schedule="off")

        def standby(names: str) -> None:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f"alter system set synchronous_standby_names = '{names}'")
                admin.execute("select pg_reload_conf()")

        def stored() -> list[tuple[uuid.UUID, int]]:
            with psycopg.connect(server.url) as conn:
                return conn.execute(
                    "select event_id, count(*) from sluice.events group by event_id order by event_id"
                ).fetchall()

        batch = [(uuid.uuid4(), "s", "pageview", SENDER.received_at, None, None, None, b"{}") for _ in range(3)]
        ids = sorted(event_id for event_id, *_ in batch)

        async def scenario() -> tuple[list[tuple[uuid.UUID, int]], int, bool]:
            spool = Spool(settings.data_dir, 1024 * 1024)
            spool.open()
            writer = GroupCommitWriter(settings, spool=spool, write_timeout_s=1)
            await writer.start()
            # both connections made (a new one's temporary table would wait for the standby too)
            await writer.write([(uuid.uuid4(), "s", "pageview", SENDER.received_at, None, None, None, b"{}")], SENDER)
            standby("nobody")
            await asyncio.sleep(1.0)  # the armed write goes idle (0.5 s) and ends: the next one reads the setting
            await asyncio.wait_for(writer.write(batch, SENDER), 10)  # answered: spooled after the timeout
            spooled, online = spool.waiting_events, writer.online
            committed: list[tuple[uuid.UUID, int]] = []
            for _ in range(100):  # the cancelled wait ends a moment later; then the commit is visible
                committed = [row for row in stored() if row[0] in ids]
                if committed:
                    break
                await asyncio.sleep(0.05)
            standby("")
            await eventually(lambda: spool.waiting_events == 0 and writer.online)
            await writer.stop()
            await spool.close()
            return committed, spooled, online

        committed, spooled, online = asyncio.run(scenario())
        assert (committed, spooled, online) == ([(i, 1) for i in ids], 3, False)  # committed, and spooled
        assert [row for row in stored() if row[0] in ids] == [(i, 1) for i in ids]  # replayed: still once
        with psycopg.connect(server.url) as conn:
            assert conn.execute("select count(*) from sluice.event_ids").fetchone() == (4,)
