"""Every route of the reports: the API under /api/v1 and the seeds' endpoints under /analytics; and
their part of the app's lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.routing import BaseRoute

from sluice.reports import api, compat, queries
from sluice.settings import Settings

NO_SKETCHES = (
    "reports: the database has no postgresql-hll (README 'Reports API'): distinct visitors over several "
    "days are counted exactly from sessions, which is slower on large sites"
)


def routes(settings: Settings) -> list[BaseRoute]:
    return [*api.routes(settings), *compat.routes(settings)]


@asynccontextmanager
async def lifespan(settings: Settings, state: dict[str, Any]) -> AsyncIterator[None]:
    """Says at start-up when the reports will count visitors without sketches."""
    pool: AsyncConnectionPool = state["read_pool"]  # where the reports read (api.connection)
    try:
        # (a short wait: when PostgreSQL is down, start-up has already waited for it once)
        async with pool.connection(timeout=1) as conn:
            if not await queries.uses_sketches(conn):
                logging.getLogger("sluice").warning(NO_SKETCHES)
    except (PoolTimeout, psycopg.OperationalError):
        pass  # PostgreSQL is down: the collector's warning says so; the reports answer 503 meanwhile
    yield
