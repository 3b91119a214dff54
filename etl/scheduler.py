"""The schedule of the serving process, and the election that lets exactly one process run it.

Every serving process (uvicorn worker, host) runs an APScheduler whose only standing job is the
election: try a session-level advisory lock on a dedicated connection every LEADER_POLL_S seconds.
The holder adds the jobs of `schedule()`; if the leader dies, PostgreSQL drops its connection and
lock, and the next poll elsewhere takes over within seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import psycopg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from sluice.db import conninfo
from sluice.etl import pipeline
from sluice.etl.locks import LEADER_LOCK
from sluice.metrics import SCHEDULER_LEADER
from sluice.settings import Settings

log = logging.getLogger("sluice.etl.scheduler")

LEADER_POLL_S = 2
# The server notices a vanished leader host (no FIN) after ~idle + interval * count seconds.
_KEEPALIVE = "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3"
# And the leader notices a vanished PostgreSQL host as soon: libpq's keepalives for the idle
# connection, and a bound on unacknowledged data for the `select 1` of each round (without it a
# round would wait out TCP's retransmissions, ~15 min, still believing itself the leader while
# PostgreSQL has long dropped its lock and another host has taken it).
CLIENT_KEEPALIVE: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,  # ms
}


@dataclass(frozen=True)
class Job:
    name: str
    every_s: int
    run: Callable[[Settings], object]  # synchronous: runs in a worker thread, off the event loop
    first_after_s: int = 0  # delay of the first run after this process becomes the leader


def schedule(settings: Settings) -> list[Job]:
    """Everything the leader runs, and how often. Empty when SLUICE_ETL_SCHEDULE=off."""
    if settings.etl_schedule == "off":
        return []
    return [
        Job("etl", int(settings.etl_schedule), lambda s: pipeline.run(s)),
        Job("retention", 24 * 3600, lambda s: pipeline.run(s, "cleanup"), first_after_s=300),  # once a day
    ]


class Scheduler:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jobs = schedule(settings)
        self.is_leader = False
        SCHEDULER_LEADER.set(0)
        self._leader_conn: psycopg.AsyncConnection[Any] | None = None
        self._aps = AsyncIOScheduler(timezone=UTC)
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return bool(self.jobs)

    def start(self) -> None:
        if not self.enabled:
            return
        self._aps.add_job(
            self._tracked, "interval", args=[self.elect], seconds=LEADER_POLL_S, next_run_time=datetime.now(UTC),
            id="election", max_instances=1, coalesce=True,
        )  # fmt: skip
        self._aps.start()

    async def stop(self) -> None:
        """No new runs; a run in progress ends first (it commits or rolls back whole), then the lock goes."""
        if self._aps.running:
            self._aps.pause()
            if self._in_flight:
                await asyncio.wait(self._in_flight)
            self._aps.shutdown(wait=False)
        await self._resign()

    async def _tracked(self, work: Callable[..., Awaitable[None]], *args: Any) -> None:
        """A job's coroutine, where stop() can wait for it: APScheduler's shutdown would cancel it
        mid-way (and log the cancellation as the job's failure), its worker thread still running."""
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            await work(*args)
        finally:
            self._in_flight.discard(task)

    async def elect(self) -> None:
        """One election round: keep leadership while the connection lives, else try to take it."""
        if self._leader_conn is not None:
            try:
                await self._leader_conn.execute("select 1")
                return
            except psycopg.Error:
                log.warning("lost the scheduler leader connection; standing down")
                await self._resign()
        try:
            conn = await psycopg.AsyncConnection.connect(
                conninfo(self.settings, "sluice-etl-leader"), autocommit=True, options=_KEEPALIVE, **CLIENT_KEEPALIVE
            )
        except psycopg.Error as exc:
            log.warning("scheduler election: cannot connect: %s", exc)
            return
        row = await (await conn.execute("select pg_try_advisory_lock(%s)", (LEADER_LOCK,))).fetchone()
        if not (row and row[0]):
            await conn.close()
            return
        self._leader_conn, self.is_leader = conn, True
        SCHEDULER_LEADER.set(1)
        log.info("this process is now the ETL scheduler leader")
        for job in self.jobs:
            self._aps.add_job(
                self._tracked, "interval", args=[self._run, job], seconds=job.every_s,
                next_run_time=datetime.now(UTC) + timedelta(seconds=job.first_after_s),
                id=job.name, max_instances=1, coalesce=True, replace_existing=True,
            )  # fmt: skip

    async def _resign(self) -> None:
        for job in self.jobs:
            if self._aps.get_job(job.name):
                self._aps.remove_job(job.name)
        if self._leader_conn is not None:
            await self._leader_conn.close()  # closing the session releases the lock
        self._leader_conn, self.is_leader = None, False
        SCHEDULER_LEADER.set(0)

    async def _run(self, job: Job) -> None:
        try:
            await anyio.to_thread.run_sync(job.run, self.settings)
        except pipeline.AlreadyRunning as exc:
            log.info("scheduled %s skipped: %s", job.name, exc)
        except Exception:
            log.exception("scheduled %s failed", job.name)

    def status(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "leader": self.is_leader,
            "jobs": [
                {
                    "name": job.name,
                    "every_s": job.every_s,
                    "next_run_at": (j.next_run_time if (j := self._aps.get_job(job.name)) else None),
                }
                for job in self.jobs
            ],
        }
