"""The operators' `/api/v1/sites` endpoints (behind SLUICE_ADMIN_TOKEN), the CLI's twins:

GET    /api/v1/sites                       the sites
POST   /api/v1/sites                       {"site_id", "name"?, "origins"?, "timezone"?} -> 201 + write_key
POST   /api/v1/sites/{site}/write-key      a new write key; the old ones stop working
DELETE /api/v1/sites/{site}                the site and its keys (its events stay)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
import psycopg
from starlette.requests import Request
from starlette.responses import Response

from sluice.collector import sites
from sluice.collector.rejections import Rejection
from sluice.db import connect
from sluice.http import JSONResponse, error_response
from sluice.settings import Settings

T = TypeVar("T")


def _refused(rejection: Rejection) -> Response:
    return error_response(rejection.reason, rejection.message, field=rejection.field)


def _no_site(site_id: str) -> Response:
    return error_response("not_found", f"no site {site_id[:200]!r}", field="site")


def _unavailable(exc: psycopg.Error) -> Response:
    message = f"the sites could not be read or written: {exc}"
    return error_response("database_unavailable", message, headers={"Retry-After": "1"})


async def _run(settings: Settings, call: Callable[..., T], *args: Any) -> T:
    def with_connection() -> T:
        with connect(settings, autocommit=True, application_name="sluice-sites") as conn:
            return call(conn, *args)

    return await asyncio.to_thread(with_connection)


async def api_list(request: Request, settings: Settings) -> Response:
    try:
        listed = await _run(settings, sites.list_sites)
    except psycopg.Error as exc:
        return _unavailable(exc)
    return JSONResponse({"sites": [site.as_json() for site in listed]})


def _string_list(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Rejection("wrong_type", f"{field} must be an array of strings", field=field)
    return value


async def api_add(request: Request, settings: Settings) -> Response:
    try:
        body = orjson.loads(await request.body())
        if not isinstance(body, dict):
            raise Rejection("malformed_json", "the body must be a JSON object")
        site_id, name, timezone = body.get("site_id"), body.get("name"), body.get("timezone", "UTC")
        if site_id is None:
            raise Rejection("missing_field", "site_id is required", field="site_id")
        for value, field in ((site_id, "site_id"), (name, "name"), (timezone, "timezone")):
            if value is not None and not isinstance(value, str):
                raise Rejection("wrong_type", f"{field} must be a string", field=field)
        origins = _string_list(body.get("origins"), "origins")
        for value, field in (
            (site_id, "site_id"),
            (name, "name"),
            (timezone, "timezone"),
            *((o, "origins") for o in origins),
        ):
            if value is not None and "\x00" in value:  # no PostgreSQL text holds it (found by fuzzing)
                raise Rejection("invalid_value", f"{field} holds a NUL character (U+0000)", field=field)
        sites.check(site_id, origins, timezone)
    except orjson.JSONDecodeError as exc:
        return _refused(Rejection("malformed_json", f"the body is not valid JSON: {exc}"))
    except Rejection as rejection:
        return _refused(rejection)
    except sites.SiteError as exc:
        return _refused(Rejection("invalid_value", exc.message, field=exc.field))
    try:
        made = await _run(settings, sites.add, site_id, name, origins, timezone)
    except psycopg.Error as exc:
        return _unavailable(exc)
    if made is None:
        message = f"site {site_id!r} exists; POST /api/v1/sites/{site_id}/write-key makes a new key"
        return error_response("already_exists", message, field="site_id")
    site, write_key = made
    return JSONResponse({**site.as_json(), "write_key": write_key}, 201)


async def api_rotate_key(request: Request, settings: Settings) -> Response:
    site_id = request.path_params["site"]
    try:
        write_key = await _run(settings, sites.rotate_key, site_id)
    except psycopg.Error as exc:
        return _unavailable(exc)
    if write_key is None:
        return _no_site(site_id)
    return JSONResponse({"site_id": site_id, "write_key": write_key})


async def api_remove(request: Request, settings: Settings) -> Response:
    site_id = request.path_params["site"]
    try:
        removed = await _run(settings, sites.remove, site_id)
    except psycopg.Error as exc:
        return _unavailable(exc)
    return Response(status_code=204) if removed else _no_site(site_id)
