"""The collector's part of the app: its routes, and the resources it opens in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sluice.collector import click_reports, links, sites_api
from sluice.collector import routes as handlers
from sluice.collector.client_ip import Countries, DailySalts, Origins
from sluice.collector.cors import AllowedOrigins, CollectCORS
from sluice.collector.dialects.http import dialect_routes
from sluice.collector.sites import SiteDirectory
from sluice.collector.spool import Spool
from sluice.collector.writer import GroupCommitWriter
from sluice.http import Handler, operators_only
from sluice.migrations import discover
from sluice.settings import Settings


def routes(settings: Settings) -> list[BaseRoute]:
    # CORS is opened on /collect only: the operators' and ETL endpoints stay same-origin.
    allowed = AllowedOrigins(settings.cors_origins)
    cors = Middleware(CollectCORS, allowed=allowed)
    return [
        # The hot path. CollectPost is an ASGI app, not a function: Starlette calls it as it is, with
        # no Request, and it adds its own CORS headers; sluice.routing.RawRoutesFirst dispatches it
        # from this list before Starlette's router and exception layer.
        Route("/collect", handlers.CollectPost(allowed), methods=["POST"]),
        Route("/collect", handlers.collect_get, methods=["GET"], middleware=[cors]),
        Route("/collect", handlers.collect_options, methods=["OPTIONS"], middleware=[cors]),
        Route("/health", handlers.health),
        # The log's contents are for operators only (`SLUICE_ADMIN_TOKEN`), like the ETL's controls.
        Route("/events/count", operators_only(settings, handlers.events_count)),
        Route("/events/recent", operators_only(settings, handlers.events_recent)),
        # short links: the redirect is public; managing links is for operators
        Route(settings.link_prefix + "/{short_code}", links.redirect, methods=["GET", "HEAD"]),
        Route("/api/v1/sites/{site}/links", _operator(settings, links.api_list), methods=["GET"]),
        Route("/api/v1/sites/{site}/links", _operator(settings, links.api_add), methods=["POST"]),
        # a redirect service of its own reports its clicks (an ingest token: collector/sources.py)
        Route("/analytics/events/", click_reports.report_click, methods=["POST"]),
        # Segment, RudderStack, PostHog, Plausible and Umami clients, unmodified
        *dialect_routes(settings),
        # sites and their write keys: for operators, like `sluice sites`
        # GET /api/v1/sites is the reports' list of sites with data; the registered ones have their own path
        Route("/api/v1/registered-sites", _operator(settings, sites_api.api_list), methods=["GET"]),
        Route("/api/v1/sites", _operator(settings, sites_api.api_add), methods=["POST"]),
        Route("/api/v1/sites/{site}", _operator(settings, sites_api.api_remove), methods=["DELETE"]),
        Route("/api/v1/sites/{site}/write-key", _operator(settings, sites_api.api_rotate_key), methods=["POST"]),
    ]


def _operator(settings: Settings, handler: Callable[[Request, Settings], Awaitable[Response]]) -> Handler:
    async def answer(request: Request) -> Response:
        return await handler(request, settings)

    return operators_only(settings, answer)


@asynccontextmanager
async def lifespan(settings: Settings, state: dict[str, Any]) -> AsyncIterator[None]:
    pool = state["pool"]
    # What /health compares the database with: read once, not per probe.
    migrations = tuple(migration.version for migration in discover())
    spool = Spool(settings.data_dir, settings.spool_max_mb * 1024 * 1024)
    spool.open()
    writer = GroupCommitWriter(
        settings, connect_timeout_s=settings.db_timeout_s, spool=spool, write_timeout_s=settings.write_timeout_s
    )
    countries = Countries(settings.geoip_db)
    await writer.start()
    origins = Origins(settings.trusted_proxies, DailySalts(pool, settings.db_timeout_s), countries)
    directory = SiteDirectory(pool, settings.db_timeout_s)
    state["collector"] = handlers.Collector(settings, pool, writer, origins, migrations, directory)
    state["links"] = table = links.LinkTable(pool, settings.db_timeout_s)
    try:
        async with links.running(table, state["collector"]):  # ends first: the queued clicks reach the writer
            yield
    finally:
        await writer.stop()
        await spool.close()
        countries.close()
