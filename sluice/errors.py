"""The `error` codes of every Sluice HTTP answer: one fault, one code, one status, wherever it occurs.

The collector, the ETL's control endpoints, the shared operator guard and nginx's own refusals
(nginx.conf) all answer `{"error": <code>, "message": ..., "field": ...}` with a code from here; an
answer with any other code cannot be built (`status_of` refuses it), and a test checks nginx.conf's
bodies and the README's table against this one.
"""

from __future__ import annotations

from typing import NamedTuple


class ErrorCode(NamedTuple):
    status: int
    meaning: str


# A 500 from bad input is a bug: every way input can be wrong has a 4xx code here.
CODES: dict[str, ErrorCode] = {
    "malformed_json": ErrorCode(400, "the body is not JSON (or not UTF-8), or not an object or array"),
    "malformed_body": ErrorCode(400, "a gzip/deflate body that does not decompress"),
    "missing_field": ErrorCode(400, "a required field or query parameter is missing; an empty batch"),
    "wrong_type": ErrorCode(400, "a known field has the wrong JSON type"),
    "bad_parameter": ErrorCode(400, "a query or path parameter does not parse (not an integer, not a date)"),
    "message_too_large": ErrorCode(400, "a Segment/RudderStack message over 32 KB (their own limit)"),
    "batch_too_large": ErrorCode(400, "a Segment/RudderStack batch over 500 KB (their own limit)"),
    "unauthorized": ErrorCode(401, "the bearer token is missing or wrong"),
    "invalid_write_key": ErrorCode(401, "a Segment, RudderStack or PostHog request without a site's write key"),
    "forbidden": ErrorCode(
        403,
        "the operator and control endpoints are disabled: the app was given no admin token"
        " (the reports: neither an admin nor a read token)",
    ),
    "forbidden_network": ErrorCode(
        403, "nginx: `/etl/`, `/events/` and `/metrics` answer loopback and private networks only"
    ),
    "unknown_site": ErrorCode(403, "`SLUICE_REQUIRE_KNOWN_SITES` is on and the event's site is not in `sites`"),
    "not_found": ErrorCode(404, "no such path"),
    "site_not_found": ErrorCode(404, "the reports: Sluice has no data of that site"),
    "unknown_short_code": ErrorCode(404, "`/analytics/stats`: no clicks with that short code (in that site)"),
    "unknown_user": ErrorCode(404, "`/analytics/user`: no events of that user or visitor"),
    "method_not_allowed": ErrorCode(405, "the path exists, but not for this method (`Allow` lists those it takes)"),
    "already_running": ErrorCode(409, "an ETL run is in progress"),
    "already_exists": ErrorCode(409, "the site id or short code is taken (`/api/v1/sites`, its `/links`)"),
    "ambiguous_short_code": ErrorCode(
        409, "`/analytics/stats`: the short code has clicks in several sites; add `site=`"
    ),
    "body_too_large": ErrorCode(413, "the body exceeds 1 MiB, after decompression (nginx refuses it before)"),
    "too_many_events": ErrorCode(413, "a batch of more than 500 events"),
    "event_too_large": ErrorCode(413, "an event over 64 KiB (as re-serialised JSON)"),
    "unsupported_media_type": ErrorCode(415, "a `Content-Type` other than `application/json` or `text/plain`"),
    "unsupported_encoding": ErrorCode(415, "a `Content-Encoding` other than gzip or deflate"),
    "invalid_value": ErrorCode(
        422,
        "well-typed but meaningless: an unparseable or zone-less timestamp, a non-UUID `eventId`,"
        " an empty `siteId`, a parameter out of its range",
    ),
    "rate_limited": ErrorCode(429, "nginx: over 10 requests a second from one address, beyond a burst of 50"),
    "run_failed": ErrorCode(500, "the ETL run failed; its `run_id` and error are in `/etl/runs`"),
    "internal_error": ErrorCode(500, "a bug in Sluice: the log holds the traceback"),
    "database_unavailable": ErrorCode(
        503,
        "PostgreSQL is unreachable or the write failed (and for events, the spool cannot take them);"
        " nothing of the request is stored; retry (`Retry-After`)",
    ),
    "overloaded": ErrorCode(
        503,
        "the worker holds as many requests as it may (256, or 4 MiB of bodies), or connections"
        " (`SLUICE_MAX_CONNECTIONS`); the body was not read; retry (`Retry-After`)",
    ),
    "migrations_pending": ErrorCode(503, "the database's schema is missing or behind: run `sluice migrate`"),
    "upstream_unavailable": ErrorCode(503, "nginx: Sluice itself is not answering"),
}


def status_of(code: str) -> int:
    """The HTTP status of `code`; a code not declared above is a bug, refused here."""
    try:
        return CODES[code].status
    except KeyError:
        raise ValueError(f"error code {code!r} is not declared in sluice/errors.py") from None
