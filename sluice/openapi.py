"""`GET /openapi.json`: an OpenAPI 3.0 description of every route the app serves.

The document is built from the app's own route list: each route's path, method and path
parameters come from the `Route` itself, and what the route list cannot say (the query parameters,
the body, the answers and their schemas) from `OPERATIONS` here, keyed by (method, path). A route
without an entry, or an entry without a route, is a mistake that `missing()` names and
tests/test_openapi.py asserts away, so the description cannot drift from what is served. The
suite fuzzes every operation with schemathesis against a real `sluice serve`
(tests/test_openapi_fuzz.py): no 5xx, no answer outside what is declared here.

Every error answer has the one shape of sluice/http.py, its `error` one of sluice/errors.py's codes.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sluice.errors import CODES
from sluice.http import JSONResponse
from sluice.settings import Settings

JSON = "application/json"
Schema = dict[str, Any]

ERROR: Schema = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "enum": sorted(CODES)},
        "message": {"type": "string"},
        "field": {"type": "string"},
    },
}
_STATUS_TEXT = {
    400: "the input does not parse",
    401: "no or a wrong token",
    403: "refused or disabled",
    404: "no such thing",
    409: "a conflict",
    413: "too large",
    415: "unsupported content type or encoding",
    422: "well-typed but meaningless input",
    503: "PostgreSQL unreachable, the worker overloaded, or the schema behind (Retry-After)",
}
UUID: Schema = {"type": "string", "format": "uuid"}
ANY_OBJECT: Schema = {"type": "object"}
ANY_ARRAY: Schema = {"type": "array", "items": {"type": "object"}}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
# Path parameters' examples: what tests/test_openapi_fuzz.py seeds, so that the fuzzer reaches past "not found".
PATH_EXAMPLES = {
    "site": "fuzz.example",
    "short_code": "fuzzlink",
    "dimension": "country",
    "event_type": "pageview",
    "user_id": "fuzz-visitor",
}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {
            "description": _STATUS_TEXT[status],
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status in statuses
    }


def _json(status: int, schema: Schema, description: str = "answered") -> dict[str, Any]:
    return {str(status): {"description": description, "content": {JSON: {"schema": schema}}}}


def _plain(status: int, media: str, description: str) -> dict[str, Any]:
    return {str(status): {"description": description, "content": {media: {"schema": {"type": "string"}}}}}


def _empty(status: int, description: str) -> dict[str, Any]:
    return {str(status): {"description": description}}


def _query(name: str, schema: Schema, description: str, *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def _body(schema: Schema, *media: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {m: {"schema": schema} for m in media or (JSON,)}}


# What /collect and the click reports take: one event, an array of them, or {"events": [...]}.
EVENT: Schema = {
    "type": "object",
    "required": ["siteId", "eventType"],
    "properties": {
        "siteId": {"type": "string", "minLength": 1, "maxLength": 200, "example": "fuzz.example"},
        "eventType": {"type": "string", "minLength": 1, "maxLength": 200, "example": "pageview"},
        "eventId": UUID,
        "timestamp": {"type": "string", "format": "date-time"},
        "sentAt": {"type": "string", "format": "date-time"},
        "visitorId": {"type": "string"},
        "sessionId": {"type": "string"},
        "url": {"type": "string"},
        "path": {"type": "string"},
        "referrer": {"type": "string"},
        "title": {"type": "string"},
        "props": {"type": "object"},
        "attribution": {"type": "object"},
    },
}
EVENTS_BODY: Schema = {
    "oneOf": [
        {"$ref": "#/components/schemas/Event"},
        {"type": "array", "items": {"$ref": "#/components/schemas/Event"}, "minItems": 1, "maxItems": 20},
        {
            "type": "object",
            "required": ["events"],
            "properties": {
                "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}, "maxItems": 20},
                "sentAt": {"type": "string", "format": "date-time"},
            },
        },
    ]
}
ACCEPTED: Schema = {
    "type": "object",
    "required": ["status", "event_ids", "received_at"],
    "properties": {
        "status": {"type": "string", "enum": ["accepted"]},
        "event_ids": {"type": "array", "items": UUID},
        "received_at": {"type": "string"},
        "rejected": {"type": "array", "items": {"$ref": "#/components/schemas/Error"}},
    },
}
HEALTH: Schema = {
    "type": "object",
    "required": ["status", "database"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded"]},
        "database": {"type": "string", "enum": ["connected", "unreachable"]},
        "schema_version": {"type": "string"},
        "spool": {"type": "object", "required": ["bytes", "events", "accepting"]},
    },
}
LINK: Schema = {
    "type": "object",
    "required": ["short_code", "target_url", "site_id", "disabled"],
    "properties": {
        "short_code": {"type": "string"},
        "target_url": {"type": "string"},
        "site_id": {"type": "string"},
        "disabled": {"type": "boolean"},
        "created_at": {"type": "string"},
    },
}
SITE: Schema = {"type": "object", "required": ["site_id"], "properties": {"site_id": {"type": "string"}}}
RUN_STARTED: Schema = {
    "type": "object",
    "required": ["run_id", "kind", "status"],
    "properties": {"run_id": {"type": "integer"}, "kind": {"type": "string"}, "status": {"type": "string"}},
}
LIMIT = _query("limit", {"type": "integer"}, "rows to answer, 1..1000")
SITE_QUERY = _query("site", {"type": "string"}, "one site only")
REPORT_QUERY = [
    _query("period", {"type": "string"}, "day, 7d, 30d, month, 6mo, 12mo, custom"),
    _query("date", {"type": "string", "format": "date"}, "the period's reference day"),
    _query("from", {"type": "string", "format": "date"}, "a custom period's first day"),
    _query("to", {"type": "string", "format": "date"}, "a custom period's last day"),
    _query("filters", {"type": "string"}, "dimension==value;..."),
    _query("format", {"type": "string", "enum": ["json", "csv"]}, "csv for a CSV file"),
]
INGEST_ERRORS = (400, 401, 403, 413, 415, 422, 503)
OPERATOR = (401, 403)
CSV_OR_JSON = {
    "description": "the report",
    "content": {JSON: {"schema": ANY_OBJECT}, "text/csv": {"schema": {"type": "string"}}},
}


def _dialect(accepted: dict[str, Any], summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "requestBody": _body(ANY_OBJECT, JSON, "text/plain"),
        "responses": {**accepted, **_errors(*INGEST_ERRORS)},
    }


_PREFLIGHT = {"summary": "CORS preflight", "responses": _empty(204, "the CORS headers, when the origin is allowed")}


def operations(settings: Settings) -> dict[tuple[str, str], dict[str, Any]]:
    """(method, path) -> the OpenAPI operation, less what the route itself says (its path parameters)."""
    ops: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/collect"): {
            "summary": "Store events: one, an array, or {events: [...]}; 202 once committed (or spooled)",
            "requestBody": _body({"$ref": "#/components/schemas/Events"}, JSON, "text/plain"),
            "responses": {**_json(202, {"$ref": "#/components/schemas/Accepted"}, "stored"), **_errors(*INGEST_ERRORS)},
        },
        ("GET", "/collect"): {
            "summary": "The pixel: one event in the query string, answered with a 1x1 GIF",
            "parameters": [
                _query("siteId", {"type": "string", "example": "fuzz.example"}, "the site"),
                _query("eventType", {"type": "string", "example": "pageview"}, "the event's type"),
                _query("eventId", UUID, "the event's id"),
                _query("timestamp", {"type": "string", "format": "date-time"}, "when it happened"),
                _query("props", {"type": "string"}, "JSON object"),
            ],
            "responses": {**_plain(200, "image/gif", "the pixel"), **_errors(*INGEST_ERRORS)},
        },
        ("OPTIONS", "/collect"): {
            "summary": "CORS preflight, or the methods /collect takes",
            "responses": {**_empty(200, "a CORS preflight's answer"), **_empty(204, "Allow"), **_errors(400)},
        },
        ("GET", "/health"): {
            "summary": "ok, degraded (events in the spool, or PostgreSQL away and the spool taking them), or 503",
            "responses": {**_json(200, {"$ref": "#/components/schemas/Health"}), **_errors(503)},
        },
        ("GET", "/events/count"): {
            "summary": "How many events the log holds",
            "security": _BEARER,
            "responses": {
                **_json(200, {"type": "object", "required": ["count"], "properties": {"count": {"type": "integer"}}}),
                **_errors(*OPERATOR, 503),
            },
        },
        ("GET", "/events/recent"): {
            "summary": "The newest events",
            "security": _BEARER,
            "parameters": [LIMIT],
            "responses": {
                **_json(200, {"type": "object", "required": ["events"], "properties": {"events": {"type": "array"}}}),
                **_errors(400, *OPERATOR, 422, 503),
            },
        },
        ("GET", settings.link_prefix + "/{short_code}"): {
            "summary": "A short link's redirect (a GET is a click; a HEAD is not)",
            "responses": {**_empty(302, "to the link's target"), **_plain(404, "text/html", "no such link")},
        },
        ("GET", "/api/v1/sites/{site}/links"): {
            "summary": "A site's short links",
            "security": _BEARER,
            "responses": {
                **_json(200, {"type": "object", "required": ["links"], "properties": {"links": {"type": "array"}}}),
                **_errors(*OPERATOR, 503),
            },
        },
        ("POST", "/api/v1/sites/{site}/links"): {
            "summary": "Add a short link",
            "security": _BEARER,
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["code", "url"],
                    "properties": {"code": {"type": "string"}, "url": {"type": "string", "format": "uri"}},
                }
            ),
            "responses": {**_json(201, LINK), **_errors(400, *OPERATOR, 409, 422, 503)},
        },
        ("POST", "/analytics/events/"): {
            "summary": "A redirect service's click report (an ingest token)",
            "security": _BEARER,
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["short_code"],
                    "properties": {"short_code": {"type": "string"}, "site_id": {"type": "string"}},
                }
            ),
            "responses": {**_json(202, ANY_OBJECT, "stored"), **_errors(*INGEST_ERRORS)},
        },
        ("GET", "/api/v1/registered-sites"): {
            "summary": "The registered sites",
            "security": _BEARER,
            "responses": {
                **_json(200, {"type": "object", "required": ["sites"], "properties": {"sites": {"type": "array"}}}),
                **_errors(*OPERATOR, 503),
            },
        },
        ("POST", "/api/v1/sites"): {
            "summary": "Register a site; answers its write key",
            "security": _BEARER,
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["site_id"],
                    "properties": {
                        "site_id": {"type": "string"},
                        "name": {"type": "string"},
                        "timezone": {"type": "string", "example": "Europe/Berlin"},
                        "origins": {"type": "array", "items": {"type": "string", "example": "https://fuzz.example"}},
                    },
                }
            ),
            "responses": {**_json(201, SITE), **_errors(400, *OPERATOR, 409, 422, 503)},
        },
        ("DELETE", "/api/v1/sites/{site}"): {
            "summary": "Remove a registered site",
            "security": _BEARER,
            "responses": {**_empty(204, "removed"), **_errors(*OPERATOR, 404, 503)},
        },
        ("POST", "/api/v1/sites/{site}/write-key"): {
            "summary": "A new write key for a site",
            "security": _BEARER,
            "responses": {**_json(200, SITE), **_errors(*OPERATOR, 404, 503)},
        },
        # the ETL's controls
        ("POST", "/etl/run"): _etl("Start an incremental run", _json(202, RUN_STARTED, "started"), 409),
        ("POST", "/etl/rebuild"): _etl("Start a rebuild", _json(202, RUN_STARTED, "started"), 409),
        ("POST", "/etl/run-sync"): _run_sync("Run the ETL now; answers when it is done"),
        ("POST", "/analytics/aggregate"): _run_sync("Run the ETL now (an earlier system's name for /etl/run-sync)"),
        ("POST", "/etl/process/{event_type}"): _etl(
            "Run the ETL; report one event type", _json(200, ANY_OBJECT), 409, 422, 500
        ),
        ("POST", "/etl/calculate-daily-metrics"): _etl(
            "Recount one day's daily tables",
            _json(200, ANY_OBJECT),
            400,
            409,
            422,
            500,
            parameters=[_query("target_date", {"type": "string", "format": "date"}, "YYYY-MM-DD", required=True)],
        ),
        ("POST", "/etl/cleanup"): _etl(
            "Drop events older than the retention",
            _json(200, ANY_OBJECT),
            400,
            409,
            422,
            500,
            parameters=[_query("retention_days", {"type": "integer"}, "days kept")],
        ),
        ("GET", "/etl/status"): _etl("The ETL's state: watermark, lag, scheduler", _json(200, ANY_OBJECT)),
        ("GET", "/etl/runs"): _etl("The latest runs", _json(200, ANY_ARRAY), 400, 422, parameters=[LIMIT]),
        ("GET", "/etl/recent-sessions"): _etl(
            "The latest sessions", _json(200, ANY_ARRAY), 400, 422, parameters=[LIMIT]
        ),
        # the reports (a read or the admin token)
        ("GET", "/api/v1/sites"): _report("The sites with data", []),
        ("GET", "/api/v1/sites/{site}/summary"): _report("A period's totals", REPORT_QUERY),
        ("GET", "/api/v1/sites/{site}/timeseries"): _report(
            "A period's points",
            [
                *REPORT_QUERY,
                _query("interval", {"type": "string"}, "hour, day, month"),
                _query("metrics", {"type": "string"}, "comma-separated"),
            ],
        ),
        ("GET", "/api/v1/sites/{site}/breakdown/{dimension}"): _report(
            "A period's rows by one dimension",
            [
                *REPORT_QUERY,
                _query("order", {"type": "string"}, "the metric rows are ordered by"),
                LIMIT,
                _query("offset", {"type": "integer"}, "rows skipped"),
            ],
        ),
        ("GET", "/api/v1/sites/{site}/realtime"): _report("The last minutes", []),
        ("GET", "/analytics/stats/{short_code}"): _report(
            "A short code's clicks", [_query("days", {"type": "integer"}, "1..3650"), SITE_QUERY], 409
        ),
        ("GET", "/analytics/global"): _report(
            "Clicks over all links", [_query("days", {"type": "integer"}, "1..3650"), SITE_QUERY]
        ),
        ("GET", "/analytics/summary"): _report(
            "Events by type", [_query("hours", {"type": "integer"}, "1..8760"), SITE_QUERY]
        ),
        ("GET", "/analytics/user/{user_id}"): _report("One user's or visitor's events", []),
        ("GET", "/analytics/dashboard"): _report("The last 24 hours and 7 days", [SITE_QUERY]),
        # the dashboard's pages (HTML, a session cookie)
        ("GET", "/"): _page("The sites"),
        ("GET", "/dashboard"): _page(
            "One site's dashboard", [_query("site", {"type": "string"}, "the site"), *REPORT_QUERY]
        ),
        ("GET", "/login"): _page("The sign-in form", [_query("next", {"type": "string"}, "where to go after")]),
        ("POST", "/login"): {
            "summary": "Sign in with the read or admin token",
            "requestBody": _body(
                {"type": "object", "properties": {"token": {"type": "string"}, "next": {"type": "string"}}},
                "application/x-www-form-urlencoded",
            ),
            "responses": _html_answers(303, 400, 401, 403, 413, 415),
        },
        ("POST", "/logout"): {"summary": "Sign out", "responses": _html_answers(303, 403)},
        ("GET", "/favicon.svg"): {"summary": "The icon", "responses": _plain(200, "image/svg+xml", "the icon")},
        ("GET", "/favicon.ico"): {"summary": "The icon", "responses": _plain(200, "image/svg+xml", "the icon")},
        ("GET", "/metrics"): {
            "summary": "Prometheus metrics (SLUICE_METRICS_TOKEN or the admin token)",
            "security": _BEARER,
            "responses": {**_plain(200, "text/plain", "the Prometheus text format"), **_errors(*OPERATOR)},
        },
        ("GET", "/openapi.json"): {
            "summary": "This description",
            "responses": _json(200, {"type": "object", "required": ["openapi", "paths"]}),
        },
    }
    from sluice.collector.dialects.http import POSTHOG_PATHS, SEGMENT_TYPES

    for kind in SEGMENT_TYPES:
        accepted = _json(200, {"type": "object", "required": ["success"]}, "stored")
        ops[("POST", f"/v1/{kind}")] = _dialect(accepted, f"Segment and RudderStack: {kind} (a site's write key)")
        ops[("OPTIONS", f"/v1/{kind}")] = _PREFLIGHT
    for path in (*POSTHOG_PATHS, *(path + "/" for path in POSTHOG_PATHS), "/i/v1/analytics/events"):
        accepted = _json(200, {"type": "object", "required": ["status"]}, "stored")
        ops[("POST", path)] = _dialect(accepted, "PostHog capture (a project's api_key)")
        ops[("OPTIONS", path)] = _PREFLIGHT
    ops[("POST", "/api/event")] = _dialect(_plain(202, "text/plain", "stored"), "Plausible's event API")
    ops[("OPTIONS", "/api/event")] = _PREFLIGHT
    ops[("POST", "/api/send")] = _dialect(
        _json(200, {"type": "object", "required": ["ok"]}, "stored"), "Umami's send API"
    )
    ops[("OPTIONS", "/api/send")] = _PREFLIGHT
    return ops


def _run_sync(summary: str) -> dict[str, Any]:
    """POST /etl/run-sync and its seed alias: one handler, one description."""
    batch_size = _query("batch_size", {"type": "integer"}, "events per batch, 1..100000000")
    return _etl(summary, _json(200, ANY_OBJECT), 400, 409, 422, 500, parameters=[batch_size])


def _etl(
    summary: str, answered: dict[str, Any], *statuses: int, parameters: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    errors = _errors(*sorted({*OPERATOR, 503, *(s for s in statuses if s != 500)}))
    if 500 in statuses:  # run_failed: the run itself failed, recorded in /etl/runs (not a bug of the request)
        errors["500"] = {
            "description": "run_failed",
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return {
        "summary": summary,
        "security": _BEARER,
        "parameters": list(parameters),
        "responses": {**answered, **errors},
    }


def _report(summary: str, parameters: Sequence[dict[str, Any]], *statuses: int) -> dict[str, Any]:
    return {
        "summary": summary,
        "security": _BEARER,
        "parameters": list(parameters),
        "responses": {"200": CSV_OR_JSON, **_errors(*sorted({400, *OPERATOR, 404, 422, 503, *statuses}))},
    }


def _html_answers(*statuses: int) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for status in statuses:
        if 300 <= status < 400:
            answers[str(status)] = {"description": "a redirect"}
        else:
            answers[str(status)] = {"description": "a page", "content": {"text/html": {"schema": {"type": "string"}}}}
    return answers


def _page(summary: str, parameters: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": list(parameters),
        "responses": _html_answers(200, 303, 400, 403, 404, 422, 503),
    }


def _served(routes: Iterable[BaseRoute]) -> list[tuple[str, str, Route]]:
    """(method, path, route) for each method of each route; HEAD, which Starlette adds to a GET, left out."""
    served = []
    for route in routes:
        if isinstance(route, Route):
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    served.append((method, route.path, route))
    return served


def missing(routes: Iterable[BaseRoute], settings: Settings) -> tuple[list[str], list[str]]:
    """The routes without a description here, and the descriptions without a route."""
    ops = operations(settings)
    served = {(method, path) for method, path, _ in _served(routes)}
    undescribed = sorted(f"{m} {p}" for m, p in served - ops.keys())
    unserved = sorted(f"{m} {p}" for m, p in ops.keys() - served)
    return undescribed, unserved


def document(routes: Iterable[BaseRoute], settings: Settings) -> dict[str, Any]:
    ops = operations(settings)
    paths: dict[str, dict[str, Any]] = {}
    for method, path, route in _served(routes):
        operation = ops.get((method, path))
        if operation is None:
            continue  # missing() names it; tests/test_openapi.py fails on it
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1, "example": PATH_EXAMPLES.get(name, "x")},
            }
            for name in route.param_convertors
        ]
        operation = {**operation, "parameters": [*parameters, *operation.get("parameters", [])]}
        operation["operationId"] = f"{method.lower()} {path}"
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": "Sluice", "version": _version()},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR, "Event": EVENT, "Events": EVENTS_BODY, "Accepted": ACCEPTED, "Health": HEALTH},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _version() -> str:
    try:
        return importlib.metadata.version("sluice")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "0"


async def endpoint(request: Request) -> Response:
    app = request.scope["app"]
    cached: bytes | None = getattr(app.state, "openapi", None)
    if cached is None:
        response = JSONResponse(document(app.routes, request.state.settings))
        app.state.openapi = response.body
        return response
    return Response(cached, media_type=JSON)
