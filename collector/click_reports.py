"""`POST /analytics/events/`: a redirect service of its own reports its clicks (seed 001's shape).

    {"short_code": "abc123", "ip_address": "…", "user_agent": "…", "referer": "…", "country": "US", "city": "…"}

Answers `true` once the click is stored. Only a server source sends this: it must hold an ingest
token (collector/sources.py), and only then are the body's address and User-Agent believed; the
address is hashed and dropped like every other. The click is a `click` event of the link's site
(a short code Sluice does not know needs `site_id` in the body), so it lands in `clicks` and
`hourly_click_counts` like a click on Sluice's own redirect.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from starlette.requests import Request
from starlette.responses import Response

from sluice.collector import sources
from sluice.collector.links import LinkTable
from sluice.collector.rejections import Rejection
from sluice.collector.validate import to_event
from sluice.collector.writer import WriteFailed
from sluice.http import JSONResponse, error_response

_FIELDS = ("short_code", "ip_address", "user_agent", "referer", "country", "city", "site_id")


async def report_click(request: Request) -> Response:
    collector = request.scope["state"]["collector"]
    received_at = datetime.now(UTC)
    try:
        if not sources.is_server_source(request.headers, collector.settings.ingest_tokens):
            raise sources.Unauthorized
    except sources.Unauthorized as unauthorized:
        return unauthorized.response()
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        return error_response("malformed_json", f"the body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return error_response("malformed_json", "the body must be a JSON object")
    for name in _FIELDS:
        if body.get(name) is not None and not isinstance(body[name], str):
            return error_response("wrong_type", f"{name} must be a string", field=name)
    code = body.get("short_code")
    if not code:
        return error_response("missing_field", "short_code is required", field="short_code")
    table: LinkTable = request.scope["state"]["links"]
    link = table.get(code)
    site = link.site_id if link is not None else body.get("site_id")
    if not site:
        message = f"short code {code[:80]!r} is not a link of Sluice's: name its site in site_id"
        return error_response("invalid_value", message, field="site_id")

    raw: dict[str, Any] = {"eventType": "click", "siteId": site, "shortCode": code}
    if link is not None:
        raw["target"] = link.target_url
    for name, field in (("referer", "referrer"), ("city", "city")):
        if body.get(name):
            raw[field] = body[name]
    raw["context"] = {"ip": body.get("ip_address"), "userAgent": body.get("user_agent")}
    end_users = sources.take_contexts([raw], server=True)
    assert end_users is not None  # (a server source's: one end user per event)
    try:
        event = to_event(raw, received_at, timedelta(0), received_at)
    except Rejection as rejection:
        return JSONResponse({"status": "rejected", **rejection.as_json()}, rejection.status)
    try:
        ((rows, sender),) = await sources.senders(collector.origins, [event], end_users, received_at)
        country = body.get("country")
        if country and len(country) == 2 and country.isascii() and country.isalpha():
            # the reporter's country; the address's region and city may lie in another
            sender = sender._replace(country=country.upper(), region=None, city=None)
        await collector.writer.write(rows, sender)
    except (WriteFailed, psycopg.Error):  # the same answer as /collect's
        message = "the click could not be stored; nothing was kept, retry later"
        return error_response("database_unavailable", message, headers={"Retry-After": "1"}, status="unavailable")
    return JSONResponse(True)
