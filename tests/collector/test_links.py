"""Short links: the redirect, its click, the ETL's click tables, and managing links (CLI, API)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from collector_testing import VISITOR, collector_client
from databases import private_cluster
from e2e.harness import wait_until
from eventlog import CHROME, settle

from sluice import spool_files
from sluice.cli import main
from sluice.collector import links
from sluice.db import connect
from sluice.embedded_pg import database_for
from sluice.etl import pipeline
from sluice.migrations import apply, migrate
from sluice.settings import Settings

ADMIN = {"Authorization": "Bearer admin-1"}
TARGET = "https://shop.example/spring?utm_source=flyer"


@pytest.fixture
def admin_settings(settings: Settings) -> Settings:
    return replace(settings, admin_token="admin-1")


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SLUICE_SCHEMA", settings.schema)


def clicks(db: psycopg.Connection) -> list[tuple[Any, ...]]:
    return db.execute(
        """select site_id, event_type, payload ->> 'shortCode', payload ->> 'target', payload ->> 'referrer',
                  ip_hash is not null, user_agent from events order by received_at"""
    ).fetchall()


def test_a_short_link_redirects_at_once_and_its_click_reaches_the_click_tables(
    settings: Settings, db: psycopg.Connection
) -> None:
    assert links.add(db, "shop", "spring", TARGET) is not None
    with collector_client(settings, peer=("8.8.8.8", 4000)) as client:
        answer = client.get(
            "/l/spring", headers={"User-Agent": CHROME, "Referer": "https://news.example/"}, follow_redirects=False
        )
        assert (answer.status_code, answer.headers["location"], answer.headers["cache-control"]) == (
            302, TARGET, "no-store"
        )  # fmt: skip
        head = client.head("/l/spring", follow_redirects=False)  # a link checker: no click
        assert head.status_code == 302
    # the lifespan's end waited for the click being written
    assert clicks(db) == [("shop", "click", "spring", TARGET, "https://news.example/", True, CHROME)]
    assert db.execute("select country from events").fetchall() == [("US",)]
    settle(db)
    pipeline.run(settings)
    assert db.execute("select site_id, short_code, target_url, referrer, country, is_bot from clicks").fetchall() == [
        ("shop", "spring", TARGET, "https://news.example/", "US", False)
    ]
    assert db.execute("select short_code, sum(clicks) from hourly_click_counts group by 1").fetchall() == [
        ("spring", 1)
    ]


def test_unknown_and_disabled_codes_get_a_404_page_and_record_nothing(
    settings: Settings, db: psycopg.Connection
) -> None:
    links.add(db, "shop", "old", TARGET)
    links.disable(db, "shop", "old")
    with collector_client(settings) as client:
        for path in ("/l/old", "/l/nope", "/l/evil.example"):
            answer = client.get(path, follow_redirects=False)
            assert answer.status_code == 404, path
            assert answer.headers["content-type"] == "text/html; charset=utf-8"
            assert "location" not in answer.headers
        # (a URL as the code is no route at all: still no redirect)
        answer = client.get("/l/https:%2F%2Fevil.example", follow_redirects=False)
        assert (answer.status_code, "location" in answer.headers) == (404, False)
    assert db.execute("select count(*) from events").fetchone() == (0,)


def test_the_prefix_is_configurable(settings: Settings, db: psycopg.Connection) -> None:
    links.add(db, "shop", "go1", TARGET)
    with collector_client(replace(settings, link_prefix="/go")) as client:
        assert client.get("/go/go1", follow_redirects=False).status_code == 302
        assert client.get("/l/go1", follow_redirects=False).status_code == 404


def test_links_are_managed_through_the_admin_api(admin_settings: Settings, db: psycopg.Connection) -> None:
    with collector_client(admin_settings) as client:
        added = client.post("/api/v1/sites/shop/links", json={"code": "new", "url": TARGET}, headers=ADMIN)
        assert added.status_code == 201
        assert {k: v for k, v in added.json().items() if k != "created_at"} == {
            "short_code": "new", "site_id": "shop", "target_url": TARGET, "disabled": False
        }  # fmt: skip
        # this process redirects it at once
        assert client.get("/l/new", follow_redirects=False).headers["location"] == TARGET
        taken = client.post("/api/v1/sites/other/links", json={"code": "new", "url": TARGET}, headers=ADMIN)
        assert (taken.status_code, taken.json()["error"], taken.json()["field"]) == (409, "already_exists", "code")
        bad = client.post("/api/v1/sites/shop/links", json={"code": "x", "url": "javascript:alert(1)"}, headers=ADMIN)
        assert (bad.status_code, bad.json()["error"], bad.json()["field"]) == (422, "invalid_value", "url")
        missing = client.post("/api/v1/sites/shop/links", json={"code": "x"}, headers=ADMIN)
        assert (missing.status_code, missing.json()["field"]) == (400, "url")
        garbage = client.post("/api/v1/sites/shop/links", content=b"{", headers=ADMIN)
        assert (garbage.status_code, garbage.json()["error"]) == (400, "malformed_json")
        assert client.post("/api/v1/sites/shop/links", json={"code": "y", "url": TARGET}).status_code == 401
        listed = client.get("/api/v1/sites/shop/links", headers=ADMIN)
        assert [link["short_code"] for link in listed.json()["links"]] == ["new"]
        assert client.get("/api/v1/sites/other/links", headers=ADMIN).json() == {"links": []}


@pytest.mark.usefixtures("cli_env")
def test_links_are_managed_from_the_shell(db: psycopg.Connection, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["links", "add", "shop", "spring", TARGET]) == 0
    assert main(["links", "add", "blog", "hello", "https://blog.example/"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:4] for line in out] == [
        ["shop", "/l/spring", TARGET, "active"],
        ["blog", "/l/hello", "https://blog.example/", "active"],
    ]
    assert main(["links", "add", "blog", "spring", "https://blog.example/"]) == 1
    assert "short code 'spring' is taken" in capsys.readouterr().err
    assert main(["links", "add", "blog", "bad code", "https://blog.example/"]) == 2
    assert "short code 'bad code'" in capsys.readouterr().err
    assert main(["links", "disable", "shop", "spring"]) == 0
    assert main(["links", "disable", "shop", "hello"]) == 1  # blog's, not shop's
    capsys.readouterr()
    assert main(["links", "list"]) == 0
    assert [line.split("\t")[:4] for line in capsys.readouterr().out.splitlines()] == [
        ["blog", "/l/hello", "https://blog.example/", "active"],
        ["shop", "/l/spring", TARGET, "disabled"],
    ]
    assert main(["links", "list", "blog"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # as test_embedded_pg: as root the server runs as another user, who must be able to reach it
    with tempfile.TemporaryDirectory(prefix="sluice-links-", dir="/tmp") as tmp:
        Path(tmp).chmod(0o755)
        yield Path(tmp)


def test_the_redirect_still_answers_while_postgresql_is_down(data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    # a PostgreSQL of this test's own (the embedded one), so that it can be stopped: never the shared server
    base = replace(Settings(), database_url="", data_dir=data_dir, etl_schedule="off", db_timeout_s=1)
    with ExitStack() as server:
        settings = server.enter_context(database_for(base))
        migrate(settings)
        with connect(settings, autocommit=True) as conn:
            links.add(conn, "shop", "spring", TARGET)
        with collector_client(settings, peer=VISITOR) as client:
            assert client.get("/l/spring", follow_redirects=False).status_code == 302
            with connect(settings, autocommit=True) as conn:  # that click is stored before PostgreSQL stops
                for _ in range(400):
                    if conn.execute("select count(*) from events").fetchone() == (1,):
                        break
                    time.sleep(0.05)
            server.close()  # PostgreSQL stops
            for _ in range(20):
                answer = client.get("/l/spring", follow_redirects=False)
                assert (answer.status_code, answer.headers["location"]) == (302, TARGET)
            assert client.get("/l/nope", follow_redirects=False).status_code == 404
    # the clicks were not lost: they wait in the spool for PostgreSQL to be back
    assert spool_files.contents(data_dir).events == 20
    assert not any("was not stored" in r.getMessage() for r in caplog.records)


def test_a_redirect_service_of_its_own_reports_clicks_with_an_ingest_token(
    settings: Settings, db: psycopg.Connection
) -> None:
    links.add(db, "shop", "abc123", TARGET)
    report = {
        "short_code": "abc123",
        "ip_address": "8.8.8.8",
        "user_agent": CHROME,
        "referer": "https://google.com/",
        "country": "fr",
        "city": "Lyon",
    }
    token = {"Authorization": "Bearer ingest-1"}
    with collector_client(replace(settings, ingest_tokens=("ingest-1",))) as client:
        answer = client.post("/analytics/events/", json=report, headers=token)
        assert (answer.status_code, answer.json()) == (200, True)
        assert client.post("/analytics/events/", json=report).status_code == 401  # the body is believed only then
        unknown = client.post("/analytics/events/", json={**report, "short_code": "elsewhere"}, headers=token)
        assert (unknown.status_code, unknown.json()["field"]) == (422, "site_id")
        other = {**report, "short_code": "elsewhere", "site_id": "blog", "country": None}
        assert client.post("/analytics/events/", json=other, headers=token).json() is True
        wrong = client.post("/analytics/events/", json={**report, "city": 7}, headers=token)
        assert (wrong.status_code, wrong.json()["field"]) == (400, "city")
    rows = db.execute(
        """select site_id, payload ->> 'shortCode', payload ->> 'target', payload ->> 'referrer', payload ->> 'city',
                  country, user_agent, ip_hash is not null, payload::text like '%8.8.8.8%'
           from events order by received_at"""
    ).fetchall()
    assert rows == [
        ("shop", "abc123", TARGET, "https://google.com/", "Lyon", "FR", CHROME, True, False),
        ("blog", "elsewhere", None, "https://google.com/", "Lyon", "US", CHROME, True, False),
    ]
    settle(db)
    pipeline.run(settings)
    assert db.execute("select site_id, short_code, country, is_bot from clicks order by site_id").fetchall() == [
        ("blog", "elsewhere", "US", False),
        ("shop", "abc123", "FR", False),
    ]


def test_clicks_the_writer_refuses_wait_and_are_stored_when_postgresql_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a private cluster (never the shared server), and no room in the spool: while PostgreSQL is
    # stopped the writer refuses every batch, and the clicks must wait in the queue, not be lost
    with private_cluster(prefix="sluice-clicks-") as postgres:
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            apply(conn, "sluice")
        settings = replace(
            Settings(), database_url=postgres.url, data_dir=tmp_path, etl_schedule="off", db_timeout_s=1, spool_max_mb=0
        )
        with connect(settings, autocommit=True) as conn:
            links.add(conn, "shop", "spring", TARGET)

        def stored() -> int:
            with connect(settings, autocommit=True) as conn:
                row = conn.execute("select count(*) from events where event_type = 'click'").fetchone()
                return int(row[0]) if row else 0

        with collector_client(settings, peer=VISITOR) as client:
            assert client.get("/l/spring", headers={"User-Agent": CHROME}, follow_redirects=False).status_code == 302
            wait_until(lambda: stored() == 1, "the first click")
            postgres.stop()
            for n in range(30):
                headers = {"User-Agent": CHROME, "Referer": f"https://r{n}.example/"}
                answer = client.get("/l/spring", headers=headers, follow_redirects=False)
                assert (answer.status_code, answer.headers["location"]) == (302, TARGET)
            table: links.LinkTable = client.app_state["links"]
            wait_until(lambda: any("wait to be stored" in r.getMessage() for r in caplog.records), "a refusal")
            assert len(table.clicks) == 30  # held, not dropped
            postgres.start()
            wait_until(lambda: len(table.clicks) == 0, "the waiting clicks to be written", timeout_s=30)
            assert (table.clicks.stored, table.clicks.dropped) == (31, 0)
        with connect(settings, autocommit=True) as conn:
            referrers = conn.execute("select payload ->> 'referrer' from events where event_type = 'click'").fetchall()
        assert sorted(r for (r,) in referrers if r) == sorted(f"https://r{n}.example/" for n in range(30))
        assert len(referrers) == 31
    assert any("the clicks that waited are stored" in r.getMessage() for r in caplog.records)


def test_the_302_is_written_before_the_click_is_made(settings: Settings, db: psycopg.Connection) -> None:
    # the redirect as uvicorn calls it: what it sends, and what the click queue holds meanwhile
    import asyncio

    from sluice.collector.links import Redirect

    assert links.add(db, "shop", "spring", TARGET) is not None

    async def scenario() -> None:
        table = links.LinkTable(None, 1)  # type: ignore[arg-type]
        await asyncio.sleep(0)
        [link] = links.list_links(db)
        table.put(link)
        seen: list[tuple[str, int]] = []

        async def send(message: dict[str, Any]) -> None:
            seen.append((message["type"], len(table.clicks)))

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        scope = {
            "type": "http", "method": "GET", "path": "/l/spring", "headers": [(b"user-agent", CHROME.encode())],
            "client": ("203.0.113.7", 5000), "state": {"links": table}, "path_params": {"short_code": "spring"},
        }  # fmt: skip
        await Redirect()(scope, receive, send)  # type: ignore[arg-type]
        assert seen == [("http.response.start", 0), ("http.response.body", 0)]  # answered before queueing
        assert len(table.clicks) == 1

    asyncio.run(scenario())
