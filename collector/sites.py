"""Sites and write keys (migration 0023): managing them (`sluice sites`, /api/v1/sites) and the
collector's cached view of them (`SiteDirectory`).

A write key names its site and authenticates its requests (Segment, RudderStack, PostHog): such a
request is a server-side source (collector/sources.py). A key is shown once, when it is made; the
table keeps only its SHA-256, which suffices because a key is 256 random bits (no dictionary or
brute force reaches one), and which the collector computes per request in a microsecond, where a
slow password hash would cost milliseconds of every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from psycopg_pool import AsyncConnectionPool

MAX_SITE_ID_CHARS = 200  # validate.MAX_ID_CHARS: a site id is an event's siteId
# A request naming an unknown key or site reads the table again, but no more often than this: a
# flood of wrong keys costs at most four small queries a second.
_MISS_RELOAD_S = 0.25
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


class Site(NamedTuple):
    site_id: str
    name: str
    allowed_origins: tuple[str, ...]
    timezone: str
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "site_id": self.site_id,
            "name": self.name,
            "allowed_origins": list(self.allowed_origins),
            "timezone": self.timezone,
            "created_at": self.created_at,
        }


class SiteError(ValueError):
    """Bad input for a site: `field` names it (a CLI message, or a 400 invalid_value)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def new_write_key() -> str:
    return "sk_" + secrets.token_urlsafe(32)


def key_hash(write_key: str) -> bytes:
    return hashlib.sha256(write_key.encode("utf-8", "surrogatepass")).digest()


def check(site_id: str, origins: Sequence[str] = (), timezone: str = "UTC") -> None:
    if not site_id or len(site_id) > MAX_SITE_ID_CHARS or site_id != site_id.strip():
        raise SiteError("site_id", f"site id {site_id[:60]!r} must be 1 to {MAX_SITE_ID_CHARS} characters, unpadded")
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise SiteError("origins", f"origin {origin[:80]!r} must be scheme://host[:port], like https://example.com")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SiteError("timezone", f"time zone {timezone[:60]!r} is not an IANA zone (like Europe/Berlin)") from None


_COLUMNS = "site_id, name, allowed_origins, timezone, created_at"


def _site(row: Sequence[Any]) -> Site:
    site_id, name, origins, timezone, created_at = row
    return Site(site_id, name, tuple(origins), timezone, created_at)


def add(
    conn: psycopg.Connection, site_id: str, name: str | None, origins: Sequence[str], timezone: str = "UTC"
) -> tuple[Site, str] | None:
    """The new site and its first write key (shown only now); None if the site id is taken."""
    check(site_id, origins, timezone)
    write_key = new_write_key()
    with conn.transaction():
        row = conn.execute(
            f"insert into sites (site_id, name, allowed_origins, timezone) values (%s, %s, %s, %s)"
            f" on conflict (site_id) do nothing returning {_COLUMNS}",
            (site_id, name or site_id, list(origins), timezone),
        ).fetchone()
        if row is None:
            return None
        conn.execute("insert into site_write_keys (key_hash, site_id) values (%s, %s)", (key_hash(write_key), site_id))
    return _site(row), write_key


def list_sites(conn: psycopg.Connection) -> list[Site]:
    return [_site(row) for row in conn.execute(f"select {_COLUMNS} from sites order by site_id").fetchall()]


def rotate_key(conn: psycopg.Connection, site_id: str) -> str | None:
    """A new write key for the site, replacing all its others; None if there is no such site."""
    write_key = new_write_key()
    with conn.transaction():
        if conn.execute("select 1 from sites where site_id = %s for update", (site_id,)).fetchone() is None:
            return None
        conn.execute("delete from site_write_keys where site_id = %s", (site_id,))
        conn.execute("insert into site_write_keys (key_hash, site_id) values (%s, %s)", (key_hash(write_key), site_id))
    return write_key


def remove(conn: psycopg.Connection, site_id: str) -> bool:
    """Removes the site and its keys (its events stay); False if there was no such site."""
    return conn.execute("delete from sites where site_id = %s", (site_id,)).rowcount == 1


class SiteDirectory:
    """The collector's copy of `sites` and the key hashes, read whole (it is small) and read again
    at most every `max_age_s`, or at once (at most every _MISS_RELOAD_S) when a request names a key or
    site it does not know: a key just made works at once, a rotated or removed one stops working
    within `max_age_s`."""

    def __init__(self, pool: AsyncConnectionPool, timeout_s: float, max_age_s: float = 5.0) -> None:
        self._pool = pool
        self._timeout_s = timeout_s
        self._max_age_s = max_age_s
        self._sites: Mapping[str, Site] = {}
        self._keys: Mapping[bytes, str] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def _fresh(self, missed: bool) -> None:
        seen = self._loaded_at
        age = time.monotonic() - seen
        if age < self._max_age_s and not (missed and age >= _MISS_RELOAD_S):
            return
        async with self._lock:
            if self._loaded_at != seen:
                return  # another request read it meanwhile
            async with self._pool.connection(timeout=self._timeout_s) as conn:
                sites = await (await conn.execute(f"select {_COLUMNS} from sites")).fetchall()
                keys = await (await conn.execute("select key_hash, site_id from site_write_keys")).fetchall()
            self._sites = {row[0]: _site(row) for row in sites}
            self._keys = {bytes(hashed): site_id for hashed, site_id in keys}
            self._loaded_at = time.monotonic()

    async def site_of_key(self, write_key: str) -> Site | None:
        """The site a write key names; None for a wrong key. Raises psycopg.Error if unreadable."""
        hashed = key_hash(write_key)
        await self._fresh(missed=False)
        if hashed not in self._keys:
            await self._fresh(missed=True)
        site_id = self._keys.get(hashed)
        return self._sites.get(site_id) if site_id is not None else None

    async def get(self, site_id: str) -> Site | None:
        await self._fresh(missed=False)
        if site_id not in self._sites:
            await self._fresh(missed=True)
        return self._sites.get(site_id)

    async def known(self, site_ids: set[str]) -> set[str]:
        """Those of `site_ids` that are registered."""
        await self._fresh(missed=False)
        if not site_ids <= self._sites.keys():
            await self._fresh(missed=True)
        return site_ids & self._sites.keys()

    async def _fresh_or_known(self, missed: bool) -> None:
        """`_fresh`, but an unreadable table leaves the copy already read (CORS decisions must not fail)."""
        with contextlib.suppress(psycopg.Error):
            await self._fresh(missed)

    async def any_allows(self, origin: str) -> bool:
        """Whether some site allows `origin` (a preflight does not say which site it is for). Read
        fresh as `get` is (a process's first preflight comes before any other look-up); while the
        table is unreadable, the sites last read decide."""
        await self._fresh_or_known(missed=False)
        if not any(origin in site.allowed_origins for site in self._sites.values()):
            await self._fresh_or_known(missed=True)
        return any(origin in site.allowed_origins for site in self._sites.values())

    async def all_allow(self, site_ids: set[str], origin: str) -> bool:
        """Whether every one of `site_ids` is registered and lists `origin` among its allowed origins
        (a batch for several sites is answered to a page only if all of them allow it)."""
        if not site_ids:
            return False
        await self._fresh_or_known(missed=False)
        if not site_ids <= self._sites.keys():
            await self._fresh_or_known(missed=True)
        return all(site_id in self._sites and origin in self._sites[site_id].allowed_origins for site_id in site_ids)
