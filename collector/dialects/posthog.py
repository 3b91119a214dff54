"""PostHog's capture API: `/batch`, `/capture`, `/e`, `/i/v0/e` (posthog-python, posthog-node, posthog-js),
and `/i/v1/analytics/events` (posthog-node with POSTHOG_CAPTURE_MODE=v1: the key as a bearer token).

A body is `{"api_key": ..., "batch": [...]}`, one event (`{"event": ..., "api_key"|"token": ...}`),
or an array of events (posthog-js, the key in each event's `properties.token`). The key is the
site's write key. Per event:

    $pageview   -> pageview
    $identify   -> identify: visitor $anon_distinct_id (else distinct_id), userId distinct_id
    any other   -> custom, the name as eventName

distinct_id -> visitorId; uuid -> eventId; $session_id -> sessionId; $current_url, $pathname,
$referrer, $title -> url, path, referrer, title; utm_* -> attribution; $ip and $raw_user_agent
(else $useragent) -> `context` (believed, then dropped); the other properties without a `$` ->
props, those with one (the library's: $lib, $os, ...) kept aside as `posthog`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qs

import orjson

from sluice.collector.dialects.shared import Translated, end_user, event_id, obj, set_if, text, utm
from sluice.collector.rejections import Rejection

# Read into columns or the end user's context, or dropped: never left in the stored props.
_TAKEN = frozenset(
    {
        "$ip",
        "$raw_user_agent",
        "$useragent",
        "token",
        "distinct_id",
        "$session_id",
        "$current_url",
        "$pathname",
        "$referrer",
        "$title",
        "$anon_distinct_id",
        "$set",
    }
)


def decode_form(body: bytes) -> bytes:
    """posthog-js's form encoding: `data=<base64 of the JSON>` (or of the gzipped JSON)."""
    try:
        fields = parse_qs(body.decode("ascii"), strict_parsing=False)
    except UnicodeDecodeError:
        raise Rejection("malformed_body", "a form-encoded body must be ASCII") from None
    data = fields.get("data")
    if not data:
        raise Rejection("missing_field", "the form has no data field", field="data")
    try:
        return base64.b64decode(data[0] + "=" * (-len(data[0]) % 4), altchars=b"-_" if "-" in data[0] else None)
    except (binascii.Error, ValueError):
        raise Rejection("malformed_body", "the form's data is not base64", field="data") from None


def events_of(doc: Any) -> list[Any]:
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        if "batch" in doc:
            batch = doc["batch"]
            if not isinstance(batch, list):
                raise Rejection("wrong_type", "batch must be an array", field="batch")
            return batch
        if "data" in doc and "event" not in doc:  # an old client's {"data": [...]} or {"data": {...}}
            data = doc["data"]
            return data if isinstance(data, list) else [data]
        return [doc]
    raise Rejection("malformed_json", "the body must be an event object, an array of events, or a batch")


def api_key_of(doc: Any) -> str | None:
    """The project key a body carries: its own api_key or token, else its first event's."""
    candidates: list[Any] = []
    if isinstance(doc, dict):
        candidates += [doc.get("api_key"), doc.get("token")]
    events = events_of(doc) if isinstance(doc, dict | list) else []
    if events and isinstance(events[0], dict):
        first = events[0]
        properties = first.get("properties")
        candidates += [first.get("api_key"), first.get("token")]
        if isinstance(properties, dict):
            candidates.append(properties.get("token"))
    return next((key for key in candidates if isinstance(key, str) and key), None)


def translate(doc: Any, site_id: str) -> Translated:
    raw_events = events_of(doc)
    if not raw_events:
        raise Rejection("missing_field", "the batch holds no events", field="batch")
    events = []
    for index, raw in enumerate(raw_events):
        try:
            events.append(_event(raw, site_id))
        except Rejection as rejection:
            raise (rejection if len(raw_events) == 1 and not isinstance(doc, list) else rejection.at(index)) from None
    sent_at = doc.get("sent_at") if isinstance(doc, dict) else None
    return Translated(events, sent_at)


def _event(raw: Any, site_id: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise Rejection("wrong_type", "an event must be a JSON object")
    name = text(raw.get("event"))
    if name is None:
        raise Rejection("missing_field", "event is required", field="event")
    properties = obj(raw.get("properties"), "properties")
    distinct_id = text(raw.get("distinct_id")) or text(properties.get("distinct_id"))
    if distinct_id is None:
        raise Rejection("missing_field", "distinct_id is required", field="distinct_id")

    event: dict[str, Any] = {"siteId": site_id}
    if name == "$pageview":
        event["eventType"] = "pageview"
    elif name == "$identify":
        event["eventType"] = "identify"
    else:
        event["eventType"] = "custom"
        event["eventName"] = name
    if name == "$identify":
        event["visitorId"] = text(properties.get("$anon_distinct_id")) or distinct_id
        event["userId"] = distinct_id
    else:
        event["visitorId"] = distinct_id
    set_if(event, "eventId", event_id(site_id, raw.get("uuid")))
    set_if(event, "timestamp", raw.get("timestamp"))
    # (posthog-node's v1 capture moves $session_id to the event's top level)
    set_if(event, "sessionId", text(properties.get("$session_id")) or text(raw.get("session_id")))
    for field, name_in_posthog in (("url", "$current_url"), ("path", "$pathname"), ("referrer", "$referrer")):
        set_if(event, field, text(properties.get(name_in_posthog)))
    set_if(event, "title", text(properties.get("$title")))
    event["props"] = {k: v for k, v in properties.items() if not k.startswith("$") and k not in _TAKEN}
    # a person's properties ($identify's $set, where posthog-node puts what identify() was given)
    person = {**obj(raw.get("$set"), "$set"), **obj(properties.get("$set"), "properties.$set")}
    if name == "$identify":
        event["props"] = {k: v for k, v in person.items() if not k.startswith("$")}
    library = {k: v for k, v in properties.items() if k.startswith("$") and k not in _TAKEN}
    if library:
        event["posthog"] = library
    set_if(event, "attribution", utm(properties))
    user_agent = properties.get("$raw_user_agent") or properties.get("$useragent")
    set_if(event, "context", end_user(properties.get("$ip") or person.get("$ip"), user_agent))
    return event


def parse(body: bytes, form: bool) -> Any:
    """The JSON of a (decompressed) body; `form`: it is `data=` form-encoded."""
    if form:
        body = decode_form(body)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejection("malformed_json", f"the body is not valid JSON: {exc}") from None
