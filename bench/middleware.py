"""What SluiceMiddleware adds to a request: the same Starlette app with and without it.

    .venv/bin/python bench/middleware.py [--requests 20000] [--rounds 5]

Drives each app's ASGI interface directly (no HTTP, no server: the middleware's own cost is what is
measured, not the network's), one request at a time, timing each; the two apps take turns in
rounds so that a busy machine slows both alike. The middleware's client sends to a sink in another
process (bench/client.py's), so its thread really works meanwhile. Target: p50 overhead < 30 µs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent))

from client import SINK
from sluice.client import Client, SluiceMiddleware


def make_app() -> Starlette:
    async def user(request: Request) -> Response:
        return JSONResponse({"id": request.path_params["id"]})

    return Starlette(routes=[Route("/users/{id:int}", user)])


SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/users/42",
    "raw_path": b"/users/42",
    "root_path": "",
    "query_string": b"",
    "headers": [
        (b"host", b"api.example"),
        (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
        (b"accept", b"application/json"),
    ],
    "client": ("203.0.113.7", 50000),
    "server": ("127.0.0.1", 8000),
    "state": {},
}


async def drive(app: Any, requests: int) -> list[int]:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    clock = time.perf_counter_ns
    samples = []
    for _ in range(requests):
        scope = dict(SCOPE)
        started = clock()
        await app(scope, receive, send)
        samples.append(clock() - started)
    return samples


async def measure(requests: int, rounds: int, url: str) -> None:
    plain = make_app()
    wrapped = make_app()
    client = Client(url, "bench", max_queue=requests * rounds * 2)
    wrapped.add_middleware(SluiceMiddleware, client=client, user_id=lambda scope: "u-1")
    await drive(plain, 500)  # warm both: the middleware stack is built on the first request
    await drive(wrapped, 500)
    medians: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(rounds):
        for name, app in (("without", plain), ("with", wrapped)):
            medians[name].append(statistics.median(await drive(app, requests)) / 1000)
    without, with_ = statistics.median(medians["without"]), statistics.median(medians["with"])
    print(f"p50 per request, median of {rounds} rounds of {requests}:")
    rounds_of = {name: ", ".join(f"{m:.1f}" for m in values) for name, values in medians.items()}
    print(f"  without the middleware  {without:7.2f} µs   (rounds: {rounds_of['without']})")
    print(f"  with SluiceMiddleware   {with_:7.2f} µs   (rounds: {rounds_of['with']})")
    print(f"  overhead                {with_ - without:7.2f} µs   (target < 30 µs)")
    started = time.monotonic()
    delivered = await asyncio.to_thread(client.close, 120)
    print(f"close: {time.monotonic() - started:.2f} s to send the rest; all delivered: {delivered}; {client.stats}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        port = int(sink.stdout.readline())
        asyncio.run(measure(args.requests, args.rounds, f"http://127.0.0.1:{port}"))
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
