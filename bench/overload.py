"""Overload: twice the rate the machine can take, for a minute. Memory must stay flat, and every
event answered 2xx must be stored.

    .venv/bin/python bench/overload.py [--workers 2] [--duration 60] [--events 50]

Against bench/ingest.py's scratch database, with the collector served as `sluice serve` serves it
(uvicorn, `--workers`). First the capacity: the same client, closed-loop (each of 16 connections
sends its next request when the last is answered) for 10 s. Then open-loop at `--factor` times
that request rate for `--duration` s: requests leave on schedule whether or not the earlier ones have been
answered, each on a connection of its own (at most 8,000 open; a request that would exceed it
counts as not sent). Meanwhile each worker's RSS is sampled every second. Afterwards it waits
for the spool to empty and checks, in SQL, that every event of every 2xx request is in `events`:
event ids carry the request's number, so the check needs no list of ids.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import psycopg

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import ingest  # noqa: E402
from ingest import EVENT, HTTP_PORT, scratch_database, truncate  # noqa: E402

ingest.DBNAME = "sluice_bench_overload"  # a scratch database of its own: ingest.py's is dropped by each of its runs

MAX_OPEN = 8000
RUN = uuid.uuid4().int >> 64  # the ids' first 64 bits: this run


def event_id(request: int, index: int) -> str:
    return str(uuid.UUID(int=RUN << 64 | request << 16 | index))


def body(request: int, events: int) -> bytes:
    return orjson.dumps({"events": [{**EVENT, "eventId": event_id(request, i)} for i in range(events)]})


async def send(request: int, events: int) -> int:
    """One POST on a connection of its own; its status (0: no answer)."""
    data = body(request, events)
    head = (
        f"POST /collect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", HTTP_PORT)
        writer.write(head + data)
        status_line = await asyncio.wait_for(reader.readline(), 120)
        await reader.read()
        writer.close()
        return int(status_line.split()[1])
    except (OSError, ValueError, IndexError, TimeoutError):
        return 0


def workers_of(parent: int) -> list[int]:
    """uvicorn's worker processes (or the server itself when it runs one worker in-process)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                children.append(int(entry.name))
    workers = [pid for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    return workers or [parent]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def closed_loop(seconds: float, events: int, connections: int = 16) -> float:
    """Requests/s the server answers when each connection waits for its answer."""
    done = 0
    deadline = time.monotonic() + seconds
    numbers = iter(range(10**9, 2 * 10**9))

    async def client() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            if 200 <= await send(next(numbers), events) < 300:
                done += 1

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(connections)))
    return done / (time.monotonic() - started)


async def open_loop(
    rate: float, seconds: float, events: int, pids: list[int]
) -> tuple[Counter[int], list[int], dict[int, float], int]:
    statuses: Counter[int] = Counter()
    acknowledged: list[int] = []
    peak = dict.fromkeys(pids, 0.0)
    not_sent = 0
    in_flight: set[asyncio.Task[None]] = set()

    async def one(request: int) -> None:
        status = await send(request, events)
        statuses[status] += 1
        if 200 <= status < 300:
            acknowledged.append(request)

    async def sample() -> None:
        while True:
            for pid in pids:
                peak[pid] = max(peak[pid], rss_mb(pid))
            await asyncio.sleep(1)

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    request = 0
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate)
        while request < due:
            if len(in_flight) >= MAX_OPEN:
                not_sent += 1
            else:
                task = asyncio.create_task(one(request))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            request += 1
        await asyncio.sleep(0.002)
    if in_flight:
        await asyncio.wait(in_flight)
    sampler.cancel()
    return statuses, acknowledged, peak, not_sent


def missing(url: str, acknowledged: list[int], events: int) -> int:
    """Events of acknowledged requests that are not in `events`."""
    with psycopg.connect(url) as conn:
        conn.execute("create temporary table acked (request bigint primary key)")
        with conn.cursor().copy("copy acked (request) from stdin") as copy:
            for request in acknowledged:
                copy.write_row((request,))
        row = conn.execute(
            """
            with stored as (
                select ('x' || substr(replace(event_id::text, '-', ''), 17, 12))::bit(48)::bigint as request
                from sluice.events
                where substr(replace(event_id::text, '-', ''), 1, 16) = %s
            )
            select count(*) from stored join acked using (request)
            """,
            (f"{RUN:016x}",),
        ).fetchone()
    return len(acknowledged) * events - int(row[0] if row else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument("--events", type=int, default=50, help="events per request (default 50)")
    parser.add_argument("--factor", type=float, default=2.0, help="open-loop rate / closed-loop capacity (default 2)")
    args = parser.parse_args()

    url = scratch_database()
    truncate(url)
    with tempfile.TemporaryDirectory(prefix="sluice-overload-") as data_dir:
        env = {**os.environ, "DATABASE_URL": url, "SLUICE_ETL_SCHEDULE": "off", "SLUICE_DATA_DIR": data_dir}
        command = [sys.executable, "-m", "uvicorn", "sluice.app:create_app", "--factory", "--port", str(HTTP_PORT)]
        command += ["--workers", str(args.workers), "--no-access-log", "--log-level", "warning"]
        server = subprocess.Popen(command, env=env, cwd=REPO, start_new_session=True)
        try:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", HTTP_PORT), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            time.sleep(2)
            pids = workers_of(server.pid)
            capacity = asyncio.run(closed_loop(10, args.events))
            print(f"{os.cpu_count()} CPUs; capacity, closed loop: {capacity:.0f} requests/s of {args.events} events")
            print(f"workers {pids}: RSS after warm-up {[round(rss_mb(p)) for p in pids]} MB", flush=True)
            rate = args.factor * capacity
            statuses, acknowledged, peak, not_sent = asyncio.run(open_loop(rate, args.duration, args.events, pids))
            for _ in range(600):  # the spool drains into the database once the flood is over
                spooled = sum(f.stat().st_size for f in (Path(data_dir) / "spool").glob("*.spool"))
                if spooled == 0:
                    break
                time.sleep(0.5)
            lost = missing(url, acknowledged, args.events)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(60)
    sent, ok = sum(statuses.values()), statuses_2xx(statuses)
    print(
        f"open loop at {rate:.0f} requests/s for {args.duration} s: {sent} sent, {not_sent} not sent (client cap);"
        f" answers {dict(sorted(statuses.items()))}; 2xx {ok} ({ok / max(1, sent):.0%})"
    )
    print(
        f"answered 2xx: {ok / args.duration:.0f} requests/s,"
        f" {ok / args.duration / capacity:.2f}x the closed-loop capacity"
    )
    print(f"peak RSS per worker: {[round(peak[p]) for p in pids]} MB; events of 2xx requests missing: {lost}")


def statuses_2xx(statuses: Counter[int]) -> int:
    return sum(n for status, n in statuses.items() if 200 <= status < 300)


if __name__ == "__main__":
    main()
