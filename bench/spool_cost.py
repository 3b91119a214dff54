"""What the spool costs: this tree's collector against another tree's, interleaved, and with PostgreSQL down.

    git worktree add --detach /tmp/before f866078    # the code before the spool
    (cd /tmp/before && make .venv/.installed-...)     # optional: its own .venv
    .venv/bin/python bench/spool_cost.py --before /tmp/before [--rounds 3] [--duration 10] [--up-only]

`--before` is a checkout of the one-package layout. With a `.venv` of its own, its code runs with
that; else with this tree's `.venv`, from a folder of symlinks that maps it as pyproject.toml's
package-dir does (first on PYTHONPATH, so it wins over this tree's editable install). This tree's
servers record their metrics as `sluice serve` makes them (PROMETHEUS_MULTIPROC_DIR, files in the
data folder). Each round runs, one
after another on 127.0.0.1:8899 against bench/ingest.py's scratch database: the before tree and
this tree (the before tree first in odd rounds, this tree first in even ones: a run's place in the
round, e.g. a machine that warms or slows as the round goes on, must not count for one tree), then
this tree with DATABASE_URL pointing at a closed port (every batch spooled), each driven by wrk
with single events (64 connections) and then batches of 100 (8 connections), as bench/ingest.py
drives them. Prints each run and the median ratios of the rounds; use an even number of rounds.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from ingest import EVENT, HTTP_PORT, LUA, USER_AGENT, background_cpu, drive, ensure_wrk, scratch_database, truncate  # noqa: E402

CLOSED = "host=127.0.0.1 port=1 user=postgres dbname=nothing"


def importable(checkout: Path) -> Path:
    """A folder whose `sluice` package is `checkout`'s code, mapped as pyproject.toml's package-dir maps it."""
    root = Path(tempfile.mkdtemp(prefix="sluice-before-"))
    package = root / "sluice"
    package.mkdir()
    for path in (checkout / "sluice").iterdir():
        (package / path.name).symlink_to(path)
    for part in ("collector", "etl", "sql"):
        (package / part).symlink_to(checkout / part)
    return root


class Server:
    def __init__(self, code: Path | None, url: str, data_dir: Path) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "SLUICE_ETL_SCHEDULE": "off",
            "SLUICE_DATA_DIR": str(data_dir),
            "SLUICE_DB_TIMEOUT": "1",
        }
        python = sys.executable
        if code is None:  # this tree: its metrics as `sluice serve` keeps them (sluice/serve.py)
            (data_dir / "metrics").mkdir()
            env["PROMETHEUS_MULTIPROC_DIR"] = str(data_dir / "metrics")
        elif (code / ".venv" / "bin" / "python").exists():  # a checkout with its own installed .venv
            python = str(code / ".venv" / "bin" / "python")
        else:
            env["PYTHONPATH"] = str(importable(code))
        command = [python, "-m", "uvicorn", "sluice.app:create_app", "--factory", "--port", str(HTTP_PORT)]
        command += ["--no-access-log", "--no-server-header", "--no-proxy-headers", "--log-level", "warning"]
        self.process = subprocess.Popen(command, env=env, cwd=data_dir, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", HTTP_PORT), timeout=0.2).close()
                time.sleep(1.0)
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        sys.exit("server did not start")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)  # our own process group, started above
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the code before")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--up-only", action="store_true", help="skip the runs with PostgreSQL down")
    args = parser.parse_args()

    wrk = ensure_wrk()
    url = scratch_database()
    scripts = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    single, batch = scripts / "single.lua", scripts / "batch.lua"
    single.write_text(LUA % {"ua": USER_AGENT, "body": orjson.dumps(EVENT).decode()})
    batch.write_text(LUA % {"ua": USER_AGENT, "body": orjson.dumps({"events": [EVENT] * 100}).decode()})
    shapes = {"single": (single, 64, 1), "batch-100": (batch, 8, 100)}
    variants: dict[str, tuple[Path | None, str]] = {
        "before": (args.before.resolve(), url),
        "spool": (None, url),
    }
    if not args.up_only:
        variants["spool, PG down"] = (None, CLOSED)
    results: dict[tuple[str, str], list[float]] = {}
    print(f"{os.cpu_count()} CPUs; {args.duration} s per run; wrk on the same machine\n", flush=True)
    for round_ in range(args.rounds):
        # the two trees swap places every round; the PostgreSQL-down run (this tree only) stays last
        order = list(variants.items())
        if round_ % 2:
            order[0], order[1] = order[1], order[0]
        for shape, (script, connections, per_request) in shapes.items():
            for name, (code, target) in order:
                truncate(url)
                busy = background_cpu()
                with tempfile.TemporaryDirectory(prefix="sluice-bench-data-") as data_dir:
                    server = Server(code, target, Path(data_dir))
                    try:
                        rps, p50, p99, errors = drive(wrk, script, connections, args.duration)
                    finally:
                        server.stop()
                events_per_s = rps * per_request
                results.setdefault((shape, name), []).append(events_per_s)
                print(
                    f"{round_ + 1:>2} {shape:<10} {name:<15} {events_per_s:>9.0f} events/s"
                    f"  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  errors {errors}  (machine {busy:.0f}% busy before)",
                    flush=True,
                )
    print()
    for shape in shapes:
        before, spool = results[(shape, "before")], results[(shape, "spool")]
        up_ratios = [s / b for s, b in zip(spool, before, strict=True)]
        line = (
            f"{shape}: spool / before = {statistics.median(up_ratios):.2f}"
            f" (rounds {', '.join(f'{r:.2f}' for r in up_ratios)})"
        )
        if len(up_ratios) > 1:  # an order effect shows as a difference between these two
            line += (
                f"; before first {statistics.median(up_ratios[0::2]):.2f},"
                f" this tree first {statistics.median(up_ratios[1::2]):.2f}"
            )
        if (shape, "spool, PG down") in results:
            down_ratios = [d / s for d, s in zip(results[(shape, "spool, PG down")], spool, strict=True)]
            line += (
                f"; PostgreSQL down / up = {statistics.median(down_ratios):.2f}"
                f" (rounds {', '.join(f'{r:.2f}' for r in down_ratios)})"
            )
        print(line)


if __name__ == "__main__":
    main()
