"""Import benchmark (issue 13): `sluice import` of a 1,000,000-line NDJSON file of historical events,
then the ETL over them, against a rebuild over the same events.

    flock /tmp/sluice-heavy.lock .venv/bin/python bench/import.py [--events 1000000] [--workers N]
          [--rounds 2] [--etl-rounds 2] [--no-etl] [--baseline /work/wt-base-import]

Writes the file under /tmp, and imports it into a scratch database of its own,
`sluice_bench_import_<pid>` on PGHOST:PGPORT (default 127.0.0.1:5432), dropped at the end. The
events are bench/etl.py's stream (20 sites, 50,000 visitors, sessions of 1-12 events, 2% bots),
as /collect bodies with the request's fields a line may carry (`userAgent`, `ip`; a tenth name
their `country` themselves), spread over the 90 days (`--days`) that ended 30 days ago: history, every event
past the lateness bound. Half the lines carry an eventId, half get the import's deterministic one.

It times, in this order: the import (`--rounds` times, each into a new database: it stores the
file, then imports it again, finding every id stored), then, `--etl-rounds` times interleaved, the import's ETL (an
incremental run over every imported event on emptied tables, as after an import into a new
database, plus the recount of the days) and a rebuild over the same events: microseconds per
event of each, and their ratio. The peak memory of the import's processes is printed too.

Besides the wall-clock rate, each import's CPU per event: the user+sys time of every process of the
command (its main process, the forkserver and the workers: the bench makes itself their subreaper,
so that it reaps them all with their rusage), and apart from it PostgreSQL's, the writer's backends
(sampled from /proc every 20 ms while they live, so a few ms short; needs the server on this
machine, else "n/a"). On a shared machine CPU per event is far steadier than the rate.

`--baseline TREE`: the same imports with another checkout's code (its own `.venv`), interleaved
with this tree's round by round, the order alternating (ABBA...), on the same file; then the
ratios. The ETL part runs on this tree's last database only.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

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
    parser.add_argument("--baseline", metavar="TREE", help="another checkout (with its .venv), interleaved")
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
    settings = replace(Settings.from_env(), etl_schedule="off")
    _become_subreaper()
    print(f"load at start: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="sluice-bench-import-") as tmp:
        path = Path(tmp) / "events.ndjson"
        t0 = time.perf_counter()
        generating = [sys.executable, __file__, "--generate-only", str(path), "--events", str(args.events)]
        subprocess.run([*generating, "--visitors", str(args.visitors), "--days", str(args.days)], check=True)
        size = path.stat().st_size
        print(f"generated {args.events:,} lines ({size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s", flush=True)
        created: list[str] = []
        try:
            trees = [("new", Path(__file__).resolve().parent.parent)]
            if args.baseline:
                trees.append(("base", Path(args.baseline).resolve()))
            results: dict[str, list[Run]] = {name: [] for name, _ in trees}
            summary: dict[str, Any] = {}
            last_db: str | None = None
            for round_ in range(args.rounds):
                order = trees if round_ % 2 == 0 else trees[::-1]
                for name, tree in order:
                    db = f"{dbname}_{name}_{round_}"
                    db_url = make_conninfo(host=host, port=port, user=user, dbname=db)
                    with psycopg.connect(admin, autocommit=True) as conn:
                        conn.execute(f"create database {db}")
                    created.append(db)
                    with psycopg.connect(db_url, autocommit=True) as conn:
                        apply(conn, settings.schema)
                    for again in (False, True):
                        run = _import(tree, path, db_url, db, args.workers)
                        if run is None:
                            return 1
                        results[name].append(run)
                        summary = run.summary if name == "new" else summary
                        what = "again: every id already stored" if again else "stores the file"
                        print(f"{name} round {round_ + 1} ({what}): {run}", flush=True)
                    if name == "new" and round_ == args.rounds - 1:
                        last_db = db  # kept for the ETL part
                    else:
                        _drop(admin, db)
            for name, _ in trees:
                _print_spread(name, results[name], size)
            if args.baseline:
                _print_ratios(results["new"], results["base"])
            assert last_db is not None
            url = make_conninfo(host=host, port=port, user=user, dbname=last_db)
            settings = replace(settings, database_url=url)
            with connect(settings, autocommit=True) as conn:
                stored = conn.execute("select count(*) from events").fetchone()[0]  # type: ignore[index]
                conn.execute("vacuum analyze events")
            print(f"events stored: {stored:,}", flush=True)
            if not args.no_etl:
                _etl(settings, stored, summary, args.etl_rounds)
        finally:
            for db in created:
                _drop(admin, db)
    print(f"load at end: {os.getloadavg()[0]:.2f}")
    return 0


class Run(NamedTuple):
    summary: dict[str, Any]
    seconds: float  # the import's own (its summary's): from reading the file to the last commit
    cpu_s: float  # user+sys of every process of the command, startup included
    pg_cpu_s: float | None  # the writer's PostgreSQL backends
    peak_mb: float
    load: tuple[float, float]

    @property
    def events(self) -> int:
        return int(self.summary["lines"])

    def __str__(self) -> str:
        pg = f"{self.pg_cpu_s / self.events * 1e6:.1f}" if self.pg_cpu_s is not None else "n/a"
        cpu = self.cpu_s / self.events * 1e6
        accepted, rejected = self.summary["accepted"], self.summary["rejected"]
        return (
            f"{self.seconds:.2f} s = {self.events / self.seconds:,.0f} events/s; CPU {cpu:.1f} us/event"
            f" (+ PostgreSQL {pg}); accepted {accepted:,}, rejected {rejected}; peak RSS {self.peak_mb:.0f} MB;"
            f" load {self.load[0]:.2f} -> {self.load[1]:.2f}"
        )


_PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    """Orphaned descendants (the import's forkserver, outliving its parent a moment) are re-parented
    to this process, which reaps them with their rusage (that of the workers they reaped included)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _import(tree: Path, path: Path, url: str, dbname: str, workers: int) -> Run | None:
    """`sluice import FILE --no-etl` with that tree's code, in processes of its own."""
    python = tree / ".venv" / "bin" / "python"
    command = [str(python), "-m", "sluice.cli", "import", str(path), "--no-etl"]
    if workers:
        command += ["--workers", str(workers)]
    load = os.getloadavg()[0]
    sampler = _BackendCpu(url, dbname)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        # cwd: the tree itself, so that `-m` finds that tree's sluice
        child = subprocess.Popen(command, env={**os.environ, "DATABASE_URL": url}, stdout=out, stderr=err, cwd=tree)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime
        peak = usage.ru_maxrss
        while True:  # the orphans: forkserver (with its workers), resource tracker
            try:
                _, _, orphan = os.wait4(-1, 0)
            except ChildProcessError:
                break
            cpu += orphan.ru_utime + orphan.ru_stime
            peak = max(peak, orphan.ru_maxrss)
        pg_cpu = sampler.stop()
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            print(err.read().decode(), file=sys.stderr)
            return None
        summary = orjson.loads(out.read())
    return Run(summary, summary["seconds"], cpu, pg_cpu, peak / 1024, (load, os.getloadavg()[0]))


class _BackendCpu(threading.Thread):
    """CPU seconds of the import's writer backends: their /proc stat, sampled while they live."""

    def __init__(self, url: str, dbname: str) -> None:
        super().__init__(daemon=True)
        self._url, self._dbname = url, dbname
        self._done = threading.Event()
        self._seen: dict[int, float] = {}
        self._available = True
        self._tick = os.sysconf("SC_CLK_TCK")

    def run(self) -> None:
        try:
            with psycopg.connect(self._url, autocommit=True) as conn:
                while not self._done.wait(0.02):
                    rows = conn.execute(
                        "select pid from pg_stat_activity where datname = %s and application_name like %s",
                        (self._dbname, "sluice-collector-writer%"),
                    ).fetchall()
                    for (pid,) in rows:
                        try:
                            with open(f"/proc/{pid}/stat") as stat:
                                fields = stat.read().rpartition(")")[2].split()
                        except FileNotFoundError:
                            continue
                        except PermissionError:
                            self._available = False
                            return
                        self._seen[pid] = (int(fields[11]) + int(fields[12])) / self._tick  # utime, stime
        except psycopg.Error:
            self._available = False

    def stop(self) -> float | None:
        self._done.set()
        self.join()
        return sum(self._seen.values()) if self._available and self._seen else None


def _drop(admin: str, db: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"drop database if exists {db} with (force)")


def _print_spread(name: str, runs: list[Run], size: int) -> None:
    for again in (False, True):
        chosen = runs[1::2] if again else runs[0::2]
        if not chosen:
            continue
        rates = [run.events / run.seconds for run in chosen]
        cpus = [run.cpu_s / run.events * 1e6 for run in chosen]
        pgs = [run.pg_cpu_s / run.events * 1e6 for run in chosen if run.pg_cpu_s is not None]
        pg = f"{min(pgs):.1f}-{max(pgs):.1f}" if pgs else "n/a"
        print(
            f"{name}, {'re-import (ids stored)' if again else 'storing import'}: {min(rates):,.0f}-{max(rates):,.0f}"
            f" events/s, CPU {min(cpus):.1f}-{max(cpus):.1f} us/event (PostgreSQL {pg}), peak RSS"
            f" {max(run.peak_mb for run in chosen):.0f} MB (file {size / 1e6:.0f} MB), {len(chosen)} runs",
            flush=True,
        )


def _print_ratios(new: list[Run], base: list[Run]) -> None:
    """new / base per round: rate (higher is better), CPU per event (lower is better)."""
    for again in (False, True):
        pairs = list(zip(new[int(again) :: 2], base[int(again) :: 2], strict=True))
        rates = [(n.events / n.seconds) / (b.events / b.seconds) for n, b in pairs]
        cpus = [(n.cpu_s / n.events) / (b.cpu_s / b.events) for n, b in pairs]
        print(
            f"new / base, {'re-import' if again else 'storing import'}: rate x{', x'.join(f'{r:.2f}' for r in rates)};"
            f" CPU per event x{', x'.join(f'{c:.2f}' for c in cpus)}",
            flush=True,
        )


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
