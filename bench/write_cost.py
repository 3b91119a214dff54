"""Database time per event of the collector's write against a plain COPY: where the batch ceiling is.

    .venv/bin/python bench/write_cost.py

Times, in one session on a scratch database, transactions of 3,000 events: (1) the collector's
write (COPY into the staging table, then the move through `event_ids` into `events`) and (2) a
plain COPY into `events`, as reference (c) of bench/ingest.py does. Prints microseconds per event.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import EVENT, USER_AGENT, scratch_database

from collector.writer import _COLUMNS, _CREATE_STAGING, _WRITE, copy_lines

EVENTS = 3000


def main() -> None:
    url = scratch_database()
    move = _WRITE.decode().split("from stdin;", 1)[1].rsplit("commit", 1)[0]
    payload = orjson.dumps(EVENT)
    with psycopg.connect(url, autocommit=True, options="-c search_path=sluice") as conn:
        conn.execute(_CREATE_STAGING)
        for name in ("collector write (staging + move)", "plain COPY into events"):
            per_event = []
            for _ in range(7):
                now = datetime.now(UTC)
                rows = [
                    (uuid.uuid4(), "bench", "pageview", now, now, now, "v", "s", "0" * 32, "US", USER_AGENT, payload)
                    for _ in range(EVENTS)
                ]
                data = copy_lines(rows)
                target = "collector_staging" if name.startswith("collector") else "events"
                started = time.perf_counter()
                with conn.transaction():
                    with conn.cursor().copy(f"copy {target} ({_COLUMNS}) from stdin") as copy:
                        copy.write(data)
                    if target == "collector_staging":
                        conn.execute(move.encode())
                per_event.append((time.perf_counter() - started) / EVENTS * 1e6)
            print(f"{name:<34} {statistics.median(per_event):5.1f} us/event (median of 7)")


if __name__ == "__main__":
    main()
