"""Turns a decoded body into typed events, or into rejections that name the field and batch index.

A body is one event (a JSON object), a batch (a JSON array), or `{"events": [...], "sentAt": ...}`.
Known fields are type-checked; unknown ones are kept, untouched, in the payload.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson

from sluice.collector.rejections import Rejection

MAX_EVENTS = 500
MAX_EVENT_BYTES = 64 * 1024
MAX_ID_CHARS = 200  # siteId, eventType, visitorId, sessionId

# The client times believed at all (timestamp, sentAt, and a timestamp once corrected by sentAt).
# Before 2000 a clock is wrong, not early. The end keeps every stored time readable: a day short of
# datetime.max, so that no session time zone turns it into year 10000 on the way back (a time past
# the future skew is clamped for occurred_at long before that; client_timestamp keeps it).
EARLIEST_CLIENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_CLIENT_TIME = datetime(9999, 12, 31, tzinfo=UTC)

# Optional fields and the JSON type each must have when present (null counts as absent).
_STRING_FIELDS = ("visitorId", "sessionId", "url", "path", "referrer", "title", "target", "text", "shortCode")
_OBJECT_FIELDS = ("props", "attribution")
_OPTIONAL = tuple(
    [(name, str, "a string") for name in _STRING_FIELDS] + [(name, dict, "an object") for name in _OBJECT_FIELDS]
)


class Event(NamedTuple):  # a tuple, not a frozen dataclass: built for every event, it must be cheap
    event_id: uuid.UUID
    site_id: str
    event_type: str
    occurred_at: datetime
    client_timestamp: datetime | None
    visitor_id: str | None
    session_id: str | None
    payload: bytes  # the event exactly as received (re-serialised JSON), unknown fields included


class Batch(NamedTuple):
    events: list[Any]  # the raw decoded events, not yet checked
    sent_at: datetime | None
    single: bool  # one bare event object: its errors carry no batch index
    # False when no string in the events can hold U+0000: JSON writes that character only as the
    # escape \u0000, so a body without it spares each event its own search (a query string may
    # hold one as %00, so the pixel's events keep the default)
    may_hold_nul: bool = True


def parse_body(body: bytes) -> Batch:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejection("malformed_json", f"the body is not valid JSON: {exc}") from None
    may_hold_nul = b"\\u0000" in body
    if isinstance(doc, list):
        return _batch(doc, None, single=False, may_hold_nul=may_hold_nul)
    if not isinstance(doc, dict):
        raise Rejection("malformed_json", f"the body must be an event object or an array of events, not {_kind(doc)}")
    if "events" in doc:
        events = doc["events"]
        if not isinstance(events, list):
            raise Rejection("wrong_type", f"'events' must be an array, not {_kind(events)}", field="events")
        return _batch(events, parse_sent_at(doc.get("sentAt")), single=False, may_hold_nul=may_hold_nul)
    # A single event may carry its own sentAt: it is a batch of one.
    return _batch([doc], parse_sent_at(doc.get("sentAt")), single=True, may_hold_nul=may_hold_nul)


def _batch(events: list[Any], sent_at: datetime | None, *, single: bool, may_hold_nul: bool) -> Batch:
    if not events:
        raise Rejection("missing_field", "the batch holds no events", field="events")
    if len(events) > MAX_EVENTS:
        raise Rejection("too_many_events", f"the batch holds {len(events)} events; the limit is {MAX_EVENTS}")
    return Batch(events, sent_at, single, may_hold_nul)


def parse_sent_at(value: Any) -> datetime | None:
    if value is None:
        return None
    return _timestamp(value, "sentAt")


def to_event(
    raw: Any, received_at: datetime, skew: timedelta, believed_until: datetime, *, may_hold_nul: bool = True
) -> Event:
    """`skew` is received_at - sentAt (zero without sentAt); a client time after `believed_until`
    (received_at plus the future skew believed, computed once per request) is not believed.
    `may_hold_nul`: Batch.may_hold_nul. This runs for every event: calls are inlined, and names
    looked up once."""
    if not isinstance(raw, dict):
        raise Rejection("wrong_type", f"an event must be a JSON object, not {_kind(raw)}")
    get = raw.get
    # Each check's common case inline, the function that decides (and words the rejection) otherwise:
    # the same checks in the same order, fewer calls.
    site_id = get("siteId")
    if site_id.__class__ is not str or not site_id or len(site_id) > MAX_ID_CHARS:
        site_id = _required_id(raw, "siteId")
    event_type = get("eventType")
    if event_type.__class__ is not str or not event_type or len(event_type) > MAX_ID_CHARS:
        event_type = _required_id(raw, "eventType")
    event_id = _event_id(get("eventId"))
    # The optional fields' types, the common case unrolled (no loop, no call per field); when one is
    # not exactly its type, the loop over _OPTIONAL decides (a subclass passes) and names the first
    # wrong field in _OPTIONAL's order, as it always has.
    visitor_id, session_id, attribution = get("visitorId"), get("sessionId"), get("attribution")
    if (
        (visitor_id is not None and visitor_id.__class__ is not str)
        or (session_id is not None and session_id.__class__ is not str)
        or ((v := get("url")) is not None and v.__class__ is not str)
        or ((v := get("path")) is not None and v.__class__ is not str)
        or ((v := get("referrer")) is not None and v.__class__ is not str)
        or ((v := get("title")) is not None and v.__class__ is not str)
        or ((v := get("target")) is not None and v.__class__ is not str)
        or ((v := get("text")) is not None and v.__class__ is not str)
        or ((v := get("shortCode")) is not None and v.__class__ is not str)
        or ((v := get("props")) is not None and v.__class__ is not dict)
        or (attribution is not None and attribution.__class__ is not dict)
    ):
        for name, kind, described in _OPTIONAL:
            value = get(name)
            if value is not None and not isinstance(value, kind):
                raise Rejection("wrong_type", f"{name} must be {described}, not {_kind(value)}", field=name)
    if attribution is not None and (utm := attribution.get("utmParams")) is not None and utm.__class__ is not dict:
        _optional(attribution, "utmParams", dict, "an object", prefix="attribution.")
    # (strings or None by now: only their length is left to check)
    if visitor_id is not None and len(visitor_id) > MAX_ID_CHARS:
        _bounded(visitor_id, "visitorId")
    if session_id is not None and len(session_id) > MAX_ID_CHARS:
        _bounded(session_id, "sessionId")

    timestamp = get("timestamp")
    client_timestamp = None if timestamp is None else _timestamp(timestamp, "timestamp")
    occurred_at = received_at
    if client_timestamp is not None:
        try:
            occurred_at = client_timestamp + skew if skew else client_timestamp
            out_of_range = occurred_at < EARLIEST_CLIENT_TIME
        except OverflowError:
            out_of_range = True
        if out_of_range:
            raise Rejection("invalid_value", "timestamp is out of range once corrected", field="timestamp")
        # A clock far ahead is wrong, not early: the event happened when it arrived.
        if occurred_at > believed_until:
            occurred_at = received_at

    try:
        payload = orjson.dumps(raw)
    except orjson.JSONEncodeError as exc:  # e.g. nested deeper than orjson writes (it reads deeper)
        raise Rejection("invalid_value", f"the event cannot be stored: {exc}") from None
    if len(payload) > MAX_EVENT_BYTES:
        raise Rejection("event_too_large", f"the event is {len(payload)} bytes; the limit is {MAX_EVENT_BYTES}")
    # PostgreSQL text and jsonb cannot hold U+0000; one such event must not fail a whole group commit.
    if may_hold_nul and b"\\u0000" in payload and _has_nul(raw):
        raise Rejection("invalid_value", "the event contains a U+0000 character, which cannot be stored")
    # (tuple.__new__ itself: a NamedTuple's constructor and its _make are Python-level functions)
    fields = (event_id, site_id, event_type, occurred_at, client_timestamp, visitor_id, session_id, payload)
    return _new_tuple(Event, fields)


_new_tuple = tuple.__new__


def _required_id(raw: dict[str, Any], name: str) -> str:
    value = raw.get(name)
    if value is None:
        raise Rejection("missing_field", f"{name} is required", field=name)
    if not isinstance(value, str):
        raise Rejection("wrong_type", f"{name} must be a string, not {_kind(value)}", field=name)
    if not value:
        raise Rejection("invalid_value", f"{name} must not be empty", field=name)
    _bounded(value, name)
    return value


def _bounded(value: Any, name: str) -> str | None:
    if isinstance(value, str) and len(value) > MAX_ID_CHARS:
        raise Rejection("invalid_value", f"{name} is {len(value)} characters; the limit is {MAX_ID_CHARS}", field=name)
    return value if isinstance(value, str) else None


def _optional(raw: dict[str, Any], name: str, kind: type, described: str, prefix: str = "") -> None:
    value = raw.get(name)
    if value is not None and not isinstance(value, kind):
        raise Rejection("wrong_type", f"{prefix}{name} must be {described}, not {_kind(value)}", field=prefix + name)


_time_ns = time.time_ns
_random_bits = random.getrandbits  # the random module's generator, which Python reseeds in a forked child


def new_event_id() -> uuid.UUID:
    """The id of an event sent without one: a UUID version 7 (RFC 9562), the time in milliseconds
    then random bits. The ids of an hour sit side by side in event_ids' and stg_events' primary
    keys, so a batch's inserts touch a few index pages at the right edge instead of one random page
    each (and, after a checkpoint, write a full page image of each to the WAL). Random, not
    secret: Mersenne Twister bits (reseeded per process, even after fork) spare uuid4's system
    call."""
    # uuid7's arithmetic, inline: this runs for nearly every event
    return _uuid((_time_ns() // 1_000_000 << 80 | _random_bits(80)) & _VERSION_BITS | _VERSION_7)


def uuid7(ms: int, random_bits: int) -> uuid.UUID:
    """A UUID version 7 (RFC 9562): `ms`, Unix time in milliseconds, in the first 48 bits, then
    `random_bits` (80 bits, of which the version and variant take 6)."""
    return _uuid((ms << 80 | random_bits) & _VERSION_BITS | _VERSION_7)


def _event_id(value: Any) -> uuid.UUID:
    if value is None:
        return new_event_id()
    if value.__class__ is uuid.UUID:  # parsed already, by a dialect (no JSON document holds one)
        return value
    if not isinstance(value, str):
        raise Rejection("wrong_type", f"eventId must be a UUID string, not {_kind(value)}", field="eventId")
    # Only the two forms a UUID is written in, ASCII hex digits in any case: int(..., 16) would also
    # take other scripts' digits, underscores, "0x", a sign, and stray hyphens. bytes.fromhex takes
    # ASCII hex pairs only, skipping whitespace, which then leaves fewer than 16 bytes.
    digits = value
    if len(value) == 36 and value[8] == value[13] == value[18] == value[23] == "-":
        digits = value.replace("-", "")  # 32 characters left only if there was no other hyphen
    try:
        if len(digits) != 32 or len(octets := _fromhex(digits)) != 16:
            raise ValueError
    except ValueError:
        raise Rejection(
            "invalid_value", f"eventId {value[:60]!r} is not a UUID (8-4-4-4-12 hex digits, or 32)", field="eventId"
        ) from None
    return _uuid(_from_bytes(octets))


_fromhex = bytes.fromhex
_from_bytes = int.from_bytes  # big-endian, a UUID's byte order


# uuid.UUID's constructor checks its many keyword forms first, more work than all the rest of making
# an event id. This sets the same two slots it sets, the way it sets them (UUID refuses __setattr__).
_VERSION_BITS = ~(0xF000 << 64 | 0xC000 << 48)  # clears the version and variant bits
_VERSION_7 = 7 << 76 | 0x8000 << 48  # version 7, RFC 9562 (RFC 4122) variant


_UNKNOWN_SAFETY = uuid.SafeUUID.unknown  # an enum member read through the class costs a property call
_UUID = uuid.UUID
_new = object.__new__
# The two slots' own setters: object.__setattr__ would look each name up in the class first (a
# quarter of the cost of making a UUID: ~900 of ~3,900 instructions, callgrind)
_set_int = _UUID.__dict__["int"].__set__
_set_is_safe = _UUID.__dict__["is_safe"].__set__


def _uuid(value: int) -> uuid.UUID:
    made = _new(_UUID)
    _set_int(made, value)
    _set_is_safe(made, _UNKNOWN_SAFETY)
    return made


def _timestamp(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise Rejection("wrong_type", f"{name} must be an ISO 8601 string, not {_kind(value)}", field=name)
    try:
        parsed = datetime.fromisoformat(value) if len(value) <= 40 else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise Rejection("invalid_value", f"{name} {value[:60]!r} is not an ISO 8601 timestamp", field=name)
    if parsed.tzinfo is None:
        raise Rejection("invalid_value", f"{name} {value!r} has no time zone (add 'Z' or an offset)", field=name)
    # A time in another zone than UTC compares slowly: only a year at an end needs the comparison.
    if not 2000 < parsed.year < 9999 and not EARLIEST_CLIENT_TIME <= parsed < LATEST_CLIENT_TIME:
        raise Rejection("invalid_value", f"{name} {value!r} is outside 2000-01-01 to 9999-12-31 (UTC)", field=name)
    return parsed


def _has_nul(value: Any) -> bool:
    stack = [value]  # iterative: JSON may nest deeper than Python's recursion limit
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}


def _kind(value: Any) -> str:
    return "null" if value is None else _KINDS.get(type(value), type(value).__name__)
