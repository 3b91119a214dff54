"""Plausible's Events API, `POST /api/event`, as its tracker script and server-side senders use it.

The tracker sends short names (`n`, `u`, `d`, `r`, `p`), the documented API long ones (`name`,
`url`, `domain`, `referrer`, `props`); both are read. `domain` names the site (a comma-separated
list records the event once for each). Name "pageview" is a pageview, any other a custom event
with that eventName. Plausible has no visitor id: the visitor is derived from the request's
address and User-Agent, as for the tracker's events sent without one.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluice.collector.dialects.shared import Translated, set_if, text
from sluice.collector.rejections import Rejection

_MAX_DOMAINS = 10


def _field(doc: dict[str, Any], short: str, long: str) -> Any:
    value = doc.get(long)
    return doc.get(short) if value is None else value


def _props(value: Any) -> dict[str, Any] | None:
    # The tracker sends props as an object, older ones as a JSON string (`p`, or `m` for "meta")
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise Rejection("wrong_type", "props must be an object (or its JSON text)", field="props") from None
    if value is None or isinstance(value, dict):
        return value
    raise Rejection("wrong_type", "props must be an object", field="props")


def translate(doc: Any) -> Translated:
    if not isinstance(doc, dict):
        raise Rejection("malformed_json", "the body must be a JSON object")
    name, url, domain = text(_field(doc, "n", "name")), text(_field(doc, "u", "url")), text(_field(doc, "d", "domain"))
    if name is None or url is None or domain is None:
        field = "name" if name is None else "url" if url is None else "domain"
        raise Rejection("missing_field", f"{field} is required", field=field)
    domains = [d.strip() for d in domain.split(",") if d.strip()][:_MAX_DOMAINS]
    if not domains:
        raise Rejection("invalid_value", "domain names no site", field="domain")
    props = _props(_field(doc, "p", "props"))
    if props is None:
        props = _props(doc.get("m"))
    events = []
    for site_id in domains:
        event: dict[str, Any] = {"siteId": site_id, "url": url}
        if name == "pageview":
            event["eventType"] = "pageview"
        else:
            event["eventType"] = "custom"
            event["eventName"] = name
        set_if(event, "referrer", text(_field(doc, "r", "referrer")))
        set_if(event, "props", props)
        revenue = doc.get("revenue") if doc.get("revenue") is not None else doc.get("$")
        set_if(event, "revenue", revenue)
        events.append(event)
    return Translated(events)
