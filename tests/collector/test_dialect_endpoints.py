"""The dialects' endpoints in-process: what each answers, what reaches the log, and what is refused
with nothing stored. (tests/e2e/test_dialect_clients.py sends with the products' own clients.)"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson
import psycopg
import pytest
from collector_testing import VISITOR, collector_client
from eventlog import settle
from starlette.testclient import TestClient

from sluice.collector import sites
from sluice.etl import pipeline
from sluice.settings import Settings

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


@pytest.fixture
def key(db: psycopg.Connection) -> str:
    made = sites.add(db, "shop", None, ["https://shop.example"])
    assert made is not None
    return made[1]


@pytest.fixture
def client(settings: Settings, key: str) -> Iterator[TestClient]:
    with collector_client(settings, peer=VISITOR) as client:
        yield client


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def stored(db: psycopg.Connection) -> list[tuple[Any, ...]]:
    return db.execute(
        """select site_id, event_type, visitor_id, user_id, session_id, country, user_agent, payload
           from events order by occurred_at, event_type"""
    ).fetchall()


def count(db: psycopg.Connection) -> int:
    row = db.execute("select count(*) from events").fetchone()
    assert row is not None
    return int(row[0])


def test_segment_batch_with_basic_auth_and_gzip_under_a_form_content_type(
    client: TestClient, db: psycopg.Connection, key: str
) -> None:
    message = {
        "type": "track",
        "event": "Signed Up",
        "anonymousId": "anon-1",
        "userId": "user-1",
        "messageId": "m-1",
        "timestamp": "2026-01-01T10:00:00Z",
        "properties": {"plan": "pro"},
        "context": {"ip": "8.8.8.8", "userAgent": CHROME, "page": {"url": "https://shop.example/a", "path": "/a"}},
    }
    body = gzip.compress(orjson.dumps({"batch": [message], "sentAt": "2026-01-01T10:00:00Z"}))
    headers = {**basic(key), "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "analytics-node/3"}
    answer = client.post("/v1/batch", content=body, headers=headers)
    assert (answer.status_code, answer.json()) == (200, {"success": True})
    again = client.post("/v1/batch", content=body, headers=headers)  # a retry: the same messageId
    assert again.status_code == 200
    [(site, kind, visitor, user, session, country, agent, payload)] = stored(db)
    assert (site, kind, visitor, user, session, country, agent) == (
        "shop",
        "custom",
        "anon-1",
        "user-1",
        None,
        "US",
        CHROME,
    )
    assert payload["eventName"] == "Signed Up"
    assert payload["props"] == {"plan": "pro"}
    assert payload["context"] == {"source": "server"}  # the end user's IP is gone


def test_segment_single_endpoints_and_the_key_in_the_body(client: TestClient, db: psycopg.Connection, key: str) -> None:
    assert client.post("/v1/page", json={"writeKey": key, "anonymousId": "a", "name": "Home"}).json() == {
        "success": True
    }
    assert (
        client.post(
            "/v1/identify", json={"anonymousId": "a", "userId": "u", "traits": {"x": 1}}, headers=basic(key)
        ).status_code
        == 200
    )
    assert [(row[1], row[2], row[3]) for row in stored(db)] == [("pageview", "a", None), ("identify", "a", "u")]


@pytest.mark.parametrize(
    ("headers", "body", "status", "error"),
    [
        ({}, {"batch": [{"type": "track", "event": "e", "anonymousId": "a"}]}, 401, "invalid_write_key"),
        (basic("sk_wrong"), {"batch": [{"type": "track", "event": "e", "anonymousId": "a"}]}, 401, "invalid_write_key"),
        (
            None,
            {"batch": [{"type": "track", "event": "e", "anonymousId": "a", "properties": {"x": "y" * 33_000}}]},
            400,
            "message_too_large",
        ),
        (
            None,
            {"batch": [{"type": "track", "event": "e", "anonymousId": "a", "properties": {"x": "y" * 20_000}}] * 30},
            400,
            "batch_too_large",
        ),
        (None, {"batch": [{"type": "track", "event": "e"}]}, 400, "missing_field"),
        (None, {"batch": "no"}, 400, "wrong_type"),
        (None, b"{not json", 400, "malformed_json"),
        (basic("sk_wrong"), b"{not json", 400, "malformed_json"),  # the body is judged before the key
        (
            None,
            {"batch": [{"type": "track", "event": "e", "anonymousId": "a", "timestamp": "yesterday"}]},
            422,
            "invalid_value",
        ),
    ],
)
def test_segment_refusals_store_nothing(
    client: TestClient,
    db: psycopg.Connection,
    key: str,
    headers: dict[str, str] | None,
    body: Any,
    status: int,
    error: str,
) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    answer = client.post("/v1/batch", content=content, headers=basic(key) if headers is None else headers)
    assert (answer.status_code, answer.json()["error"]) == (status, error)
    assert count(db) == 0


def test_posthog_shapes(client: TestClient, db: psycopg.Connection, key: str) -> None:
    event = {
        "event": "$pageview",
        "distinct_id": "d1",
        "properties": {"$current_url": "https://shop.example/", "$session_id": "s1"},
    }
    assert client.post("/batch/", json={"api_key": key, "batch": [event]}).json() == {"status": 1}
    assert client.post("/capture/", json={"api_key": key, **event, "event": "Clicked"}).status_code == 200
    # posthog-js: an array, gzip-js, the token in the properties
    browser = [{"event": "Opened", "properties": {"token": key, "distinct_id": "d2"}}]
    answer = client.post(
        "/e/?compression=gzip-js", content=gzip.compress(orjson.dumps(browser)), headers={"Content-Type": "text/plain"}
    )
    assert answer.status_code == 200
    form = (
        "data="
        + base64.b64encode(
            orjson.dumps([{"event": "Form", "properties": {"token": key, "distinct_id": "d3"}}])
        ).decode()
    )
    assert (
        client.post("/i/v0/e/", content=form, headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code
        == 200
    )
    assert sorted((row[1], row[2], row[7].get("eventName")) for row in stored(db)) == [
        ("custom", "d1", "Clicked"),
        ("custom", "d2", "Opened"),
        ("custom", "d3", "Form"),
        ("pageview", "d1", None),
    ]
    assert client.post("/batch/", json={"api_key": "sk_wrong", "batch": [event]}).status_code == 401
    assert client.post("/batch/", json={"batch": [event]}).json()["error"] == "invalid_write_key"
    assert client.post("/capture/", json={"api_key": key, "event": "x"}).json()["error"] == "missing_field"
    assert count(db) == 4


def test_plausible_and_umami_are_browser_endpoints_with_the_site_s_cors(
    client: TestClient, db: psycopg.Connection, settings: Settings
) -> None:
    origin = {"Origin": "https://shop.example", "User-Agent": CHROME}
    tracker = {"n": "pageview", "u": "https://shop.example/a", "d": "shop", "r": None}
    answer = client.post("/api/event", content=orjson.dumps(tracker), headers={**origin, "Content-Type": "text/plain"})
    assert (answer.status_code, answer.text) == (202, "ok")
    assert answer.headers["access-control-allow-origin"] == "*"  # SLUICE_CORS_ORIGINS' default
    umami = {"type": "event", "payload": {"website": "shop", "url": "/b", "hostname": "shop.example", "name": "Signup"}}
    answer = client.post("/api/send", json=umami, headers=origin)
    assert (answer.status_code, answer.json()) == (200, {"ok": True})
    assert [(row[1], row[6], row[7].get("eventName"), row[7].get("url")) for row in stored(db)] == [
        ("pageview", CHROME, None, "https://shop.example/a"),
        ("custom", CHROME, "Signup", "https://shop.example/b"),
    ]
    assert client.post("/api/event", json={"n": "pageview", "d": "shop"}).json()["error"] == "missing_field"
    assert (
        client.post(
            "/api/send",
            json={"type": "event", "payload": {"website": "shop"}},
            headers={"Authorization": "Bearer sk_wrong"},
        ).status_code
        == 401
    )
    assert count(db) == 2

    closed = replace(settings, cors_origins=("https://other.example",))
    with collector_client(closed, peer=VISITOR) as strict:
        allowed = strict.post("/api/send", json=umami, headers=origin)
        assert allowed.headers["access-control-allow-origin"] == "https://shop.example"  # the site's own origin
        refused = strict.post("/api/send", json=umami, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in refused.headers
        preflight = strict.options(
            "/api/send", headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
        )
        assert (preflight.status_code, preflight.headers["access-control-allow-origin"]) == (
            204,
            "https://shop.example",
        )


def test_unknown_sites_are_refused_when_required(settings: Settings, db: psycopg.Connection, key: str) -> None:
    strict = replace(settings, require_known_sites=True)
    with collector_client(strict, peer=VISITOR) as client:
        unknown = client.post("/api/event", json={"n": "pageview", "u": "https://x.example/", "d": "x.example"})
        assert (unknown.status_code, unknown.json()["error"]) == (403, "unknown_site")
        refused = client.post("/collect", json={"eventType": "pageview", "siteId": "nope"})
        assert (refused.status_code, refused.json()["error"]) == (403, "unknown_site")
        assert count(db) == 0
        mixed = client.post(
            "/collect", json=[{"eventType": "pageview", "siteId": "nope"}, {"eventType": "pageview", "siteId": "shop"}]
        )
        assert mixed.status_code == 202
        assert [(r["error"], r["index"]) for r in mixed.json()["rejected"]] == [("unknown_site", 0)]
        assert (
            client.post("/api/event", json={"n": "pageview", "u": "https://shop.example/", "d": "shop"}).status_code
            == 202
        )
    assert [row[0] for row in stored(db)] == ["shop", "shop"]


def test_umami_performance_and_error_reach_the_log_as_the_tracker_sends_them(
    client: TestClient, db: psycopg.Connection
) -> None:
    from test_dialects import UMAMI_ERROR, UMAMI_PERFORMANCE

    # the tracker's fetch: JSON, its own headers, a browser's agent
    headers = {"Content-Type": "application/json", "x-umami-website-id": "shop", "User-Agent": CHROME}
    performance = {**UMAMI_PERFORMANCE, "payload": {**UMAMI_PERFORMANCE["payload"], "website": "shop"}}  # type: ignore[dict-item]
    answer = client.post("/api/send", content=orjson.dumps(performance), headers=headers)
    assert (answer.status_code, answer.json()) == (200, {"ok": True})
    error = {**UMAMI_ERROR, "payload": {**UMAMI_ERROR["payload"], "website": "shop"}}  # type: ignore[dict-item]
    for _ in range(2):  # errors.ts retries a 5xx with the same eventId: stored once
        answer = client.post("/api/send", content=orjson.dumps(error), headers=headers)
        assert (answer.status_code, answer.json()) == (200, {"ok": True})
    rows = db.execute(
        """select event_id::text, event_type, visitor_id, user_id, occurred_at, user_agent, payload
           from events order by event_type desc"""
    ).fetchall()
    assert [(kind, visitor, user, agent) for _, kind, visitor, user, _, agent, _ in rows] == [
        ("performance", "u1", "u1", CHROME),
        ("error", "u1", "u1", CHROME),
    ]
    (_, _, _, _, _, _, vitals), (error_id, _, _, _, error_at, _, failure) = rows
    assert vitals["vitals"] == {"lcp": 1210.0, "inp": 48, "cls": 0.031, "fcp": 412.5, "ttfb": 38.2}
    assert vitals["url"] == "https://example.com/a"
    assert error_id == "0c9f4b2e-8d4a-4f7e-9b1d-3e2a5c6d7f80"
    assert error_at.isoformat(timespec="milliseconds") == "2026-01-01T10:00:00.123+00:00"
    assert (failure["error"]["name"], failure["error"]["handled"], failure["path"]) == ("TypeError", False, "/a")
    # out of Umami's bounds, or missing what it requires: 4xx and nothing stored
    too_slow = {"type": "performance", "payload": {"website": "shop", "lcp": 90000}}
    refused = client.post("/api/send", json=too_slow, headers=headers)
    assert (refused.status_code, refused.json()["error"], refused.json()["field"]) == (
        422,
        "invalid_value",
        "payload.lcp",
    )
    nameless = {"type": "error", "payload": {"website": "shop", "message": "boom"}}
    refused = client.post("/api/send", json=nameless, headers=headers)
    assert (refused.status_code, refused.json()["field"]) == (400, "payload.name")
    assert count(db) == 2


def test_umami_engagement_reaches_the_log_as_the_tracker_sends_it(client: TestClient, db: psycopg.Connection) -> None:
    """Umami's `engagement` (the time engaged on the page being left) was refused with 422."""
    from test_dialects import UMAMI_ENGAGEMENT

    headers = {"Content-Type": "application/json", "x-umami-website-id": "shop", "User-Agent": CHROME}
    engagement = {**UMAMI_ENGAGEMENT, "payload": {**UMAMI_ENGAGEMENT["payload"], "website": "shop"}}  # type: ignore[dict-item]
    answer = client.post("/api/send", content=orjson.dumps(engagement), headers=headers)
    assert (answer.status_code, answer.json()) == (200, {"ok": True})
    rows = db.execute("select event_type, visitor_id, user_id, user_agent, payload from events").fetchall()
    assert [row[:4] for row in rows] == [("engagement", "u1", "u1", CHROME)]
    payload = rows[0][4]
    assert (payload["engagedMs"], payload["path"]) == (42000, "/docs/getting-started")
    # without the time, or past Umami's day: 4xx and nothing more stored
    timeless = {"type": "engagement", "payload": {"website": "shop", "url": "/"}}
    refused = client.post("/api/send", json=timeless, headers=headers)
    assert (refused.status_code, refused.json()["error"], refused.json()["field"]) == (
        400,
        "missing_field",
        "payload.engagement",
    )
    too_long = {"type": "engagement", "payload": {"website": "shop", "engagement": 86_400_001}}
    refused = client.post("/api/send", json=too_long, headers=headers)
    assert (refused.status_code, refused.json()["error"]) == (422, "invalid_value")
    assert count(db) == 1


def test_plausible_and_umami_custom_events_reach_the_custom_event_tables(
    client: TestClient, db: psycopg.Connection, settings: Settings
) -> None:
    """Issue 15: every dialect's custom events land where the tracker's do."""
    origin = {"Origin": "https://shop.example", "User-Agent": CHROME}
    plausible = {"n": "Signup", "u": "https://shop.example/a", "d": "shop", "p": {"plan": "pro", "seats": 3}}
    answer = client.post(
        "/api/event", content=orjson.dumps(plausible), headers={**origin, "Content-Type": "text/plain"}
    )
    assert answer.status_code == 202
    umami = {
        "type": "event",
        "payload": {
            "website": "shop",
            "url": "/b",
            "hostname": "shop.example",
            "name": "Signup",
            "data": {"plan": "free"},
        },
    }
    assert client.post("/api/send", json=umami, headers=origin).status_code == 200
    settle(db)
    pipeline.run(settings)
    assert db.execute("select site_id, event_name, events from daily_custom_events").fetchall() == [
        ("shop", "Signup", 2)
    ]
    props = db.execute(
        "select prop_key, prop_value, events from daily_custom_event_props where event_name = 'Signup' order by 1, 2"
    ).fetchall()
    assert props == [("plan", "free", 1), ("plan", "pro", 1), ("seats", "3", 1)]
