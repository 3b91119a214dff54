"""What the dialects share: event ids from their message ids, UTM objects, small typed readers."""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

from sluice.collector.rejections import Rejection
from sluice.collector.sources import EndUser
from sluice.collector.validate import _UNKNOWN_SAFETY, _UUID, _set_int, _set_is_safe

# The namespace of the UUIDv5 ids made from a dialect's non-UUID message ids (fixed forever: a
# retry of the same message must get the same id, or the log would keep it twice).
MESSAGE_ID_NAMESPACE = uuid.UUID("0b6f3c1e-4d8a-5f0e-9a51-5e9a7c1d2b40")
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


class Translated(NamedTuple):
    """A dialect's body as the collector's events, with the batch's sentAt (an ISO string) if any."""

    events: list[dict[str, Any]]
    sent_at: Any = None
    # A server source's end users, one per event, when the dialect read them from its messages
    # itself (Segment: each message's context); its events then carry `context` as
    # sources.take_contexts leaves it. None: `routes.ingest` reads each event's `context`.
    users: list[EndUser] | None = None


def event_id(site_id: str, message_id: Any) -> uuid.UUID | None:
    """The event id of a message: its id itself when that is a UUID (in either form the collector
    reads: 8-4-4-4-12 or 32 hex digits), else a UUIDv5 of the site and the id (so a retry dedupes
    as the tracker's do); None (a fresh id) when it sent none. This runs for every message: the id
    is parsed here once, and handed on as a uuid.UUID, which `to_event` takes as it is (the
    stored payload writes it in the 8-4-4-4-12 form)."""
    if message_id is None or message_id == "":
        return None
    text = message_id if message_id.__class__ is str else str(message_id)
    digits = text.replace("-", "") if len(text) == 36 and text[8] == text[13] == text[18] == text[23] == "-" else text
    if len(digits) == 32:
        try:
            octets = _fromhex(digits)
        except ValueError:
            pass
        else:
            if len(octets) == 16:
                # validate._uuid, inline: its call was ~540 of the ~8,700 instructions of an id (callgrind)
                made = _new_object(_UUID)
                _set_int(made, _from_bytes(octets))
                _set_is_safe(made, _UNKNOWN_SAFETY)
                return made
    return uuid.uuid5(MESSAGE_ID_NAMESPACE, f"{site_id}\x00{text}")


_fromhex = bytes.fromhex
_from_bytes = int.from_bytes  # big-endian, a UUID's byte order
_new_object = object.__new__


def text(value: Any) -> str | None:
    """A string field, or a number sent where a string is meant (ids often are); else None."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def obj(value: Any, field: str) -> dict[str, Any]:
    """An optional object field: {} when absent; a Rejection when it is something else."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Rejection("wrong_type", f"{field} must be an object", field=field)
    return value


def set_if(event: dict[str, Any], name: str, value: Any) -> None:
    if value is not None:
        event[name] = value


def utm(values: dict[str, Any]) -> dict[str, Any] | None:
    """The `attribution` of an event from utm_* values (strings only), or None without any."""
    params = {name: values[name] for name in UTM_FIELDS if isinstance(values.get(name), str) and values[name]}
    return {"utmParams": params} if params else None


def end_user(ip: Any, user_agent: Any) -> dict[str, Any] | None:
    """The `context` collector/sources.py reads: believed for an authenticated source, dropped
    otherwise, and never stored either way."""
    context = {}
    if isinstance(ip, str) and ip:
        context["ip"] = ip
    if isinstance(user_agent, str) and user_agent:
        context["userAgent"] = user_agent
    return context or None
