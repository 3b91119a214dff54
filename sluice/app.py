"""The serving process: the collector's routes, the ETL's control routes and the reports side by side.

The two never call each other; they meet only in the database schema. This module only composes
them, opening the shared resources (the connection pool) in the lifespan.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from psycopg_pool import PoolTimeout
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from sluice import metrics, openapi
from sluice.collector import app as collector
from sluice.db import async_pool
from sluice.etl import api as etl
from sluice.http import EXCEPTION_HANDLERS
from sluice.reports import dashboard
from sluice.reports import routes as reports
from sluice.routing import RawRoutesFirst
from sluice.settings import Settings

GC_YOUNG_THRESHOLD = 5000  # allocations between young collections (CPython's default: 700)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        state: dict[str, Any] = {"settings": settings}
        async with AsyncExitStack() as stack:
            stack.callback(metrics.process_exited)  # last of all: the writer's drain may still set gauges
            pool = await stack.enter_async_context(async_pool(settings))
            try:
                # One connection, rather than pool.wait(): a pool whose wait() times out closes for
                # good, and /health, /events/* and the salts would then fail after PostgreSQL is back.
                async with pool.connection(timeout=settings.db_timeout_s):
                    pass
            except PoolTimeout:
                # Serve anyway: /health reports 503 and /collect answers 503 until PostgreSQL is back.
                logging.getLogger("sluice").warning("PostgreSQL is unreachable at start-up; serving anyway")
            state["pool"] = pool
            # The reports' and the dashboard's reads: on the replica when there is one (README,
            # "Scaling"); opened without waiting, a replica that is down answers their 503 alone.
            state["read_pool"] = pool
            if settings.read_database_url:
                read_pool = async_pool(settings, name="sluice-read", read=True)
                state["read_pool"] = await stack.enter_async_context(read_pool)
            await stack.enter_async_context(metrics.flushing())
            await stack.enter_async_context(collector.lifespan(settings, state))
            await stack.enter_async_context(etl.lifespan(settings, state))
            await stack.enter_async_context(reports.lifespan(settings, state))
            # What start-up made lives as long as the process: out of the collector's way, so that
            # each full collection does not walk every module and class again (a visible share of
            # the CPU per event under load: bench/README.md).
            gc.collect()
            gc.freeze()
            # A young collection walks every object still alive since the last one, and under load
            # those are mostly the requests in flight (their coroutines, frames and events), walked
            # again every 700 allocations: 5-6 % of a single event's instructions. Every 5,000
            # allocations, that share falls to about a seventh, while garbage cycles (rare on this
            # path: reference counting frees nearly everything) wait a little longer.
            gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
            yield state

    routes = [
        *collector.routes(settings),
        *etl.routes(settings),
        *reports.routes(settings),
        *dashboard.routes(settings),
        Route("/metrics", metrics.endpoint, methods=["GET"]),  # for Prometheus: its own token, or the admin's
        Route("/openapi.json", openapi.endpoint, methods=["GET"]),  # every route above, described (sluice/openapi.py)
    ]
    # The raw ASGI routes (POST /collect) are dispatched from this same list before Starlette's layers.
    # The metrics count what reaches the router; the raw routes count their own answers.
    middleware = [Middleware(RawRoutesFirst, routes=routes), Middleware(metrics.CountRequests)]
    return Starlette(routes=routes, middleware=middleware, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
