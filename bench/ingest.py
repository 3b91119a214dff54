"""Ingestion benchmark: events/s and latency of `/collect`, beside the references that bound it.

    .venv/bin/python bench/ingest.py [--duration 10] [--workers 1 2] [--rounds 1]

Starts each server in its own process group on 127.0.0.1 against a scratch database
(`sluice_bench_ingest` on the PostgreSQL at PGHOST/PGPORT, default 127.0.0.1:5432), drives it with
wrk from another process for a fixed time, and prints a table and the ratios the issue sets targets
for. Each batch run follows its own (c) runs. With --rounds N, (a), (a') and sluice single run N
times in turn, and so do (c), (c) binary and sluice batch; the ratios are the medians of each
round's: on a machine whose speed drifts over minutes, a ratio of runs made back to back is steadier
than one of runs made minutes apart. The servers, all run by uvicorn with the same options:

  sluice       the collector (sluice.app:create_app), group commit to PostgreSQL
  (a)          a bare Starlette endpoint: read, parse, answer 202; the HTTP ceiling
  (a')         the collector with its writer acknowledging at once: all of its work but the database
  (b)          one INSERT + COMMIT per request through an async pool
  (c)          not a server: raw COPY of the same events into `events` from one client; the DB ceiling,
               in COPY's text format as measured since the first round, and in the binary format
               the collector sends since it went binary
  (p)          with --public-copy: the collector with its fast write on psycopg's public COPY API
               (bench/public_copy.py), run right after each sluice run, single and batch
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg
from psycopg.conninfo import make_conninfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sluice.collector.writer import _COLUMNS as WRITER_COLUMNS  # noqa: E402
from sluice.collector.writer import Sender, copy_rows, framed  # noqa: E402
from sluice.migrations import apply  # noqa: E402

HOST = os.environ.get("PGHOST", "127.0.0.1")
PORT = int(os.environ.get("PGPORT", "5432"))
USER = os.environ.get("PGUSER", "postgres")
DBNAME = "sluice_bench_ingest"
PUBLIC_COPY = "reference_apps:collector_public_copy"
HTTP_PORT = 8899

EVENT = {
    "eventType": "pageview",
    "siteId": "bench",
    "url": "https://example.com/pricing?plan=team",
    "path": "/pricing",
    "referrer": "https://www.google.com/",
    "title": "Pricing",
    "visitorId": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "sessionId": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "timestamp": "2026-11-25T12:00:00.000Z",
    "attribution": {"utmParams": {"utm_source": "newsletter", "utm_medium": "email"}},
    "props": {"plan": "team", "experiment": "b"},
}
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "%(ua)s"
wrk.headers["Origin"] = "https://shop.example"
wrk.body = [==[%(body)s]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass
class Result:
    name: str
    workers: int
    connections: int
    events_per_request: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def events_per_s(self) -> float:
        return self.requests_per_s * self.events_per_request


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, stdout=subprocess.DEVNULL)
        found = shutil.which("wrk")
    if not found:
        sys.exit("bench/ingest.py needs wrk (apt-get install wrk)")
    return found


def scratch_database() -> str:
    admin = make_conninfo(host=HOST, port=PORT, user=USER, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"drop database if exists {DBNAME} with (force)")
        conn.execute(f"create database {DBNAME}")
    url = make_conninfo(host=HOST, port=PORT, user=USER, dbname=DBNAME)
    with psycopg.connect(url, autocommit=True) as conn:
        apply(conn, "sluice")
    return url


def truncate(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("truncate sluice.events, sluice.event_ids")
        conn.execute("checkpoint")


class Server:
    def __init__(self, app: str, workers: int, url: str, extra_env: dict[str, str] | None = None) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "SLUICE_ETL_SCHEDULE": "off",
            "PYTHONPATH": f"{REPO}:{REPO / 'bench'}",
            **(extra_env or {}),
        }
        # The options `sluice serve` passes, minus the access log: nginx keeps that one.
        command = [sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1", "--port", str(HTTP_PORT)]
        command += ["--workers", str(workers), "--no-access-log", "--no-server-header", "--no-proxy-headers"]
        command += ["--log-level", "warning"]
        self.process = subprocess.Popen(command, env=env, cwd=REPO, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"server exited with {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", HTTP_PORT), timeout=0.2).close()
                time.sleep(1.0)  # let every worker finish its start-up
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        sys.exit("server did not start")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)  # our own process group, started above
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def background_cpu(seconds: float = 1.0) -> float:
    """Percent of all CPUs busy while none of our servers runs: other work sharing the machine."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    busy1, total1 = sample()
    time.sleep(seconds)
    busy2, total2 = sample()
    return 100 * (busy2 - busy1) / max(1, total2 - total1)


def drive(wrk: str, script: Path, connections: int, duration_s: int) -> tuple[float, float, float, int]:
    threads = 1 if connections <= 64 else 2
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "-s", str(script)]
    out = subprocess.run([*command, f"http://127.0.0.1:{HTTP_PORT}/collect"], capture_output=True, text=True)
    match = re.search(r"^RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", out.stdout, re.M)
    if not match:
        sys.exit(f"wrk said: {out.stdout}{out.stderr}")
    requests, duration_us, p50, p99, bad_status, socket_errors = map(int, match.groups())
    return requests / (duration_us / 1e6), p50 / 1000, p99 / 1000, bad_status + socket_errors


def stored(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("select count(*) from sluice.events").fetchone()
        return int(row[0]) if row else 0


COLUMNS = (
    "event_id, site_id, event_type, occurred_at, client_timestamp, received_at,"
    " visitor_id, session_id, ip_hash, country, user_agent, payload"
)


def text_copy(rows: list[tuple[object, ...]]) -> bytes:
    """COPY's text format, as (c) has always sent it (the collector sent the same until it went binary)."""
    lines = []
    for event_id, *fields, payload in rows:
        text = [event_id.hex] + [f.isoformat() if isinstance(f, datetime) else str(f) for f in fields]  # type: ignore[attr-defined]
        lines.append(b"%s\t%s\n" % ("\t".join(text).encode(), payload))  # nothing here needs escaping
    return b"".join(lines)


def raw_copy(url: str, duration_s: int, rows_per_copy: int = 10_000, *, binary: bool = False) -> float:
    """(c): rows/s of COPY ... FROM STDIN into `events`, the same events, from one client.

    Text format, as measured since the first round; with `binary`, the format the collector sends.
    """
    now = datetime.now(UTC)
    payload = orjson.dumps(EVENT)
    ids = [uuid.uuid4() for _ in range(rows_per_copy)]
    if binary:
        rows = [(i, "bench", "pageview", now, now, "v", "s", payload) for i in ids]
        data = framed(copy_rows(rows, Sender(now, "0" * 32, "US", USER_AGENT)))
        command = f"copy sluice.events ({WRITER_COLUMNS}) from stdin (format binary)"
    else:
        data = text_copy(
            [(i, "bench", "pageview", now, now, now, "v", "s", "0" * 32, "US", USER_AGENT, payload) for i in ids]
        )
        command = f"copy sluice.events ({COLUMNS}) from stdin"
    rows_done = 0
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        while time.perf_counter() - started < duration_s:
            with conn.cursor().copy(command) as copy:
                copy.write(data)
            conn.commit()
            rows_done += rows_per_copy
        return rows_done / (time.perf_counter() - started)


def per_round(sluice: list[Result], references: list[Result]) -> str:
    """The median of each round's ratio, and the rounds' ratios when there are several."""
    return rounds_text([s.events_per_s / r.events_per_s for s, r in zip(sluice, references, strict=True)])


def rounds_text(each: list[float]) -> str:
    rounds = f"  (rounds: {', '.join(f'{x:.2f}' for x in each)})" if len(each) > 1 else ""
    return f"{statistics.median(each):.2f}{rounds}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement (default 10)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="runs of (a), (a') and sluice single, and of (c), (c) binary and sluice batch, in turn (default 1)",
    )
    parser.add_argument(
        "--public-copy",
        action="store_true",
        help="also (p), the writer on psycopg's public COPY API, after each sluice run",
    )
    args = parser.parse_args()

    wrk = ensure_wrk()
    url = scratch_database()
    scripts = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    single = scripts / "single.lua"
    batch = scripts / "batch.lua"
    single.write_text(LUA % {"ua": USER_AGENT, "body": orjson.dumps(EVENT).decode()})
    batch.write_text(LUA % {"ua": USER_AGENT, "body": orjson.dumps({"events": [EVENT] * 100}).decode()})
    print(f"{os.cpu_count()} CPUs; {args.duration} s per run; wrk on the same machine\n", flush=True)

    results: list[Result] = []

    def run(name: str, app: str, workers: int, connections: int, script: Path, per_request: int = 1) -> Result:
        truncate(url)
        background = background_cpu()
        server = Server(app, workers, url)
        try:
            rps, p50, p99, errors = drive(wrk, script, connections, args.duration)
        finally:
            server.stop()
        result = Result(name, workers, connections, per_request, rps, p50, p99, errors)
        results.append(result)
        print(
            f"{name:<28} w={workers} c={connections:<4} {result.events_per_s:>9.0f} events/s"
            f" {rps:>8.0f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  errors {errors}"
            f"  (machine {background:.0f}% busy before)",
            flush=True,
        )
        return result

    def raw(binary: bool) -> float:
        truncate(url)
        background = background_cpu()
        rows_per_s = raw_copy(url, args.duration, binary=binary)
        name = "(c) raw binary COPY" if binary else "(c) raw COPY, one client"
        print(f"{name:<28}              {rows_per_s:>9.0f} rows/s  (machine {background:.0f}% busy before)", flush=True)
        return rows_per_s

    ratios: list[str] = []
    best_text: list[float] = []  # per worker count, the median ratio of its rounds
    best_binary: list[float] = []
    for workers in args.workers:
        connections = 64 if workers == 1 else 128 * workers
        a_runs: list[Result] = []
        a2_runs: list[Result] = []
        s_runs: list[Result] = []
        p_runs: list[Result] = []  # (p), when asked for: each right after its sluice run
        for _ in range(args.rounds):
            a_runs.append(run("(a) bare Starlette, single", "reference_apps:no_database", workers, connections, single))
            a2_runs.append(
                run("(a') collector, no DB", "reference_apps:collector_without_database", workers, connections, single)
            )
            s = run("sluice single", "sluice.app:create_app", workers, connections, single)
            if s.errors == 0:
                assert stored(url) >= s.requests_per_s * args.duration * 0.9, "acknowledged events are missing"
            s_runs.append(s)
            if args.public_copy:
                p_runs.append(run("(p) public COPY, single", PUBLIC_COPY, workers, connections, single))
        b = run("(b) insert per request", "reference_apps:insert_per_request", workers, connections, single)
        # Each batch run right after its own (c) runs: a ratio of runs made minutes apart on a
        # machine whose speed drifts measures the drift.
        sb_runs: list[Result] = []
        pb_runs: list[Result] = []
        text_ratios: list[float] = []
        binary_ratios: list[float] = []
        for _ in range(args.rounds):
            c, c_binary = raw(binary=False), raw(binary=True)
            sb = run("sluice batch-100", "sluice.app:create_app", workers, 8 * workers, batch, 100)
            sb_runs.append(sb)
            if args.public_copy:
                pb_runs.append(run("(p) public COPY, batch-100", PUBLIC_COPY, workers, 8 * workers, batch, 100))
            text_ratios.append(sb.events_per_s / c)
            binary_ratios.append(sb.events_per_s / c_binary)
        best_text.append(statistics.median(text_ratios))
        best_binary.append(statistics.median(binary_ratios))

        s_p99 = statistics.median(s.p99_ms for s in s_runs)
        # the p99 of a server that does no work past parsing: no collector can answer faster here
        a_p99 = statistics.median(a.p99_ms for a in a_runs)
        s_eps = statistics.median(s.events_per_s for s in s_runs)
        ratios += [
            f"w={workers}: single / (a)  = {per_round(s_runs, a_runs)}   (target >= 0.7, p99 < 50 ms: {s_p99:.1f} ms;"
            f" (a)'s own p99: {a_p99:.1f} ms)",
            f"w={workers}: single / (a') = {per_round(s_runs, a2_runs)}",
            f"w={workers}: single / (b)  = {s_eps / b.events_per_s:.2f}",
            f"w={workers}: batch-100 events/s = {statistics.median(r.events_per_s for r in sb_runs):.0f}",
            f"w={workers}: batch-100 / (c) = {rounds_text(text_ratios)}   (text format)",
            f"w={workers}: batch-100 / (c) binary = {rounds_text(binary_ratios)}",
        ]
        if args.public_copy:
            ratios += [
                f"w={workers}: (p) single / sluice single = {per_round(p_runs, s_runs)}   (public COPY API / pgwire)",
                f"w={workers}: (p) batch-100 / sluice batch-100 = {per_round(pb_runs, sb_runs)}",
            ]

    print("\n" + "\n".join(ratios))
    print(
        f"batch-100 (best worker count) / (c) = {max(best_text):.2f}"
        "   (target >= 0.6; (c) in text format, as always measured)"
    )
    print(f"batch-100 (best worker count) / (c) binary = {max(best_binary):.2f}   (the format the collector sends)")
    median_p99 = statistics.median(r.p99_ms for r in results if r.name == "sluice single")
    print(f"sluice single p99 (median over worker counts) = {median_p99:.1f} ms")


if __name__ == "__main__":
    main()
