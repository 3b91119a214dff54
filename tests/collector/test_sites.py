"""Sites and write keys: `sluice sites`, /api/v1/sites, and the collector's directory of them."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import psycopg
import pytest
from collector_testing import collector_client
from psycopg_pool import AsyncConnectionPool

from sluice.cli import main
from sluice.collector import sites
from sluice.db import conninfo
from sluice.settings import Settings

TOKEN = "admin-token-for-tests"


@pytest.fixture(autouse=True)
def environment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SLUICE_SCHEMA", settings.schema)


def test_add_prints_the_key_once_and_stores_only_its_hash(
    db: psycopg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sites", "add", "shop", "--json", "--origin", "https://shop.example", "--name", "Shop"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert list(made) == ["site_id", "write_key"]
    assert made["site_id"] == "shop"
    key = made["write_key"]
    assert key.startswith("sk_")
    assert len(key) == 3 + 43
    stored = db.execute("select key_hash, site_id from site_write_keys").fetchall()
    assert stored == [(sites.key_hash(key), "shop")]
    assert db.execute("select site_id, name, allowed_origins, timezone from sites").fetchall() == [
        ("shop", "Shop", ["https://shop.example"], "UTC")
    ]
    assert main(["sites", "add", "shop"]) == 1
    assert "exists" in capsys.readouterr().err


def test_list_rotate_and_remove(db: psycopg.Connection, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sites", "add", "shop", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["write_key"]
    assert main(["sites", "list", "--json"]) == 0
    assert [site["site_id"] for site in json.loads(capsys.readouterr().out)] == ["shop"]
    assert main(["sites", "rotate-key", "shop", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)["write_key"]
    assert second != first
    assert db.execute("select key_hash from site_write_keys").fetchall() == [(sites.key_hash(second),)]
    assert main(["sites", "rotate-key", "nope"]) == 1
    assert main(["sites", "remove", "shop"]) == 0
    assert db.execute("select count(*) from site_write_keys").fetchone() == (0,)
    assert main(["sites", "remove", "shop"]) == 1


@pytest.mark.parametrize(
    "arguments",
    [
        ["sites", "add", ""],
        ["sites", "add", "s", "--origin", "shop.example"],
        ["sites", "add", "s", "--timezone", "Mars/Base"],
    ],
)
def test_bad_arguments_exit_2(arguments: list[str], db: psycopg.Connection) -> None:
    assert main(arguments) == 2
    assert db.execute("select count(*) from sites").fetchone() == (0,)


def test_the_admin_endpoints(settings: Settings, db: psycopg.Connection) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with collector_client(replace(settings, admin_token=TOKEN)) as client:
        assert client.get("/api/v1/registered-sites").status_code == 401
        made = client.post("/api/v1/sites", json={"site_id": "shop", "origins": ["https://shop.example"]}, headers=auth)
        assert made.status_code == 201
        assert made.json()["write_key"].startswith("sk_")
        assert (made.json()["site_id"], made.json()["name"], made.json()["allowed_origins"]) == (
            "shop",
            "shop",
            ["https://shop.example"],
        )
        assert client.post("/api/v1/sites", json={"site_id": "shop"}, headers=auth).status_code == 409
        refused = client.post("/api/v1/sites", json={"site_id": "x", "origins": ["nope"]}, headers=auth)
        assert (refused.status_code, refused.json()["error"], refused.json()["field"]) == (
            422,
            "invalid_value",
            "origins",
        )
        assert client.post("/api/v1/sites", json={"name": "x"}, headers=auth).json()["error"] == "missing_field"
        assert [s["site_id"] for s in client.get("/api/v1/registered-sites", headers=auth).json()["sites"]] == ["shop"]
        rotated = client.post("/api/v1/sites/shop/write-key", headers=auth)
        assert rotated.status_code == 200
        assert db.execute("select key_hash from site_write_keys").fetchall() == [
            (sites.key_hash(rotated.json()["write_key"]),)
        ]
        assert client.delete("/api/v1/sites/shop", headers=auth).status_code == 204
        assert client.delete("/api/v1/sites/shop", headers=auth).status_code == 404
        assert client.post("/api/v1/sites/shop/write-key", headers=auth).status_code == 404


def test_the_directory_knows_a_new_key_at_once_and_forgets_a_rotated_one(
    settings: Settings, db: psycopg.Connection
) -> None:
    async def scenario() -> None:
        async with AsyncConnectionPool(conninfo(settings), min_size=1, max_size=1, open=False) as pool:
            directory = sites.SiteDirectory(pool, timeout_s=5, max_age_s=0)
            assert await directory.site_of_key("sk_unknown") is None
            made = sites.add(db, "shop", None, ["https://shop.example"])
            assert made is not None
            await asyncio.sleep(0.3)  # past the reload interval of a miss
            site = await directory.site_of_key(made[1])
            assert site is not None
            assert (site.site_id, site.allowed_origins) == ("shop", ("https://shop.example",))
            assert await directory.known({"shop", "other"}) == {"shop"}
            assert await directory.any_allows("https://shop.example")
            assert not await directory.any_allows("https://evil.example")
            assert await directory.all_allow({"shop"}, "https://shop.example")
            assert not await directory.all_allow({"shop", "other"}, "https://shop.example")
            assert not await directory.all_allow(set(), "https://shop.example")
            sites.rotate_key(db, "shop")
            assert await directory.site_of_key(made[1]) is None

    asyncio.run(scenario())
