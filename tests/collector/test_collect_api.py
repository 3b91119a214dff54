from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from collector_testing import VISITOR, collector_client, event, post
from psycopg import sql
from psycopg.conninfo import make_conninfo
from starlette.testclient import TestClient

from sluice.app import create_app
from sluice.collector.routes import PIXEL
from sluice.collector.validate import MAX_EVENTS
from sluice.migrations import discover
from sluice.settings import Settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with collector_client(settings) as client:
        yield client


def stored(db: psycopg.Connection, event_id: str) -> int:
    row = db.execute("select count(*) from events where event_id = %s", (event_id,)).fetchone()
    return int(row[0]) if row else 0


def test_an_event_is_acknowledged_with_its_id_and_stored(client: TestClient, db: psycopg.Connection) -> None:
    response = post(client, event(visitorId="v1", sessionId="s1", extra={"kept": True}), **{"User-Agent": "Firefox/1"})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "accepted"
    [event_id] = body["event_ids"]
    row = db.execute(
        """select site_id, event_type, visitor_id, session_id, user_agent, payload, received_at, occurred_at
           from events where event_id = %s""",
        (event_id,),
    ).fetchone()
    assert row is not None
    assert row[:5] == ("site-1", "pageview", "v1", "s1", "Firefox/1")
    assert row[5] == event(visitorId="v1", sessionId="s1", extra={"kept": True})
    assert row[6] == row[7] == datetime.fromisoformat(body["received_at"])


def test_the_ack_waits_for_the_commit(client: TestClient, settings: Settings, db: psycopg.Connection) -> None:
    # Hold the writer's insert at a lock: the request must not be answered until it commits.
    event_id = str(uuid.uuid4())
    responses: list[int] = []
    with psycopg.connect(settings.database_url) as blocker:
        blocker.execute("lock table sluice.event_ids in exclusive mode")
        thread = threading.Thread(target=lambda: responses.append(post(client, event(eventId=event_id)).status_code))
        thread.start()
        time.sleep(0.5)
        assert responses == []
        assert stored(db, event_id) == 0
        blocker.rollback()
    thread.join(10)
    assert responses == [202]
    # Visible from another connection the moment the answer is out.
    assert stored(db, event_id) == 1


def test_a_batch_stores_the_valid_events_and_lists_the_rejected(client: TestClient, db: psycopg.Connection) -> None:
    batch = [event(), event(siteId=None), event(), event(timestamp="nope"), "junk"]
    response = post(client, {"events": batch})
    assert response.status_code == 202
    body = response.json()
    assert len(body["event_ids"]) == 2
    assert [(r["index"], r["error"], r.get("field")) for r in body["rejected"]] == [
        (1, "missing_field", "siteId"),
        (3, "invalid_value", "timestamp"),
        (4, "wrong_type", None),
    ]
    assert db.execute("select count(*) from events").fetchone() == (2,)


def test_a_u0000_character_rejects_its_event_whether_posted_or_in_a_pixel(
    client: TestClient, db: psycopg.Connection
) -> None:
    # PostgreSQL text and jsonb cannot hold it: one such event must not fail the group commit
    response = post(client, {"events": [event(), event(props={"note": "a\x00b"}), event()]})
    assert response.status_code == 202
    assert [(r["index"], r["error"]) for r in response.json()["rejected"]] == [(1, "invalid_value")]
    pixel = client.get("/collect", params={"eventType": "pageview", "siteId": "s", "title": "a\x00b"})
    assert pixel.status_code == 422
    assert db.execute("select count(*) from events").fetchone() == (2,)


def test_a_batch_with_nothing_valid_is_rejected_whole(client: TestClient, db: psycopg.Connection) -> None:
    response = post(client, [event(eventType=None), event(eventType=3)])
    assert response.status_code == 400
    body = response.json()
    assert (body["status"], body["error"], body["field"], body["index"]) == (
        "rejected",
        "missing_field",
        "eventType",
        0,
    )
    assert [r["index"] for r in body["rejected"]] == [0, 1]
    assert db.execute("select count(*) from events").fetchone() == (0,)


@pytest.mark.parametrize(
    ("body", "status", "error", "field"),
    [
        (b"{not json", 400, "malformed_json", None),
        (b'{"siteId": "s"}', 400, "missing_field", "eventType"),
        (b'{"siteId": "s", "eventType": ["pageview"]}', 400, "wrong_type", "eventType"),
        (b'{"siteId": "s", "eventType": "pageview", "timestamp": "Tuesday"}', 422, "invalid_value", "timestamp"),
        (b'{"siteId": "s", "eventType": "pageview", "eventId": "123"}', 422, "invalid_value", "eventId"),
        (b"[" + b"{}," * MAX_EVENTS + b"{}]", 413, "too_many_events", None),
    ],
)
def test_every_error_is_json_naming_the_field(
    client: TestClient, db: psycopg.Connection, body: bytes, status: int, error: str, field: str | None
) -> None:
    response = client.post("/collect", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert (response.json()["error"], response.json().get("field")) == (error, field)
    assert "index" not in response.json() or body.startswith(b"[")
    assert db.execute("select count(*) from events").fetchone() == (0,)


def test_a_retried_event_is_stored_once(client: TestClient, db: psycopg.Connection) -> None:
    event_id = str(uuid.uuid4())
    for _ in range(3):
        response = post(client, event(eventId=event_id))
        assert response.status_code == 202
        assert response.json()["event_ids"] == [event_id]
    assert stored(db, event_id) == 1
    assert db.execute("select count(*) from event_ids where event_id = %s", (event_id,)).fetchone() == (1,)


def test_a_duplicate_inside_one_batch_is_stored_once(client: TestClient, db: psycopg.Connection) -> None:
    event_id = str(uuid.uuid4())
    response = post(client, [event(eventId=event_id), event(), event(eventId=event_id)])
    assert response.status_code == 202
    assert response.json()["event_ids"][0] == response.json()["event_ids"][2] == event_id
    assert stored(db, event_id) == 1
    assert db.execute("select count(*) from events").fetchone() == (2,)


def test_sent_at_corrects_the_client_clock(client: TestClient, db: psycopg.Connection) -> None:
    # This client's clock runs two hours behind the server's.
    client_now = datetime.now(UTC) - timedelta(hours=2)
    sent_at, happened = client_now, client_now - timedelta(seconds=30)
    body = {"sentAt": sent_at.isoformat(), "events": [event(timestamp=happened.isoformat())]}
    [event_id] = post(client, body).json()["event_ids"]
    row = db.execute(
        "select occurred_at, client_timestamp, received_at from events where event_id = %s", (event_id,)
    ).fetchone()
    assert row is not None
    occurred_at, client_timestamp, received_at = row
    assert client_timestamp == happened
    assert occurred_at == happened + (received_at - sent_at)


def test_a_future_timestamp_is_clamped_and_the_sent_one_kept(client: TestClient, db: psycopg.Connection) -> None:
    future = datetime.now(UTC) + timedelta(days=3)
    [event_id] = post(client, event(timestamp=future.isoformat())).json()["event_ids"]
    row = db.execute(
        "select occurred_at, client_timestamp, received_at from events where event_id = %s", (event_id,)
    ).fetchone()
    assert row is not None
    assert row[0] == row[2]
    assert row[1] == future


def test_the_pixel_answers_a_gif_and_stores_the_event(client: TestClient, db: psycopg.Connection) -> None:
    response = client.get("/collect", params={"eventType": "open", "siteId": "mail", "props": '{"campaign": "may"}'})
    assert response.status_code == 200
    assert response.content == PIXEL
    assert response.headers["content-type"] == "image/gif"
    assert response.headers["cache-control"] == "no-store"
    row = db.execute("select event_type, payload from events").fetchone()
    assert row == ("open", {"eventType": "open", "siteId": "mail", "props": {"campaign": "may"}})


def test_a_bad_pixel_is_a_json_error_and_head_stores_nothing(client: TestClient, db: psycopg.Connection) -> None:
    response = client.get("/collect", params={"eventType": "open"})
    assert (response.status_code, response.json()["field"]) == (400, "siteId")
    assert client.head("/collect", params={"eventType": "open", "siteId": "s"}).status_code == 200
    assert db.execute("select count(*) from events").fetchone() == (0,)


def test_cors_preflight_is_answered(client: TestClient) -> None:
    response = client.options(
        "/collect",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "content-type" in response.headers["access-control-allow-headers"].lower()
    simple = post(client, event(), Origin="https://shop.example")
    assert simple.headers["access-control-allow-origin"] == "*"


def test_cors_origins_are_configurable(settings: Settings) -> None:
    with collector_client(replace(settings, cors_origins=("https://shop.example",))) as client:
        allowed = post(client, event(), Origin="https://shop.example")
        assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
        assert allowed.headers["vary"] == "Origin"
        pixel = client.get(
            "/collect", params={"eventType": "open", "siteId": "s"}, headers={"Origin": "https://shop.example"}
        )
        assert pixel.headers["access-control-allow-origin"] == "https://shop.example"
        other = post(client, event(), Origin="https://evil.example")
        assert "access-control-allow-origin" not in other.headers
        preflight = client.options(
            "/collect", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status_code == 400


def test_health_reports_the_database(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    latest = discover()[-1].version
    assert response.json() == {"status": "ok", "database": "connected", "schema_version": latest}


@pytest.fixture
def empty_database(settings: Settings) -> Iterator[Settings]:
    """Settings for a database of its own on the same server, created empty: never migrated."""
    name = f"sluice_empty_{os.getpid()}"
    admin = make_conninfo(settings.database_url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield replace(settings, database_url=make_conninfo(settings.database_url, dbname=name))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))


def test_health_on_a_database_never_migrated_says_run_migrate(empty_database: Settings) -> None:
    with collector_client(empty_database) as client:
        response = client.get("/health")
    versions = [m.version for m in discover()]
    assert response.status_code == 503
    assert response.json() == {
        "error": "migrations_pending",
        "message": "schema missing or behind: run `sluice migrate` (no migration applied in schema 'sluice')",
        "status": "unavailable",
        "database": "connected",
        "schema": "missing",
        "schema_version": None,
        "expected_schema_version": versions[-1],
        "pending_migrations": versions,
    }


def test_health_with_the_last_migration_unapplied_says_run_migrate(settings: Settings, db: psycopg.Connection) -> None:
    *earlier, latest = [m.version for m in discover()]
    db.execute("delete from schema_migrations where version = %s", (latest,))
    with collector_client(settings) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json() == {
        "error": "migrations_pending",
        "message": f"schema missing or behind: run `sluice migrate` (not applied: {latest})",
        "status": "unavailable",
        "database": "connected",
        "schema": "behind",
        "schema_version": earlier[-1],
        "expected_schema_version": latest,
        "pending_migrations": [latest],
    }


def test_with_the_database_down_health_and_collect_answer_503(settings: Settings) -> None:
    closed = replace(settings, database_url="host=127.0.0.1 port=1 user=postgres dbname=nothing", db_timeout_s=1)
    with collector_client(closed) as client:
        health = client.get("/health")
        assert health.status_code == 503
        body = health.json()
        assert (body["error"], body["database"]) == ("database_unavailable", "unreachable")
        assert body["message"].startswith("database unreachable: ")
        collect = post(client, event())
        assert collect.status_code == 503
        assert collect.json()["error"] == "database_unavailable"


def test_a_failed_write_fails_every_request_of_the_batch(
    client: TestClient, db: psycopg.Connection, settings: Settings
) -> None:
    db.execute(
        """create function refuse() returns trigger language plpgsql as $$
           begin raise exception 'refused by test'; end $$;
           create trigger refuse before insert on event_ids for each statement execute function refuse()"""
    )
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: post(client, [event(), event()]).status_code, range(16)))
    assert statuses == [503] * 16
    assert db.execute("select count(*) from events").fetchone() == (0,)
    db.execute("drop trigger refuse on event_ids")
    assert post(client, event()).status_code == 202  # and the writer carries on


def test_concurrent_requests_are_all_acknowledged_and_stored_once(client: TestClient, db: psycopg.Connection) -> None:
    def send(i: int) -> list[str]:
        response = post(client, [event(n=i), event(n=i)] if i % 2 else event(n=i))
        assert response.status_code == 202
        return list(response.json()["event_ids"])

    with ThreadPoolExecutor(32) as pool:
        ids = [event_id for batch in pool.map(send, range(200)) for event_id in batch]
    assert len(ids) == len(set(ids)) == 300
    rows = db.execute("select event_id::text from events").fetchall()
    assert sorted(r[0] for r in rows) == sorted(ids)


OPERATOR = {"Authorization": "Bearer op-token"}


@pytest.fixture
def operator_client(settings: Settings) -> Iterator[TestClient]:
    with collector_client(replace(settings, admin_token="op-token")) as client:
        yield client


def test_events_count_and_recent(operator_client: TestClient) -> None:
    for i in range(3):
        post(operator_client, event(n=i))
    assert operator_client.get("/events/count", headers=OPERATOR).json() == {"count": 3}
    recent = operator_client.get("/events/recent", params={"limit": 2}, headers=OPERATOR).json()["events"]
    assert [e["payload"]["n"] for e in recent] == [2, 1]
    assert set(recent[0]) >= {"event_id", "site_id", "event_type", "received_at", "payload"}


@pytest.mark.parametrize("path", ["/events/count", "/events/recent"])
def test_the_log_is_shown_to_operators_only(client: TestClient, operator_client: TestClient, path: str) -> None:
    assert client.get(path, headers=OPERATOR).status_code == 403  # no SLUICE_ADMIN_TOKEN configured
    assert operator_client.get(path).status_code == 401
    assert operator_client.get(path, headers={"Authorization": "Bearer guess"}).status_code == 401


@pytest.mark.parametrize(
    ("limit", "status", "error"),
    [
        ("0", 422, "invalid_value"),
        ("-1", 422, "invalid_value"),
        ("1001", 422, "invalid_value"),
        ("ten", 400, "bad_parameter"),
        ("1.5", 400, "bad_parameter"),
        ("", 400, "bad_parameter"),
        ("--1", 400, "bad_parameter"),
        ("٣", 400, "bad_parameter"),
    ],
)
def test_recent_rejects_a_bad_limit(operator_client: TestClient, limit: str, status: int, error: str) -> None:
    # The codes and statuses of the ETL's `limit` (sluice/errors.py): 400 unparseable, 422 out of range.
    response = operator_client.get("/events/recent", params={"limit": limit}, headers=OPERATOR)
    assert response.status_code == status
    assert (response.json()["error"], response.json()["field"]) == (error, "limit")


def test_text_that_copy_treats_specially_is_stored_exactly(client: TestClient, db: psycopg.Connection) -> None:
    odd = "tab\there, newline\nthere, cr\r, backslash\\, \\N, \\."
    sent = event(siteId=odd, visitorId="\\N", props={"odd": odd, "unicode": "żółw 🐢 \u2028"})
    [event_id] = post(client, sent, **{"User-Agent": "UA\\with\\backslashes"}).json()["event_ids"]
    row = db.execute("select site_id, visitor_id, user_agent, payload from events where event_id = %s", (event_id,))
    assert row.fetchone() == (odd, "\\N", "UA\\with\\backslashes", sent)


def test_the_writer_reconnects_when_its_connections_are_killed(client: TestClient, db: psycopg.Connection) -> None:
    assert post(client, event()).status_code == 202
    # Both of its connections: the one that wrote, and the one armed for the next write.
    killed = db.execute(
        """select pg_terminate_backend(pid) from pg_stat_activity
           where application_name = 'sluice-collector-writer' and datname = current_database()"""
    ).fetchall()
    assert killed == [(True,), (True,)]
    assert post(client, event()).status_code == 202
    assert db.execute("select count(*) from events").fetchone() == (2,)


def test_the_writer_creates_partitions_ahead_at_start_up(settings: Settings, db: psycopg.Connection) -> None:
    ahead = replace(settings, partitions_ahead_days=12)
    last = datetime.now(UTC).date() + timedelta(days=12)
    name = f"events_{last.strftime('%Y%m%d')}"
    assert db.execute("select to_regclass(%s)", (name,)).fetchone() == (None,)
    with collector_client(ahead):
        pass
    assert db.execute("select to_regclass(%s)::text", (name,)).fetchone() == (name,)


def test_a_post_under_a_root_path_is_answered_the_same(settings: Settings, db: psycopg.Connection) -> None:
    # Mounted under a root_path, POST /collect takes the router's way (RawRoutesFirst steps aside) to the same app.
    with TestClient(create_app(settings), client=VISITOR, root_path="/sluice") as client:
        response = post(client, event(visitorId="v-routed"), Origin="https://shop.example")
        assert response.status_code == 202
        assert response.headers["content-type"] == "application/json"
        assert response.headers["access-control-allow-origin"] == "*"
        [event_id] = response.json()["event_ids"]
        assert stored(db, event_id) == 1
        assert post(client, {"siteId": "s"}).status_code == 400


def test_a_refused_post_from_an_allowed_origin_carries_the_cors_headers(settings: Settings) -> None:
    # The page must be able to read why its event was refused.
    with collector_client(replace(settings, cors_origins=("https://shop.example",))) as client:
        refused = post(client, {"siteId": "s"}, Origin="https://shop.example")
        assert refused.status_code == 400
        assert refused.headers["access-control-allow-origin"] == "https://shop.example"
        assert refused.headers["vary"] == "Origin"
        assert "access-control-allow-origin" not in post(client, {"siteId": "s"}, Origin="https://evil.example").headers
    with collector_client(settings) as client:
        assert post(client, {"siteId": "s"}, Origin="https://a.example").headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-origin" not in post(client, {"siteId": "s"}).headers
