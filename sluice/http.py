"""What every Sluice endpoint answers with: JSON (orjson), one error shape, one operator guard.

Errors are `{"error": <reason>, "message": <what is wrong, naming the value>, "field": <culprit>}`
(`field` when one input is at fault), whichever route set produced them; nginx's own refusals
(nginx.conf) use the same shape.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from decimal import Decimal
from functools import wraps
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from sluice.settings import Settings

Handler = Callable[[Request], Awaitable[Response]]


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):  # numeric columns (rates, averages)
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=_default)


def error_response(
    status_code: int,
    error: str,
    message: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"error": error, "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse({**body, **extra}, status_code, headers=headers)


def operators_only(settings: Settings, handler: Handler) -> Handler:
    """Bearer-token check (`SLUICE_ADMIN_TOKEN`) in front of an operator or control endpoint."""

    @wraps(handler)
    async def guarded(request: Request) -> Response:
        if not settings.admin_token:
            message = "operator endpoints are disabled: set SLUICE_ADMIN_TOKEN to enable them"
            return error_response(403, "forbidden", message)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.admin_token.encode()):
            message = "send 'Authorization: Bearer <SLUICE_ADMIN_TOKEN>'"
            return error_response(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="sluice"'})
        return await handler(request)

    return guarded
