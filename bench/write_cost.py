"""The collector's writes at the database: their cost per event, and the fast write's transport.

    .venv/bin/python bench/write_cost.py [--rounds 3] [--duration 5]

1. Database time per event against a plain COPY, where the batch ceiling is: transactions of 3,000
   events (median of 7), in one session on a scratch database: the collector's fast write (binary
   COPY into `events`, then the ids claimed in `event_ids`), its careful write (binary COPY into the
   staging table, then the move through `event_ids` into `events`), and a plain COPY into `events`
   in the binary format and in the text format of reference (c) of bench/ingest.py.
2. The writer under group-commit load, without HTTP: the real GroupCommitWriter (its fast write in
   collector/pgwire.py, one simple-protocol query) and the same writer on psycopg's public COPY API
   (bench/public_copy.py), `--rounds` times in turn, each for `--duration` seconds: 64 concurrent
   writers of one event each (the shape single-event requests give), then 8 writers of 100 events.
   Prints events/s, the latency of one write (p50 / p99) and this process's CPU per event (the
   writers' own row-making included, the same for both), and each round's ratios public / pgwire.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import COLUMNS, EVENT, USER_AGENT, scratch_database, text_copy, truncate
from public_copy import PublicCopyWriter

from sluice.collector.validate import new_event_id
from sluice.collector.writer import (
    _CAREFUL_MOVE,
    _CLAIM_WINDOW,
    _COLUMNS,
    _CREATE_STAGING,
    _PREPARE_CLAIM,
    GroupCommitWriter,
    Row,
    Sender,
    copy_rows,
    framed,
)
from sluice.settings import Settings

EVENTS = 3000
CLAIM = f"execute sluice_claim_ids('{(datetime.now(UTC) - _CLAIM_WINDOW).isoformat()}')".encode()  # as armed
BINARY = f"({_COLUMNS}) from stdin (format binary)"
WRITES = {  # name: (COPY command, what follows it in the same transaction)
    "fast write (COPY + claim ids)": (f"copy events {BINARY}", CLAIM),
    "careful write (staging + move)": (f"copy collector_staging {BINARY}", _CAREFUL_MOVE),
    "plain binary COPY into events": (f"copy events {BINARY}", None),
    "plain text COPY, as (c)": (f"copy events ({COLUMNS}) from stdin", None),
}
LOADS = {"single events, 64 writers": (64, 1), "batches of 100, 8 writers": (8, 100)}


def database_time(url: str) -> None:
    payload = orjson.dumps(EVENT)
    with psycopg.connect(url, autocommit=True, options="-c search_path=sluice") as conn:
        conn.execute(_CREATE_STAGING)
        conn.execute(_PREPARE_CLAIM)
        for name, (command, then) in WRITES.items():
            per_event = []
            for _ in range(7):
                now = datetime.now(UTC)
                ids = [new_event_id() for _ in range(EVENTS)]  # as the collector makes them
                if "text" in name:
                    sender = ("0" * 32, "US", USER_AGENT)
                    data = text_copy([(i, "bench", "pageview", now, now, now, "v", "s", *sender, payload) for i in ids])
                else:
                    rows = [(i, "bench", "pageview", now, now, "v", "s", payload) for i in ids]
                    data = framed(copy_rows(rows, Sender(now, "0" * 32, "US", USER_AGENT)))
                started = time.perf_counter()
                with conn.transaction():
                    with conn.cursor().copy(command) as copy:
                        copy.write(data)
                    if then is not None:
                        conn.execute(then)
                per_event.append((time.perf_counter() - started) / EVENTS * 1e6)
            print(f"{name:<32} {statistics.median(per_event):5.1f} us/event (median of 7)", flush=True)


async def under_load(
    writer_class: type[GroupCommitWriter], settings: Settings, writers: int, events: int, duration_s: float
) -> tuple[float, float, float, float]:
    """events/s, the p50 and p99 of one write in ms, and the process's CPU µs per event, of `writers`
    concurrent writers of `events` each."""
    writer = writer_class(settings)
    await writer.start()
    payload = orjson.dumps(EVENT)
    latencies: list[float] = []
    done = 0
    deadline = time.perf_counter() + duration_s

    async def one_writer() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            now = datetime.now(UTC)
            rows: list[Row] = [
                (new_event_id(), "bench", "pageview", now, now, "v", "s", payload) for _ in range(events)
            ]
            started = time.perf_counter()
            await writer.write(rows, Sender(now, "0" * 32, "US", USER_AGENT))
            latencies.append(time.perf_counter() - started)
            done += events

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one_writer() for _ in range(writers)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    await writer.stop()
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2] * 1e3, latencies[int(len(latencies) * 0.99)] * 1e3
    return done / elapsed, p50, p99, cpu / done * 1e6


def transports(url: str, rounds: int, duration_s: float) -> None:
    settings = replace(Settings(), database_url=url, schema="sluice")
    for load, (writers, events) in LOADS.items():
        ratios: dict[str, list[float]] = {"events/s": [], "p50": [], "CPU per event": []}
        for _ in range(rounds):
            runs = {}
            for name, writer_class in (("pgwire", GroupCommitWriter), ("public API", PublicCopyWriter)):
                truncate(url)
                runs[name] = rate, p50, p99, cpu = asyncio.run(
                    under_load(writer_class, settings, writers, events, duration_s)
                )
                print(
                    f"{load:<28} {name:<11} {rate:>8.0f} events/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
                    f"  CPU {cpu:5.1f} us/event",
                    flush=True,
                )
            (rate, p50, _, cpu), (base_rate, base_p50, _, base_cpu) = runs["public API"], runs["pgwire"]
            ratios["events/s"].append(rate / base_rate)
            ratios["p50"].append(p50 / base_p50)
            ratios["CPU per event"].append(cpu / base_cpu)
        for measure, each in ratios.items():
            rounds_ = ", ".join(f"{r:.2f}" for r in each)
            print(f"{load}: public API / pgwire, {measure} = {statistics.median(each):.2f} (rounds: {rounds_})")
        print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the transport comparison (default 3)")
    parser.add_argument("--duration", type=float, default=5, help="seconds per transport run (default 5)")
    parser.add_argument("--only", choices=["database-time", "transports"], help="run one part only")
    args = parser.parse_args()
    url = scratch_database()
    print(f"{os.cpu_count()} CPUs\n", flush=True)
    if args.only != "transports":
        database_time(url)
        print()
    if args.only != "database-time":
        transports(url, args.rounds, args.duration)


if __name__ == "__main__":
    main()
