"""ETL benchmark: a realistic 1,000,000-event stream, a full rebuild, then 10,000-event incremental
runs (the first right after the rebuild), and a hand-written set-based reference over the same data.
Prints events/s and the ratio.

    .venv/bin/python bench/etl.py [--events 1000000] [--visitors 50000] [--days 3] [--keep]
                                  [--incremental-runs 3] [--empty-runs 1]

Uses a scratch database `sluice_bench_etl` (or $SLUICE_BENCH_DB: helpers sharing the server keep apart) on
PGHOST:PGPORT (default 127.0.0.1:5432), dropped first.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.conninfo import make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sluice.collector.validate import uuid7
from sluice.db import connect
from sluice.etl import pipeline
from sluice.migrations import apply
from sluice.settings import Settings

DBNAME = os.environ.get("SLUICE_BENCH_DB", "sluice_bench_etl")
SITES = [f"site{i:02d}" for i in range(20)]
PATHS = [
    "/",
    "/pricing",
    "/docs",
    "/docs/install",
    "/docs/api",
    "/blog",
    "/blog/launch",
    "/about",
    "/contact",
    "/signup",
    "/login",
    "/features",
    "/careers",
    "/blog/postgres-tips",
    "/changelog",
]
REFERRERS = [None] * 6 + [
    "https://www.google.com/",
    "https://www.bing.com/search?q=x",
    "https://duckduckgo.com/",
    "https://t.co/abc",
    "https://www.reddit.com/r/x",
    "https://news.ycombinator.com/item?id=1",
    "https://mail.google.com/",
    "https://blog.example.org/post",
    "https://partner.io/links",
]
BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.{v} Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel {v}) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Mobile/15E148 Safari/604.1",
]
BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "python-requests/2.31.0",
]
COUNTRIES = ["US", "FR", "DE", "GB", "IN", "BR", "JP", None]
COLUMNS = (
    "event_id",
    "site_id",
    "event_type",
    "occurred_at",
    "client_timestamp",
    "received_at",
    "visitor_id",
    "session_id",
    "ip_hash",
    "country",
    "user_agent",
    "payload",
)


class Visitor:
    def __init__(self, rng: random.Random, n: int) -> None:
        self.site = rng.choice(SITES)
        mode = rng.random()  # 40% client sessionId, 30% visitorId only, 30% cookieless
        self.visitor_id = f"v{n}" if mode < 0.7 else None
        self.with_session_id = mode < 0.4
        self.ip_hash = uuid.UUID(int=rng.getrandbits(128)).hex
        if rng.random() < 0.02:
            self.user_agent = rng.choice(BOTS)
        else:
            self.user_agent = rng.choice(BROWSERS).format(v=rng.randint(1, 120))
        self.country = rng.choice(COUNTRIES)


CUSTOM_EVENTS = ["Signup", "Add to cart", "Checkout", "Play", "Search", "Share", "Download", "Plan Chosen"]


def custom_event(event_id: str) -> dict[str, Any]:
    """A custom event's name and props (sluice.track(name, props)): a few names, scalar props of a
    few values, an object and an array (left out of daily_custom_event_props), and an id of a new
    value each time, past the 100 values a key keeps per day. From a generator of its own, seeded by
    the event id, so the rest of the stream is the same as without them."""
    r = random.Random(event_id)
    return {
        "eventName": r.choice(CUSTOM_EVENTS),
        "props": {
            "plan": r.choice(["free", "pro", "team"]),
            "step": r.randint(1, 5),
            "ok": r.random() < 0.9,
            "order_id": f"o{r.getrandbits(40):x}",
            "cart": {"items": r.randint(1, 4)},
            "tags": ["a", "b"],
        },
    }


def event_id(rng: random.Random, at: datetime) -> str:
    """A UUID version 7 of the event's time, as the tracker makes them (tracker/sluice.js)."""
    return str(uuid7(int(at.timestamp() * 1000), rng.getrandbits(80)))


def stream(
    rng: random.Random,
    n_events: int,
    start: datetime,
    days: float,
    n_visitors: int,
    late_share: float = 0.05,
    visitor_offset: int = 0,
) -> list[tuple[Any, ...]]:
    """Events as COPY rows, in arrival order; `late_share` of them arrive minutes to two days late."""
    visitors = [Visitor(rng, visitor_offset + i) for i in range(n_visitors)]
    span = days * 86400
    rows: list[tuple[datetime, tuple[Any, ...]]] = []
    while len(rows) < n_events:
        v = rng.choice(visitors)
        t = start + timedelta(seconds=rng.random() * span)
        session_id = uuid.UUID(int=rng.getrandbits(128)).hex[:16] if v.with_session_id else None
        referrer = rng.choice(REFERRERS)
        utm = rng.random() < 0.1
        for i in range(rng.randint(1, 12)):
            path = rng.choice(PATHS)
            url = f"https://{v.site}.example.com{path}" + (
                "?utm_source=newsletter&utm_medium=email" if utm and i == 0 else ""
            )
            kind = "click" if rng.random() < 0.15 else ("custom" if rng.random() < 0.05 else "pageview")
            body: dict[str, Any] = {
                "eventType": kind,
                "siteId": v.site,
                "eventId": event_id(rng, t),
                "timestamp": t.isoformat(),
                "url": url,
                "path": path,
                "title": "Page",
                "referrer": referrer if i == 0 else f"https://{v.site}.example.com/",
                "screen": "1920x1080",
                "language": "en-US",
            }
            if v.visitor_id:
                body["visitorId"] = v.visitor_id
            if session_id:
                body["sessionId"] = session_id
            if kind == "click":
                body.update(target=f"https://out{rng.randint(0, 50)}.example.net/p", text="link")
                if rng.random() < 0.2:
                    body["shortCode"] = f"s{rng.randint(0, 100)}"
            elif kind == "custom":
                body.update(custom_event(body["eventId"]))
            received = t + (
                timedelta(seconds=rng.uniform(60, 2 * 86400))
                if rng.random() < late_share
                else timedelta(seconds=rng.uniform(0.05, 2))
            )
            rows.append(
                (
                    received,
                    (
                        body["eventId"],
                        v.site,
                        kind,
                        t,
                        t,
                        received,
                        v.visitor_id,
                        session_id,
                        v.ip_hash,
                        v.country,
                        v.user_agent,
                        orjson.dumps(body).decode(),
                    ),
                )
            )
            t += timedelta(seconds=rng.expovariate(1 / 120))
            if len(rows) >= n_events:
                break
    rows.sort(key=lambda r: r[0])
    return [r for _, r in rows]


def load(conn: psycopg.Connection, rows: list[tuple[Any, ...]], per_transaction: int = 2000) -> None:
    """COPY in transactions of `per_transaction` events, like the collector's group commit."""
    for i in range(0, len(rows), per_transaction):
        with conn.transaction(), conn.cursor().copy(f"copy events ({', '.join(COLUMNS)}) from stdin") as copy:
            for row in rows[i : i + per_transaction]:
                copy.write_row(row)


def settle(conn: psycopg.Connection) -> None:
    while not conn.execute("select max(txid) < pg_snapshot_xmin(pg_current_snapshot()) from events").fetchone()[0]:  # type: ignore[index]
        time.sleep(0.05)


REFERENCE = [
    # one window-function sessionization over narrow typed columns (no payload)
    """create temp table ref_sessions as
       with narrow as (
           select site_id, coalesce(visitor_id, md5(coalesce(ip_hash, '') || coalesce(user_agent, ''))) as visitor_key,
                  occurred_at, event_type = 'pageview' as is_pageview
           from events
       ),
       gaps as (
           select *, case when occurred_at - lag(occurred_at) over w > interval '30 minutes' then 1 else 0 end as is_new
           from narrow window w as (partition by site_id, visitor_key order by occurred_at)
       ),
       numbered as (
           select *, sum(is_new) over (partition by site_id, visitor_key order by occurred_at
                                       rows unbounded preceding) as n
           from gaps
       )
       select site_id, visitor_key, n, min(occurred_at) as started_at, max(occurred_at) as ended_at,
              count(*) as events, count(*) filter (where is_pageview) as pageviews
       from numbered group by site_id, visitor_key, n""",
    # one daily aggregate
    """create temp table ref_daily as
       select site_id, (started_at at time zone 'UTC')::date as day, count(*) as sessions, sum(pageviews) as pageviews,
              sum(events) as events, count(distinct visitor_key) as visitors,
              avg(extract(epoch from ended_at - started_at)) as avg_duration_s,
              avg((events = 1)::int) as bounce_rate
       from ref_sessions group by 1, 2""",
]


def timed(label: str, fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - t0
    print(f"  {label}: {elapsed:.2f} s", flush=True)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--visitors", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=3, help="days of history the events spread over")
    parser.add_argument("--incremental", type=int, default=10_000)
    parser.add_argument(
        "--incremental-runs", type=int, default=3, help="incremental runs after the rebuild, each on the next hour"
    )
    parser.add_argument(
        "--empty-runs", type=int, default=1, help="runs with no new event after those: the fixed cost of a run"
    )
    parser.add_argument("--keep", action="store_true", help="reuse the loaded database if present")
    args = parser.parse_args()

    host, port, user = (
        os.environ.get("PGHOST", "127.0.0.1"),
        os.environ.get("PGPORT", "5432"),
        os.environ.get("PGUSER", "postgres"),
    )
    admin = make_conninfo(host=host, port=port, user=user, dbname="postgres")
    url = make_conninfo(host=host, port=port, user=user, dbname=DBNAME)
    settings = replace(Settings.from_env(), database_url=url, etl_schedule="off")
    rng = random.Random(42)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(days=args.days)

    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (DBNAME,)).fetchone()
        if exists and not args.keep:
            conn.execute(f"drop database {DBNAME} with (force)")
        if not exists or not args.keep:
            conn.execute(f"create database {DBNAME}")
    with psycopg.connect(url, autocommit=True) as conn:
        apply(conn, settings.schema)
    with connect(settings, autocommit=True) as conn:
        conn.execute("select ensure_event_partitions(%s, 12)", ((start - timedelta(days=1)).date(),))
        loaded = conn.execute("select count(*) from events").fetchone()[0]  # type: ignore[index]
        if not loaded:
            t0 = time.perf_counter()
            rows = stream(rng, args.events, start, args.days, args.visitors)
            print(f"generated {len(rows):,} events in {time.perf_counter() - t0:.1f} s", flush=True)
            t0 = time.perf_counter()
            load(conn, rows)
            conn.execute("vacuum analyze events")
            print(f"loaded in {time.perf_counter() - t0:.1f} s", flush=True)
        n = conn.execute("select count(*) from events").fetchone()[0]  # type: ignore[index]
        settle(conn)

        print(f"\nreference (set-based, hand-written) over {n:,} events:")
        ref = 0.0
        with conn.transaction():
            # the same session settings as an ETL run (etl/pipeline.py: _tune)
            conn.execute(
                "select set_config('work_mem', %s, true), set_config('jit', 'off', true)", (settings.etl_work_mem,)
            )
            for i, query in enumerate(REFERENCE):
                ref += timed(["sessionization", "daily aggregate"][i], lambda q=query: conn.execute(q))
            conn.execute("drop table ref_sessions, ref_daily")
        print(f"  total: {ref:.2f} s = {n / ref:,.0f} events/s")

    print(f"\nfull rebuild of every table over {n:,} events:")
    result: list[pipeline.RunResult] = []
    rebuild = timed("rebuild", lambda: result.append(pipeline.run(settings, "rebuild")))
    print(f"  rows written: {result[-1].rows_written}")
    print(f"  seconds per step: {result[-1].step_seconds}")
    print(f"  {n / rebuild:,.0f} events/s; ratio to reference: {ref / rebuild:.2f}x (target >= 0.5x)")

    seconds: list[float] = []
    for i in range(args.incremental_runs):
        # each run: the next hour's events, as a run every hour would find them
        with connect(settings, autocommit=True) as conn:
            hour = now + timedelta(hours=i)
            extra = stream(random.Random(time.time_ns()), args.incremental, hour, 1 / 24, 2000, visitor_offset=0)
            load(conn, extra)
            settle(conn)
        after = "right after the rebuild" if i == 0 else "after the previous one"
        print(f"\nincremental run {i + 1} of {len(extra):,} new events on top, {after}:")
        seconds.append(timed("incremental", lambda: result.append(pipeline.run(settings))))
        print(f"  rows written: {result[-1].rows_written}")
        print(f"  seconds per step: {result[-1].step_seconds}")
        print(f"  {len(extra) / seconds[-1]:,.0f} events/s (target: under 1 s)")
    if len(seconds) > 1:
        print(f"\nincremental runs: {', '.join(f'{s:.2f}' for s in seconds)} s (target: each under 1 s)")
    for _ in range(args.empty_runs):
        print("\nrun with no new event (the floor):")
        timed("empty", lambda: result.append(pipeline.run(settings)))
        print(f"  seconds per step: {result[-1].step_seconds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
