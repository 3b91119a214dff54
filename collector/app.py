"""The collector's part of the app: its routes, and the resources it opens in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sluice.collector import click_reports, links
from sluice.collector import routes as handlers
from sluice.collector.client_ip import Countries, DailySalts, Origins
from sluice.collector.cors import CollectCORS, origin_of
from sluice.collector.writer import GroupCommitWriter
from sluice.http import Handler, operators_only
from sluice.settings import Settings


def routes(settings: Settings) -> list[BaseRoute]:
    # CORS is opened on /collect only: the operators' and ETL endpoints stay same-origin.
    cors = Middleware(CollectCORS, allow_origins=settings.cors_origins)
    return [
        Route("/collect", handlers.collect_post_routed, methods=["POST"], middleware=[cors]),
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
    ]


def _operator(settings: Settings, handler: Callable[[Request, Settings], Awaitable[Response]]) -> Handler:
    async def answer(request: Request) -> Response:
        return await handler(request, settings)

    return operators_only(settings, answer)


class CollectFastPath:
    """Sends `POST /collect` straight to its ASGI handler, past the router and CORS's send wrapper.

    Routing, the exception wrappers and a Request object cost about a third of the collector's
    CPU per event. Only the exact path is taken here; anything else (another method, a root_path)
    goes on to the router, whose `/collect` routes answer the same. Starlette's ServerErrorMiddleware
    still wraps this.
    """

    def __init__(self, app: ASGIApp, allow_origins: Sequence[str]) -> None:
        self.app = app
        self.cors = CollectCORS(app, allow_origins=allow_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == "/collect"
            and scope["method"] == "POST"
            and not scope.get("root_path")
        ):
            # A POST is never a preflight: CORS only adds headers, which the handler sends itself.
            await handlers.collect_post(scope, receive, send, self.cors.headers_for(origin_of(scope)))
        else:
            await self.app(scope, receive, send)


def middleware(settings: Settings) -> list[Middleware]:
    return [Middleware(CollectFastPath, allow_origins=settings.cors_origins)]


@asynccontextmanager
async def lifespan(settings: Settings, state: dict[str, Any]) -> AsyncIterator[None]:
    pool = state["pool"]
    writer = GroupCommitWriter(settings, connect_timeout_s=settings.db_timeout_s)
    countries = Countries(settings.geoip_db)
    await writer.start()
    origins = Origins(settings.trusted_proxies, DailySalts(pool, settings.db_timeout_s), countries)
    state["collector"] = handlers.Collector(settings, pool, writer, origins)
    state["links"] = table = links.LinkTable(pool, settings.db_timeout_s)
    try:
        async with links.running(table):  # ends first: the clicks in flight reach the writer
            yield
    finally:
        await writer.stop()
        countries.close()
