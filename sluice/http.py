"""What every Sluice endpoint answers with: JSON (orjson), one error shape, one operator guard.

Errors are `{"error": <code>, "message": <what is wrong, naming the value>, "field": <culprit>}`
(`field` when one input is at fault), whichever route set produced them, with a code of the one
vocabulary in sluice/errors.py, which also gives the status; nginx's own refusals (nginx.conf) use
the same shape and codes. Starlette's own answers (no such route, wrong method, an unhandled
exception) come out in that shape too, through `EXCEPTION_HANDLERS`.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from functools import wraps
from typing import Any
from uuid import UUID

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ExceptionHandler

from sluice.errors import status_of
from sluice.settings import Settings

Handler = Callable[[Request], Awaitable[Response]]


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):  # numeric columns (rates, averages)
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _default_slow(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()  # as orjson writes them (RFC 3339)
    if isinstance(value, UUID):
        return str(value)
    return _default(value)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, default=_default)
        except TypeError:
            # orjson writes integers of 64 bits at most; jsonb keeps any number, and a float such as
            # 1e30 in an event comes back from PostgreSQL as a 31-digit integer (found by fuzzing
            # /events/recent). The standard library writes those.
            return json.dumps(content, default=_default_slow, ensure_ascii=False, separators=(",", ":")).encode()


def error_response(
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """The answer for `code` (sluice/errors.py), with its status; `extra` adds keys to the body."""
    body: dict[str, Any] = {"error": code, "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse({**body, **extra}, status_of(code), headers=headers)


def _shown(path: str) -> str:
    return path if len(path) <= 200 else path[:200] + "..."


async def _not_found_or_not_allowed(request: Request, exc: Exception) -> Response:
    """The router's 404 and 405, in Sluice's error shape."""
    assert isinstance(exc, HTTPException)
    path = _shown(request.url.path)
    if exc.status_code == 405:
        # The router names the methods of the first route it found for the path; a path served by
        # one route per method (`/collect`) takes the methods of all of them.
        methods: set[str] = set()
        for route in request.app.router.routes:
            if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] is not Match.NONE:
                methods |= route.methods
        allowed = ", ".join(sorted(methods))
        message = f"{path} does not take {request.method}; it takes {allowed}"
        return error_response("method_not_allowed", message, headers={**(exc.headers or {}), "Allow": allowed})
    return error_response("not_found", f"no such path: {path}", headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Starlette still re-raises the exception after this answer, so the server logs its traceback.
    return error_response("internal_error", "Sluice failed to answer this request; its log says why")


EXCEPTION_HANDLERS: dict[Any, ExceptionHandler] = {
    404: _not_found_or_not_allowed,
    405: _not_found_or_not_allowed,
    500: _internal_error,
}


def nul_parameter(request: Request) -> JSONResponse | None:
    """400 for a query or path parameter holding U+0000, which no PostgreSQL text can hold: the
    query it reaches would fail, and a failed query is not the client's answer (found by fuzzing)."""
    for name, value in (*request.query_params.multi_items(), *request.path_params.items()):
        if "\x00" in name or "\x00" in str(value):
            field = name.replace("\x00", "") or "?"
            return error_response("bad_parameter", f"{field} holds a NUL character (U+0000)", field=field)
    return None


def operators_only(settings: Settings, handler: Handler) -> Handler:
    """Bearer-token check (`SLUICE_ADMIN_TOKEN`) in front of an operator or control endpoint."""

    @wraps(handler)
    async def guarded(request: Request) -> Response:
        if not settings.admin_token:
            message = "operator endpoints are disabled: set SLUICE_ADMIN_TOKEN to enable them"
            return error_response("forbidden", message)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.admin_token.encode()):
            message = "send 'Authorization: Bearer <SLUICE_ADMIN_TOKEN>'"
            return error_response("unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="sluice"'})
        return nul_parameter(request) or await handler(request)

    return guarded
