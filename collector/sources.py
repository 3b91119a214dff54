"""Who vouches for an event: a browser (nobody), or a server-side source holding an ingest token.

A browser's request speaks for itself: its socket (or a trusted proxy) gives the address, its
header the User-Agent. A server-side source (sluice.client, the ASGI middleware) sends events on
behalf of its own end users, so its request's address and User-Agent are the host app's, not
theirs. It names each end user in the event's `context`: `{"ip": ..., "userAgent": ...}`. That is
believed only from a request with `Authorization: Bearer <one of SLUICE_INGEST_TOKENS>`; a
request with any other bearer token is refused (401), and a request without one keeps the
browser's rules: its events' `context` is ignored.

Either way `context` never reaches the stored payload (it may hold a raw IP). An authenticated
event's payload gets `"context": {"source": "server"}` instead, which the ETL reads: a server event
without an end user's User-Agent is not a bot for want of one.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from starlette.responses import Response

from sluice.collector.client_ip import Origins
from sluice.collector.validate import Event
from sluice.collector.writer import Sender
from sluice.http import error_response

MAX_USER_AGENT_CHARS = 1024
SERVER_CONTEXT = {"source": "server"}  # what an authenticated event's stored payload says of it


class EndUser(NamedTuple):
    """What a server source says of the person behind one event (raw: it is hashed, never stored)."""

    ip: str | None
    user_agent: str | None


_NOBODY = EndUser(None, None)


class Unauthorized(Exception):
    def response(self) -> Response:
        message = "send 'Authorization: Bearer <one of SLUICE_INGEST_TOKENS>', or no Authorization header"
        return error_response("unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="sluice"'})


def is_server_source(headers: Mapping[str, str], ingest_tokens: Sequence[str]) -> bool:
    """True for a valid ingest token, False for no Authorization header; raises Unauthorized otherwise."""
    header = headers.get("authorization")
    if header is None:
        return False
    scheme, _, token = header.partition(" ")
    token_bytes = token.strip().encode()
    # every token compared, so the time taken does not tell which one came close
    matches = [hmac.compare_digest(token_bytes, known.encode()) for known in ingest_tokens]
    if scheme.lower() != "bearer" or not any(matches):
        raise Unauthorized
    return True


def take_contexts(events: list[Any], server: bool) -> list[EndUser] | None:
    """Removes each event's `context`; for a server source, returns the end user of each event
    (by index) and marks its payload as a server event. None for a browser's request."""
    if not server:
        for raw in events:
            if isinstance(raw, dict) and "context" in raw:
                del raw["context"]
        return None
    users = []
    # A batch names the same few end users again and again: each (ip, userAgent) is read once.
    seen: dict[tuple[Any, Any], EndUser] = {}
    for raw in events:
        if not isinstance(raw, dict):  # validation rejects it with its index
            users.append(_NOBODY)
            continue
        context = raw.pop("context", None)
        raw["context"] = SERVER_CONTEXT
        if not isinstance(context, dict):
            users.append(_NOBODY)
            continue
        ip, user_agent = context.get("ip"), context.get("userAgent")
        try:
            user = seen.get((ip, user_agent))
        except TypeError:  # an unhashable value (a list, an object): not an address or an agent
            ip, user_agent = None, None
            user = None
        if user is None:
            user = seen[(ip, user_agent)] = end_user(ip, user_agent)
        users.append(user)
    return users


def end_user(ip: Any, user_agent: Any) -> EndUser:
    """The end user an event names (its `context`, or an imported line's fields): an address and a
    User-Agent when they are strings, the agent cut as a request's header is."""
    if isinstance(user_agent, str):
        user_agent = user_agent[:MAX_USER_AGENT_CHARS].replace("\x00", "") or None
    return EndUser(ip if isinstance(ip, str) else None, user_agent if isinstance(user_agent, str) else None)


async def senders(
    origins: Origins, events: Sequence[Event], users: Sequence[EndUser], received_at: datetime
) -> list[tuple[list[Event], Sender]]:
    """The events grouped by end user, each group with its columns: the end user's IP hash and
    place, and User-Agent (none when the source named none: never the source's own)."""
    groups: dict[EndUser, list[Event]] = {}
    if users and len(users) == len(events) and users.count(users[0]) == len(users):
        # one end user (most batches; list.count compares by identity first): one group, as it is
        groups[users[0]] = list(events)
    else:
        # A batch's events mostly come in runs of one end user (often the same object:
        # segment.translate and take_contexts read each (ip, userAgent) once): a run appends to
        # its group without a lookup.
        last: EndUser | None = None
        rows: list[Event] = []
        for event, user in zip(events, users, strict=True):
            if user is not last:
                last = user
                found = groups.get(user)
                if found is None:
                    found = groups[user] = []
                rows = found
            rows.append(event)
    day = received_at.date()
    out = []
    for user, rows in groups.items():
        hashed, place = await origins.of_end_user(user.ip, day)
        out.append((rows, Sender(received_at, hashed, place.country, user.user_agent, place.region, place.city)))
    return out
