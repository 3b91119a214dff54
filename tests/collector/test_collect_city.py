"""Region and city (issue 13): with SLUICE_GEOIP_DB naming a City database the collector stores
the client's ISO 3166-2 subdivision and city beside its country, never the address, and sessions,
daily_breakdown and the reports API's breakdown gain `city`. Without one both stay null. The
database is a small .mmdb this test writes itself (tests/geoip_db.py)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path

import psycopg
from collector_testing import PROXY, collector_client, event, post
from eventlog import settle
from geoip_db import write_city_db
from starlette.testclient import TestClient

from sluice.app import create_app
from sluice.collector.client_ip import Countries, Place
from sluice.etl import pipeline
from sluice.settings import Settings

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"


def test_a_city_database_gives_country_region_and_city(tmp_path: Path) -> None:
    countries = Countries(str(write_city_db(tmp_path / "city.mmdb")))
    places = {
        ip: countries.place(ipaddress.ip_address(ip), {}, trusted_peer=False)
        for ip in ("8.8.8.8", "9.9.9.9", "1.1.1.1", "2001:4860::8888", "4.4.4.4", "10.0.0.1")
    }
    assert places == {
        "8.8.8.8": Place("DE", "DE-BE", "Berlin"),
        "9.9.9.9": Place("FR", "FR-IDF", "Paris"),
        "1.1.1.1": Place("AU"),  # a record without subdivision or city
        "2001:4860::8888": Place("CH", "CH-ZH", "Zürich"),
        "4.4.4.4": Place(None),  # not in the file
        "10.0.0.1": Place(None),  # private: never looked up
    }
    # a trusted proxy's country header names the country only
    assert countries.place(ipaddress.ip_address("8.8.8.8"), {"x-country-code": "se"}, True) == Place("SE")
    countries.close()


def _collect(settings: Settings, addresses: list[str]) -> None:
    with collector_client(settings, peer=PROXY) as client:
        for n, address in enumerate(addresses):
            body = event(visitorId=f"v{n}", url=f"https://example.com/{n}")
            assert post(client, body, **{"X-Forwarded-For": address, "User-Agent": UA}).status_code == 202


def test_the_collector_stores_region_and_city_and_the_etl_breaks_down_by_city(
    settings: Settings, db: psycopg.Connection, tmp_path: Path
) -> None:
    settings = replace(settings, geoip_db=str(write_city_db(tmp_path / "city.mmdb")))
    addresses = ["8.8.8.8", "8.8.8.9", "9.9.9.9", "1.1.1.1"]
    _collect(settings, addresses)
    stored = db.execute("select visitor_id, country, region, city from events order by visitor_id").fetchall()
    assert stored == [
        ("v0", "DE", "DE-BE", "Berlin"),
        ("v1", "DE", "DE-BE", "Berlin"),
        ("v2", "FR", "FR-IDF", "Paris"),
        ("v3", "AU", None, None),
    ]
    for address in addresses:  # the address itself is nowhere
        found = db.execute(
            "select count(*) from events where payload::text like %s or ip_hash = %s", (f"%{address}%", address)
        )
        assert found.fetchone() == (0,)

    settle(db)  # the ETL reads events below the snapshot xmin: another session may hold it back
    pipeline.run(settings)
    sessions = db.execute("select visitor_key, region, city from sessions order by visitor_key").fetchall()
    assert sessions == [
        ("v0", "DE-BE", "Berlin"),
        ("v1", "DE-BE", "Berlin"),
        ("v2", "FR-IDF", "Paris"),
        ("v3", None, None),
    ]
    assert db.execute("select region, city from stg_events order by visitor_key").fetchall() == [
        ("DE-BE", "Berlin"), ("DE-BE", "Berlin"), ("FR-IDF", "Paris"), (None, None)
    ]  # fmt: skip
    breakdown = db.execute(
        "select value, visitors, pageviews from daily_breakdown where dimension = 'city' order by value"
    ).fetchall()
    assert breakdown == [("(none)", 1, 1), ("Berlin", 2, 2), ("Paris", 1, 1)]

    reading = replace(settings, read_token="read-t0ken")
    with TestClient(create_app(reading)) as client:
        answer = client.get(
            "/api/v1/sites/site-1/breakdown/city",
            params={"period": "all", "order": "visitors"},
            headers={"Authorization": "Bearer read-t0ken"},
        )
    assert answer.status_code == 200, answer.text
    assert [(row["value"], row["visitors"]) for row in answer.json()["rows"]] == [
        ("Berlin", 2), ("(none)", 1), ("Paris", 1)
    ]  # fmt: skip


def test_without_a_city_database_region_and_city_are_null(settings: Settings, db: psycopg.Connection) -> None:
    _collect(settings, ["8.8.8.8"])  # iptocc's table: the country only
    assert db.execute("select country, region, city from events").fetchall() == [("US", None, None)]
    settle(db)  # the ETL reads events below the snapshot xmin: another session may hold it back
    pipeline.run(settings)
    assert db.execute("select country, region, city from sessions").fetchall() == [("US", None, None)]
    assert db.execute("select value from daily_breakdown where dimension = 'city'").fetchall() == [("(none)",)]
