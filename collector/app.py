"""The collector's part of the app: its routes, and the resources it opens in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from collector import routes as handlers
from collector.client_ip import Countries, DailySalts, Origins
from collector.cors import CollectCORS
from collector.writer import GroupCommitWriter
from sluice.http import operators_only
from sluice.settings import Settings


def routes(settings: Settings) -> list[BaseRoute]:
    # CORS is opened on /collect only: the operators' and ETL endpoints stay same-origin.
    cors = Middleware(CollectCORS, allow_origins=settings.cors_origins)
    return [
        Route("/collect", handlers.collect_post, methods=["POST"], middleware=[cors]),
        Route("/collect", handlers.collect_get, methods=["GET"], middleware=[cors]),
        Route("/collect", handlers.collect_options, methods=["OPTIONS"], middleware=[cors]),
        Route("/health", handlers.health),
        # The log's contents are for operators only (`SLUICE_ADMIN_TOKEN`), like the ETL's controls.
        Route("/events/count", operators_only(settings, handlers.events_count)),
        Route("/events/recent", operators_only(settings, handlers.events_recent)),
    ]


def middleware(settings: Settings) -> list[Middleware]:
    return []


@asynccontextmanager
async def lifespan(settings: Settings, state: dict[str, Any]) -> AsyncIterator[None]:
    pool = state["pool"]
    writer = GroupCommitWriter(settings, connect_timeout_s=settings.db_timeout_s)
    countries = Countries(settings.geoip_db)
    await writer.start()
    origins = Origins(settings.trusted_proxies, DailySalts(pool, settings.db_timeout_s), countries)
    state["collector"] = handlers.Collector(settings, pool, writer, origins)
    try:
        yield
    finally:
        await writer.stop()
        countries.close()
