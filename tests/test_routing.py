"""RawRoutesFirst: the route list's raw ASGI routes, dispatched early, are the ones the router would run."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match, Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from sluice.app import create_app
from sluice.collector.dialects.http import POSTHOG_PATHS, SEGMENT_TYPES, _DialectPost
from sluice.collector.routes import CollectPost
from sluice.routing import RawRoutesFirst, raw_routes
from sluice.settings import Settings


class Raw:
    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse(self.name)(scope, receive, send)


async def endpoint(request: Request) -> Response:
    return PlainTextResponse("endpoint")


class Wrapping:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def test_the_app_dispatches_early_exactly_the_collector_s_posts_to_the_routes_the_router_chooses(
    settings: Settings,
) -> None:
    routes = create_app(settings).routes
    table = raw_routes(routes)
    dialect_paths = [f"/v1/{kind}" for kind in SEGMENT_TYPES]
    dialect_paths += [*POSTHOG_PATHS, *(path + "/" for path in POSTHOG_PATHS), "/i/v1/analytics/events"]
    dialect_paths += ["/api/event", "/api/send"]
    assert list(table) == [("/collect", "POST"), *((path, "POST") for path in dialect_paths)]
    assert isinstance(table["/collect", "POST"], CollectPost)
    assert all(isinstance(table[path, "POST"], _DialectPost) for path in dialect_paths)
    for path, method in table:
        scope = {"type": "http", "path": path, "root_path": "", "method": method, "headers": []}
        chosen = next(route for route in routes if route.matches(scope)[0] is Match.FULL)
        assert isinstance(chosen, Route)
        assert chosen.app is table[path, method]


def test_only_raw_fixed_unwrapped_routes_that_the_router_would_choose_are_taken() -> None:
    first, shadowed, fixed = Raw("first"), Raw("shadowed"), Raw("fixed")
    routes = [
        Route("/function", endpoint, methods=["POST"]),
        Route("/wrapped", Raw("wrapped"), methods=["POST"], middleware=[Middleware(Wrapping)]),
        Route("/item/{id}", Raw("parameter"), methods=["POST"]),
        Route("/any-method", Raw("any")),
        Route("/twice", first, methods=["PUT"]),
        Route("/twice", shadowed, methods=["PUT", "PATCH"]),
        Route("/fixed", fixed, methods=["GET"]),
    ]
    assert raw_routes(routes) == {
        ("/twice", "PUT"): first,
        ("/twice", "PATCH"): shadowed,
        ("/fixed", "GET"): fixed,
        ("/fixed", "HEAD"): fixed,
    }


def test_what_is_not_in_the_table_goes_on_to_the_app() -> None:
    routes = [Route("/raw", Raw("raw"), methods=["POST"]), Route("/function", endpoint, methods=["POST"])]
    app = Starlette(routes=routes, middleware=[Middleware(RawRoutesFirst, routes=routes)])
    with TestClient(app) as client:
        assert client.post("/raw").text == "raw"
        assert client.post("/function").text == "endpoint"
        assert client.get("/raw").status_code == 405  # the router's answer: not in the table
