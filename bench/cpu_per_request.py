"""CPU time per request inside the server process, without HTTP or load generator: steady on a busy machine.

    .venv/bin/python bench/cpu_per_request.py

Drives each app's ASGI interface directly, 64 requests at a time, and divides this process's CPU
time by the number of requests. The collector's database work happens in PostgreSQL and is not
counted; its writer's Python work is. Uses the scratch database of bench/ingest.py.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import reference_apps
from ingest import EVENT, USER_AGENT, scratch_database

from sluice.app import create_app

CONCURRENCY = 64
ROUNDS = 150


async def measure(app: Any, body: bytes) -> float:
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", USER_AGENT.encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"origin", b"https://shop.example"),  # the tracker posts cross-origin, so browsers send one
    ]
    lifespan_in: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started_up = asyncio.Event()
    state: dict[str, Any] = {}

    async def lifespan_send(message: dict[str, Any]) -> None:
        started_up.set()

    lifespan = asyncio.create_task(app({"type": "lifespan", "state": state}, lifespan_in.get, lifespan_send))
    await lifespan_in.put({"type": "lifespan.startup"})
    await started_up.wait()

    async def request() -> None:
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": "/collect", "raw_path": b"/collect", "query_string": b"",
            "root_path": "", "headers": headers, "client": ("203.0.113.7", 5000),
            "server": ("127.0.0.1", 8000), "state": dict(state),
        }  # fmt: skip
        await app(scope, receive, send)
        assert sent[0]["status"] == 202, sent

    async def rounds(n: int) -> None:
        for _ in range(n):
            await asyncio.gather(*(request() for _ in range(CONCURRENCY)))

    await rounds(10)  # warm up
    started = time.process_time()
    await rounds(ROUNDS)
    per_request = (time.process_time() - started) / (ROUNDS * CONCURRENCY) * 1e6
    await lifespan_in.put({"type": "lifespan.shutdown"})
    await lifespan
    return per_request


def main() -> None:
    os.environ["DATABASE_URL"] = scratch_database()
    os.environ["SLUICE_ETL_SCHEDULE"] = "off"
    apps: list[tuple[str, Callable[[], Any]]] = [
        ("(a) bare Starlette", reference_apps.no_database),
        ("(a') collector, no DB", reference_apps.collector_without_database),
        ("sluice", create_app),
    ]
    for body_name, body in (("single", orjson.dumps(EVENT)), ("batch-100", orjson.dumps({"events": [EVENT] * 100}))):
        for name, factory in apps:
            per_request = asyncio.run(measure(factory(), body))
            print(f"{body_name:<10} {name:<24} {per_request:8.1f} us CPU per request")


if __name__ == "__main__":
    main()
