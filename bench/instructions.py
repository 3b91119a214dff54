"""Instructions per single-event `POST /collect`, counted by callgrind: the same number on a busy machine.

    .venv/bin/python bench/instructions.py [--before /path/to/older/checkout] [--rounds 20]
    .venv/bin/python bench/instructions.py --dialects [--before /path/to/older/checkout] [--requests 160]
    .venv/bin/python bench/instructions.py --import [--before /path/to/older/checkout] [--lines 20000]

CPU time per request moves by ±10 % here from one run to the next when other work shares the
cores (caches, the other hyperthread); callgrind counts the instructions executed instead, which
repeat to within 0.2 %. Each checkout runs bench/cpu_per_request.py's harness (its own copy, so an
older checkout is measured as it was) under `valgrind --tool=callgrind --instr-atstart=no` with its
own `.venv`: instrumentation is switched on for the measured rounds only (not the imports, the
start-up or the warm-up), by `callgrind_control` at the harness's two `time.process_time()` calls.
PostgreSQL's work is in its own processes and not counted; the writer's Python work is. Uses the
scratch database of bench/ingest.py. Needs valgrind (Debian's package).

`--dialects`: issue 15's comparison instead, by bench/dialects.py's harness and bodies (16 requests
at a time, each a batch of 100 events, fresh ids): instructions per `/collect` batch, per `/collect`
batch from a server source, and per Segment `/v1/batch` of the same events, each in a process of
its own, and their ratios (the target: /v1/batch at most 1.3 times /collect).

`--import`: issue 13's import, the part of it that runs per line in a worker: `importer.prepare`
over batches of `CHUNK_LINES` lines of bench/import.py's file (written once, outside callgrind, and
read by both checkouts), counted with the unpickling of each batch and the pickling of its result,
as the worker pool does them. Needs no database. Instructions per line.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def inner(checkout: Path, rounds: int) -> None:
    """In the checkout's own Python, under callgrind: the harness, instrumented for the measured rounds."""
    import asyncio
    import time

    sys.path.insert(0, str(checkout / "bench"))
    import cpu_per_request as harness
    import orjson
    from ingest import EVENT, scratch_database

    os.environ["DATABASE_URL"] = scratch_database()
    os.environ["SLUICE_ETL_SCHEDULE"] = "off"
    from sluice.app import create_app

    class Switch:  # stands in for the harness's `time`: its two process_time() calls bracket the rounds
        calls = 0

        def process_time(self) -> float:
            Switch.calls += 1
            state = "on" if Switch.calls == 1 else "off"
            subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], capture_output=True, check=False)
            time.sleep(0.5)  # callgrind takes the command at its next check
            return 0.0

        def __getattr__(self, name: str) -> object:
            return getattr(time, name)

    harness.time = Switch()
    harness.ROUNDS = rounds
    asyncio.run(harness.measure(create_app(), orjson.dumps(EVENT)))
    print(f"requests {rounds * harness.CONCURRENCY}")


DIALECT_KINDS = ("/collect", "/collect server", "/v1/batch")


def inner_dialects(checkout: Path, kind: str, requests: int) -> None:
    """In the checkout's own Python, under callgrind: bench/dialects.py's harness for one kind of
    request, instrumented between its two `time.process_time()` calls (after the warm-up)."""
    import asyncio
    import base64
    import time

    sys.path.insert(0, str(checkout / "bench"))
    import dialects as harness
    import psycopg
    from ingest import scratch_database

    url = scratch_database()
    os.environ["DATABASE_URL"] = url
    os.environ["SLUICE_ETL_SCHEDULE"] = "off"
    os.environ["SLUICE_INGEST_TOKENS"] = "bench-token"
    from sluice.app import create_app
    from sluice.collector import sites

    with psycopg.connect(url, autocommit=True, options="-c search_path=sluice,public") as conn:
        made = sites.add(conn, "bench", None, [])
        assert made is not None
    path, make, headers, status = {
        "/collect": ("/collect", harness.collect_body, [], 202),
        "/collect server": (
            "/collect",
            lambda: harness.collect_body(server=True),
            [(b"authorization", b"Bearer bench-token")],
            202,
        ),
        "/v1/batch": (
            "/v1/batch",
            harness.segment_body,
            [(b"authorization", b"Basic " + base64.b64encode(made[1].encode() + b":"))],
            200,
        ),
    }[kind]

    class Switch:  # as in inner(): the harness's two process_time() calls bracket the measured requests
        calls = 0

        def process_time(self) -> float:
            Switch.calls += 1
            state = "on" if Switch.calls == 1 else "off"
            subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], capture_output=True, check=False)
            time.sleep(0.5)
            return 0.0

        def __getattr__(self, name: str) -> object:
            return getattr(time, name)

    harness.time = Switch()
    bodies = [make() for _ in range(requests + harness.CONCURRENCY)]
    asyncio.run(harness.measure(create_app(), path, bodies, headers, status))
    print(f"requests {requests}")


def inner_import(checkout: Path, path: Path) -> None:
    """In the checkout's own Python, under callgrind: its worker's part of the import of `path`."""
    import pickle
    import time
    from datetime import UTC, datetime, timedelta

    from sluice.collector import importer

    lines = path.read_bytes().splitlines(keepends=True)
    chunk = importer.CHUNK_LINES
    received_at = datetime.now(UTC)
    salt = os.urandom(32)
    tasks = []
    for at in range(0, len(lines), chunk):
        part = lines[at : at + chunk]  # (the last one may be short)
        tasks.append(pickle.dumps(importer.Task(part, list(range(at + 1, at + 1 + len(part))), received_at, salt)))
    line_count = len(lines)
    del lines
    importer._start_worker(importer._Job(None, timedelta(seconds=300), "", None))
    subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], capture_output=True, check=False)
    time.sleep(0.5)  # callgrind takes the command at its next check
    accepted = 0
    for blob in tasks:
        prepared = importer.prepare(pickle.loads(blob))
        pickle.dumps(prepared)
        accepted += prepared.events
    subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], capture_output=True, check=False)
    time.sleep(0.5)
    print(f"requests {line_count} accepted {accepted}")


def count_import(checkout: Path, path: Path) -> float:
    """Instructions per line of the worker's part of importing `path`, in `checkout` (its own .venv)."""
    return _per_request(checkout, ["--inner-import", str(checkout), str(path)])


def imports(before: Path | None, lines: int) -> None:
    """Instructions per line of the import's worker, in each checkout, on the same file."""
    with tempfile.TemporaryDirectory(prefix="sluice-import-lines-") as tmp:
        path = Path(tmp) / "events.ndjson"
        command = [sys.executable, str(REPO / "bench" / "import.py"), "--generate-only", str(path)]
        subprocess.run([*command, "--events", str(lines)], check=True, cwd=REPO)
        counts = {}
        for name, checkout in ((f"before ({before})", before), ("this checkout", REPO)):
            if checkout is not None:
                counts[name] = count_import(checkout, path)
                print(f"{name}: {counts[name]:,.0f} instructions per imported line (the worker's part)")
        if len(counts) == 2:
            first, last = counts.values()
            print(f"this / before: {last / first:.3f}")


def count(checkout: Path, rounds: int, dialect: str | None = None) -> float:
    """Instructions per request in `checkout` (with its own .venv): a single-event /collect, or
    with `dialect` (one of DIALECT_KINDS) a batch of 100 of that kind, `rounds` requests of it."""
    inner_args = ["--inner", str(checkout), str(rounds)]
    if dialect is not None:
        inner_args += [dialect]
    return _per_request(checkout, inner_args)


def _per_request(checkout: Path, inner_args: list[str]) -> float:
    """This file run with `inner_args` under callgrind in `checkout`'s .venv: the instructions
    counted while instrumentation was on, per request (or line) the inner run says it made."""
    with tempfile.TemporaryDirectory(prefix="sluice-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        command += [str(checkout / ".venv" / "bin" / "python"), __file__, *inner_args]
        run = subprocess.run(command, cwd=checkout, capture_output=True, text=True, check=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", run.stderr)
    requests = re.search(r"requests (\d+)", run.stdout)
    if not (found and requests):
        raise RuntimeError(f"no count from callgrind:\n{run.stderr[-2000:]}")
    return int(found.group(1).replace(",", "")) / int(requests.group(1))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--inner":
        inner(Path(sys.argv[2]), int(sys.argv[3]))
        return
    if len(sys.argv) == 5 and sys.argv[1] == "--inner":
        inner_dialects(Path(sys.argv[2]), sys.argv[4], int(sys.argv[3]))
        return
    if len(sys.argv) == 4 and sys.argv[1] == "--inner-import":
        inner_import(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="an older checkout with its own .venv, measured first")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of 64 requests (default 20)")
    parser.add_argument("--dialects", action="store_true", help="issue 15: batches of 100, Segment vs /collect")
    parser.add_argument("--requests", type=int, default=160, help="with --dialects: requests of each kind (160)")
    parser.add_argument("--import", dest="import_", action="store_true", help="issue 13: the import's worker")
    parser.add_argument("--lines", type=int, default=20_000, help="with --import: lines of the file (20,000)")
    args = parser.parse_args()
    if args.import_:
        imports(args.before.resolve() if args.before else None, args.lines)
        return
    if args.dialects:
        dialects(args.before.resolve() if args.before else None, args.requests)
        return
    before = count(args.before.resolve(), args.rounds) if args.before else None
    this = count(REPO, args.rounds)
    if before is not None:
        print(f"before ({args.before}): {before:,.0f} instructions per single-event request")
    print(f"this checkout: {this:,.0f} instructions per single-event request")
    if before is not None:
        print(f"this / before: {this / before:.3f}")


def dialects(before: Path | None, requests: int) -> None:
    """Instructions per batch of 100 of each kind, and /v1/batch's ratios, in each checkout."""
    for name, checkout in ((f"before ({before})", before), ("this checkout", REPO)):
        if checkout is None:
            continue
        counts = {kind: count(checkout, requests, kind) for kind in DIALECT_KINDS}
        print(f"{name}: instructions per request, batch of 100 events")
        for kind, each in counts.items():
            print(f"  {kind:<16} {each:12,.0f}")
        for kind in DIALECT_KINDS[:2]:
            print(f"  /v1/batch over {kind:<16} {counts['/v1/batch'] / counts[kind]:.3f}; target <= 1.30")


if __name__ == "__main__":
    main()
