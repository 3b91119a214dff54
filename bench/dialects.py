"""What a Segment batch costs next to a `/collect` batch: CPU per request inside the server process.

    .venv/bin/python bench/dialects.py [--rounds 5]

Drives the app's ASGI interface directly (as bench/cpu_per_request.py does), 16 requests at a time,
each a batch of 100 events with fresh ids, against the scratch database of bench/ingest.py: the
writer commits every event. `/collect` gets the tracker's shape (bench/ingest.py EVENT),
`/collect server` the same from a server source (an ingest token, each event naming its end user's
IP and User-Agent in `context`, as a Segment message does), `/v1/batch` the same events as Segment
track messages (context.page, context.campaign, properties, the end user's context.ip and
userAgent, a UUID messageId, Basic auth). They alternate, round after round, so a machine whose
speed drifts affects all alike; a ratio is the median of the rounds' ratios, with their range.
The issue's target: /v1/batch at most 1.3 times /collect.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import EVENT, USER_AGENT, scratch_database, truncate

from sluice.app import create_app
from sluice.collector import sites

CONCURRENCY = 16
REQUESTS = 320  # per measurement
EVENTS = 100


def collect_body(server: bool = False) -> bytes:
    """The tracker's batch; `server`: as a server source sends it, each event naming its end user."""
    extra = {"context": {"ip": "8.8.8.8", "userAgent": USER_AGENT}} if server else {}
    return orjson.dumps({"events": [{**EVENT, **extra, "eventId": str(uuid.uuid4())} for _ in range(EVENTS)]})


def segment_body() -> bytes:
    message = {
        "type": "track",
        "event": "Plan Chosen",
        "anonymousId": EVENT["visitorId"],
        "timestamp": EVENT["timestamp"],
        "properties": EVENT["props"],
        "context": {
            "ip": "8.8.8.8",
            "userAgent": USER_AGENT,
            "page": {
                "url": EVENT["url"],
                "path": EVENT["path"],
                "referrer": EVENT["referrer"],
                "title": EVENT["title"],
            },
            "campaign": {"source": "newsletter", "medium": "email"},
            "library": {"name": "analytics-python", "version": "2.4.0"},
        },
    }
    batch = [{**message, "messageId": str(uuid.uuid4())} for _ in range(EVENTS)]
    return orjson.dumps({"batch": batch, "sentAt": EVENT["timestamp"]})


async def measure(
    app: Any, path: str, bodies: list[bytes], extra_headers: list[tuple[bytes, bytes]], status: int
) -> float:
    """CPU microseconds per request of this process over `bodies`, `CONCURRENCY` at a time."""
    lifespan_in: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started_up = asyncio.Event()
    state: dict[str, Any] = {}

    async def lifespan_send(message: dict[str, Any]) -> None:
        started_up.set()

    lifespan = asyncio.create_task(app({"type": "lifespan", "state": state}, lifespan_in.get, lifespan_send))
    await lifespan_in.put({"type": "lifespan.startup"})
    await started_up.wait()

    async def request(body: bytes) -> None:
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        headers = [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", USER_AGENT.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *extra_headers,
        ]
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": headers, "client": ("203.0.113.7", 5000),
            "server": ("127.0.0.1", 8000), "state": dict(state),
        }  # fmt: skip
        await app(scope, receive, send)
        assert sent[0]["status"] == status, (sent[0], sent[1:])

    await asyncio.gather(*(request(body) for body in bodies[:CONCURRENCY]))  # warm up
    started = time.process_time()
    for start in range(CONCURRENCY, len(bodies), CONCURRENCY):
        await asyncio.gather(*(request(body) for body in bodies[start : start + CONCURRENCY]))
    per_request = (time.process_time() - started) / (len(bodies) - CONCURRENCY) * 1e6
    await lifespan_in.put({"type": "lifespan.shutdown"})
    await lifespan
    return per_request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    args = parser.parse_args()
    url = scratch_database()
    os.environ["DATABASE_URL"] = url
    os.environ["SLUICE_ETL_SCHEDULE"] = "off"
    os.environ["SLUICE_INGEST_TOKENS"] = "bench-token"
    with psycopg.connect(url, autocommit=True, options="-c search_path=sluice,public") as conn:
        conn.execute("delete from sites where site_id = 'bench'")
        made = sites.add(conn, "bench", None, [])
        assert made is not None
    auth = [(b"authorization", b"Basic " + base64.b64encode(made[1].encode() + b":"))]
    token = [(b"authorization", b"Bearer bench-token")]
    runs: dict[str, list[float]] = {"/collect": [], "/collect server": [], "/v1/batch": []}
    kinds = (
        ("/collect", "/collect", collect_body, [], 202),
        ("/collect server", "/collect", lambda: collect_body(server=True), token, 202),
        ("/v1/batch", "/v1/batch", segment_body, auth, 200),
    )
    for round_number in range(1, args.rounds + 1):
        for name, path, make, headers, status in kinds:
            truncate(url)
            bodies = [make() for _ in range(REQUESTS)]
            runs[name].append(asyncio.run(measure(create_app(), path, bodies, headers, status)))
        print(f"round {round_number}: " + "  ".join(f"{name} {each[-1]:6.0f} us" for name, each in runs.items()))
    print(f"batch of {EVENTS} events, CPU per request, median (range):")
    for name, each in runs.items():
        print(f"  {name:<16} {statistics.median(each):6.0f} us ({min(each):.0f}-{max(each):.0f})")
    for name in ("/collect", "/collect server"):
        ratios = [s / c for s, c in zip(runs["/v1/batch"], runs[name], strict=True)]
        print(
            f"  /v1/batch over {name:<16} ratio median {statistics.median(ratios):.2f} "
            f"({min(ratios):.2f}-{max(ratios):.2f}); target <= 1.30"
        )


if __name__ == "__main__":
    main()
