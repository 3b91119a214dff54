"""SluiceMiddleware around a real Starlette app and a real FastAPI app, both driven with real HTTP
(uvicorn on loopback), sending to the real collector; then the ETL; then the exact rows."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import fastapi
import psycopg
import pytest
from asgi_server import serve
from e2e.harness import fetch, free_port
from eventlog import settle
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from sluice.app import create_app
from sluice.client import Client, SluiceMiddleware
from sluice.collector.client_ip import ip_hash
from sluice.etl import pipeline
from sluice.settings import Settings

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
INGEST_TOKEN = "ingest-secret-1"


def starlette_app() -> Starlette:
    async def user(request: Request) -> Response:
        return JSONResponse({"id": request.path_params["id"]})

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def boom(request: Request) -> Response:
        raise RuntimeError("the app failed")

    async def item(request: Request) -> Response:
        return PlainTextResponse("created", status_code=201)

    async def asset(request: Request) -> Response:
        return PlainTextResponse("body{}")

    return Starlette(
        routes=[
            Route("/users/{id:int}", user),
            Route("/health", health),
            Route("/boom", boom),
            Mount("/api", routes=[Route("/items/{name}", item, methods=["POST"])]),
            Route("/static/{file:path}", asset),
        ]
    )


def fastapi_app() -> fastapi.FastAPI:
    app = fastapi.FastAPI()
    api = fastapi.APIRouter()

    @app.get("/users/{id}")
    async def user(id: int) -> dict[str, int]:
        return {"id": id}

    @app.get("/health", response_class=fastapi.responses.PlainTextResponse)
    async def health() -> str:
        return "ok"

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("the app failed")

    @api.post("/items/{name}", status_code=201, response_class=fastapi.responses.PlainTextResponse)
    async def item(name: str) -> str:
        return "created"

    @app.get("/static/{file:path}", response_class=fastapi.responses.PlainTextResponse)
    async def asset(file: str) -> str:
        return "body{}"

    app.include_router(api, prefix="/api")
    return app


APPS: dict[str, Callable[[], Any]] = {"starlette": starlette_app, "fastapi": fastapi_app}


@contextmanager
def collector(settings: Settings) -> Iterator[str]:
    with serve(create_app(replace(settings, ingest_tokens=(INGEST_TOKEN,)))) as url:
        yield url


def drive(url: str) -> None:
    """A visitor's requests, through a proxy in front of the app (uvicorn believes its
    X-Forwarded-For from loopback, its default)."""
    visitor = {"User-Agent": FIREFOX, "X-Forwarded-For": "8.8.8.8"}
    assert fetch("GET", f"{url}/users/42", headers=visitor).status == 200
    assert fetch("GET", f"{url}/health", headers=visitor).status == 200  # excluded
    assert fetch("GET", f"{url}/static/css/site.css", headers=visitor).status == 200  # excluded
    assert fetch("GET", f"{url}/no/such/page", headers=visitor).status == 404
    assert fetch("GET", f"{url}/boom", headers=visitor).status == 500  # uvicorn then closes the connection
    assert fetch("POST", f"{url}/api/items/widget", b"", headers=visitor).status == 201


def request_rows(db: psycopg.Connection) -> list[tuple[Any, ...]]:
    return db.execute(
        """select site_id, event_type, payload ->> 'method', payload ->> 'route', (payload ->> 'status')::int,
                  (payload ->> 'responseBytes')::int, payload ->> 'userId',
                  (payload ->> 'durationMs')::float > 0, event_id::text = payload ->> 'eventId'
           from events order by occurred_at"""
    ).fetchall()


@pytest.mark.parametrize("kind", APPS)
def test_one_request_event_per_request_with_the_route_template(
    kind: str, settings: Settings, db: psycopg.Connection
) -> None:
    with collector(settings) as sluice_url:
        app = APPS[kind]()
        app.add_middleware(
            SluiceMiddleware,
            endpoint=sluice_url,
            site_id="api",
            token=INGEST_TOKEN,
            user_id=lambda scope: scope.get("path_params", {}).get("id"),
            exclude_paths=["/health", "/static/*"],
        )
        with serve(app) as app_url:
            drive(app_url)
        # the app's lifespan shutdown closed the middleware's client: everything is sent
    settle(db)
    pipeline.run(settings)
    # a 404's raw path, since no route matched; the 500 of an app that raised
    not_found = len(b'{"detail":"Not Found"}') if kind == "fastapi" else len(b"Not Found")
    assert request_rows(db) == [
        ("api", "request", "GET", "/users/{id}", 200, len(b'{"id":42}'), "42", True, True),
        ("api", "request", "GET", "/no/such/page", 404, not_found, None, True, True),
        # (the app raised: the 500 is sent by the server's error handler, outside the middleware)
        ("api", "request", "GET", "/boom", 500, 0, None, True, True),
        ("api", "request", "POST", "/api/items/{name}", 201, len(b"created"), None, True, True),
    ]
    # the end user's address and agent (believed: the middleware's client holds an ingest token), the
    # address hashed, and no raw address in the payload
    salt = db.execute("select salt from daily_salts where day = %s", (datetime.now(UTC).date(),)).fetchone()
    assert salt is not None
    visitor_hash = ip_hash(bytes(salt[0]), ipaddress.ip_address("8.8.8.8"))
    assert db.execute("select distinct ip_hash, country, user_agent, payload -> 'context' from events").fetchall() == [
        (visitor_hash, "US", FIREFOX, {"source": "server"})
    ]
    assert db.execute("select count(*) from events where payload::text like '%8.8.8.8%'").fetchone() == (0,)
    assert db.execute("select event_count, is_bot, country, device_type, browser, os from sessions").fetchall() == [
        (4, False, "US", "desktop", "Firefox", "Linux")
    ]
    # seed 002's statistics (summed over hours: the requests may straddle one's end)
    assert db.execute(
        """select event_type, route, sum(count)::int, sum(error_count)::int, bool_and(min_duration_ms > 0)
           from hourly_event_stats group by 1, 2 order by 2"""
    ).fetchall() == [
        ("request", "/api/items/{name}", 1, 0, True),
        ("request", "/boom", 1, 1, True),
        ("request", "/no/such/page", 1, 1, True),
        ("request", "/users/{id}", 1, 0, True),
    ]
    assert db.execute(
        """select left(user_key, 5), is_user_id, events, events_by_type, sessions, pageviews, errors,
                  avg_duration_ms > 0
           from user_stats order by 1"""
    ).fetchall() == [
        ("42", True, 1, {"request": 1}, 1, 0, 0, True),
        ("anon:", False, 3, {"request": 3}, 1, 0, 2, True),  # no userId: the visitor (the IP hash and agent)
    ]


def test_sampling_keeps_none_at_zero_and_the_app_answers_the_same(settings: Settings, db: psycopg.Connection) -> None:
    with collector(settings) as sluice_url:
        app = starlette_app()
        app.add_middleware(SluiceMiddleware, endpoint=sluice_url, site_id="api", sample_rate=0.0)
        with serve(app) as app_url:
            drive(app_url)
    assert db.execute("select count(*) from events").fetchone() == (0,)


def test_the_app_answers_as_usual_when_sluice_is_down_and_drops_are_counted() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    client = Client(url, "api", max_queue=2, flush_interval_s=0.01, close_timeout_s=0.2)
    app = starlette_app()
    app.add_middleware(SluiceMiddleware, client=client)
    with serve(app) as app_url:
        drive(app_url)
        reply = fetch("GET", f"{app_url}/users/7")
    assert (reply.status, reply.body) == (200, b'{"id":7}')
    stats = client.stats
    assert stats.sent == 0
    assert stats.dropped + stats.queued == 7  # every request recorded, none stored: Sluice is not there
    assert stats.queued <= 4  # the queue holds two, and a batch of at most two is in flight
    client.close(timeout_s=0.1)
