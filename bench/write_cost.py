"""Database time per event of the collector's writes against a plain COPY: where the batch ceiling is.

    .venv/bin/python bench/write_cost.py

Times, in one session on a scratch database, transactions of 3,000 events (median of 7): the
collector's fast write (binary COPY into `events`, then the ids claimed in `event_ids`), its careful
write (binary COPY into the staging table, then the move through `event_ids` into `events`), and a
plain COPY into `events` in the binary format and in the text format of reference (c) of
bench/ingest.py. Prints microseconds per event.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import COLUMNS, EVENT, USER_AGENT, scratch_database, text_copy

from sluice.collector.validate import new_event_id
from sluice.collector.writer import (
    _CAREFUL,
    _CLAIM_WINDOW,
    _COLUMNS,
    _CREATE_STAGING,
    _PREPARE_CLAIM,
    Sender,
    copy_rows,
    framed,
)

EVENTS = 3000
CLAIM = f"execute sluice_claim_ids('{(datetime.now(UTC) - _CLAIM_WINDOW).isoformat()}')".encode()  # as armed
MOVE = _CAREFUL.decode().split("(format binary);", 1)[1].rsplit("commit", 1)[0].encode()
BINARY = f"({_COLUMNS}) from stdin (format binary)"
WRITES = {  # name: (COPY command, what follows it in the same transaction)
    "fast write (COPY + claim ids)": (f"copy events {BINARY}", CLAIM),
    "careful write (staging + move)": (f"copy collector_staging {BINARY}", MOVE),
    "plain binary COPY into events": (f"copy events {BINARY}", None),
    "plain text COPY, as (c)": (f"copy events ({COLUMNS}) from stdin", None),
}


def main() -> None:
    url = scratch_database()
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
            print(f"{name:<32} {statistics.median(per_event):5.1f} us/event (median of 7)")


if __name__ == "__main__":
    main()
