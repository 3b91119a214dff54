"""Enrichment in Python: each distinct User-Agent string is parsed once, into `user_agents`.

ua-parser with its native matcher (ua-parser-rs) does the parsing; the rest of enrichment (referrer
domain and channel, UTM parameters) is plain SQL in `sql/etl/batch_events.sql.j2`.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

import psycopg
import ua_parser

# What ua-parser does not call a Spider but no person browses with.
_BOT = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|scrape|headless|phantomjs|lighthouse|pingdom|uptime|"
    r"facebookexternalhit|python-requests|python-urllib|aiohttp|httpx|curl/|wget/|go-http-client|"
    r"java/|okhttp|node-fetch|axios/|libwww|httpclient|preview",
    re.IGNORECASE,
)
_TABLET = re.compile(r"ipad|tablet|kindle|silk/|playbook|nexus (7|9|10)\b", re.IGNORECASE)
_MOBILE = re.compile(r"mobi|iphone|ipod|android.+mobile|windows phone|blackberry|opera mini", re.IGNORECASE)


@dataclass(frozen=True)
class UserAgent:
    ua_hash: uuid.UUID
    user_agent: str
    browser: str
    browser_version: str | None
    os: str
    device_type: str  # mobile, tablet or desktop
    is_bot: bool


def ua_hash(user_agent: str) -> uuid.UUID:
    """The same key as the SQL `md5(user_agent)::uuid`."""
    return uuid.UUID(hashlib.md5(user_agent.encode()).hexdigest())


def parse(user_agent: str) -> UserAgent:
    result = ua_parser.parse(user_agent)
    browser = result.user_agent.family if result.user_agent else "Other"
    version = result.user_agent.major if result.user_agent else None
    os = result.os.family if result.os else "Other"
    device_family = result.device.family if result.device else "Other"
    device_brand = (result.device.brand or "") if result.device else ""
    is_bot = device_family == "Spider" or bool(_BOT.search(user_agent))
    if _TABLET.search(user_agent) or "Tablet" in device_brand or (os == "Android" and "Mobile" not in user_agent):
        device_type = "tablet"
    elif _MOBILE.search(user_agent) or os in ("iOS", "Android"):
        device_type = "mobile"
    else:
        device_type = "desktop"
    return UserAgent(ua_hash(user_agent), user_agent, browser, version, os, device_type, is_bot)


def enrich_user_agents(conn: psycopg.Connection) -> int:
    """Parses the batch's user agents not yet in `user_agents` and adds them; returns how many."""
    rows = conn.execute(
        """
        select b.user_agent
        from batch_user_agents as b
        where not exists (select 1 from user_agents as u where u.ua_hash = b.ua_hash)
        """
    ).fetchall()
    if not rows:
        return 0
    with conn.cursor().copy(
        "copy user_agents (ua_hash, user_agent, browser, browser_version, os, device_type, is_bot) from stdin"
    ) as copy:
        for (user_agent,) in rows:
            ua = parse(user_agent)
            copy.write_row(
                (ua.ua_hash, ua.user_agent, ua.browser, ua.browser_version, ua.os, ua.device_type, ua.is_bot)
            )
    return len(rows)
