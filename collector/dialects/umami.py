"""Umami's collection API, `POST /api/send` (its tracker script, and its node client).

`{"type": "event" | "identify", "payload": {...}}`; `payload.website` names the site. An event
with a `name` is a custom event (`data` -> props), one without a pageview; `url` (a path) and
`hostname` make the page's URL; `id` (Umami's distinct id) -> visitorId and userId; `timestamp`
(Unix seconds) -> timestamp; `ip` and `userAgent` -> `context` (believed only from an
authenticated source, dropped either way); `screen`, `language`, `tag` kept as they are.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sluice.collector.dialects.shared import Translated, end_user, obj, set_if, text
from sluice.collector.rejections import Rejection

TYPES = frozenset({"event", "identify"})


def translate(doc: Any) -> Translated:
    if not isinstance(doc, dict):
        raise Rejection("malformed_json", "the body must be a JSON object")
    kind = doc.get("type")
    if kind not in TYPES:
        shown = kind[:40] if isinstance(kind, str) else kind
        raise Rejection("invalid_value", f"type {shown!r} is not one of {', '.join(sorted(TYPES))}", field="type")
    payload = obj(doc.get("payload"), "payload")
    site_id = text(payload.get("website"))
    if site_id is None:
        raise Rejection("missing_field", "payload.website is required", field="payload.website")

    event: dict[str, Any] = {"siteId": site_id}
    name = text(payload.get("name"))
    if kind == "identify":
        event["eventType"] = "identify"
    elif name is not None:
        event["eventType"] = "custom"
        event["eventName"] = name
    else:
        event["eventType"] = "pageview"
    distinct_id = text(payload.get("id"))
    set_if(event, "visitorId", distinct_id)
    set_if(event, "userId", distinct_id)
    path, hostname = text(payload.get("url")), text(payload.get("hostname"))
    if path is not None and path.startswith("/"):
        event["path"] = path.split("?", 1)[0].split("#", 1)[0]
        set_if(event, "url", f"https://{hostname}{path}" if hostname is not None else None)
    elif path is not None:  # a whole URL
        event["url"] = path
    set_if(event, "referrer", text(payload.get("referrer")))
    set_if(event, "title", text(payload.get("title")))
    data = payload.get("data")
    if data is not None:
        event["props"] = obj(data, "payload.data")
    timestamp = payload.get("timestamp")
    if timestamp is not None:
        if not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
            raise Rejection("wrong_type", "payload.timestamp must be Unix seconds", field="payload.timestamp")
        try:
            event["timestamp"] = datetime.fromtimestamp(timestamp, UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            raise Rejection("invalid_value", "payload.timestamp is out of range", field="payload.timestamp") from None
    for name_in_umami in ("screen", "language", "tag", "hostname"):
        set_if(event, name_in_umami, text(payload.get(name_in_umami)))
    set_if(event, "context", end_user(payload.get("ip"), payload.get("userAgent")))
    return Translated([event])
