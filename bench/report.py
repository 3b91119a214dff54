"""Reports benchmark: the API's latency on a large data set, through a real `sluice serve`.

    .venv/bin/python bench/report.py [--source synthetic|etl] [--events 10000000] [--days 90]
                                     [--requests 40] [--keep] [--url LABEL=PATH ...] [--only TEXT]

Two ways to make the data set, in a scratch database `sluice_bench_report` on PGHOST:PGPORT
(default 127.0.0.1:5432), dropped first unless --keep:

- `--source etl`: bench/etl.py's realistic event stream (20 sites, one with half the traffic) loaded
  into the raw log and turned into every table by the real ETL (`sluice etl rebuild`). Honest end to
  end, but on two shared cores a rebuild takes ~30 s per million events, and the stream is generated
  in memory: use it up to a few million events.
- `--source synthetic` (default): `sessions` and `clicks` generated in SQL at scale with the same
  shape (20 sites, one with half the sessions; returning visitors; ~3 events per session, 15% of
  them clicks), then the daily tables and their sketches built day by day by the ETL's one-day
  recompute (`sluice etl daily`) from those sessions, and hourly_click_counts and
  daily_click_breakdown by their incremental SQL from those clicks, day by day. `--events` counts the
  sessions' events. The raw log gets only the realtime window's events (the last 10 minutes).
  A kept data set made before a newer aggregate gets that table filled day by day (fill_new_tables).

Then it starts `sluice serve` on 127.0.0.1:8766 with a read token and asks every URL in URLS (plus
each --url) `--requests` times after two warm-up requests, on one kept-alive connection, and prints
p50/p95/max in milliseconds (client side, over loopback) against each URL's target. It also prints
the visitors of some periods as the API answers them (sketches) against exact counts from sessions.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
from psycopg.conninfo import make_conninfo

from sluice.db import connect
from sluice.etl import pipeline
from sluice.etl.render import Context, render, statements
from sluice.migrations import apply
from sluice.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

DBNAME = "sluice_bench_report"
PORT = 8766
TOKEN = "bench-read-token"
BIG = "site00"  # the site with half the traffic: every URL asks about it, the worst case
SMALL = "site07"

UNFILTERED, FILTERED, REALTIME, DASHBOARD = 50.0, 500.0, 50.0, 150.0
S = f"/api/v1/sites/{BIG}"
# (label, path, target p95 in ms). Add one with --url LABEL=PATH (target: the unfiltered one).
URLS: list[tuple[str, str, float]] = [
    ("sites", "/api/v1/sites", UNFILTERED),
    ("summary 7d", f"{S}/summary?period=7d", UNFILTERED),
    ("summary 30d", f"{S}/summary?period=30d", UNFILTERED),
    ("summary all", f"{S}/summary?period=all", UNFILTERED),
    ("summary 24h", f"{S}/summary?period=24h", UNFILTERED),
    ("summary 30d, small site", f"/api/v1/sites/{SMALL}/summary?period=30d", UNFILTERED),
    ("timeseries 30d by day", f"{S}/timeseries?period=30d", UNFILTERED),
    ("timeseries 12mo by week", f"{S}/timeseries?period=12mo&interval=week", UNFILTERED),
    ("timeseries 12mo by month", f"{S}/timeseries?period=12mo", UNFILTERED),
    ("timeseries today by hour", f"{S}/timeseries?period=today", UNFILTERED),
    ("timeseries 7d by hour", f"{S}/timeseries?period=7d&interval=hour", UNFILTERED),
    ("breakdown path 30d", f"{S}/breakdown/path?period=30d", UNFILTERED),
    ("breakdown path 30d by visitors", f"{S}/breakdown/path?period=30d&order=visitors", UNFILTERED),
    ("breakdown entry_path 30d", f"{S}/breakdown/entry_path?period=30d", UNFILTERED),
    ("breakdown referrer_domain 30d", f"{S}/breakdown/referrer_domain?period=30d", UNFILTERED),
    ("breakdown country all", f"{S}/breakdown/country?period=all", UNFILTERED),
    ("breakdown utm_campaign 30d", f"{S}/breakdown/utm_campaign?period=30d", UNFILTERED),
    ("breakdown short_code 30d", f"{S}/breakdown/short_code?period=30d", UNFILTERED),
    ("breakdown target_domain 7d", f"{S}/breakdown/target_domain?period=7d", UNFILTERED),
    ("summary csv 30d", f"{S}/summary?period=30d&format=csv", UNFILTERED),
    ("realtime", f"{S}/realtime", REALTIME),
    # The dashboard's whole HTML page (every query of it: summary, series, 14 lists, realtime, sites).
    ("dashboard 7d (HTML)", f"/dashboard?site={BIG}&period=7d", DASHBOARD),
    ("dashboard 30d (HTML)", f"/dashboard?site={BIG}&period=30d", DASHBOARD),
    ("dashboard 12mo (HTML)", f"/dashboard?site={BIG}&period=12mo", DASHBOARD),
    ("filtered summary 30d country:US", f"{S}/summary?period=30d&filter=country:US", FILTERED),
    ("filtered timeseries 30d channel:search", f"{S}/timeseries?period=30d&filter=channel:search", FILTERED),
    ("filtered breakdown path 30d device:mobile", f"{S}/breakdown/path?period=30d&filter=device_type:mobile", FILTERED),
    ("filtered breakdown os 30d utm_source:(none)", f"{S}/breakdown/os?period=30d&filter=utm_source:(none)", FILTERED),
]

PATHS = ["/", "/pricing", "/docs", "/docs/install", "/docs/api", "/blog", "/about", "/contact", "/signup", "/login"]
PATHS += [f"/blog/post-{i}" for i in range(190)]  # 200 paths, a long tail
REFERRERS = ["google.com", "bing.com", "duckduckgo.com", "t.co", "reddit.com", "news.ycombinator.com"]
REFERRERS += [f"blog{i}.example.org" for i in range(60)]


def _array(values: list[str]) -> str:
    return "array[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


# One statement per table; %(…)s are bound. Columns draw from skewed distributions (random()^k).
SYNTHETIC_SESSIONS = f"""
insert into sessions (
    site_id, session_key, visitor_key, is_client_session, started_at, ended_at, started_on,
    activity_started_at, duration_s, event_count, pageview_count, entry_path, exit_path, referrer,
    referrer_domain, channel, utm_source, utm_medium, utm_campaign, country, device_type, browser, os,
    path_pageviews, is_bounce, is_bot
)
with

draws as (
    select
        g,
        case when random() < 0.5 then '{BIG}' else 'site' || lpad((1 + floor(random() * 19))::int::text, 2, '0') end
            as site_id,
        -- in arrival order, as the ETL writes them: session g of n starts at (g - U) / n of the span
        %(now)s - %(span)s::interval + (g - random()) / %(sessions)s * %(span)s::interval as started_at,
        1 + floor(-ln(1 - random()) * 2)::int as event_count,
        floor(random() * 1800)::int as length_s,
        ({_array(PATHS)})[1 + floor(power(random(), 3) * {len(PATHS)})::int] as entry_path,
        ({_array(PATHS)})[1 + floor(power(random(), 2) * {len(PATHS)})::int] as exit_path,
        case when random() < 0.45 then ({_array(REFERRERS)})[1 + floor(power(random(), 2) * {len(REFERRERS)})::int]
            end as referrer_domain,
        random() < 0.08 as with_utm,
        floor(random() * 12)::int as campaign,
        (array['US', 'US', 'US', 'FR', 'DE', 'GB', 'IN', 'BR', 'JP', 'CA', null])[1 + floor(random() * 11)::int]
            as country,
        (array['desktop', 'desktop', 'mobile', 'mobile', 'tablet'])[1 + floor(random() * 5)::int] as device_type,
        (array['Chrome', 'Chrome', 'Firefox', 'Safari', 'Mobile Safari', 'Edge'])[1 + floor(random() * 6)::int]
            as browser,
        (array['Windows', 'Mac OS X', 'Linux', 'iOS', 'Android'])[1 + floor(random() * 5)::int] as os,
        random() < 0.02 as is_bot,
        random() as who
    from generate_series(%(first)s::int, %(last)s::int) as g
),

shaped as (
    select
        *,
        -- returning visitors: one per three sessions of the site (half of them the big site's), the
        -- first ones of each site most often
        site_id || ':v'
            || floor(power(who, 2) * %(sessions)s / 6 * (case when site_id = '{BIG}' then 1 else 1 / 19.0 end))::int
            as visitor_key,
        greatest(1, event_count - (random() < 0.3)::int) as pageview_count,
        case when with_utm then 'newsletter' end as utm_source,
        case when with_utm then 'email' end as utm_medium,
        case when with_utm then 'campaign-' || campaign end as utm_campaign
    from draws
),

final as (
    select
        site_id,
        md5(g::text) as session_key,
        visitor_key,
        false as is_client_session,
        started_at,
        started_at + make_interval(secs => case when event_count = 1 then 0 else length_s end) as ended_at,
        (started_at at time zone 'UTC')::date as started_on,
        started_at as activity_started_at,
        case when event_count = 1 then 0 else length_s end as duration_s,
        event_count,
        pageview_count,
        entry_path,
        case when pageview_count = 1 then entry_path else exit_path end as exit_path,
        case when referrer_domain is not null then 'https://' || referrer_domain || '/' end as referrer,
        referrer_domain,
        referrer_channel(referrer_domain, utm_source, utm_medium, utm_campaign) as channel,
        utm_source,
        utm_medium,
        utm_campaign,
        country,
        device_type,
        browser,
        os,
        case when pageview_count = 1 or exit_path = entry_path
             then jsonb_build_object(entry_path, pageview_count)
             else jsonb_build_object(entry_path, pageview_count - 1, exit_path, 1) end as path_pageviews,
        event_count = 1 as is_bounce,
        is_bot
    from shaped
)

select * from final
returning site_id, session_key, visitor_key, started_at, ended_at, entry_path, referrer, country, device_type,
    browser, is_bot
"""

SYNTHETIC_CLICKS = """
insert into clicks (
    event_id, site_id, occurred_at, session_key, visitor_key, source_path, target_url, target_domain,
    short_code, link_text, referrer, country, device_type, browser, is_bot
)
with

clicking as (
    select
        s.*,
        floor(power(random(), 2) * 50)::int as target,
        random() < 0.3 as by_code,
        floor(random() * 100)::int as code
    from chunk_sessions as s
    where random() < %(click_share)s
)

select
    gen_random_uuid(), site_id, started_at + (ended_at - started_at) * random(), session_key, visitor_key, entry_path,
    case when not by_code then 'https://out' || target || '.example.net/p' end,
    case when not by_code then 'out' || target || '.example.net' end,
    case when by_code then 's' || code end,
    'link', referrer, country, device_type, browser, is_bot
from clicking
"""


def run_template(conn: psycopg.Connection, job: str, context: Context, **extra: object) -> None:
    for statement in statements(render(job, context)):
        conn.execute(statement, pipeline.parameters(Settings(), **extra))


def _is_empty(conn: psycopg.Connection, table: str) -> bool:
    return not conn.execute(f"select exists (select from {table})").fetchone()[0]  # type: ignore[index]


def fill_new_tables(conn: psycopg.Connection) -> None:
    """A kept data set made before a table: its rows day by day. hourly_metrics (migration 0026),
    daily_breakdown_totals (0027) and session_columns (0050) by the ETL's one-day SQL (affected_days,
    sketch_sessions, the table), as `sluice etl daily` would; daily_click_breakdown (0028) by its incremental SQL, each
    day's clicks as the run's new clicks; monthly_breakdown_sketches (0048) and
    weekly_breakdown_sketches (0049) by their one-day SQL with no day recomputed, which fills every
    closed month (week)."""
    if not pipeline.has_sketches(conn):
        return
    context = Context(single_day=True, sketches=True)
    for table in ("hourly_metrics", "daily_breakdown_totals", "session_columns"):
        if not _is_empty(conn, table):
            continue
        t0 = time.perf_counter()
        days = conn.execute("select distinct day from daily_metrics order by day").fetchall()
        for (day,) in days:
            with conn.transaction():
                for job in ("affected_days", "sketch_sessions", table):
                    run_template(conn, job, context, target_date=day, last_date=day)
        conn.execute(f"analyze {table}")
        print(f"{table} filled day by day in {time.perf_counter() - t0:.1f} s", flush=True)
    if _is_empty(conn, "daily_click_breakdown"):
        t0 = time.perf_counter()
        days = conn.execute("select distinct day from daily_metrics order by day").fetchall()
        for (day,) in days:
            with conn.transaction():
                day_clicks(conn, day)
                run_template(conn, "daily_click_breakdown", Context(sketches=True))
        conn.execute("analyze daily_click_breakdown")
        print(f"daily_click_breakdown filled day by day in {time.perf_counter() - t0:.1f} s", flush=True)
    for table in ("monthly_breakdown_sketches", "weekly_breakdown_sketches"):
        if not _is_empty(conn, table):
            continue
        # as the first `sluice etl daily` after its migration fills it: no day recomputed, every
        # closed month (week) without rows unioned from its days
        t0 = time.perf_counter()
        with conn.transaction():
            conn.execute("create temp table sketch_days (site_id text, day date) on commit drop")
            run_template(conn, table, context)
        conn.execute(f"analyze {table}")
        print(f"{table} filled in {time.perf_counter() - t0:.1f} s", flush=True)


def day_clicks(conn: psycopg.Connection, day: date) -> None:
    """The day's stored clicks as an incremental run's new clicks (temp tables new_clicks and an
    empty replaced_clicks, as clicks_this_run leaves them), in the current transaction."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    bounds = {"start": start, "end": start + timedelta(days=1)}
    conn.execute(
        "create temp table new_clicks on commit drop as"
        " select * from clicks where occurred_at >= %(start)s and occurred_at < %(end)s",
        bounds,
    )
    conn.execute("create temp table replaced_clicks on commit drop as select * from clicks where false")


def synthetic(conn: psycopg.Connection, settings: Settings, events: int, days: int, now: datetime) -> None:
    """Sessions and clicks in short transactions (20,000 sessions each: a long one would hold back
    every other database's ETL on a shared server, README "Design"), then the daily tables day by
    day through the ETL's one-day recompute (`sluice etl daily`), and the hourly click counts day by
    day through the ETL's incremental SQL (every hour new: counted whole)."""
    sessions = round(events / 2.54)  # a session's events: 1 + floor(Exp(mean 2)), 2.54 on average
    share = min(1.0, 0.15 * 2.54)  # clicks are ~15% of the events
    # one statement per chunk: the sessions, and the clicks of those sessions
    statement = f"with chunk_sessions as ({SYNTHETIC_SESSIONS.strip()})\n{SYNTHETIC_CLICKS.strip()}"
    t0 = time.perf_counter()
    for first in range(1, sessions + 1, 20_000):
        params = {"first": first, "last": min(sessions, first + 19_999), "sessions": sessions}
        conn.execute(statement, {**params, "now": now, "span": timedelta(days=days), "click_share": share})
    print(f"sessions and clicks generated in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    conn.execute("analyze sessions")
    conn.execute("analyze clicks")
    first_day, last_day = conn.execute("select min(started_on), max(started_on) from sessions").fetchone()  # type: ignore[misc]
    day = first_day
    while day <= last_day:
        pipeline.run(settings, "daily", target_date=day)
        with conn.transaction():
            day_clicks(conn, day)
            run_template(conn, "hourly_click_counts", Context())
            run_template(conn, "daily_click_breakdown", Context(sketches=pipeline.has_sketches(conn)))
        day += timedelta(days=1)
    print(f"daily tables by the ETL's one-day recompute, day by day, in {time.perf_counter() - t0:.1f} s", flush=True)


def through_etl(conn: psycopg.Connection, settings: Settings, events: int, days: int, now: datetime) -> None:
    spec = importlib.util.spec_from_file_location("bench_etl", ROOT / "bench" / "etl.py")
    assert spec is not None
    assert spec.loader is not None
    bench_etl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_etl)
    # one site with half the visitors (so, the traffic): 19 of 38 draws
    bench_etl.SITES = [BIG] * 19 + [f"site{i:02d}" for i in range(1, 20)]
    conn.execute("select ensure_event_partitions(%s, %s)", ((now - timedelta(days=days + 1)).date(), days + 3))
    t0 = time.perf_counter()
    rows = bench_etl.stream(random.Random(42), events, now - timedelta(days=days), days, events // 20)
    bench_etl.load(conn, rows)
    print(f"{len(rows):,} events generated and loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    bench_etl.settle(conn)
    t0 = time.perf_counter()
    pipeline.run(replace(settings, retention_days=days + 10), "rebuild")
    print(f"ETL rebuild in {time.perf_counter() - t0:.1f} s", flush=True)


def realtime_window(conn: psycopg.Connection, now: datetime) -> None:
    """The raw log's last ten minutes (what realtime reads): ~80 events a minute, as 10M over 90 days."""
    rng = random.Random(7)
    conn.execute("select ensure_event_partitions(%s, 2)", (now.date(),))
    with (
        conn.transaction(),
        conn.cursor().copy(
            "copy events (event_id, site_id, event_type, occurred_at, received_at, visitor_id, user_agent, payload)"
            " from stdin"
        ) as copy,
    ):
        for i in range(800):
            at = now - timedelta(seconds=rng.uniform(0, 600))
            site = BIG if rng.random() < 0.5 else f"site{rng.randint(1, 19):02d}"
            path = rng.choice(PATHS[:20])
            body = {"eventType": "pageview", "siteId": site, "path": path, "url": f"https://{site}.test{path}"}
            copy.write_row(
                (
                    f"00000000-0000-7000-8000-{i:012d}",
                    site,
                    "pageview",
                    at,
                    at,
                    f"rt{rng.randint(0, 150)}",
                    "Mozilla/5.0 Firefox/120.0",
                    orjson.dumps(body).decode(),
                )
            )


def serve(url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SLUICE_READ_TOKEN": TOKEN,
        "SLUICE_ETL_SCHEDULE": "off",
        "SLUICE_PORT": str(PORT),
    }
    process = subprocess.Popen([str(ROOT / ".venv" / "bin" / "sluice"), "serve"], env=env)
    for _ in range(100):
        try:
            http.client.HTTPConnection("127.0.0.1", PORT, timeout=1).request("GET", "/health")
            return process
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("sluice serve did not start")


def measure(path: str, requests: int) -> tuple[list[float], int]:
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    timings, status = [], 0
    for i in range(requests + 2):
        t0 = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        if i >= 2:  # warm-up: the pool's connection, the plans, the pages
            timings.append((time.perf_counter() - t0) * 1000)
        status = response.status
    connection.close()
    return timings, status


def p95(timings: list[float]) -> float:
    return statistics.quantiles(timings, n=20, method="inclusive")[18]


def visitors_against_exact(conn: psycopg.Connection, now: datetime) -> None:
    print("\nvisitors: the API (sketch union) against exact count(distinct) over sessions")
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    for period, days in (("7d", 7), ("30d", 30), ("all", 400)):
        connection.request("GET", f"{S}/summary?period={period}", headers={"Authorization": f"Bearer {TOKEN}"})
        answer = orjson.loads(connection.getresponse().read())["visitors"]
        exact = conn.execute(
            """select count(distinct visitor_key) from sessions
               where site_id = %s and started_on > %s::date - %s and not is_bot""",
            (BIG, now.date(), days),
        ).fetchone()[0]  # type: ignore[index]
        print(f"  {period:>4}: API {answer:>9,}  exact {exact:>9,}  error {100 * (answer - exact) / exact:+.2f}%")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=("synthetic", "etl"), default="synthetic")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--keep", action="store_true", help="reuse the loaded database if present")
    parser.add_argument("--url", action="append", default=[], help="LABEL=PATH, measured too (target 50 ms)")
    parser.add_argument("--only", default="", help="measure only the URLs whose label contains this")
    args = parser.parse_args()

    host, port, user = (
        os.environ.get("PGHOST", "127.0.0.1"),
        os.environ.get("PGPORT", "5432"),
        os.environ.get("PGUSER", "postgres"),
    )
    admin = make_conninfo(host=host, port=port, user=user, dbname="postgres")
    url = make_conninfo(host=host, port=port, user=user, dbname=DBNAME)
    settings = replace(Settings.from_env(), database_url=url, etl_schedule="off")
    now = datetime.now(UTC)

    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (DBNAME,)).fetchone()
        if exists and not args.keep:
            conn.execute(f"drop database {DBNAME} with (force)")
        if not exists or not args.keep:
            conn.execute(f"create database {DBNAME}")
    with psycopg.connect(url, autocommit=True) as conn:
        apply(conn, settings.schema)
    with connect(settings, autocommit=True) as conn:
        if not conn.execute("select exists (select from daily_metrics)").fetchone()[0]:  # type: ignore[index]
            if args.source == "synthetic":
                synthetic(conn, settings, args.events, args.days, now)
            else:
                through_etl(conn, settings, args.events, args.days, now)
            t0 = time.perf_counter()
            conn.execute("vacuum analyze")
            print(f"vacuum analyze in {time.perf_counter() - t0:.1f} s", flush=True)
        fill_new_tables(conn)
        conn.execute("delete from events where received_at > %s - interval '1 hour'", (now,))
        realtime_window(conn, now)
        shape = conn.execute(
            """select sum(event_count), count(*), count(distinct site_id),
                      round(100.0 * sum(event_count) filter (where site_id = %s) / sum(event_count), 1),
                      min(started_on), max(started_on)
               from sessions""",
            (BIG,),
        ).fetchone()
        assert shape is not None
        print(
            f"data set: {shape[0]:,} events in {shape[1]:,} sessions, {shape[2]} sites ({BIG}: {shape[3]}%),"
            f" {shape[4]} .. {shape[5]}; sketches: {pipeline.has_sketches(conn)}"
        )
        sizes = conn.execute(
            """select relname, pg_size_pretty(pg_total_relation_size(oid)) from pg_class
               where relname in ('sessions', 'daily_metrics', 'daily_breakdown', 'clicks', 'hourly_click_counts',
                                 'daily_visitor_sketches', 'daily_breakdown_sketches',
                                 'hourly_metrics', 'daily_breakdown_totals', 'daily_click_breakdown',
                                 'monthly_breakdown_sketches', 'weekly_breakdown_sketches')
               order by relname"""
        ).fetchall()
        print("sizes: " + ", ".join(f"{name} {size}" for name, size in sizes))

        urls = URLS + [(label, path, UNFILTERED) for label, _, path in (u.partition("=") for u in args.url)]
        urls = [u for u in urls if args.only in u[0]]
        process = serve(url)
        try:
            print(f"\n{'report':<46} {'p50':>7} {'p95':>7} {'max':>7}  target p95")
            failed = 0
            for label, path, target in urls:
                timings, status = measure(path, args.requests)
                ok = status == 200 and p95(timings) < target
                failed += not ok
                print(
                    f"{label:<46} {statistics.median(timings):7.1f} {p95(timings):7.1f} {max(timings):7.1f}"
                    f"  < {target:.0f} ms {'met' if ok else 'NOT MET'}{'' if status == 200 else f' (HTTP {status})'}",
                    flush=True,
                )
            visitors_against_exact(conn, now)
        finally:
            process.terminate()
            process.wait()
    print(f"\n{len(urls) - failed} of {len(urls)} within their target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
