"""The short-link redirect under load: latency while PostgreSQL is up, slow, then down.

    .venv/bin/python bench/redirect.py [--duration 10] [--connections 32]

Runs a PostgreSQL of its own (the embedded one, in a temporary folder, so that it can be stopped),
one link, and the collector as `sluice serve` runs it (uvicorn, one worker, as bench/ingest.py
starts it, on a free port); wrk sends `GET /l/bench` with a browser's User-Agent and a Referer from another
process for a fixed time. Then the same load while PostgreSQL is slow (a transaction holds the
events table locked, so every write of the clicks waits until the writer gives up and spools), then
while it is stopped: every answer must still be the 302. Target (issue 14): p99 < 5 ms in all three.
It counts the clicks of the up and slow phases that are not stored once the writer has caught up
(the slow phase's from its spool, after the lock): wrk's count of answered redirects less the rows.
The collector gets a data folder of its own in the temporary folder: the clicks it spools while
PostgreSQL is away must not be left in the repository's `.sluice/spool` for the next run to replay.
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest
from ingest import USER_AGENT, Server, background_cpu, ensure_wrk

from sluice.collector import links
from sluice.db import connect
from sluice.embedded_pg import database_for
from sluice.migrations import migrate
from sluice.settings import Settings

LUA = """
wrk.method = "GET"
wrk.headers["User-Agent"] = "%(ua)s"
wrk.headers["Referer"] = "https://news.example/story"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def drive(wrk: str, script: Path, connections: int, duration_s: int) -> tuple[str, int]:
    """wrk's summary line, and the redirects it got answered."""
    command = [wrk, "-t1", f"-c{connections}", f"-d{duration_s}s", "-s", str(script)]
    out = subprocess.run([*command, f"http://127.0.0.1:{ingest.HTTP_PORT}/l/bench"], capture_output=True, text=True)
    match = re.search(r"^RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", out.stdout, re.M)
    if not match:
        sys.exit(f"wrk said: {out.stdout}{out.stderr}")
    requests, duration_us, p50, p99, bad_status, socket_errors = map(int, match.groups())
    rate = requests / (duration_us / 1e6)
    line = (
        f"{rate:8.0f} redirects/s   p50 {p50 / 1000:6.2f} ms   p99 {p99 / 1000:6.2f} ms   "
        f"errors {bad_status + socket_errors}"
    )
    return line, requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clicks(url: str) -> int:
    with connect(replace(Settings(), database_url=url)) as conn:
        row = conn.execute("select count(*) from events where event_type = 'click'").fetchone()
        return int(row[0]) if row else 0


def _settled_clicks(url: str, timeout_s: float = 120) -> int:
    """The clicks stored once the collector's queue is written: the count stops growing."""
    deadline = time.monotonic() + timeout_s
    last = -1
    while time.monotonic() < deadline:
        now = clicks(url)
        if now == last:
            return now
        last = now
        time.sleep(1.0)
    return last


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    wrk = ensure_wrk()
    # a port of its own, not bench/ingest.py's fixed one: both may run on a shared machine
    ingest.HTTP_PORT = free_port()
    with tempfile.TemporaryDirectory(prefix="sluice-bench-redirect-", dir="/tmp") as tmp, ExitStack() as postgres:
        Path(tmp).chmod(0o755)  # as root the server runs as another user, who must reach it
        (Path(tmp) / "redirect.lua").write_text(LUA % {"ua": USER_AGENT})
        settings = postgres.enter_context(database_for(replace(Settings(), database_url="", data_dir=Path(tmp))))
        migrate(settings)
        with connect(settings, autocommit=True) as conn:
            links.add(conn, "bench", "bench", "https://shop.example/spring?utm_source=flyer")
        print(f"background CPU before: {background_cpu():.0f}%")
        collector_dir = Path(tmp) / "collector"
        server = Server("sluice.app:create_app", 1, settings.database_url, {"SLUICE_DATA_DIR": str(collector_dir)})
        script = Path(tmp) / "redirect.lua"
        try:
            line, up = drive(wrk, script, args.connections, args.duration)
            print(f"PostgreSQL up:    {line}")
            stored = _settled_clicks(settings.database_url)
            with connect(settings) as lock:  # slow: the clicks' writes wait on the lock
                lock.execute("lock table events in exclusive mode")
                line, slow = drive(wrk, script, args.connections, args.duration)
                print(f"PostgreSQL slow:  {line}")
                lock.rollback()
            settled = _settled_clicks(settings.database_url)  # the slow phase's queue written, before "down"
            postgres.close()  # PostgreSQL stops; the collector keeps running
            print(f"PostgreSQL down:  {drive(wrk, script, args.connections, args.duration)[0]}")
        finally:
            server.stop()
        # wrk counts the answers it read before its time was up; a few more (up to one per connection)
        # were answered, and their clicks stored, after: a "lost" of -N is those, nothing lost
        print(f"clicks stored while PostgreSQL was up: {stored} of {up} redirects (lost {up - stored})")
        print(f"slow phase: {settled - stored} of {slow} stored once written (lost {slow - settled + stored})")


if __name__ == "__main__":
    main()
