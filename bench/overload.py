"""Overload: twice the rate the machine can take, for a minute. Memory must stay flat, and every
event answered 2xx must be stored.

    .venv/bin/python bench/overload.py [--workers 2] [--duration 60] [--events 50] [--factor 2] [--clients 4]

Against a scratch database of its own, with the collector served as `sluice serve` serves it
(uvicorn, `--workers`). First the capacity: the same clients, closed loop (each of 16 kept-alive
connections sends its next request when the last is answered) for 10 s. Then open loop at
`--factor` times that request rate for `--duration` s, from `--clients` processes, each taking its
share: a request leaves on schedule whether or not the earlier ones have been answered, on an
idle kept-alive connection of its process or on a new one when none is idle (at most MAX_OPEN open
per process; a request that would exceed it counts as not sent). The client is cheap on purpose:
each body is one `bytes.replace` of a prebuilt template (the request's number in the event ids),
so that the load generator, on the same two cores, does not keep the offered rate below its
target. What it really offered (sent per second, and how late the schedule ran) is printed.
Meanwhile each worker's RSS is sampled every second. Afterwards it waits for the spool to empty
and checks, in SQL, that every event of every 2xx request is in `events`: event ids carry the
request's number, so the check needs no list of ids.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
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
from typing import Any

import orjson
import psycopg

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import ingest  # noqa: E402
from ingest import EVENT, HTTP_PORT, scratch_database, truncate  # noqa: E402

ingest.DBNAME = "sluice_bench_overload"  # a scratch database of its own: ingest.py's is dropped by each of its runs

MAX_OPEN = 4000  # connections per client process
# The ids' first 64 bits: this run. The client processes (spawned: they import this module afresh)
# take the parent's from the environment.
RUN = int(os.environ.setdefault("SLUICE_OVERLOAD_RUN", str(uuid.uuid4().int >> 64)))
_SLOT = b"@@@@-@@@@@@@@"  # where a request's number goes in each event id of the template


def event_id(request: int, index: int) -> str:
    return str(uuid.UUID(int=RUN << 64 | request << 16 | index))


def template(events: int) -> bytes:
    """The request body with _SLOT for the request's number (48 bits: 4 + 8 hex digits of the id)."""
    ids = [event_id(0, i) for i in range(events)]
    doc = orjson.dumps({"events": [{**EVENT, "eventId": i} for i in ids]})
    for i in ids:  # "...-0000-00000000iiii": the number's 12 digits, then the index's 4
        doc = doc.replace(i.encode(), i[:19].encode() + _SLOT + i[32:].encode())
    return doc


def request_bytes(body_template: bytes, request: int) -> bytes:
    number = f"{request >> 32:04x}-{request & 0xFFFFFFFF:08x}".encode()
    data = body_template.replace(_SLOT, number)
    head = (
        f"POST /collect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    return head + data


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def exchange(conn: Connection, payload: bytes) -> tuple[int, bool]:
    """One request on a kept-alive connection: its status, and whether the connection stays usable."""
    reader, writer = conn
    writer.write(payload)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 120)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    await reader.readexactly(length)
    return status, not close


class Pool:
    """A client process's connections: an idle one is reused, else a new one is opened."""

    def __init__(self) -> None:
        self.idle: list[Connection] = []
        self.open = 0

    async def send(self, payload: bytes) -> int:
        """The status of one request (0: no answer: refused, reset, or timed out)."""
        conn = self.idle.pop() if self.idle else None
        try:
            if conn is None:
                self.open += 1
                conn = await asyncio.open_connection("127.0.0.1", HTTP_PORT)
            status, reusable = await exchange(conn, payload)
        except (OSError, ValueError, IndexError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            if conn is not None:
                conn[1].close()
            self.open -= 1
            return 0
        if reusable:
            self.idle.append(conn)
        else:
            conn[1].close()
            self.open -= 1
        return status


async def closed_loop(seconds: float, events: int, connections: int = 16) -> float:
    """Requests/s the server answers 2xx when each connection waits for its answer."""
    body_template = template(events)
    done = 0
    deadline = time.monotonic() + seconds
    numbers = iter(range(10**9, 2 * 10**9))
    pool = Pool()

    async def client() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            if 200 <= await pool.send(request_bytes(body_template, next(numbers))) < 300:
                done += 1

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(connections)))
    return done / (time.monotonic() - started)


async def _open_loop_share(rate: float, seconds: float, events: int, first: int, step: int) -> dict[str, Any]:
    """This client process's share: requests first, first + step, ... at `rate` per second."""
    body_template = template(events)
    pool = Pool()
    statuses: Counter[int] = Counter()
    acknowledged: list[int] = []
    not_sent = 0
    late = 0.0  # how far behind its schedule the loop fell, at most
    in_flight: set[asyncio.Task[None]] = set()

    async def one(request: int) -> None:
        status = await pool.send(request_bytes(body_template, request))
        statuses[status] += 1
        if 200 <= status < 300:
            acknowledged.append(request)

    started = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate)
        if due > sent + 1:
            late = max(late, (due - sent - 1) / rate)
        while sent < due:
            request = first + sent * step
            if pool.open >= MAX_OPEN and not pool.idle:
                not_sent += 1
            else:
                task = asyncio.create_task(one(request))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            sent += 1
        await asyncio.sleep(0.001)
    offered_s = time.monotonic() - started
    if in_flight:
        await asyncio.wait(in_flight)
    return {
        "statuses": dict(statuses),
        "acknowledged": acknowledged,
        "not_sent": not_sent,
        "scheduled": sent,
        "offered_s": offered_s,
        "late_s": late,
        "max_open": pool.open,
    }


def _client_process(rate: float, seconds: float, events: int, first: int, step: int, out: Any, go: Any) -> None:
    go.wait()  # every client starts at once
    out.put(asyncio.run(_open_loop_share(rate, seconds, events, first, step)))


def open_loop(
    rate: float, seconds: float, events: int, pids: list[int], clients: int
) -> tuple[Counter[int], list[int], dict[int, float], dict[str, float]]:
    context = multiprocessing.get_context("spawn")
    out, go = context.Queue(), context.Event()
    processes = [
        context.Process(target=_client_process, args=(rate / clients, seconds, events, k, clients, out, go))
        for k in range(clients)
    ]
    for process in processes:
        process.start()
    time.sleep(2)  # spawned and imported
    peak = dict.fromkeys(pids, 0.0)
    go.set()
    started = time.monotonic()
    while time.monotonic() - started < seconds + 1:
        for pid in pids:
            peak[pid] = max(peak[pid], rss_mb(pid))
        time.sleep(1)
    shares = [out.get(timeout=300) for _ in processes]  # before join: a full queue would block the child
    for process in processes:
        process.join(60)
    statuses: Counter[int] = Counter()
    acknowledged: list[int] = []
    for share in shares:
        statuses.update({int(k): v for k, v in share["statuses"].items()})
        acknowledged += share["acknowledged"]
    sent = sum(sum(share["statuses"].values()) for share in shares)
    summary = {
        "sent": sent,
        "not_sent": sum(share["not_sent"] for share in shares),
        "sent_per_s": sent / max(share["offered_s"] for share in shares),
        "late_s": max(share["late_s"] for share in shares),
        "max_open": sum(share["max_open"] for share in shares),
    }
    return statuses, acknowledged, peak, summary


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
    parser.add_argument("--clients", type=int, default=4, help="client processes of the open loop (default 4)")
    parser.add_argument(
        "--max-connections", type=int, default=None, help="SLUICE_MAX_CONNECTIONS per worker (default: Sluice's)"
    )
    args = parser.parse_args()

    url = scratch_database()
    truncate(url)
    with tempfile.TemporaryDirectory(prefix="sluice-overload-") as data_dir:
        metrics = Path(data_dir) / "metrics"  # as `sluice serve` keeps the workers' metrics
        metrics.mkdir()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "SLUICE_ETL_SCHEDULE": "off",
            "SLUICE_DATA_DIR": data_dir,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        }
        if args.max_connections is not None:
            env["SLUICE_MAX_CONNECTIONS"] = str(args.max_connections)
        # as `sluice serve` runs it: the read deadlines' protocol, which also bounds the connections
        command = [sys.executable, "-m", "uvicorn", "sluice.app:create_app", "--factory", "--port", str(HTTP_PORT)]
        command += ["--workers", str(args.workers), "--no-access-log", "--log-level", "warning"]
        command += ["--http", "sluice.read_limits:ReadDeadlines"]
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
            statuses, acknowledged, peak, offered = open_loop(rate, args.duration, args.events, pids, args.clients)
            for _ in range(600):  # the spool drains into the database once the flood is over
                spooled = sum(f.stat().st_size for f in (Path(data_dir) / "spool").glob("*.spool"))
                if spooled == 0:
                    break
                time.sleep(0.5)
            lost = missing(url, acknowledged, args.events)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(60)
    sent, ok = offered["sent"], statuses_2xx(statuses)
    print(
        f"open loop, {args.clients} client processes, target {rate:.0f} requests/s for {args.duration} s:"
        f" sent {sent:.0f} ({offered['sent_per_s']:.0f}/s = {offered['sent_per_s'] / capacity:.2f}x capacity),"
        f" {offered['not_sent']:.0f} not sent (client cap), schedule at most {offered['late_s']:.2f} s late,"
        f" {offered['max_open']:.0f} connections opened"
    )
    print(f"answers {dict(sorted(statuses.items()))}; 2xx {ok} ({ok / max(1, sent):.0%})")
    print(
        f"answered 2xx: {ok / args.duration:.0f} requests/s,"
        f" {ok / args.duration / capacity:.2f}x the closed-loop capacity;"
        f" offered / answered 2xx = {offered['sent_per_s'] / max(1e-9, ok / args.duration):.2f}"
    )
    print(f"peak RSS per worker: {[round(peak[p]) for p in pids]} MB; events of 2xx requests missing: {lost}")


def statuses_2xx(statuses: Counter[int]) -> int:
    return sum(n for status, n in statuses.items() if 200 <= status < 300)


if __name__ == "__main__":
    main()
