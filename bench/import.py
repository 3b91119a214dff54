"""Import benchmark (issue 13): `sluice import` of a 1,000,000-line NDJSON file of historical events,
then the ETL over them, against a rebuild over the same events.

    flock /tmp/sluice-heavy.lock .venv/bin/python bench/import.py [--events 1000000] [--workers N]
          [--rounds 2] [--etl-rounds 2] [--no-etl]

Writes the file under /tmp, and imports it into a scratch database of its own,
`sluice_bench_import_<pid>` on PGHOST:PGPORT (default 127.0.0.1:5432), dropped at the end. The
events are bench/etl.py's stream (20 sites, 50,000 visitors, sessions of 1-12 events, 2% bots),
as /collect bodies with the request's fields a line may carry (`userAgent`, `ip`; a tenth name
their `country` themselves), spread over the 90 days (`--days`) that ended 30 days ago: history, every event
past the lateness bound. Half the lines carry an eventId, half get the import's deterministic one.

It times, in this order: the import (`--rounds` times: the first stores, the others find every id
stored and store nothing), then, `--etl-rounds` times interleaved, the import's ETL (an
incremental run over every imported event on emptied tables, as after an import into a new
database, plus the recount of the days) and a rebuild over the same events: microseconds per
event of each, and their ratio. The peak memory of the import's processes is printed too.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.conninfo import make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sluice.db import connect
from sluice.etl import pipeline
from sluice.migrations import apply
from sluice.settings import Settings

_spec = importlib.util.spec_from_file_location("bench_etl", Path(__file__).parent / "etl.py")
assert _spec is not None
assert _spec.loader is not None
bench_etl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_etl)


def generate(path: Path, n_events: int, n_visitors: int, end: datetime, days: int, rng: random.Random) -> None:
    """bench/etl.py's stream as the lines of an export: /collect bodies in time order."""
    visitors = [bench_etl.Visitor(rng, i) for i in range(n_visitors)]
    ips = [f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}" for _ in visitors]
    start = end - timedelta(days=days)
    lines: list[tuple[datetime, bytes]] = []
    while len(lines) < n_events:
        which = rng.randrange(n_visitors)
        v = visitors[which]
        t = start + timedelta(seconds=rng.random() * days * 86400)
        session_id = uuid.UUID(int=rng.getrandbits(128)).hex[:16] if v.with_session_id else None
        referrer = rng.choice(bench_etl.REFERRERS)
        for i in range(rng.randint(1, 12)):
            page = rng.choice(bench_etl.PATHS)
            kind = "click" if rng.random() < 0.15 else ("custom" if rng.random() < 0.05 else "pageview")
            body: dict[str, Any] = {
                "eventType": kind,
                "siteId": v.site,
                "timestamp": t.isoformat(),
                "url": f"https://{v.site}.example.com{page}",
                "path": page,
                "title": "Page",
                "referrer": referrer if i == 0 else f"https://{v.site}.example.com/",
                "screen": "1920x1080",
                "language": "en-US",
                "userAgent": v.user_agent,
                "ip": ips[which],
            }
            if rng.random() < 0.5:
                body["eventId"] = bench_etl.event_id(rng, t)
            if v.visitor_id:
                body["visitorId"] = v.visitor_id
            if session_id:
                body["sessionId"] = session_id
            if which % 10 == 0 and v.country:
                body["country"] = v.country
            if kind == "click":
                body.update(target=f"https://out{rng.randint(0, 50)}.example.net/p", text="link")
            lines.append((t, orjson.dumps(body)))
            t += timedelta(seconds=rng.expovariate(1 / 120))
            if len(lines) >= n_events:
                break
    lines.sort(key=lambda line: line[0])
    with path.open("wb") as out:
        for _, line in lines:
            out.write(line + b"\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--visitors", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=90, help="days of history (ending 30 days ago)")
    parser.add_argument("--workers", type=int, default=0, help="the import's worker processes (0: its default)")
    parser.add_argument("--rounds", type=int, default=2, help="imports of the file (the first stores it)")
    parser.add_argument("--etl-rounds", type=int, default=2)
    parser.add_argument("--no-etl", action="store_true")
    parser.add_argument("--generate-only", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=30)
    if args.generate_only:  # (in a process of its own: the import's is then measured alone)
        generate(Path(args.generate_only), args.events, args.visitors, end, args.days, random.Random(42))
        return 0

    host, port, user = (os.environ.get(name, default) for name, default in
                        (("PGHOST", "127.0.0.1"), ("PGPORT", "5432"), ("PGUSER", "postgres")))  # fmt: skip
    dbname = f"sluice_bench_import_{os.getpid()}"
    admin = make_conninfo(host=host, port=port, user=user, dbname="postgres")
    url = make_conninfo(host=host, port=port, user=user, dbname=dbname)
    settings = replace(Settings.from_env(), database_url=url, etl_schedule="off")
    print(f"load at start: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="sluice-bench-import-") as tmp:
        path = Path(tmp) / "events.ndjson"
        t0 = time.perf_counter()
        generating = [sys.executable, __file__, "--generate-only", str(path), "--events", str(args.events)]
        subprocess.run([*generating, "--visitors", str(args.visitors), "--days", str(args.days)], check=True)
        size = path.stat().st_size
        print(f"generated {args.events:,} lines ({size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s", flush=True)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"create database {dbname}")
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                apply(conn, settings.schema)
            summary: dict[str, Any] = {}
            peak_mb = 0.0
            for round_ in range(args.rounds):
                load = os.getloadavg()[0]
                # the command itself, in a process of its own (its memory measured alone)
                command = [sys.executable, "-m", "sluice.cli", "import", str(path), "--no-etl"]
                if args.workers:
                    command += ["--workers", str(args.workers)]
                with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
                    child = subprocess.Popen(command, env={**os.environ, "DATABASE_URL": url}, stdout=out, stderr=err)
                    _, status, usage = os.wait4(child.pid, 0)
                    child.returncode = os.waitstatus_to_exitcode(status)
                    out.seek(0)
                    err.seek(0)
                    if child.returncode != 0:
                        print(err.read().decode(), file=sys.stderr)
                        return 1
                    summary = orjson.loads(out.read())
                peak_mb = max(peak_mb, usage.ru_maxrss / 1024)
                rate = summary["lines"] / summary["seconds"]
                what = "stores the file" if round_ == 0 else "again: every id already stored"
                print(
                    f"import {round_ + 1} ({what}): {summary['seconds']:.2f} s = {rate:,.0f} events/s "
                    f"(accepted {summary['accepted']:,}, rejected {summary['rejected']}; load {load:.2f} -> "
                    f"{os.getloadavg()[0]:.2f})",
                    flush=True,
                )
            print(f"peak RSS of the import's largest process: {peak_mb:.0f} MB (file: {size / 1e6:.0f} MB)", flush=True)
            with connect(settings, autocommit=True) as conn:
                stored = conn.execute("select count(*) from events").fetchone()[0]  # type: ignore[index]
                conn.execute("vacuum analyze events")
            print(f"events stored: {stored:,}", flush=True)
            if not args.no_etl:
                _etl(settings, stored, summary, args.etl_rounds)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"drop database if exists {dbname} with (force)")
    print(f"load at end: {os.getloadavg()[0]:.2f}")
    return 0


def _etl(settings: Settings, n: int, summary: dict[str, Any], rounds: int) -> None:
    first, last = date.fromisoformat(summary["first_day"]), date.fromisoformat(summary["last_day"])
    import_us: list[float] = []
    rebuild_us: list[float] = []
    for _ in range(rounds):
        with connect(settings, autocommit=True) as conn, conn.transaction():
            for statement in pipeline.reset_statements():  # emptied tables, watermark 0: a new database
                conn.execute(statement)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        backfilled = pipeline.backfill(settings, first, last)
        seconds = time.perf_counter() - t0
        import_us.append(seconds / n * 1e6)
        print(
            f"import's ETL (the backfill of {first}..{last}: {backfilled.events_processed:,} events): "
            f"{seconds:.1f} s = {import_us[-1]:.1f} us/event (load {load:.2f})",
            flush=True,
        )
        print(f"  steps: {backfilled.step_seconds}", flush=True)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        rebuilt = pipeline.run(settings, "rebuild")
        seconds = time.perf_counter() - t0
        rebuild_us.append(seconds / n * 1e6)
        print(
            f"rebuild over the same {rebuilt.events_processed:,} events: {seconds:.1f} s = {rebuild_us[-1]:.1f} "
            f"us/event (load {load:.2f})",
            flush=True,
        )
        print(f"  steps: {rebuilt.step_seconds}", flush=True)
    ratios = [i / r for i, r in zip(import_us, rebuild_us, strict=True)]
    print(f"import's ETL / rebuild per event: {', '.join(f'{r:.2f}' for r in ratios)} (target <= 1)")


if __name__ == "__main__":
    sys.exit(main())
