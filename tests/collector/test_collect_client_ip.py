from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from collector_testing import PROXY, VISITOR, collector_client, event, post
from starlette.datastructures import Headers

from sluice.collector import sites
from sluice.collector.client_ip import Countries, DailySalts, Origin, Origins, Place, client_ip, ip_hash
from sluice.db import async_pool
from sluice.settings import Settings

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def resolve(peer: str | None, **headers: str) -> tuple[str | None, bool]:
    ip, trusted = client_ip(peer, Headers(headers), LOOPBACK)
    return (str(ip) if ip else None, trusted)


def test_an_untrusted_peer_cannot_claim_another_address() -> None:
    forged = {"x-forwarded-for": "198.51.100.1", "x-real-ip": "198.51.100.2"}
    assert resolve("203.0.113.7", **forged) == ("203.0.113.7", False)


def test_a_trusted_proxy_is_believed_back_to_the_first_untrusted_hop() -> None:
    assert resolve("127.0.0.1", **{"x-forwarded-for": "198.51.100.1"}) == ("198.51.100.1", True)
    # The client wrote the leftmost entry itself; the proxy appended the address it saw.
    assert resolve("127.0.0.1", **{"x-forwarded-for": "10.9.9.9, 198.51.100.1, 127.0.0.2"}) == ("198.51.100.1", True)
    assert resolve("127.0.0.1", **{"x-real-ip": "198.51.100.3"}) == ("198.51.100.3", True)
    assert resolve("127.0.0.1", **{"x-forwarded-for": "garbage"}) == ("127.0.0.1", True)
    assert resolve("::ffff:127.0.0.1", **{"x-forwarded-for": "198.51.100.1"}) == ("198.51.100.1", True)
    assert resolve(None, **{"x-forwarded-for": "198.51.100.1"}) == ("198.51.100.1", True)  # a Unix socket
    assert resolve("testclient") == (None, False)


def test_country_from_a_trusted_header_else_from_the_table() -> None:
    countries = Countries()
    google = ipaddress.ip_address("8.8.8.8")
    assert countries.country(google, Headers({"x-country-code": "de"}), trusted_peer=True) == "DE"
    assert countries.country(google, Headers({"x-country-code": "de"}), trusted_peer=False) == "US"
    assert countries.country(google, Headers({"x-country-code": "nonsense"}), trusted_peer=True) == "US"
    assert countries.country(ipaddress.ip_address("10.0.0.1"), Headers(), trusted_peer=False) is None


def stored_hashes(db: psycopg.Connection) -> list[tuple[str, str | None]]:
    return [(r[0], r[1]) for r in db.execute("select ip_hash, country from events order by payload->>'n'")]


def test_the_stored_hash_is_of_the_believed_address(settings: Settings, db: psycopg.Connection) -> None:
    headers = {"X-Forwarded-For": "8.8.8.8", "X-Country-Code": "FR"}
    with collector_client(settings, peer=VISITOR) as client:
        assert post(client, event(n="1"), **headers).status_code == 202
    with collector_client(settings, peer=PROXY) as client:
        assert post(client, event(n="2"), **headers).status_code == 202
        assert post(client, event(n="3"), **{"X-Forwarded-For": "8.8.8.8"}).status_code == 202
    row = db.execute("select salt from daily_salts where day = %s", (datetime.now(UTC).date(),)).fetchone()
    assert row is not None
    salt = bytes(row[0])
    assert stored_hashes(db) == [
        (ip_hash(salt, ipaddress.ip_address(VISITOR[0])), None),  # TEST-NET: no country
        (ip_hash(salt, ipaddress.ip_address("8.8.8.8")), "FR"),
        (ip_hash(salt, ipaddress.ip_address("8.8.8.8")), "US"),
    ]


def test_no_raw_ip_anywhere_in_the_database(settings: Settings, db: psycopg.Connection) -> None:
    addresses = [VISITOR[0], "198.51.100.23", "2001:db8::42", "192.0.2.77", "2001:db8::77", "192.0.2.99"]
    # the dialects' bodies carry them too: Segment's context.ip, PostHog's $ip, Umami's ip
    dialect_addresses = ["192.0.2.11", "192.0.2.12", "192.0.2.13", "192.0.2.14", "192.0.2.15"]
    addresses += dialect_addresses
    made = sites.add(db, "s", None, [])
    assert made is not None
    key = made[1]
    settings = replace(settings, ingest_tokens=("ingest-1",))
    with collector_client(settings, peer=VISITOR) as client:
        segment = {"type": "track", "event": "e", "anonymousId": "a", "context": {"ip": dialect_addresses[0]}}
        assert client.post("/v1/batch", json={"writeKey": key, "batch": [segment]}).status_code == 200
        capture = {"event": "e", "distinct_id": "d", "properties": {"$ip": dialect_addresses[1]}}
        assert client.post("/capture", json={"api_key": key, **capture}).status_code == 200
        # posthog-node's identify() puts what it is given, $ip included, in the person's $set
        identify = {"event": "$identify", "distinct_id": "u", "properties": {"$set": {"$ip": dialect_addresses[4]}}}
        assert client.post("/capture", json={"api_key": key, **identify}).status_code == 200
        umami = {"type": "event", "payload": {"website": "s", "url": "/", "ip": dialect_addresses[2]}}
        assert client.post("/api/send", json=umami, headers={"Authorization": f"Bearer {key}"}).status_code == 200
        unbelieved = {"type": "event", "payload": {"website": "s", "url": "/", "ip": dialect_addresses[3]}}
        assert client.post("/api/send", json=unbelieved).status_code == 200  # without the key: not believed, not stored
        post(client, event(), **{"X-Forwarded-For": addresses[1]})
        # a server source's end users (sluice.client): their addresses travel in the event's context
        server_events = [event(context={"ip": addresses[3]}), event(context={"ip": addresses[4], "userAgent": "x"})]
        assert post(client, server_events, Authorization="Bearer ingest-1").status_code == 202
        # without the token the context is not believed, and not stored either
        assert post(client, event(context={"ip": addresses[5]})).status_code == 202
    with collector_client(settings, peer=PROXY) as client:
        post(client, [event(), event()], **{"X-Forwarded-For": addresses[1]})
        post(client, event(), **{"X-Real-IP": addresses[2]})
        client.get("/collect", params={"eventType": "open", "siteId": "s"}, headers={"X-Forwarded-For": addresses[1]})
    assert db.execute("select count(*) from events where ip_hash is not null").fetchone() == (13,)
    columns = db.execute(
        """select table_name, column_name from information_schema.columns
           where table_schema = 'sluice' and data_type in ('text', 'character varying', 'jsonb', 'json', 'bytea')"""
    ).fetchall()
    assert ("events_default", "payload") in columns
    for table, column in columns:
        for address in addresses:
            found = db.execute(
                psycopg.sql.SQL("select count(*) from {} where {}::text like %s").format(
                    psycopg.sql.Identifier(table), psycopg.sql.Identifier(column)
                ),
                (f"%{address}%",),
            ).fetchone()
            assert found == (0,), f"{address} found in {table}.{column}"


def test_salts_are_made_once_per_day_and_old_ones_deleted(settings: Settings, db: psycopg.Connection) -> None:
    today = date(2026, 5, 4)
    for day in (today - timedelta(days=5), today - timedelta(days=1)):
        db.execute("insert into daily_salts (day, salt) values (%s, %s)", (day, b"old"))

    async def two_workers() -> tuple[bytes, bytes]:
        async with async_pool(settings) as pool:
            return await asyncio.gather(DailySalts(pool).get(today), DailySalts(pool).get(today))

    first, second = asyncio.run(two_workers())
    assert first == second
    assert len(first) == 32
    days = [r[0] for r in db.execute("select day from daily_salts order by day")]
    assert days == [today - timedelta(days=1), today]


@pytest.mark.parametrize("address", ["198.51.100.23", "2001:db8::1"])
def test_the_hash_is_hex_and_depends_on_the_salt(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert ip_hash(b"a" * 32, ip) == ip_hash(b"a" * 32, ip)
    assert ip_hash(b"a" * 32, ip) != ip_hash(b"b" * 32, ip)
    assert len(ip_hash(b"a" * 32, ip)) == 32
    int(ip_hash(b"a" * 32, ip), 16)


class CountingSalts(DailySalts):
    """A day's salt made of its date, and the days it was asked for."""

    def __init__(self) -> None:
        self.asked: list[date] = []

    async def get(self, day: date) -> bytes:
        self.asked.append(day)
        return day.isoformat().encode()


def test_origins_are_remembered_within_a_day_only() -> None:
    salts = CountingSalts()
    origins = Origins(LOOPBACK, salts, Countries())
    headers = Headers({"x-forwarded-for": "8.8.8.8"})
    day1, day2 = date(2026, 5, 4), date(2026, 5, 5)

    async def resolve_all() -> list[Origin]:
        return [await origins.resolve("127.0.0.1", headers, day) for day in (day1, day1, day2)]

    first, again, next_day = asyncio.run(resolve_all())
    assert first == again
    assert first[1] == next_day[1] == Place("US")
    assert first[0] != next_day[0]
    assert salts.asked == [day1, day2]


def test_end_users_are_remembered_within_a_day_only() -> None:
    """A server source's end users, by the address's text: parsed, hashed and placed once a day
    (the salt asked for once), and again with the next day's salt, whichever lookup sees that day first."""

    salts = CountingSalts()
    origins = Origins(LOOPBACK, salts, Countries())
    day1, day2 = date(2026, 5, 4), date(2026, 5, 5)

    async def look_up() -> list[Origin]:
        found = [await origins.of_end_user("8.8.8.8", day) for day in (day1, day1)]
        found.append(await origins.of_end_user("not an address", day1))
        await origins.resolve("127.0.0.1", Headers({}), day2)  # a /collect request opens day 2
        found.append(await origins.of_end_user("8.8.8.8", day2))
        found.append(await origins.of_end_user("", day2))
        return found

    first, again, unparseable, next_day, nobody = asyncio.run(look_up())
    assert first == again == (ip_hash(day1.isoformat().encode(), ipaddress.ip_address("8.8.8.8")), Place("US"))
    assert unparseable == nobody == (None, Place(None))
    assert next_day == (ip_hash(day2.isoformat().encode(), ipaddress.ip_address("8.8.8.8")), Place("US"))
    assert salts.asked == [day1, day2, day2]


@pytest.mark.parametrize(
    ("written", "parsed"),
    [("198.51.100.1:4711", "198.51.100.1"), ("[2001:db8::1]:4711", "2001:db8::1"), (" 2001:db8::1 ", "2001:db8::1")],
)
def test_addresses_with_ports_are_understood(written: str, parsed: str) -> None:
    assert resolve("127.0.0.1", **{"x-forwarded-for": written}) == (parsed, True)


def test_an_mmdb_record_gives_the_country_or_the_registered_one() -> None:
    class FakeReader:
        """What maxminddb.Reader.get returns for a GeoLite2/GeoIP2 Country database."""

        def get(self, ip: str) -> object:
            records = {
                "8.8.8.8": {"country": {"iso_code": "SE"}},
                "8.8.4.4": {"registered_country": {"iso_code": "no"}},
            }
            return records.get(ip)

        def close(self) -> None:
            pass

    countries = Countries()
    countries._reader = FakeReader()  # type: ignore[assignment]
    countries._lookup = countries._from_mmdb
    lookup = [countries.country(ipaddress.ip_address(ip), Headers(), False) for ip in ("8.8.8.8", "8.8.4.4", "1.1.1.1")]
    assert lookup == ["SE", "NO", None]
