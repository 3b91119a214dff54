"""Segment's HTTP Tracking API (RudderStack speaks the same): `/v1/{track,page,screen,identify,group,alias,batch}`.

One message becomes one event of the same site (the write key names it):

    type      eventType   named by
    track     custom      event (eventName); properties -> props
    page      pageview    context.page.*, else properties.url/path/referrer/title
    screen    screen      name (eventName)
    identify  identify    traits -> props (the visitor and userId together: the link)
    group     group       groupId, traits -> props
    alias     alias       previousId -> props

messageId -> eventId; anonymousId -> visitorId, else userId; userId kept as userId;
context.campaign -> attribution.utmParams (all five utm_*); context.ip and context.userAgent ->
the event's end user (`Translated.users`: believed, then dropped, as sources.py does);
timestamp, and sentAt (the batch's, else its first message's) for the clock skew.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluice.collector.dialects.shared import Translated, event_id, obj, set_if, text
from sluice.collector.rejections import Rejection
from sluice.collector.sources import SERVER_CONTEXT, EndUser, end_user

MAX_MESSAGE_BYTES = 32 * 1024  # Segment's limits, which its clients keep to
MAX_BATCH_BYTES = 500 * 1024
TYPES = frozenset({"track", "page", "screen", "identify", "group", "alias"})
_CAMPAIGN = {
    "source": "utm_source",
    "medium": "utm_medium",
    "name": "utm_campaign",
    "term": "utm_term",
    "content": "utm_content",
}


def write_key_of(doc: Any) -> str | None:
    """The `writeKey` a body carries (the batch's, else its first message's), for clients that do
    not send Basic auth."""
    if not isinstance(doc, dict):
        return None
    key = doc.get("writeKey")
    if key is None and isinstance(doc.get("batch"), list) and doc["batch"] and isinstance(doc["batch"][0], dict):
        key = doc["batch"][0].get("writeKey")
    return key if isinstance(key, str) and key else None


def translate(doc: Any, site_id: str, kind: str, body_bytes: int = MAX_BATCH_BYTES) -> Translated:
    """`kind` is the endpoint's type (`/v1/track` -> "track"), or "batch". `body_bytes`: the size
    of the body `doc` was read from, which bounds what its messages can weigh (below).

    Each message's end user (its context.ip and context.userAgent) is read here, where the
    message is, into `Translated.users` (a request with a write key is a server source): the
    events leave with `context` as sources.take_contexts would leave it."""
    if not isinstance(doc, dict):
        raise Rejection("malformed_json", "the body must be a JSON object")
    seen: dict[tuple[Any, Any], EndUser] = {}
    users: list[EndUser] = []
    if kind != "batch":
        event = _message(doc, site_id, kind, body_bytes > MAX_MESSAGE_BYTES, seen, users)
        return Translated([event], doc.get("sentAt"), users)
    batch = doc.get("batch")
    if batch is None:
        raise Rejection("missing_field", "batch is required", field="batch")
    if not isinstance(batch, list):
        raise Rejection("wrong_type", "batch must be an array", field="batch")
    if not batch:
        raise Rejection("missing_field", "the batch holds no messages", field="batch")
    # Segment's 32 KB is per message, and a message's size is that of its JSON, serialised again
    # (orjson does not say where in the body a message was). The messages' texts share the body,
    # so what is left of it once some are measured bounds each of the others: once that is at
    # most 32 KB, no message further on can be over the limit, and the rest are not serialised
    # (a body of at most 32 KB measures none).
    unmeasured = body_bytes
    events: list[dict[str, Any]] = []
    append = events.append
    for index, message in enumerate(batch):
        if not isinstance(message, dict):
            raise Rejection("wrong_type", "a message must be a JSON object").at(index)
        try:
            if unmeasured > MAX_MESSAGE_BYTES:
                unmeasured -= _measured(message)
            append(_message(message, site_id, message.get("type"), False, seen, users))
        except Rejection as rejection:
            raise rejection.at(index) from None
    sent_at = doc.get("sentAt")
    if sent_at is None:
        sent_at = batch[0].get("sentAt")
    return Translated(events, sent_at, users)


def _measured(message: dict[str, Any]) -> int:
    """The size of the message's JSON; a Rejection when it is over Segment's 32 KB."""
    size = len(_dumps(message))
    if size > MAX_MESSAGE_BYTES:
        raise Rejection("message_too_large", f"the message is {size} bytes; the limit is {MAX_MESSAGE_BYTES}")
    return size


_NOBODY = EndUser(None, None)
_PAGE_FIELDS = ("url", "path", "referrer", "title")
_dumps = orjson.dumps


def _message(
    message: dict[str, Any],
    site_id: str,
    kind: Any,
    measure: bool,
    seen: dict[tuple[Any, Any], EndUser],
    users: list[EndUser],
) -> dict[str, Any]:
    """One message as an event; its end user joins `users` (`seen`: those of the batch so far, each
    (ip, userAgent) read once, since a batch names the same few again and again). This runs for
    every message of a batch: the common cases (strings where strings belong, objects where
    objects do) take the direct way, the rest `text`/`obj`."""
    if measure:
        _measured(message)
    if kind not in TYPES:
        shown = kind[:40] if isinstance(kind, str) else kind
        raise Rejection("invalid_value", f"type {shown!r} is not one of {', '.join(sorted(TYPES))}", field="type")
    get = message.get
    anonymous_id, user_id = get("anonymousId"), get("userId")
    if anonymous_id.__class__ is not str:
        anonymous_id = text(anonymous_id)
    if user_id.__class__ is not str:
        user_id = text(user_id)
    if not anonymous_id and not user_id:
        raise Rejection("missing_field", "anonymousId or userId is required", field="anonymousId")
    context = get("context")
    if context.__class__ is not dict:
        context = obj(context, "context")
    page = context.get("page")
    if page.__class__ is not dict:
        page = obj(page, "context.page")
    properties = get("properties")
    if properties.__class__ is not dict:
        properties = obj(properties, "properties")

    event: dict[str, Any] = {"siteId": site_id, "visitorId": anonymous_id or user_id}
    if user_id:
        event["userId"] = user_id
    message_id = get("messageId")
    if message_id is not None:
        set_if(event, "eventId", event_id(site_id, message_id))
    timestamp = get("timestamp")
    if timestamp is not None:
        event["timestamp"] = timestamp
    if kind == "track":
        event["eventType"] = "custom"
        name = get("event")
        event["eventName"] = (name if name.__class__ is str else text(name)) or "(none)"
        event["props"] = properties
    elif kind == "page":
        event["eventType"] = "pageview"
        for field in _PAGE_FIELDS:
            set_if(event, field, text(page.get(field)) or text(properties.get(field)))
        set_if(event, "eventName", text(get("name")))
        event["props"] = properties
    elif kind == "screen":
        event["eventType"] = "screen"
        set_if(event, "eventName", text(get("name")))
        event["props"] = properties
    elif kind == "identify":
        event["eventType"] = "identify"
        event["props"] = obj(get("traits") or context.get("traits"), "traits")
    elif kind == "group":
        event["eventType"] = "group"
        event["props"] = {**obj(get("traits"), "traits"), "groupId": text(get("groupId"))}
    else:
        event["eventType"] = "alias"
        event["props"] = {"previousId": text(get("previousId"))}
    if kind != "page" and page:  # where a track or identify happened
        for field in _PAGE_FIELDS:
            value = page.get(field)
            if value:
                event[field] = value if value.__class__ is str else text(value)

    campaign = context.get("campaign")
    if campaign:
        if campaign.__class__ is not dict:
            campaign = obj(campaign, "context.campaign")
        params = {}
        for key, value in campaign.items():
            name = _CAMPAIGN.get(key)
            if name is not None and value and value.__class__ is str:
                params[name] = value
        if params:
            event["attribution"] = {"utmParams": params}
    event["context"] = SERVER_CONTEXT  # (its end user: below)
    if context:
        key = (context.get("ip"), context.get("userAgent"))
        try:
            user = seen.get(key)
        except TypeError:  # an unhashable value (a list, an object): not an address or an agent
            user = _NOBODY
        else:
            if user is None:
                user = seen[key] = end_user(*key)
        users.append(user)
    else:
        users.append(_NOBODY)
    return event
