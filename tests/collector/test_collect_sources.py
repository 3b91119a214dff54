"""Server-side sources: an ingest token makes the collector believe the end user an event names."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from collector_testing import VISITOR, collector_client, event, post
from eventlog import CHROME, GOOGLEBOT, settle

from sluice.collector.client_ip import ip_hash
from sluice.etl import pipeline
from sluice.settings import Settings

TOKEN = "ingest-1"
LIBRARY_AGENT = "sluice-python/0.1.0"  # the client library's own User-Agent: never an end user's


@pytest.fixture
def server_settings(settings: Settings) -> Settings:
    return replace(settings, ingest_tokens=("other-source", TOKEN), admin_token="admin-1")


def stored(db: psycopg.Connection) -> list[tuple[Any, ...]]:
    return db.execute(
        "select payload ->> 'n', ip_hash, country, user_agent, payload -> 'context' from events order by 1"
    ).fetchall()


def salt(db: psycopg.Connection) -> bytes:
    row = db.execute("select salt from daily_salts where day = %s", (datetime.now(UTC).date(),)).fetchone()
    assert row is not None
    return bytes(row[0])


def hashed(db: psycopg.Connection, address: str) -> str:
    return ip_hash(salt(db), ipaddress.ip_address(address))


def test_an_authenticated_source_s_end_users_are_believed(server_settings: Settings, db: psycopg.Connection) -> None:
    events = [
        event(n="1", context={"ip": "8.8.8.8", "userAgent": CHROME}),
        event(n="2", context={"ip": "2001:4860:4860::8888"}),  # no agent named: none stored, not the library's
        event(n="3"),  # no end user named at all
        event(n="4", context={"ip": "not an address", "userAgent": ""}),
        event(n="5", context="not an object"),
    ]
    with collector_client(server_settings, peer=VISITOR) as client:
        answer = post(client, events, Authorization=f"Bearer {TOKEN}", **{"User-Agent": LIBRARY_AGENT})
    assert answer.status_code == 202
    server = {"source": "server"}
    assert stored(db) == [
        ("1", hashed(db, "8.8.8.8"), "US", CHROME, server),
        ("2", hashed(db, "2001:4860:4860::8888"), "US", None, server),
        ("3", None, None, None, server),
        ("4", None, None, None, server),
        ("5", None, None, None, server),
    ]


def test_without_a_token_the_context_is_neither_believed_nor_stored(
    server_settings: Settings, db: psycopg.Connection
) -> None:
    with collector_client(server_settings, peer=("8.8.4.4", 5000)) as client:
        answer = post(client, event(n="1", context={"ip": "1.1.1.1", "userAgent": CHROME}), **{"User-Agent": "curl/8"})
    assert answer.status_code == 202
    assert stored(db) == [("1", hashed(db, "8.8.4.4"), "US", "curl/8", None)]


@pytest.mark.parametrize(
    "authorization",
    ["Bearer wrong", "Bearer admin-1", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x", ""],
)
def test_any_other_authorization_is_refused_with_401_and_nothing_stored(
    authorization: str, server_settings: Settings, db: psycopg.Connection
) -> None:
    with collector_client(server_settings) as client:
        answer = post(client, [event(), event()], Authorization=authorization)
    assert answer.status_code == 401
    assert answer.json() == {
        "error": "unauthorized",
        "message": "send 'Authorization: Bearer <one of SLUICE_INGEST_TOKENS>', or no Authorization header",
    }
    assert answer.headers["www-authenticate"] == 'Bearer realm="sluice"'
    assert db.execute("select count(*) from events").fetchone() == (0,)


def test_with_no_ingest_tokens_configured_every_token_is_refused(settings: Settings, db: psycopg.Connection) -> None:
    with collector_client(settings) as client:
        assert post(client, event(), Authorization="Bearer anything").status_code == 401
        assert client.get("/collect", params={"eventType": "open", "siteId": "s"}, headers={
            "Authorization": "Bearer anything"}).status_code == 401  # fmt: skip
    assert db.execute("select count(*) from events").fetchone() == (0,)


def bots(db: psycopg.Connection) -> list[tuple[Any, ...]]:
    return db.execute(
        "select visitor_key, is_bot, event_count, country, device_type, browser from sessions order by visitor_key"
    ).fetchall()


def test_a_server_event_is_a_bot_only_by_its_end_user_s_agent(
    server_settings: Settings, db: psycopg.Connection
) -> None:
    with collector_client(server_settings, peer=VISITOR) as client:
        server = {"Authorization": f"Bearer {TOKEN}", "User-Agent": LIBRARY_AGENT}
        post(client, event(visitorId="s-no-agent", context={"ip": "8.8.8.8"}), **server)
        post(client, event(visitorId="s-person", context={"ip": "8.8.8.8", "userAgent": CHROME}), **server)
        post(client, event(visitorId="s-crawler", context={"userAgent": GOOGLEBOT}), **server)
        post(client, event(visitorId="b-no-agent"), **{"User-Agent": ""})  # a browser request without one
        post(client, event(visitorId="b-library"), **{"User-Agent": LIBRARY_AGENT})
    settle(db)
    pipeline.run(server_settings)
    # the same visitors again: the incremental run re-reads their stored events from stg_events
    with collector_client(server_settings, peer=VISITOR) as client:
        post(client, event(visitorId="s-no-agent", context={"ip": "8.8.8.8"}), **server)
        post(client, event(visitorId="b-no-agent"), **{"User-Agent": ""})
    settle(db)
    pipeline.run(server_settings)
    expected = [
        # without a token: the host's address (TEST-NET: no country) and the library's agent, not a bot's
        ("b-library", False, 1, None, "desktop", "Other"),
        ("b-no-agent", True, 2, None, None, None),
        ("s-crawler", True, 1, None, "desktop", "Googlebot"),
        ("s-no-agent", False, 2, "US", None, None),
        ("s-person", False, 1, "US", "desktop", "Chrome"),
    ]
    assert bots(db) == expected
    pipeline.run(server_settings, "rebuild")
    assert bots(db) == expected
