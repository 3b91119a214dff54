"""Who sent a request, as far as Sluice may know it: a salted hash of the client IP, and its place
(country; with a City database, also region and city).

The raw IP never leaves this module. It comes from the socket, or from `X-Forwarded-For` /
`X-Real-IP` only when the peer is a trusted proxy (anyone else could write those headers).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any, NamedTuple

import iptocc
import maxminddb
import psycopg
from psycopg_pool import AsyncConnectionPool

from sluice.collector.fault_log import FaultLog

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
HeaderMap = Mapping[str, str]  # lowercase names


class Place(NamedTuple):
    """Where a client is: what the event log stores of it beside the IP hash, never the address."""

    country: str | None  # ISO 3166-1 alpha-2
    region: str | None = None  # ISO 3166-2 subdivision, e.g. DE-BE: only from a City database
    city: str | None = None  # English name: only from a City database


NOWHERE = Place(None)
Origin = tuple[str | None, Place]  # (ip_hash, place)


def parse_ip(text: str) -> IPAddress | None:
    text = text.strip()
    # Some proxies write a port: "203.0.113.7:4711", "[2001:db8::1]:4711".
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket is the same client.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_trusted(peer: IPAddress | None, proxies: Sequence[Network]) -> bool:
    return peer is not None and any(peer in net for net in proxies)


def client_ip(peer_host: str | None, headers: HeaderMap, proxies: Sequence[Network]) -> tuple[IPAddress | None, bool]:
    """The client's address, and whether the peer is a trusted proxy (whose headers may be believed).

    A peer with no address is a Unix socket: only a local proxy can reach it, so it is trusted.
    """
    peer = parse_ip(peer_host) if peer_host is not None else None
    trusted = peer_host is None or is_trusted(peer, proxies)
    if not trusted:
        return peer, False
    forwarded = headers.get("x-forwarded-for")
    if forwarded:
        # Walk from the nearest hop outwards; the first address not of a trusted proxy is the
        # client. Hops further left were written by whoever that client is, so they are not believed.
        client = peer
        for hop in reversed(forwarded.split(",")):
            ip = parse_ip(hop)
            if ip is None:
                break
            client = ip
            if not is_trusted(ip, proxies):
                break
        return client, True
    real_ip = headers.get("x-real-ip")
    if real_ip:
        ip = parse_ip(real_ip)
        if ip is not None:
            return ip, True
    return peer, True


def ip_hash(salt: bytes, ip: IPAddress) -> str:
    return hashlib.blake2b(ip.packed, key=salt, digest_size=16).hexdigest()


class DailySalts:
    """One random salt per UTC day, shared by every worker through `daily_salts`.

    The first worker to need a day's salt creates it (`on conflict do nothing` settles races) and
    deletes salts older than yesterday; yesterday's is kept a day so requests in flight at midnight
    hash consistently.

    When PostgreSQL cannot be reached for a day's salt (an outage, the events going to the spool),
    the worker hashes with a stand-in: a random salt of its own, held in memory only, so addresses
    are still never at rest unhashed and the hashes are as unlinkable once the day is over. They
    do not match the day's real hashes, so a cookieless visitor seen by a worker during the outage
    counts as another visitor that day. The database is asked again every `RETRY_S`, in the
    background, while requests go on with the stand-in.
    """

    RETRY_S = 2.0

    def __init__(self, pool: AsyncConnectionPool, timeout_s: float = 5) -> None:
        self._pool = pool
        self._timeout_s = timeout_s
        self._cache: dict[date, bytes] = {}
        self._stand_ins: dict[date, bytes] = {}
        self._retry_at = 0.0
        self._retry: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._faults = FaultLog(logging.getLogger("sluice.collector"))

    async def get(self, day: date) -> bytes:
        salt = self._cache.get(day)
        if salt is not None:
            return salt
        stand_in = self._stand_ins.get(day)
        if stand_in is not None:
            self._retry_later(day)
            return stand_in
        async with self._lock:
            if day not in self._cache and day not in self._stand_ins:
                try:
                    self._cache = {day: await self._fetch(day)}
                except psycopg.Error as exc:
                    self._stand_in(day, exc)
            return self._cache.get(day) or self._stand_ins[day]

    def _stand_in(self, day: date, exc: psycopg.Error) -> None:
        message = f"collector: the salt of {day} could not be read ({exc}); hashing with a stand-in held in memory"
        self._faults.fault("salt unreadable", message)
        self._stand_ins = {day: self._stand_ins.get(day) or secrets.token_bytes(32)}
        self._retry_at = time.monotonic() + self.RETRY_S

    def _retry_later(self, day: date) -> None:
        if (self._retry is None or self._retry.done()) and time.monotonic() >= self._retry_at:
            self._retry = asyncio.create_task(self._refetch(day), name="sluice-salt-retry")

    async def _refetch(self, day: date) -> None:
        try:
            salt = await self._fetch(day)
        except psycopg.Error as exc:
            self._stand_in(day, exc)
            return
        self._cache, self._stand_ins = {day: salt}, {}
        self._faults.cleared("salt unreadable", f"collector: the salt of {day} is read from PostgreSQL again")

    async def _fetch(self, day: date) -> bytes:
        async with self._pool.connection(timeout=self._timeout_s) as conn, conn.transaction():
            await conn.execute("delete from daily_salts where day < %s", (day - timedelta(days=1),))
            await conn.execute(
                "insert into daily_salts (day, salt) values (%s, %s) on conflict (day) do nothing",
                (day, secrets.token_bytes(32)),
            )
            cur = await conn.execute("select salt from daily_salts where day = %s", (day,))
            row = await cur.fetchone()
        assert row is not None, f"daily_salts has no row for {day} right after inserting it"
        return bytes(row[0])


def _valid_country(code: str | None) -> str | None:
    if code and len(code) == 2 and code.isascii() and code.isalpha():
        return code.upper()
    return None


class Countries:
    """The place of an IP: a `.mmdb` file when configured (a Country database gives the country; a
    City one, GeoLite2-City or DB-IP City, the region and city too), else the iptocc table inside
    its wheel (country only)."""

    def __init__(self, mmdb_path: str = "") -> None:
        self._reader = maxminddb.open_database(mmdb_path) if mmdb_path else None
        # Both are C lookups, cheap next to a cache's own bookkeeping: no cache needed.
        self._lookup: Callable[[str], Place] = self._from_mmdb if self._reader else self._from_table

    def place(self, ip: IPAddress | None, headers: HeaderMap, trusted_peer: bool) -> Place:
        if trusted_peer:
            from_proxy = _valid_country(headers.get("x-country-code"))
            if from_proxy:
                return Place(from_proxy)
        if ip is None or not ip.is_global:
            return NOWHERE
        return self._lookup(str(ip))

    def country(self, ip: IPAddress | None, headers: HeaderMap, trusted_peer: bool) -> str | None:
        return self.place(ip, headers, trusted_peer).country

    @staticmethod
    def _from_table(ip: str) -> Place:
        return Place(_valid_country(iptocc.country_code(ip)))

    def _from_mmdb(self, ip: str) -> Place:
        assert self._reader is not None
        return place_of_record(self._reader.get(ip))

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


def place_of_record(record: Any) -> Place:
    """A MaxMind DB record's place: GeoIP2/GeoLite2 Country or City, DB-IP Country or City (the same
    layout). The region is the first (largest) subdivision, as ISO 3166-2 (`country-subdivision`);
    a subdivision without an ISO code (DB-IP's free City file names them only) gives none."""
    if not isinstance(record, dict):
        return NOWHERE
    country = record.get("country") or record.get("registered_country")
    code = _valid_country(country.get("iso_code")) if isinstance(country, dict) else None
    region = city = None
    subdivisions = record.get("subdivisions")
    if code and isinstance(subdivisions, list) and subdivisions and isinstance(subdivisions[0], dict):
        sub = subdivisions[0].get("iso_code")
        if isinstance(sub, str) and 0 < len(sub) <= 3 and sub.isascii() and sub.isalnum():
            region = f"{code}-{sub.upper()}"
    names = record.get("city", {}).get("names") if isinstance(record.get("city"), dict) else None
    if isinstance(names, dict):
        name = names.get("en")
        city = name[:200] if isinstance(name, str) and name else None
    return Place(code, region, city)


class Origins:
    """A request's (ip_hash, place), remembered for the day per peer and forwarding headers.

    Most traffic comes from few addresses at a time (and all of it through one proxy), so this spares
    parsing and hashing per request. The keys hold raw addresses in memory only, and are dropped
    with the day's salt.
    """

    MAX_ENTRIES = 50_000

    def __init__(self, proxies: Sequence[Network], salts: DailySalts, countries: Countries) -> None:
        self._proxies = proxies
        self._salts = salts
        self._countries = countries
        self._day: date | None = None
        self._cache: dict[tuple[str | None, ...], Origin] = {}
        # The end users a server source names, by the address's text: as `_cache`, and for the same
        # reason (a source's traffic names the same few end users again and again, and parsing an
        # address, its hash and its place cost more than all the rest of routing its events).
        self._end_users: dict[str, Origin] = {}

    async def of_end_user(self, ip_text: str | None, day: date) -> Origin:
        """(ip_hash, place) of an address a server source reports for its end user: read as
        given, without proxy headers (the source vouches for it); an unparseable one is no address."""
        if not ip_text:
            return None, NOWHERE
        if day != self._day:
            self._cache, self._end_users, self._day = {}, {}, day
        found = self._end_users.get(ip_text)
        if found is None:
            ip = parse_ip(ip_text)
            if ip is None:
                found = (None, NOWHERE)
            else:
                found = (ip_hash(await self._salts.get(day), ip), self._countries.place(ip, {}, trusted_peer=False))
            if len(self._end_users) >= self.MAX_ENTRIES:
                self._end_users.clear()
            self._end_users[ip_text] = found
        return found

    async def resolve(self, peer_host: str | None, headers: HeaderMap, day: date) -> Origin:
        if day != self._day:
            self._cache, self._end_users, self._day = {}, {}, day
        get = headers.get
        key = (peer_host, get("x-forwarded-for"), get("x-real-ip"), get("x-country-code"))
        found = self._cache.get(key)
        if found is None:
            ip, trusted_peer = client_ip(peer_host, headers, self._proxies)
            hashed = ip_hash(await self._salts.get(day), ip) if ip is not None else None
            found = (hashed, self._countries.place(ip, headers, trusted_peer))
            if len(self._cache) >= self.MAX_ENTRIES:
                self._cache.clear()
            self._cache[key] = found
        return found
