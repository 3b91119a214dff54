"""The ETL's control endpoints (JSON, bearer-token protected) and its part of the app's lifespan.

Runs are synchronous psycopg code: they go to worker threads, so the event loop keeps serving
`/collect` while the ETL works. Parameters that do not parse get 400; parsed values out of range
get 422; a run already in progress, 409 (the codes of sluice/errors.py).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import partial, wraps
from typing import Any

import anyio.to_thread
import psycopg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sluice.db import connect
from sluice.etl import pipeline, status
from sluice.etl.scheduler import Scheduler
from sluice.http import Handler, JSONResponse, error_response, operators_only
from sluice.settings import Settings

_EVENT_TYPE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_LIMIT = 1000


class BadParameter(Exception):
    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(message)
        self.code, self.field, self.message = code, field, message


def _control(handler: Callable[[Request, Settings], Awaitable[Response]], settings: Settings) -> Handler:
    """A control endpoint: behind the operators' token, its failures turned into JSON errors."""

    async def answer(request: Request) -> Response:
        try:
            return await handler(request, settings)
        except BadParameter as exc:
            return error_response(exc.code, exc.message, field=exc.field)
        except pipeline.AlreadyRunning as exc:
            return error_response("already_running", str(exc))
        except pipeline.RunFailed as exc:
            return error_response("run_failed", str(exc), run_id=exc.run_id)
        except psycopg.OperationalError as exc:  # PostgreSQL away (a pool's timeout included)
            message = f"PostgreSQL is unreachable: {exc}"
            return error_response("database_unavailable", message, headers={"Retry-After": "1"})

    return operators_only(settings, wraps(handler)(answer))


def _int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter("bad_parameter", name, f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise BadParameter("invalid_value", name, f"{name}={value} is out of range: {low}..{high}")
    return value


def _in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
    return anyio.to_thread.run_sync(partial(fn, *args, **kwargs))


def _read(settings: Settings, query: Callable[..., Any], *args: Any) -> Any:
    with connect(settings, autocommit=True, application_name="sluice-etl-api") as conn:
        return query(conn, *args)


async def _start_in_background(request: Request, settings: Settings, kind: pipeline.Kind) -> Response:
    """Starts a run in a worker thread; answers as soon as it holds the lock and has a run id."""
    loop = asyncio.get_running_loop()
    started: asyncio.Future[int] = loop.create_future()

    def on_started(run_id: int) -> None:
        def resolve() -> None:
            if not started.done():
                started.set_result(run_id)

        loop.call_soon_threadsafe(resolve)

    def forget(task: asyncio.Future[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failure is already recorded in etl_runs

    task = asyncio.ensure_future(_in_thread(pipeline.run, settings, kind, on_started=on_started))
    tasks: set[asyncio.Future[Any]] = request.state.etl_tasks
    tasks.add(task)
    task.add_done_callback(forget)
    await asyncio.wait({started, task}, return_when=asyncio.FIRST_COMPLETED)
    if not started.done():
        task.result()  # raises AlreadyRunning (or the error that stopped it before it began)
    return JSONResponse({"run_id": started.result(), "kind": kind, "status": "running"}, 202)


async def run(request: Request, settings: Settings) -> Response:
    return await _start_in_background(request, settings, "incremental")


async def rebuild(request: Request, settings: Settings) -> Response:
    return await _start_in_background(request, settings, "rebuild")


async def run_sync(request: Request, settings: Settings) -> Response:
    batch_size = _int_param(request, "batch_size", None, 1, 100_000_000)
    result = await _in_thread(pipeline.run, settings, batch_size=batch_size)
    return JSONResponse(result.as_dict())


async def process(request: Request, settings: Settings) -> Response:
    event_type = request.path_params["event_type"]
    if not _EVENT_TYPE.match(event_type):
        message = f"event_type={event_type!r} must be 1-64 letters, digits, '_.:-'"
        raise BadParameter("invalid_value", "event_type", message)
    result = await _in_thread(pipeline.run, settings)
    return JSONResponse(
        {
            "event_type": event_type,
            "events_processed": result.events_by_type.get(event_type, 0),
            # one watermark for the whole log: a run cannot leave other types behind
            "note": "runs process every event type together; this reports the one asked for",
            "run": result.as_dict(),
        }
    )


async def calculate_daily_metrics(request: Request, settings: Settings) -> Response:
    raw = request.query_params.get("target_date")
    if not raw:
        raise BadParameter("missing_field", "target_date", "target_date=YYYY-MM-DD is required")
    try:
        target = date.fromisoformat(raw)
    except ValueError:
        raise BadParameter("bad_parameter", "target_date", f"target_date={raw!r} is not a date (YYYY-MM-DD)") from None
    if target > datetime.now(UTC).date() + timedelta(days=1):
        raise BadParameter("invalid_value", "target_date", f"target_date={raw} is in the future")
    result = await _in_thread(pipeline.run, settings, "daily", target_date=target)
    return JSONResponse(result.as_dict())


async def cleanup(request: Request, settings: Settings) -> Response:
    days = _int_param(request, "retention_days", settings.retention_days, 1, 100_000)
    assert days is not None
    if days <= settings.lateness_days:
        raise BadParameter(
            "invalid_value",
            "retention_days",
            f"retention_days={days} must exceed SLUICE_LATENESS_DAYS={settings.lateness_days}: "
            "events that can still change sessions would be dropped",
        )
    result = await _in_thread(pipeline.run, replace(settings, retention_days=days), "cleanup")
    return JSONResponse({"retention_days": days, **result.as_dict()})


async def get_status(request: Request, settings: Settings) -> Response:
    data = await _in_thread(_read, settings, status.status, settings.data_dir, settings)
    scheduler: Scheduler | None = getattr(request.state, "etl_scheduler", None)
    data["scheduler"] = scheduler.status() if scheduler else {"enabled": False, "leader": False, "jobs": []}
    return JSONResponse(data)


async def get_runs(request: Request, settings: Settings) -> Response:
    limit = _int_param(request, "limit", 20, 1, MAX_LIMIT)
    return JSONResponse(await _in_thread(_read, settings, status.runs, limit))


async def recent_sessions(request: Request, settings: Settings) -> Response:
    limit = _int_param(request, "limit", 20, 1, MAX_LIMIT)
    return JSONResponse(await _in_thread(_read, settings, status.recent_sessions, limit))


def routes(settings: Settings) -> list[BaseRoute]:
    def route(path: str, handler: Callable[[Request, Settings], Awaitable[Response]], method: str) -> Route:
        return Route(path, _control(handler, settings), methods=[method])

    return [
        route("/etl/run", run, "POST"),
        route("/etl/run-sync", run_sync, "POST"),
        route("/etl/process/{event_type}", process, "POST"),
        route("/etl/calculate-daily-metrics", calculate_daily_metrics, "POST"),
        route("/etl/rebuild", rebuild, "POST"),
        route("/etl/cleanup", cleanup, "POST"),
        route("/etl/status", get_status, "GET"),
        route("/etl/runs", get_runs, "GET"),
        route("/etl/recent-sessions", recent_sessions, "GET"),
        # the name an earlier system (shared/seeds, 002) gave "run the ETL now and answer when done"
        route("/analytics/aggregate", run_sync, "POST"),
    ]


@asynccontextmanager
async def lifespan(settings: Settings, state: dict[str, Any]) -> AsyncIterator[None]:
    """Starts the scheduler (when SLUICE_ETL_SCHEDULE is not off); on shutdown waits for runs."""
    scheduler = Scheduler(settings)
    tasks: set[asyncio.Future[Any]] = set()
    state["etl_scheduler"], state["etl_tasks"] = scheduler, tasks
    scheduler.start()
    try:
        yield
    finally:
        await scheduler.stop()
        if tasks:
            await asyncio.wait(tasks)
