"""Umami's collection API, `POST /api/send` (its tracker script, and its node client).

`{"type": "event" | "identify" | "performance" | "engagement" | "error", "payload": {...}}`;
`payload.website` names the site. An event with a `name` is a custom event (`data` -> props), one without a
pageview; `url` (a path, or the whole URL as the tracker sends it) and `hostname` make the page's
URL; `id` (Umami's distinct id) -> visitorId and userId; `timestamp` (Unix seconds) -> timestamp;
`ip` and `userAgent` -> `context` (believed only from an authenticated source, dropped either way);
`screen`, `language`, `tag` kept as they are.

The tracker's two other kinds (src/tracker/index.ts and errors.ts in Umami's sources):
- `performance` (`data-performance="true"`: the page's web vitals when it is hidden or left) ->
  eventType `performance` with `vitals`: `lcp`, `inp`, `fcp`, `ttfb` (milliseconds, 0 to 60,000)
  and `cls` (unitless, 0 to 100), the limits Umami's own schema sets; its `duration` (ms on the
  page) -> `pageDurationMs`.
- `engagement` (the time the visitor was engaged with the page being left): Umami's
  `/api/send` schema (src/app/api/send/request-schema.ts) takes `payload.engagement`, whole
  milliseconds from 1 to 86,400,000, required for this type (its route saves it as the engaged
  time of that page and visit, and answers 400 without it) -> eventType `engagement` with
  `engagedMs`; the page's `url` and `hostname` as for any event. Sluice has no engagement column:
  the event is in the log and in `hourly_event_stats` under its type, as a `performance` is.
- `error` (`data-errors="true"`: uncaught exceptions, rejections, `umami.captureException`) ->
  eventType `error` with `error`: `name` (1-200 characters), `message` (<= 2,000), `stack`
  (<= 16,000), `handled`, `release`, `environment`, `tags`, `fingerprint`, checked as Umami's schema
  checks them. The `error` field makes it count in `hourly_event_stats.error_count`. Its `eventId`
  (a UUID made once per occurrence) is the event id, so the tracker's retries dedupe; its
  `timestamp` is Unix milliseconds (Date.now()), not seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sluice.collector.dialects.shared import Translated, end_user, event_id, obj, set_if, text
from sluice.collector.rejections import Rejection

TYPES = frozenset({"event", "identify", "performance", "engagement", "error"})
# Umami's schema: web vitals in milliseconds up to a minute; CLS a score up to 100
VITALS = {"lcp": 60000.0, "inp": 60000.0, "cls": 100.0, "fcp": 60000.0, "ttfb": 60000.0}
MAX_PAGE_DURATION_MS = 86_400_000
MAX_ENGAGED_MS = 86_400_000  # Umami's bound on `engagement` (a day)
# the error's fields: (name, longest) of its strings, as Umami's errorPayloadSchema bounds them
_ERROR_TEXTS = (("stack", 16000), ("release", 100), ("environment", 50))
MAX_ERROR_TAGS = 20


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
    elif kind == "performance":
        event["eventType"] = "performance"
        _performance(payload, event)
    elif kind == "engagement":
        event["eventType"] = "engagement"
        event["engagedMs"] = _engaged_ms(payload)
    elif kind == "error":
        event["eventType"] = "error"
        _error(payload, event)
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
        unit = "milliseconds" if kind == "error" else "seconds"
        if not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
            raise Rejection("wrong_type", f"payload.timestamp must be Unix {unit}", field="payload.timestamp")
        try:
            seconds = timestamp / 1000 if kind == "error" else timestamp
            event["timestamp"] = datetime.fromtimestamp(seconds, UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            raise Rejection("invalid_value", "payload.timestamp is out of range", field="payload.timestamp") from None
    for name_in_umami in ("screen", "language", "tag", "hostname"):
        set_if(event, name_in_umami, text(payload.get(name_in_umami)))
    set_if(event, "context", end_user(payload.get("ip"), payload.get("userAgent")))
    return Translated([event])


def _number(payload: dict[str, Any], name: str, high: float) -> float | int | None:
    value = payload.get(name)
    if value is None:
        return None
    field = f"payload.{name}"
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise Rejection("wrong_type", f"{field} must be a number", field=field)
    if not 0 <= value <= high:  # NaN fails this too
        raise Rejection("invalid_value", f"{field} must be between 0 and {high:g}", field=field)
    return value


def _performance(payload: dict[str, Any], event: dict[str, Any]) -> None:
    vitals = {}
    for name, high in VITALS.items():
        value = _number(payload, name, high)
        if value is not None:
            vitals[name] = value
    if vitals:
        event["vitals"] = vitals
    set_if(event, "pageDurationMs", _number(payload, "duration", MAX_PAGE_DURATION_MS))


def _engaged_ms(payload: dict[str, Any]) -> int:
    """`payload.engagement` as Umami's schema takes it: a whole number of milliseconds, 1 to a day."""
    value = payload.get("engagement")
    field = "payload.engagement"
    if value is None:
        raise Rejection("missing_field", f"{field} (milliseconds engaged) is required for an engagement", field=field)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 5000.0: JSON has one number type, and Umami's schema takes it
    if not isinstance(value, int) or isinstance(value, bool):
        raise Rejection("wrong_type", f"{field} must be a whole number of milliseconds", field=field)
    if not 1 <= value <= MAX_ENGAGED_MS:
        raise Rejection("invalid_value", f"{field} must be between 1 and {MAX_ENGAGED_MS:,} ms", field=field)
    return value


def _bounded_text(payload: dict[str, Any], name: str, longest: int, *, required: bool = False) -> str | None:
    value = payload.get(name)
    field = f"payload.{name}"
    if value is None:
        if required:
            raise Rejection("missing_field", f"{field} is required for an error", field=field)
        return None
    if not isinstance(value, str):
        raise Rejection("wrong_type", f"{field} must be a string", field=field)
    if len(value) > longest or (required and name == "name" and not value):
        raise Rejection("invalid_value", f"{field} must be 1 to {longest} characters", field=field)
    return value


def _error(payload: dict[str, Any], event: dict[str, Any]) -> None:
    version = payload.get("version")
    if version is not None and version != 1:
        raise Rejection("invalid_value", "payload.version must be 1 (Umami's error format)", field="payload.version")
    error: dict[str, Any] = {
        "name": _bounded_text(payload, "name", 200, required=True),
        "message": _bounded_text(payload, "message", 2000, required=True),
    }
    for name, longest in _ERROR_TEXTS:
        set_if(error, name, _bounded_text(payload, name, longest))
    handled = payload.get("handled")
    if handled is not None:
        if not isinstance(handled, bool):
            raise Rejection("wrong_type", "payload.handled must be true or false", field="payload.handled")
        error["handled"] = handled
    tags = payload.get("tags")
    if tags is not None:
        if not isinstance(tags, dict) or not all(
            isinstance(value, str) and len(key) <= 50 and len(value) <= 200 for key, value in tags.items()
        ):
            message = "payload.tags must map names (<= 50 characters) to strings (<= 200)"
            raise Rejection("wrong_type", message, field="payload.tags")
        if len(tags) > MAX_ERROR_TAGS:
            message = f"payload.tags holds {len(tags)} tags; at most {MAX_ERROR_TAGS}"
            raise Rejection("invalid_value", message, field="payload.tags")
        if tags:
            error["tags"] = tags
    fingerprint = payload.get("fingerprint")
    if fingerprint is not None:
        if not (
            isinstance(fingerprint, list)
            and 1 <= len(fingerprint) <= 5
            and all(isinstance(part, str) and 1 <= len(part) <= 200 for part in fingerprint)
        ):
            message = "payload.fingerprint must be 1 to 5 strings of 1 to 200 characters"
            raise Rejection("invalid_value", message, field="payload.fingerprint")
        error["fingerprint"] = fingerprint
    url = payload.get("url")
    if url is not None and (not isinstance(url, str) or len(url) > 2000):
        raise Rejection("invalid_value", "payload.url must be a path of at most 2,000 characters", field="payload.url")
    event["error"] = error
    set_if(event, "eventId", event_id(event["siteId"], payload.get("eventId")))
