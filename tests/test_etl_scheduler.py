"""The schedule in one list, and one leader among serving processes with takeover in seconds."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace

import psycopg
import pytest
from eventlog import event, insert

from sluice.etl.scheduler import Job, Scheduler, schedule
from sluice.settings import Settings


def test_the_schedule_is_one_list_and_off_means_empty(settings: Settings) -> None:
    assert [(job.name, job.every_s) for job in schedule(replace(settings, etl_schedule="60"))] == [
        ("etl", 60),
        ("retention", 24 * 3600),
    ]
    assert schedule(replace(settings, etl_schedule="off")) == []


def test_one_leader_runs_the_etl_and_another_takes_over(settings: Settings, db: psycopg.Connection) -> None:
    insert(db, [event(at_="2026-03-01 10:00")])
    on = replace(settings, etl_schedule="1")

    async def scenario() -> None:
        first, second = Scheduler(on), Scheduler(on)
        first.start()
        second.start()
        try:
            await _until(lambda: first.is_leader or second.is_leader)
            leader, follower = (first, second) if first.is_leader else (second, first)
            assert not follower.is_leader
            await _until(lambda: _processed(db) == 1)  # the leader's etl job ran

            await leader.stop()  # the leader process goes away: its connection and lock with it
            started = time.monotonic()
            await _until(lambda: follower.is_leader)
            assert time.monotonic() - started < 5
            assert follower.status()["leader"] is True
            assert [job["name"] for job in follower.status()["jobs"]] == ["etl", "retention"]
        finally:
            await first.stop()
            await second.stop()

    asyncio.run(scenario())


def test_stop_waits_for_the_run_in_progress(settings: Settings) -> None:
    """A serving process that stops lets its scheduled run end (commit or roll back whole) rather
    than cancel the job under a worker thread that goes on running."""
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def run(_: Settings) -> None:
        started.set()
        release.wait(30)
        finished.append("the run")

    async def scenario() -> None:
        scheduler = Scheduler(replace(settings, etl_schedule="60"))
        scheduler.jobs = [Job("slow", 3600, run)]
        scheduler.start()
        try:
            await _until(started.is_set)
            stopping = asyncio.ensure_future(scheduler.stop())
            for _ in range(20):
                await asyncio.sleep(0.01)
            assert not stopping.done()  # waiting for the run
            release.set()
            await stopping
            assert finished == ["the run"]  # stop returned after the run, not before
            assert not scheduler.is_leader
        finally:
            release.set()
            await scheduler.stop()

    asyncio.run(scenario())


def _processed(db: psycopg.Connection) -> int:
    row = db.execute("select coalesce(sum(events_processed), 0) from etl_runs where kind = 'incremental'").fetchone()
    return int(row[0]) if row else 0


async def _until(condition: object, timeout_s: float = 10) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        await asyncio.sleep(0.05)


def test_the_leader_connection_has_client_side_keepalives(settings: Settings) -> None:
    """The leader's own side watches its connection too (libpq keepalives and TCP_USER_TIMEOUT), so
    that a vanished PostgreSQL host makes it stand down in seconds, not after TCP's ~15 minutes."""

    async def scenario() -> None:
        scheduler = Scheduler(replace(settings, etl_schedule="60"))
        try:
            await scheduler.elect()
            assert scheduler.is_leader
            conn = scheduler._leader_conn
            assert conn is not None
            used = {option.keyword.decode(): (option.val or b"").decode() for option in conn.pgconn.info}
            assert used["keepalives"] == "1"
            assert (used["keepalives_idle"], used["keepalives_interval"], used["keepalives_count"]) == ("5", "2", "3")
            assert used["tcp_user_timeout"] == "10000"
            server_side = await (await conn.execute("show tcp_keepalives_idle")).fetchone()
            assert server_side == ("5",)
        finally:
            await scheduler.stop()

    asyncio.run(scenario())
