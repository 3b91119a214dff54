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
    of the body `doc` was read from, which bounds what its messages can weigh (_messages).

    Each message's end user (its context.ip and context.userAgent) is read here, where the
    message is, into `Translated.users` (a request with a write key is a server source): the
    events leave with `context` as sources.take_contexts would leave it."""
    if not isinstance(doc, dict):
        raise Rejection("malformed_json", "the body must be a JSON object")
    if kind != "batch":  # one message, read as a batch of one whose refusals carry no index
        events, users = _messages([doc], site_id, kind, body_bytes)
        return Translated(events, doc.get("sentAt"), users)
    batch = doc.get("batch")
    if batch is None:
        raise Rejection("missing_field", "batch is required", field="batch")
    if not isinstance(batch, list):
        raise Rejection("wrong_type", "batch must be an array", field="batch")
    if not batch:
        raise Rejection("missing_field", "the batch holds no messages", field="batch")
    events, users = _messages(batch, site_id, None, body_bytes)
    sent_at = doc.get("sentAt")
    if sent_at is None:
        sent_at = batch[0].get("sentAt")
    return Translated(events, sent_at, users)


def _measured(message: dict[str, Any]) -> int:
    """The size of the message's JSON; a Rejection when it is over Segment's 32 KB."""
    try:
        size = len(_dumps(message))
    except orjson.JSONEncodeError as exc:  # nested deeper than orjson writes (it reads deeper)
        raise Rejection("invalid_value", f"the message cannot be measured: {exc}") from None
    if size > MAX_MESSAGE_BYTES:
        raise Rejection("message_too_large", f"the message is {size} bytes; the limit is {MAX_MESSAGE_BYTES}")
    return size


_MEASURED_TOGETHER = 16


def _measured_together(messages: list[Any], start: int) -> tuple[int, int]:
    """(end, size): the messages from `start` to `end`, up to _MEASURED_TOGETHER of them, weigh
    `size` together, at most 32 KB, and so each is within the limit; (start, 0) when they weigh
    more, or cannot be serialised, or are one: each must then be measured alone."""
    group = messages[start : start + _MEASURED_TOGETHER]
    if len(group) < 2:
        return start, 0
    try:
        size = len(_dumps(group)) - len(group) - 1  # (less the array's brackets and commas)
    except orjson.JSONEncodeError:
        return start, 0
    return (start + len(group), size) if size <= MAX_MESSAGE_BYTES else (start, 0)


_NOBODY = EndUser(None, None)
_PAGE_FIELDS = ("url", "path", "referrer", "title")
_EVENT_TYPES = {
    "track": "custom",
    "page": "pageview",
    "screen": "screen",
    "identify": "identify",
    "group": "group",
    "alias": "alias",
}
_dumps = orjson.dumps
_UNSET = object()  # a template's key before the batch has one: equal to nothing


def _messages(
    messages: list[Any], site_id: str, path_kind: str | None, body_bytes: int
) -> tuple[list[dict[str, Any]], list[EndUser]]:
    """The messages as events, and each one's end user. `path_kind`: the endpoint's type for a
    single message (whose refusal then carries no index), None for a batch (each message says).

    This runs for every message of a batch, so it is one loop, its state in locals: the common
    cases (strings where strings belong, objects where objects do) take the direct way, the rest
    `text`/`obj`. The checks run in the order the fields are read, so that a message with several
    faults is turned away for the same one whatever came before it in the batch.

    What consecutive messages share is worked out once for a run of them. A batch's messages
    mostly come from one page, one campaign and one end user (a server sending for a visitor, a
    client flushing its queue): the fields of an event that depend only on its type, its
    `context.page` and its `context.campaign` are a template (_template), kept while the next
    message has the same three, and copied into each event; the end user is kept while the next
    message names the same address and User-Agent. Only flat objects (every value a string or
    null) are kept as keys: comparing one with any message's object then never recurses, and equal
    means the same output (a number or a boolean, which `==` would confuse with another, never is
    one).

    Segment's 32 KB is per message, and a message's size is that of its JSON, serialised again
    (orjson does not say where in the body a message was): _first_too_large measures them. But the
    messages' texts share the body, so a message weighs at most the body less what all the others
    weigh, and what they weigh at least is known from fields read anyway, a run at a time: a run's
    template's type, page and campaign, its end user's ip and userAgent (_template_least,
    _user_least). When the body less those, for all messages but the most counted one, is at most
    32 KB, no message is over the limit and none is serialised (a body of at most 32 KB counts
    nothing: no message in it can be). Otherwise, and before any refusal, the messages are measured
    as they were before this count (callgrind: the bench's 60 KB batch serialised 48 of its 100,
    ~300,000 instructions; the count costs the runs' few), so that the first message at fault in
    the batch is still the one turned away, whatever its fault, and a message over 32 KB is found
    wherever it is."""
    events: list[dict[str, Any]] = []
    users: list[EndUser] = []
    append_event, append_user = events.append, users.append
    seen: dict[tuple[Any, Any], EndUser] = {}  # each (ip, userAgent) of the batch read once
    # the last run's template and its key, and the last run's end user and its key
    template: dict[str, Any] = {}
    last_kind: Any = _UNSET
    last_page: Any = _UNSET
    last_campaign: Any = _UNSET
    last_ip: Any = _UNSET
    last_user_agent: Any = _UNSET
    last_user = _NOBODY
    # Segment's 32 KB a message (the docstring's last paragraph): the least the messages' texts
    # weigh together, counted a run at a time (a template's, an end user's), and the most one run
    # counts for a message
    bounding = body_bytes > MAX_MESSAGE_BYTES  # (else none can be over it)
    least_total = least_top = 0
    template_least = template_start = 0  # the template's run: its type, page and campaign
    user_least = user_start = user_top = 0  # the end user's run: its ip and userAgent
    for index, message in enumerate(messages):
        if message.__class__ is not dict and not isinstance(message, dict):
            if bounding:  # (as before, a message is measured before its own checks)
                _first_too_large(messages, index, body_bytes, path_kind is None)
            raise Rejection("wrong_type", "a message must be a JSON object").at(index)
        try:
            get = message.get
            kind: Any = path_kind if path_kind is not None else get("type")
            if kind.__class__ is not str or kind not in TYPES:
                _wrong_type(kind)
            anonymous_id, user_id = get("anonymousId"), get("userId")
            if anonymous_id is not None and anonymous_id.__class__ is not str:
                anonymous_id = text(anonymous_id)
            if user_id is not None and user_id.__class__ is not str:
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

            # The message's own fields (its type's: name and props).
            message_id = get("messageId")
            made_id = event_id(site_id, message_id) if message_id is not None else None
            timestamp = get("timestamp")
            name: Any = None
            if kind == "track":
                name = get("event")
                name = (name if name.__class__ is str else text(name)) or "(none)"
                props = properties
            elif kind == "page" or kind == "screen":
                name = text(get("name"))
                props = properties
            elif kind == "identify":
                props = obj(get("traits") or context.get("traits"), "traits")
            elif kind == "group":
                props = {**obj(get("traits"), "traits"), "groupId": text(get("groupId"))}
            else:
                props = {"previousId": text(get("previousId"))}
            campaign = context.get("campaign")
            if campaign and campaign.__class__ is not dict:
                campaign = obj(campaign, "context.campaign")

            # The fields it shares with the messages of the same type, page and campaign.
            # (A page message's page fields are its own: they may come from its properties.)
            shared_page = page if kind != "page" else None
            if not (kind == last_kind and shared_page == last_page and campaign == last_campaign):
                template = _template(site_id, kind, shared_page, campaign)
                if bounding:
                    least_total += template_least * (index - template_start)
                    template_least, template_start = _template_least(path_kind, kind, shared_page, campaign), index
                    if template_least > least_top:
                        least_top = template_least
                if (shared_page is None or _flat(shared_page)) and (not campaign or _flat(campaign)):
                    last_kind, last_page, last_campaign = kind, shared_page, campaign
                else:
                    last_kind = last_page = last_campaign = _UNSET

            event = template.copy()
            event["visitorId"] = anonymous_id or user_id
            if user_id:
                event["userId"] = user_id
            if made_id is not None:
                event["eventId"] = made_id
            if timestamp is not None:
                event["timestamp"] = timestamp
            if name is not None:
                event["eventName"] = name
            event["props"] = props
            if kind == "page":
                for field in _PAGE_FIELDS:
                    set_if(event, field, text(page.get(field)) or text(properties.get(field)))
        except Rejection as rejection:
            if bounding:  # unless a message before it, or this one, is over 32 KB: that is refused first
                _first_too_large(messages, index + 1, body_bytes, path_kind is None)
            if path_kind is not None:
                raise
            raise rejection.at(index) from None
        append_event(event)

        if not context:
            append_user(_NOBODY)
            if bounding:  # (the run of the last end user goes on after this message, but not through it)
                least_total += user_least * (index - user_start)
                user_start = index + 1
            continue
        ip, user_agent = context.get("ip"), context.get("userAgent")
        if ip == last_ip and user_agent == last_user_agent:
            append_user(last_user)
            continue
        user = _end_user(seen, ip, user_agent)
        if (ip is None or ip.__class__ is str) and (user_agent is None or user_agent.__class__ is str):
            last_ip, last_user_agent, last_user = ip, user_agent, user
        append_user(user)
        if bounding:
            least_total += user_least * (index - user_start)
            user_least, user_start = _user_least(ip, user_agent), index
            if user_least > user_top:
                user_top = user_least
    if bounding:
        end = len(messages)
        least_total += template_least * (end - template_start) + user_least * (end - user_start)
        # A message weighs at most the body less what the others weigh at least: when that is at
        # most 32 KB for the heaviest-counted one, no message is over it, and none is measured.
        if body_bytes - least_total + least_top + user_top > MAX_MESSAGE_BYTES:
            _first_too_large(messages, end, body_bytes, path_kind is None)
    return events, users


# The least a message's text weighs in the body, from what a run of messages shares: a "key":"value"
# pair of strings weighs at least their lengths and 5 (two pairs of quotes, a colon), an object its
# key's length and 5 (quotes, colon, braces) around its pairs. (Commas are not counted, nor any
# other field; a character takes at least a byte, escaped or not.) Only strings the message sent as
# strings count: a number read as one (`text`) may be written shorter than its str().


def _template_least(path_kind: str | None, kind: str, page: Any, campaign: Any) -> int:
    """Its "type" (unless the path said it), "context": {"page": ..., "campaign": ...}."""
    least = len(kind) + 9 if path_kind is None else 0
    inside = _object_least(page, 9) + _object_least(campaign, 13)
    return least + inside + 12 if inside else least


def _object_least(flat: Any, around: int) -> int:
    """A page's or a campaign's (`around`: its key's and braces'), 0 for none."""
    if not flat:
        return 0
    least = around
    for key, value in flat.items():
        if value.__class__ is str:
            least += len(key) + len(value) + 5
    return least


def _user_least(ip: Any, user_agent: Any) -> int:
    """Its context's "ip" and "userAgent"."""
    return (len(ip) + 7 if ip.__class__ is str else 0) + (len(user_agent) + 14 if user_agent.__class__ is str else 0)


def _first_too_large(messages: list[Any], end: int, body_bytes: int, indexed: bool) -> None:
    """Refuses the first message before `end` over 32 KB, as the messages' measurements find it.

    What is left of the body once some messages are measured bounds each of the others: once that
    is at most 32 KB, no message further on can be over the limit, and the rest are not serialised.
    Those measured are serialised _MEASURED_TOGETHER at a time while that many weigh at most 32 KB
    together (then so does each), one call instead of sixteen; once a group weighs more, each
    message is measured alone, at its turn."""
    unmeasured = body_bytes
    vouched = 0  # the messages before this one are within 32 KB (measured in a group)
    together = True  # measuring in groups (until one weighs more than 32 KB)
    for index in range(end):
        if unmeasured <= MAX_MESSAGE_BYTES:
            return
        if index < vouched:
            continue
        if together:
            vouched, size = _measured_together(messages, index)
            together = vouched > index
        if not together:
            try:
                size = _measured(messages[index])
            except Rejection as rejection:
                raise (rejection.at(index) if indexed else rejection) from None
            vouched = index + 1
        unmeasured -= size


def _wrong_type(kind: Any) -> None:
    shown = kind[:40] if isinstance(kind, str) else kind
    raise Rejection("invalid_value", f"type {shown!r} is not one of {', '.join(sorted(TYPES))}", field="type")


def _template(site_id: str, kind: str, page: dict[str, Any] | None, campaign: Any) -> dict[str, Any]:
    """The fields of an event that depend only on its type, its page (None for a page message,
    whose page fields are its own) and its campaign."""
    template: dict[str, Any] = {"siteId": site_id, "eventType": _EVENT_TYPES[kind]}
    if page:  # where a track or identify happened
        for field in _PAGE_FIELDS:
            value = page.get(field)
            if value:
                template[field] = value if value.__class__ is str else text(value)
    if campaign:
        params = {}
        for key, value in campaign.items():
            utm_name = _CAMPAIGN.get(key)
            if utm_name is not None and value and value.__class__ is str:
                params[utm_name] = value
        if params:
            template["attribution"] = {"utmParams": params}
    template["context"] = SERVER_CONTEXT  # (its end user: Translated.users)
    return template


def _flat(value: Any) -> bool:
    """An object whose every value is a string or null (see _messages)."""
    return value.__class__ is dict and all(item is None or item.__class__ is str for item in value.values())


def _end_user(seen: dict[tuple[Any, Any], EndUser], ip: Any, user_agent: Any) -> EndUser:
    """The end user of a message's context.ip and context.userAgent, read once per batch."""
    try:
        found = seen.get((ip, user_agent))
    except TypeError:  # an unhashable value (a list, an object): not an address or an agent
        return _NOBODY
    if found is None:
        found = seen[(ip, user_agent)] = end_user(ip, user_agent)
    return found
