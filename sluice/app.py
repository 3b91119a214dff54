"""The serving process: the collector's routes and the ETL's control routes side by side.

The two never call each other; they meet only in the database schema. This module only composes
them, opening the shared resources (the connection pool) in the lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from starlette.applications import Starlette

import collector.app
import etl.api
from sluice.db import async_pool
from sluice.settings import Settings


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        state: dict[str, Any] = {"settings": settings}
        async with AsyncExitStack() as stack:
            pool = await stack.enter_async_context(async_pool(settings))
            await pool.wait()
            state["pool"] = pool
            await stack.enter_async_context(collector.app.lifespan(settings, state))
            await stack.enter_async_context(etl.api.lifespan(settings, state))
            yield state

    routes = [*collector.app.routes(settings), *etl.api.routes(settings)]
    return Starlette(routes=routes, middleware=collector.app.middleware(settings), lifespan=lifespan)
