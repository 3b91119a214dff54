"""The app's raw ASGI routes of fixed paths, dispatched from the route list before Starlette's layers.

A route whose endpoint is a raw ASGI app (a class instance, not a function: Starlette then calls
it as it is, with no Request) and whose path has no parameters is looked up here by (path, method)
in a dict built from the app's own route list, and called directly. That is the same app the
router would call for it: nothing is declared twice, and without this middleware every answer is
the same. What it spares the hot paths (`POST /collect`, and each dialect's POST: `/v1/batch`,
`/batch`, `/api/event`, ...) is the router's generic matching and Starlette's exception layer,
whose cost shows in a single event's CPU in the collector (measured in bench/README.md, "The
route list and the hot path"), and in a Segment batch's (~220,000 instructions of a batch of 100).

Such an app answers its own errors, and counts its own answers in the metrics (sluice.metrics
counts what reaches the router): an HTTPException it raised would not be turned into an answer
here. An unexpected exception still reaches ServerErrorMiddleware, which wraps this and answers
500; it is counted here as that 500, by the route's path.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sluice.metrics import count_request


def raw_routes(routes: Sequence[BaseRoute]) -> dict[tuple[str, str], ASGIApp]:
    """(path, method) -> app, for the routes this middleware takes: raw ASGI, a fixed path, no route
    middleware, and the route the router itself would choose for that path and method."""
    table: dict[tuple[str, str], ASGIApp] = {}
    for route in routes:
        if not isinstance(route, Route) or route.param_convertors or not route.methods:
            continue
        if inspect.isfunction(route.endpoint) or inspect.ismethod(route.endpoint) or route.app is not route.endpoint:
            continue  # a request-response endpoint, or one wrapped in its own middleware
        for method in route.methods:
            scope = {"type": "http", "path": route.path, "root_path": "", "method": method, "headers": []}
            chosen = next((r for r in routes if r.matches(scope)[0] is Match.FULL), None)
            if chosen is route:
                table[(route.path, method)] = route.app
    return table


class RawRoutesFirst:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.table = raw_routes(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Under a root_path the router strips it first; those requests take the router's way.
        if scope["type"] == "http" and not scope.get("root_path"):
            target = self.table.get((scope["path"], scope["method"]))
            if target is not None:
                try:
                    await target(scope, receive, send)
                except Exception:  # a bug: answered 500 by ServerErrorMiddleware (a cancellation is not)
                    count_request(scope["path"], 500)
                    raise
                return
        await self.app(scope, receive, send)
