"""Per-site CORS on `/collect` (issue 15): a registered site's `allowed_origins` open `/collect` to
its pages as they open the dialects' endpoints, beside SLUICE_CORS_ORIGINS. In-process first (every
case), then against a real `sluice serve` over a socket."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import psycopg
import pytest
from collector_testing import VISITOR, collector_client, event, post
from serving import start_serve
from starlette.testclient import TestClient

from sluice.collector import sites
from sluice.settings import Settings

Answer = http.client.HTTPResponse
SHOP = "https://shop.example"
EVIL = "https://evil.example"
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}


@pytest.fixture
def client(settings: Settings, db: psycopg.Connection) -> Iterator[TestClient]:
    assert sites.add(db, "shop", None, [SHOP]) is not None
    assert sites.add(db, "blog", None, ["https://blog.example"]) is not None
    # SLUICE_CORS_ORIGINS names another origin only: the sites' own origins must do the rest
    with collector_client(replace(settings, cors_origins=("https://other.example",)), peer=VISITOR) as client:
        yield client


def count(db: psycopg.Connection) -> int:
    row = db.execute("select count(*) from events").fetchone()
    assert row is not None
    return int(row[0])


def test_a_preflight_passes_for_an_origin_a_site_allows(client: TestClient) -> None:
    # the process's first request: the site directory has not been read yet
    allowed = client.options("/collect", headers={"Origin": SHOP, **PREFLIGHT})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == SHOP
    assert allowed.headers["vary"] == "Origin"
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "content-type" in allowed.headers["access-control-allow-headers"].lower()
    refused = client.options("/collect", headers={"Origin": EVIL, **PREFLIGHT})
    assert refused.status_code == 400  # Starlette's answer for an origin nobody allows
    assert "access-control-allow-origin" not in refused.headers
    listed = client.options("/collect", headers={"Origin": "https://other.example", **PREFLIGHT})
    assert (listed.status_code, listed.headers["access-control-allow-origin"]) == (200, "https://other.example")


def test_a_post_is_readable_by_the_pages_of_the_sites_it_names(client: TestClient, db: psycopg.Connection) -> None:
    mine = post(client, event(siteId="shop"), Origin=SHOP)
    assert mine.status_code == 202
    assert (mine.headers["access-control-allow-origin"], mine.headers["vary"]) == (SHOP, "Origin")
    # the same origin for another site, for an unregistered one, or a batch mixing them: not readable
    assert "access-control-allow-origin" not in post(client, event(siteId="blog"), Origin=SHOP).headers
    assert "access-control-allow-origin" not in post(client, event(siteId="nope"), Origin=SHOP).headers
    mixed = post(client, [event(siteId="shop"), event(siteId="blog")], Origin=SHOP)
    assert (mixed.status_code, "access-control-allow-origin" in mixed.headers) == (202, False)
    assert "access-control-allow-origin" not in post(client, event(siteId="shop"), Origin=EVIL).headers
    # CORS decides what a page may read, not what is stored (a non-browser sends no Origin at all)
    assert count(db) == 6
    # a refusal of a named site's event is readable too, so its page learns why
    refused = post(client, event(siteId="shop", eventType=None), Origin=SHOP)
    assert (refused.status_code, refused.json()["error"]) == (400, "missing_field")
    assert refused.headers["access-control-allow-origin"] == SHOP
    # a body naming no site: readable by an origin some site allows, as its preflight was
    broken = client.post("/collect", content=b"{", headers={"Content-Type": "application/json", "Origin": SHOP})
    assert (broken.status_code, broken.headers["access-control-allow-origin"]) == (400, SHOP)
    broken = client.post("/collect", content=b"{", headers={"Content-Type": "application/json", "Origin": EVIL})
    assert "access-control-allow-origin" not in broken.headers
    assert count(db) == 6


def test_the_pixel_is_readable_by_its_site_s_pages(client: TestClient) -> None:
    pixel = client.get("/collect", params={"eventType": "open", "siteId": "shop"}, headers={"Origin": SHOP})
    assert (pixel.status_code, pixel.headers["access-control-allow-origin"]) == (200, SHOP)
    other = client.get("/collect", params={"eventType": "open", "siteId": "blog"}, headers={"Origin": SHOP})
    assert (other.status_code, "access-control-allow-origin" in other.headers) == (200, False)


def test_a_site_s_origin_added_later_is_honoured_without_a_restart(client: TestClient, db: psycopg.Connection) -> None:
    assert (
        "access-control-allow-origin" not in post(client, event(siteId="late"), Origin="https://late.example").headers
    )
    assert sites.add(db, "late", None, ["https://late.example"]) is not None
    # a site the directory does not know yet is looked up again (at most every 0.25 s)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        answer = post(client, event(siteId="late"), Origin="https://late.example")
        if "access-control-allow-origin" in answer.headers:
            break
        time.sleep(0.1)
    assert answer.headers["access-control-allow-origin"] == "https://late.example"


def _request(port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body, headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_per_site_cors_on_a_real_serve(settings: Settings, db: psycopg.Connection, tmp_path: Path) -> None:
    assert sites.add(db, "shop", None, [SHOP]) is not None
    env = {
        "DATABASE_URL": settings.database_url,
        "SLUICE_DATA_DIR": str(tmp_path / "data"),
        "SLUICE_ADMIN_TOKEN": "admin-1",
        "SLUICE_ETL_SCHEDULE": "off",
        "SLUICE_CORS_ORIGINS": "https://other.example",
    }
    serving = start_serve(env, tmp_path)
    try:
        preflight = _request(serving.port, "OPTIONS", "/collect", None, {"Origin": SHOP, **PREFLIGHT})
        assert (preflight.status, preflight.getheader("access-control-allow-origin")) == (204, SHOP)
        refused = _request(serving.port, "OPTIONS", "/collect", None, {"Origin": EVIL, **PREFLIGHT})
        assert (refused.status, refused.getheader("access-control-allow-origin")) == (400, None)
        body = orjson.dumps(event(siteId="shop"))
        headers = {"Content-Type": "application/json", "Origin": SHOP}
        actual = _request(serving.port, "POST", "/collect", body, headers)
        assert (actual.status, actual.getheader("access-control-allow-origin")) == (202, SHOP)
        evil = _request(serving.port, "POST", "/collect", body, {**headers, "Origin": EVIL})
        assert (evil.status, evil.getheader("access-control-allow-origin")) == (202, None)
    finally:
        assert serving.stop() == 0
    assert count(db) == 2
