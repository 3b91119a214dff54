"""`sluice import`: historical events into the event log, by the collector's own way in.

Each line (NDJSON: one `/collect` event object; CSV: one row under a header naming the fields) is
checked by `validate.to_event`, exactly as a `/collect` event, and turned away with the same
codes (and, with SLUICE_REQUIRE_KNOWN_SITES, `unknown_site`), reported by line number. The accepted
ones go to the collector's group-commit writer (collector/writer.py) as COPY rows in its binary
format, in batches of `CHUNK_LINES` lines: fast COPY and id claim, the careful write when an id is
already stored. So importing a file twice stores it once; the second time, once a write has met a
stored id, each batch's ids are looked up first and a batch of stored ones is not sent at all.

What a live event gets from its HTTP request, a line may carry as fields of its own, which are
taken out of the stored payload: `userAgent`, `country` (with `region` and `city`), and `ip`, which
is hashed with the day's salt and placed like a live client's address (collector/client_ip.py),
then dropped: it is never stored, not even inside an event id. Every imported payload says
`"context": {"source": "import"}` (a line's own `context` is dropped, as a browser's is): the ETL
processes such an event whatever its age (the lateness bound is for live traffic).

A line without `eventId` gets a deterministic one, so that importing it again finds it stored: a
UUID version 5 (RFC 9562) of the line's event as parsed (keys sorted, `siteId` filled, `ip` left
out), and of how many lines of the same content came before it in its batch of `CHUNK_LINES`
lines, so that two equal lines of a file are two events and stay two on a second import (two lines
equal in everything but their `ip` count as equal: the id must not be a hash of an address).

Speed: parsing, validation, hashing and COPY encoding run in worker processes
(`prepare`, one batch per call), while this process reads the file and sends the encoded batches to
PostgreSQL; memory stays flat in the file's size (at most `AHEAD` batches in flight). Where the
time goes (bench/README.md, "Import", the last section): a worker executes ~89,000 instructions
per line, of which `validate.to_event` ~25,000, parsing the line ~15,500, the line's own fields and
a made id ~25,000, a sender's address the first time it is seen (parse, hash, place) and grouping
~20,000 in a short file (a tenth of that in 1,000,000 lines), the COPY rows ~12,000; PostgreSQL
spends ~8-13 µs per event on the COPY into `events` (each of its two indexes ~2.5 of it) and ~4 on
the claim in `event_ids`.

Durability: the writers' sessions commit with synchronous_commit off (no wait for each batch's WAL
flush); the import's last step is one commit that waits, which flushes the WAL through all of
theirs. A crash of PostgreSQL itself during an import can lose the last fraction of a second of
its commits: importing the file again stores exactly what is missing (idempotent by eventId).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import hashlib
import io
import itertools
import multiprocessing
import os
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import IO, Any, NamedTuple

import orjson
import psycopg

from sluice.collector.client_ip import NOWHERE, Countries, DailySalts, Place, ip_hash, parse_ip
from sluice.collector.rejections import Rejection
from sluice.collector.sources import end_user
from sluice.collector.validate import MAX_EVENT_BYTES, Event, _uuid, to_event
from sluice.collector.writer import GroupCommitWriter, Sender, WriteFailed, copy_rows_of
from sluice.db import async_pool
from sluice.settings import Settings

FORMATS = ("ndjson", "csv")
CHUNK_LINES = 5_000  # lines per batch: one worker call, one COPY
AHEAD = 8  # batches prepared or being written at once, at most: what memory holds of the file
# Writers (each a GroupCommitWriter: its own connections, one transaction in flight): one would make
# its PostgreSQL backend's COPY, a single process, the import's bottleneck. Their claims take the
# ids' index locks in id order, so they cannot deadlock (collector/writer.py).
WRITERS = 2
# A line is read at most this long (a valid event is at most MAX_EVENT_BYTES once re-serialised):
# a longer one is skipped to its end and turned away, so no single line can fill the memory.
MAX_LINE_BYTES = 4 * MAX_EVENT_BYTES
IMPORT_CONTEXT = {"source": "import"}  # what an imported event's stored payload says of it
# What a live event gets from its request and a line may carry itself: never stored in the payload.
REQUEST_FIELDS = ("ip", "userAgent", "country", "region", "city")
# The ids of lines without eventId: UUID version 5 in this namespace (fixed: the same line gets the
# same id in every installation, so an export imported into two Sluices keeps its ids).
ID_NAMESPACE = uuid.UUID("6b2f6c53-1c0e-5e8a-9d55-2f1a4d7c0b13")
_VERSION_BITS = ~(0xF000 << 64 | 0xC000 << 48)
_VERSION_5 = 5 << 76 | 0x8000 << 48
_SORTED = orjson.OPT_SORT_KEYS
_NO_SKEW = timedelta(0)
_MAX_PLACE_CHARS = 200


class UsageError(ValueError):
    """The command cannot start: a missing file, an unknown format, a CSV without a usable header (exit 2)."""


@dataclass(frozen=True)
class Options:
    path: str  # "-": standard input
    format: str = "ndjson"
    site: str | None = None  # fills siteId where a line has none
    dry_run: bool = False
    workers: int = 0  # 0: one per CPU, at least 1


class Task(NamedTuple):
    """One batch for a worker: its lines (NDJSON: bytes; CSV: dicts) and their line numbers."""

    lines: list[Any]
    numbers: list[int]
    received_at: datetime
    salt: bytes
    want_ids: bool = False  # return the accepted events' ids (Prepared.ids)


class Prepared(NamedTuple):
    data: bytes  # COPY rows (copy_rows_of), all senders together
    events: int
    # (line, reason, message, field): a Rejection would lose its field on its way between processes
    rejected: list[tuple[int, str, str, str | None]]
    first_day: date | None  # of the accepted events' occurred_at
    last_day: date | None
    ids: bytes = b""  # with Task.want_ids: the distinct ids of the accepted events, 16 bytes each


@dataclass(frozen=True)
class _Job:
    """What every batch of an import shares, given to each worker once."""

    site: str | None
    max_future: timedelta
    geoip_db: str
    registered: frozenset[str] | None  # with SLUICE_REQUIRE_KNOWN_SITES: the registered sites


_job: _Job | None = None
_countries: Countries | None = None


def _start_worker(job: _Job) -> None:
    global _job, _countries
    _job, _countries = job, Countries(job.geoip_db)
    # The cyclic garbage collector took 8-12 % of a worker's time: a batch's objects all live until
    # its end (so the young collections free nothing), and each full one scanned the ~40,000
    # objects of the start-up (modules, the GeoIP table), which live as long as the worker.
    # Those are set aside, and the young generation collected every 50,000 new objects instead of
    # 700 (a line makes some 4 of them); cycles are still collected. 0-4 % left.
    gc.freeze()
    gc.set_threshold(50_000)


# SHA-1 already fed the namespace, copied per line: hashlib.sha1() itself looks the algorithm up in
# OpenSSL at each call (EVP_MD_fetch), some 6,000 instructions, more than hashing the line.
_NAMESPACE_SHA1 = hashlib.sha1(ID_NAMESPACE.bytes, usedforsecurity=False)


def event_id_of(content: bytes, earlier_equal_lines: int) -> uuid.UUID:
    """The id of a line without eventId: UUID v5 of its content and its rank among equal lines."""
    name = content if not earlier_equal_lines else content + b"#%d" % earlier_equal_lines
    sha1 = _NAMESPACE_SHA1.copy()
    sha1.update(name)
    digest = sha1.digest()
    return _uuid(int.from_bytes(digest[:16], "big") & _VERSION_BITS | _VERSION_5)


def _line_place(doc: dict[str, Any], country: Any) -> Place | None:
    """The place a line names itself (its `country`, with `region` and `city`); None if it names none."""
    if not (isinstance(country, str) and len(country) == 2 and country.isascii() and country.isalpha()):
        return None
    region, city = doc.get("region"), doc.get("city")
    return Place(
        country.upper(),
        region[:_MAX_PLACE_CHARS] if isinstance(region, str) and region else None,
        city[:_MAX_PLACE_CHARS].replace("\x00", "") if isinstance(city, str) and city else None,
    )


def prepare(task: Task) -> Prepared:
    """Validates and encodes one batch (in a worker process): /collect's checks for each line.
    This runs for every line: names are looked up once, and what lines share (an address, a
    User-Agent, a sender's columns) is worked out once."""
    job, countries = _job, _countries
    assert job is not None, "prepare runs in a worker started by _start_worker"
    assert countries is not None
    received_at = task.received_at
    believed_until = received_at + job.max_future
    site, registered, salt = job.site, job.registered, task.salt
    origins = _origins_of(salt)
    groups: dict[tuple[str | None, Place, str | None], list[Event]] = {}  # per (ip hash, place, agent)
    agents: dict[str, str | None] = {}  # a line's userAgent as a request's header is cut
    rejected: list[tuple[int, str, str, str | None]] = []
    seen: dict[bytes, int] = {}  # (not a Counter: its __missing__, Python code, ran for each new content)
    loads, dumps, decode_error = orjson.loads, orjson.dumps, orjson.JSONDecodeError
    earliest = latest = None
    for number, line in zip(task.numbers, task.lines, strict=True):
        try:
            if line.__class__ is bytes:
                try:
                    doc = loads(line)
                except decode_error as exc:
                    raise Rejection("malformed_json", f"the line is not valid JSON: {exc}") from None
                if doc.__class__ is not dict:
                    raise Rejection("malformed_json", "a line must be one event object")
                may_hold_nul = b"\\u0000" in line
            else:
                doc, may_hold_nul = line, True
            pop = doc.pop
            if site is not None and doc.get("siteId") is None:
                doc["siteId"] = site
            ip = pop("ip", None)
            pop("context", None)  # (may hold an address; never believed from a file)
            if doc.get("eventId") is None:
                content = dumps(doc, option=_SORTED)
                # a UUID object: validation takes it as it is, and orjson writes it as its text
                earlier = seen.get(content, 0)
                doc["eventId"] = event_id_of(content, earlier)
                seen[content] = earlier + 1
            agent = pop("userAgent", None)
            if agent.__class__ is str:
                cut = agents.get(agent, _UNSEEN)
                if cut is _UNSEEN:
                    cut = agents[agent] = end_user(None, agent).user_agent
                agent = cut
            elif agent is not None:  # (not a string: no User-Agent)
                agent = None
            country = pop("country", None)
            place = _line_place(doc, country) if country is not None else None
            pop("region", None)
            pop("city", None)
            doc["context"] = IMPORT_CONTEXT
            event = to_event(doc, received_at, _NO_SKEW, believed_until, may_hold_nul=may_hold_nul)
            if registered is not None and event.site_id not in registered:
                raise unknown_site(event.site_id)
        except Rejection as rejection:
            rejected.append((number, rejection.reason, rejection.message, rejection.field))
            continue
        hashed = None
        if ip is not None and ip.__class__ is str:
            known = origins.get(ip)
            if known is None:
                known = origins[ip] = _origin(ip, salt, countries)
            hashed = known[0]
            place = place or known[1]
        key = (hashed, place or NOWHERE, agent)
        rows = groups.get(key)
        if rows is None:
            rows = groups[key] = []
        rows.append(event)
        occurred_at = event.occurred_at
        if earliest is None or occurred_at < earliest:
            earliest = occurred_at
        if latest is None or occurred_at > latest:
            latest = occurred_at
    data = copy_rows_of(
        (rows, Sender(received_at, hashed, place.country, agent, place.region, place.city))
        for (hashed, place, agent), rows in groups.items()
    )
    # the UTC days (a timestamp with another offset is another day there)
    first = earliest.astimezone(UTC).date() if earliest is not None else None
    last = latest.astimezone(UTC).date() if latest is not None else None
    ids = b"".join({event.event_id.bytes for rows in groups.values() for event in rows}) if task.want_ids else b""
    return Prepared(data, sum(map(len, groups.values())), rejected, first, last, ids)


_UNSEEN = object()
# A worker's addresses seen under the current salt: each one's hash and place, worked out once
# (most lines of an export come from addresses seen before). In memory only, never stored, and
# forgotten when the salt changes or there are too many.
_ORIGINS_MAX = 100_000
_origins: dict[str, tuple[str | None, Place]] = {}
_origins_salt = b""


def _origins_of(salt: bytes) -> dict[str, tuple[str | None, Place]]:
    global _origins, _origins_salt
    if salt != _origins_salt or len(_origins) > _ORIGINS_MAX:
        _origins, _origins_salt = {}, salt
    return _origins


def _origin(ip: str, salt: bytes, countries: Countries) -> tuple[str | None, Place]:
    address = parse_ip(ip)
    if address is None:
        return None, NOWHERE
    return ip_hash(salt, address), countries.place(address, {}, trusted_peer=False)


def unknown_site(site_id: str) -> Rejection:
    message = f"site {site_id!r} is not registered (sluice sites add); SLUICE_REQUIRE_KNOWN_SITES is on"
    return Rejection("unknown_site", message, field="siteId")


# Reading: batches of lines, never more than one batch of the file in memory here.


class _Batch(NamedTuple):
    lines: list[Any]  # NDJSON: the lines' bytes; CSV: each record as a dict
    numbers: list[int]  # each one's line number (a CSV record's first line)
    rejected: list[tuple[int, Rejection]]  # lines the reader itself turned away
    bytes_read: int


def _too_long() -> Rejection:
    return Rejection(
        "event_too_large", f"the line is over {MAX_LINE_BYTES} bytes; the limit of an event is {MAX_EVENT_BYTES}"
    )


def _ndjson_batches(stream: IO[bytes]) -> Iterator[_Batch]:
    readline = stream.readline
    number = 0
    while True:
        lines: list[bytes] = []
        numbers: list[int] = []
        rejected: list[tuple[int, Rejection]] = []
        read = 0
        while len(lines) < CHUNK_LINES:
            line = readline(MAX_LINE_BYTES + 1)
            if not line:
                break
            number += 1
            read += len(line)
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                while (rest := readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):  # skipped to its end
                    read += len(rest)
                read += len(rest)
                rejected.append((number, _too_long()))
            elif not line.isspace():  # a blank line is no event (a trailing newline, a separator)
                lines.append(line)
                numbers.append(number)
        if not lines and not rejected:
            return
        yield _Batch(lines, numbers, rejected, read)


# Objects travel in a CSV cell as JSON text, as in the pixel's query string (collector/routes.py).
_JSON_FIELDS = ("props", "attribution")


def _csv_batches(stream: IO[bytes]) -> Iterator[_Batch]:
    """Records under the header's names; an empty cell is an absent field. Raises UsageError for a
    missing or unusable header, at the first call."""
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="strict", newline="")
    try:
        yield from _csv_records(csv.reader(text))
    finally:
        text.detach()  # the caller closes the file (and never standard input)


def _csv_records(reader: Any) -> Iterator[_Batch]:
    try:
        header = next(reader)
    except StopIteration:
        raise UsageError("the CSV file is empty: its first line must name the fields") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise UsageError(f"the CSV header cannot be read: {exc}") from None
    names = [name.strip() for name in header]
    if not all(names) or len(set(names)) != len(names):
        raise UsageError(f"the CSV header must name each field once: {header!r}")
    width = len(names)
    previous = reader.line_num
    while True:
        lines: list[Any] = []
        numbers: list[int] = []
        rejected: list[tuple[int, Rejection]] = []
        at_end = False
        while len(lines) < CHUNK_LINES:
            try:
                row = next(reader)
            except StopIteration:
                at_end = True
                break
            except csv.Error as exc:  # a field over the csv module's limit, a stray quote: it goes on
                rejected.append((previous + 1, Rejection("malformed_json", f"the CSV record cannot be read: {exc}")))
                previous = reader.line_num
                continue
            except UnicodeDecodeError as exc:  # the rest of the file cannot be read either
                rejected.append((previous + 1, Rejection("malformed_json", f"the file is not UTF-8 from here: {exc}")))
                at_end = True
                break
            number, previous = previous + 1, reader.line_num
            if not any(row):
                continue
            if len(row) != width:
                message = f"the record has {len(row)} fields; the header names {width}"
                rejected.append((number, Rejection("malformed_json", message)))
                continue
            lines.append(_csv_event(names, row))
            numbers.append(number)
        if lines or rejected:
            yield _Batch(lines, numbers, rejected, 0)
        if at_end:
            return


def _csv_event(names: list[str], row: list[str]) -> dict[str, Any]:
    doc: dict[str, Any] = {name: value for name, value in zip(names, row, strict=True) if value != ""}
    for name in _JSON_FIELDS:
        value = doc.get(name)
        if isinstance(value, str):
            with contextlib.suppress(orjson.JSONDecodeError):  # else left a string, for validation to name
                doc[name] = orjson.loads(value)
    return doc


# The import itself.


@dataclass
class Summary:
    lines: int = 0  # lines (CSV: records) read, blank ones left out
    accepted: int = 0  # stored, or already stored under the same eventId
    rejected: int = 0
    rejected_by_code: dict[str, int] = field(default_factory=dict)
    first_day: date | None = None  # the UTC days the accepted events happened on
    last_day: date | None = None
    seconds: float = 0.0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["events_per_s"] = round(self.lines / self.seconds) if self.seconds else None
        return out


class Reporter:
    """Where rejections and progress go: each rejection on stderr with its line number, a progress
    bar on stderr when it is a terminal (tqdm)."""

    MAX_SHOWN = 50  # rejections printed one by one; the summary counts them all

    def __init__(self, total_bytes: int | None, show_progress: bool) -> None:
        self.shown = 0
        self._bar: Any = None
        if show_progress:
            from tqdm import tqdm

            self._bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="import", file=sys.stderr)

    def rejected(self, number: int, rejection: Rejection) -> None:
        if self.shown < self.MAX_SHOWN:
            where = f" ({rejection.field})" if rejection.field else ""
            self.write(f"line {number}: {rejection.reason}{where}: {rejection.message}")
        elif self.shown == self.MAX_SHOWN:
            self.write("(more rejected lines: only counted from here on)")
        self.shown += 1

    def write(self, message: str) -> None:
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr)

    def advance(self, read: int, lines: int) -> None:
        if self._bar is not None:
            self._bar.update(read)
            self._bar.set_postfix(lines=lines, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _open(path: str) -> tuple[IO[bytes], int | None]:
    if path == "-":
        return sys.stdin.buffer, None
    try:
        stream = open(path, "rb")  # noqa: SIM115  (closed by run_import)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        size = os.fstat(stream.fileno()).st_size
    except OSError:
        size = None
    return stream, size


def run_import(options: Options, settings: Settings) -> Summary:
    """Imports the file; raises UsageError before reading any event, and ImportStopped when
    PostgreSQL fails part-way (what was committed before stays; importing again adds only the rest)."""
    if options.format not in FORMATS:
        raise UsageError(f"unknown format {options.format!r}: {' or '.join(FORMATS)}")
    if options.site is not None and not options.site:
        raise UsageError("--site must not be empty")
    stream, size = _open(options.path)
    try:
        batches = _csv_batches(stream) if options.format == "csv" else _ndjson_batches(stream)
        first = next(batches, None)  # (a CSV header is read, and checked, before anything else)
        batches = itertools.chain([first] if first is not None else [], batches)
        reporter = Reporter(size, show_progress=sys.stderr.isatty())
        try:
            return asyncio.run(_run(options, settings, batches, reporter))
        finally:
            reporter.close()
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


class ImportStopped(RuntimeError):
    """PostgreSQL failed part-way: the lines up to `committed_through` are stored (with the summary
    so far)."""

    def __init__(self, message: str, summary: Summary) -> None:
        super().__init__(message)
        self.summary = summary


# Importing a file again: the writer's fast write COPYs each batch into `events`, finds its ids
# claimed, rolls back and does it all again the careful way, twice the work for nothing stored.
# Once a write of this import has gone the careful way, each batch's ids are looked up first, and a
# batch whose every id is stored is not sent (exactly what the careful write would have stored:
# nothing; an id is claimed in the transaction that stores its event). A batch with new events
# stops the looking up until a write goes careful again. A new file never pays for it.
_ALL_STORED = """
    select count(*) = %(n)s from event_ids
    where event_id = any(array(
        select encode(substr(%(ids)s::bytea, i * 16 + 1, 16), 'hex')::uuid
        from generate_series(0, %(n)s - 1) as i
    ))
"""


async def _all_stored(pool: Any, ids: bytes) -> bool:
    async with pool.connection() as conn:
        found = await (await conn.execute(_ALL_STORED, {"ids": ids, "n": len(ids) // 16})).fetchone()
    return bool(found and found[0])


class _InFlight(NamedTuple):
    batch: _Batch
    received_at: datetime
    prepared: asyncio.Future[Prepared]


async def _run(options: Options, settings: Settings, batches: Iterator[_Batch], reporter: Reporter) -> Summary:
    started = time.perf_counter()
    summary = Summary(dry_run=options.dry_run)
    needs_database = not options.dry_run or settings.require_known_sites
    pool = async_pool(settings, min_size=1, max_size=2, name="sluice-import") if needs_database else None
    writers = [] if options.dry_run else [GroupCommitWriter(settings, durable_commits=False) for _ in range(WRITERS)]
    loop = asyncio.get_running_loop()
    # forkserver: a forked child would share this process's PostgreSQL sockets (and could end them)
    context = multiprocessing.get_context("forkserver")
    stored_through = 0  # the last line of the batches committed so far, in order
    probed_until = 0  # the writers' careful writes when a look-up last found new events
    turn = 0  # the writer of the next batch
    try:
        registered = None
        if pool is not None:
            await pool.open(wait=True, timeout=settings.db_timeout_s)
            if settings.require_known_sites:
                async with pool.connection() as conn:
                    rows = await (await conn.execute("select site_id from sites")).fetchall()
                registered = frozenset(row[0] for row in rows)
        salts = DailySalts(pool) if pool is not None and writers else None
        for writer in writers:
            await writer.start()
        job = _Job(options.site, timedelta(seconds=settings.max_future_skew_s), settings.geoip_db, registered)
        workers = options.workers or min(4, os.cpu_count() or 1)
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(job,)) as executor:
            in_flight: deque[_InFlight] = deque()
            writes: deque[tuple[int, asyncio.Future[None]]] = deque()  # (the batch's last line, its write)

            async def settle() -> None:
                """The oldest prepared batch to a writer (two writes queued per writer at most, the
                writers in turn), else the oldest write."""
                nonlocal stored_through, probed_until, turn
                if in_flight and len(writes) < 2 * len(writers or [None]):
                    batch, received_at, future = in_flight.popleft()
                    prepared = await future
                    _count(summary, reporter, batch, prepared)
                    if writers and prepared.events:
                        if prepared.ids and await _all_stored(pool, prepared.ids):
                            writes.append((_last_line(batch), _stored(loop)))  # (in line order)
                        else:
                            if prepared.ids:  # new events: no more looking up until a write goes careful
                                probed_until = _careful_writes(writers)
                            writer, turn = writers[turn], (turn + 1) % len(writers)
                            writing = writer.write_copy_rows(prepared.data, prepared.events, received_at)
                            writes.append((_last_line(batch), asyncio.create_task(writing)))
                    reporter.advance(batch.bytes_read, summary.lines)
                elif writes:
                    last_line, written = writes[0]
                    await written
                    writes.popleft()
                    stored_through = last_line

            next_batch = loop.run_in_executor(None, next, batches, None)  # the file is read in a thread
            while (batch := await next_batch) is not None:
                next_batch = loop.run_in_executor(None, next, batches, None)
                received_at = datetime.now(UTC)
                # a dry run hashes with a throwaway salt: nothing of it is kept
                salt = await salts.get(received_at.date()) if salts is not None else os.urandom(32)
                probing = bool(writers) and _careful_writes(writers) > probed_until
                task = Task(batch.lines, batch.numbers, received_at, salt, want_ids=probing)
                future = loop.run_in_executor(executor, prepare, task) if batch.lines else _done(loop, _EMPTY)
                in_flight.append(_InFlight(batch, received_at, future))
                while len(in_flight) + len(writes) >= AHEAD:
                    await settle()
            while in_flight or writes:
                await settle()
            if writers:
                await _make_durable(pool)
    except (WriteFailed, psycopg.Error) as exc:
        summary.seconds = round(time.perf_counter() - started, 3)
        stored = f"the lines up to {stored_through} are stored" if stored_through else "nothing is stored"
        raise ImportStopped(
            f"PostgreSQL failed ({exc}); {stored}: importing again adds only the rest", summary
        ) from exc
    finally:
        for writer in writers:
            await writer.stop()
        if pool is not None:
            await pool.close()
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


_EMPTY = Prepared(b"", 0, [], None, None)


async def _make_durable(pool: Any) -> None:
    """The writers commit without waiting for the WAL flush (GroupCommitWriter's durable_commits):
    one commit that does wait, after all of theirs, flushes the WAL through every one of them (the
    WAL is one sequence), as the server's own synchronous_commit says. A commit writes its record,
    and waits, only with a transaction id."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("select pg_current_xact_id()")


def _careful_writes(writers: list[GroupCommitWriter]) -> int:
    return sum(writer.careful_writes for writer in writers)


def _stored(loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
    future: asyncio.Future[None] = loop.create_future()
    future.set_result(None)
    return future


def _done(loop: asyncio.AbstractEventLoop, prepared: Prepared) -> asyncio.Future[Prepared]:
    future: asyncio.Future[Prepared] = loop.create_future()
    future.set_result(prepared)
    return future


def _last_line(batch: _Batch) -> int:
    return max(batch.numbers[-1] if batch.numbers else 0, batch.rejected[-1][0] if batch.rejected else 0)


def _count(summary: Summary, reporter: Reporter, batch: _Batch, prepared: Prepared) -> None:
    """A batch's numbers into the summary; its rejections reported, in line order."""
    found = [(number, Rejection(reason, message, field)) for number, reason, message, field in prepared.rejected]
    rejected = sorted([*batch.rejected, *found], key=lambda each: each[0])
    for number, rejection in rejected:
        reporter.rejected(number, rejection)
        summary.rejected_by_code[rejection.reason] = summary.rejected_by_code.get(rejection.reason, 0) + 1
    summary.lines += len(batch.lines) + len(batch.rejected)
    summary.rejected += len(rejected)
    summary.accepted += prepared.events
    if prepared.first_day is not None:
        summary.first_day = min(summary.first_day or prepared.first_day, prepared.first_day)
    if prepared.last_day is not None:
        summary.last_day = max(summary.last_day or prepared.last_day, prepared.last_day)
