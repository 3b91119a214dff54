"""Who sent a request, as far as Sluice may know it: a salted hash of the client IP, and a country.

The raw IP never leaves this module. It comes from the socket, or from `X-Forwarded-For` /
`X-Real-IP` only when the peer is a trusted proxy (anyone else could write those headers).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta

import iptocc
import maxminddb
from psycopg_pool import AsyncConnectionPool

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
HeaderMap = Mapping[str, str]  # lowercase names
Origin = tuple[str | None, str | None]  # (ip_hash, country)


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
    """

    def __init__(self, pool: AsyncConnectionPool, timeout_s: float = 5) -> None:
        self._pool = pool
        self._timeout_s = timeout_s
        self._cache: dict[date, bytes] = {}
        self._lock = asyncio.Lock()

    async def get(self, day: date) -> bytes:
        salt = self._cache.get(day)
        if salt is not None:
            return salt
        async with self._lock:
            if day not in self._cache:
                self._cache = {day: await self._fetch(day)}
            return self._cache[day]

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
    """Country of an IP: a `.mmdb` file when configured, else the iptocc table inside its wheel."""

    def __init__(self, mmdb_path: str = "") -> None:
        self._reader = maxminddb.open_database(mmdb_path) if mmdb_path else None
        # Both are C lookups, cheap next to a cache's own bookkeeping: no cache needed.
        self._lookup: Callable[[str], str | None] = self._from_mmdb if self._reader else iptocc.country_code

    def country(self, ip: IPAddress | None, headers: HeaderMap, trusted_peer: bool) -> str | None:
        if trusted_peer:
            from_proxy = _valid_country(headers.get("x-country-code"))
            if from_proxy:
                return from_proxy
        if ip is None or not ip.is_global:
            return None
        return _valid_country(self._lookup(str(ip)))

    def _from_mmdb(self, ip: str) -> str | None:
        assert self._reader is not None
        record = self._reader.get(ip)
        if not isinstance(record, dict):
            return None
        country = record.get("country") or record.get("registered_country")
        if isinstance(country, dict):
            code = country.get("iso_code")
            return code if isinstance(code, str) else None
        return None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


class Origins:
    """A request's (ip_hash, country), remembered for the day per peer and forwarding headers.

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

    async def of_end_user(self, ip_text: str | None, day: date) -> Origin:
        """(ip_hash, country) of an address a server source reports for its end user: read as
        given, without proxy headers (the source vouches for it); an unparseable one is no address."""
        ip = parse_ip(ip_text) if ip_text else None
        if ip is None:
            return None, None
        return ip_hash(await self._salts.get(day), ip), self._countries.country(ip, {}, trusted_peer=False)

    async def resolve(self, peer_host: str | None, headers: HeaderMap, day: date) -> tuple[str | None, str | None]:
        if day != self._day:
            self._cache, self._day = {}, day
        get = headers.get
        key = (peer_host, get("x-forwarded-for"), get("x-real-ip"), get("x-country-code"))
        found = self._cache.get(key)
        if found is None:
            ip, trusted_peer = client_ip(peer_host, headers, self._proxies)
            hashed = ip_hash(await self._salts.get(day), ip) if ip is not None else None
            found = (hashed, self._countries.country(ip, headers, trusted_peer))
            if len(self._cache) >= self.MAX_ENTRIES:
                self._cache.clear()
            self._cache[key] = found
        return found
