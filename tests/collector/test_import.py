"""`sluice import` (issue 13, "Historical data"): files of /collect events into the event log, by the
collector's validation and writer, then the ETL over the days they touch."""

from __future__ import annotations

import io
import ipaddress
import json
import sys
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from collector_testing import collector_client, post
from eventlog import CHROME, event, insert, rows, snapshot
from geoip_db import write_city_db

from sluice.cli import main
from sluice.collector import importer
from sluice.collector.client_ip import NOWHERE, ip_hash
from sluice.collector.validate import MAX_EVENT_BYTES
from sluice.collector.writer import GroupCommitWriter
from sluice.etl import pipeline
from sluice.settings import Settings

OLD = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)  # long past the lateness bound


@pytest.fixture(autouse=True)
def environment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SLUICE_SCHEMA", settings.schema)


def line(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventType": "pageview",
        "siteId": "shop",
        "url": "https://shop.example/",
        "userAgent": CHROME,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def ndjson(tmp_path: Path, lines: list[Any], name: str = "events.ndjson") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join((x if isinstance(x, bytes) else orjson.dumps(x)) + b"\n" for x in lines))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(["import", *argv])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else {}, captured.err


def test_lines_are_checked_as_collect_checks_them_and_rejected_by_line(
    settings: Settings, db: psycopg.Connection, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad: list[Any] = [
        {"eventType": "pageview"},  # no siteId
        {"eventType": "pageview", "siteId": 7},
        {"eventType": "pageview", "siteId": "shop", "timestamp": "yesterday"},
        {"eventType": "pageview", "siteId": "shop", "timestamp": "2025-03-10T12:00:00"},  # no zone
        {"eventType": "pageview", "siteId": "shop", "eventId": "not-a-uuid"},
        {"eventType": "pageview", "siteId": "shop", "props": "x"},
        {"eventType": "pageview", "siteId": "shop", "title": "a\u0000b"},
        {"eventType": "pageview", "siteId": "shop", "props": {"x" * MAX_EVENT_BYTES: 1}},
        {"eventType": "", "siteId": "shop"},
    ]
    # what /collect answers each of them, posted alone
    with collector_client(settings) as client:
        expected = [post(client, body).json()["error"] for body in bad]
    assert len(set(expected)) >= 4
    good = [line(timestamp=OLD.isoformat()), line(timestamp=(OLD + timedelta(minutes=1)).isoformat())]
    path = ndjson(tmp_path, [good[0], *bad, b"not json", b"[1, 2]", b"", good[1]])
    code, summary, err = run(capsys, str(path))
    assert code == 1  # some rejected, the rest imported
    reported = [entry.split(":")[0] for entry in err.splitlines() if entry.startswith("line ")]
    assert reported == [f"line {n}" for n in [*range(2, 2 + len(bad)), 11, 12]]  # line 13 is blank
    codes = [entry.split(": ")[1].split(" ")[0] for entry in err.splitlines() if entry.startswith("line ")]
    assert codes == [*expected, "malformed_json", "malformed_json"]
    assert "line 4: invalid_value (timestamp):" in err
    assert (summary["lines"], summary["accepted"], summary["rejected"]) == (13, 2, 11)
    assert sum(summary["rejected_by_code"].values()) == 11
    assert db.execute("select count(*) from events").fetchone() == (2,)


def test_importing_a_file_twice_stores_it_once(
    db: psycopg.Connection, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "CHUNK_LINES", 3)  # several batches, several COPYs
    lines = [line(eventId="019a4f7e-1c2d-7a3b-9e8f-5d6c7b8a9f01", timestamp=OLD.isoformat())]
    lines += [
        line(url=f"https://shop.example/{n}", timestamp=(OLD + timedelta(minutes=n)).isoformat()) for n in range(5)
    ]
    twice = line(url="https://shop.example/again", timestamp=OLD.isoformat())
    lines += [twice, twice]  # two equal lines: two events, and still two after a second import
    path = ndjson(tmp_path, lines)
    assert run(capsys, str(path), "--no-etl")[0] == 0
    first = db.execute("select event_id, payload from events order by event_id").fetchall()
    assert len(first) == 8
    assert run(capsys, str(path), "--no-etl")[0] == 0
    assert db.execute("select event_id, payload from events order by event_id").fetchall() == first
    # the ids of lines without one: the same for the same line, whatever the file around it
    assert run(capsys, str(ndjson(tmp_path, [lines[3]], "one.ndjson")), "--no-etl")[0] == 0
    assert db.execute("select count(*) from events").fetchone() == (8,)
    ids = {row[0] for row in first}
    assert {uuid.version for uuid in ids} == {5, 7}  # v7: the line's own eventId


def test_the_ip_is_hashed_and_placed_then_dropped_and_the_line_says_where_and_what(
    settings: Settings,
    db: psycopg.Connection,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLUICE_GEOIP_DB", str(write_city_db(tmp_path / "city.mmdb")))
    lines = [
        line(visitorId="a", ip="8.8.8.8", timestamp=OLD.isoformat()),  # placed by the City database
        line(visitorId="b", ip="8.8.8.8", country="se", city="Malmö", timestamp=OLD.isoformat()),  # its own
        line(visitorId="c", ip="not an address", userAgent=None, context={"ip": "9.9.9.9"}),
        line(visitorId="d", siteId=None, timestamp=OLD.isoformat()),  # --site fills it
    ]
    code, summary, _ = run(capsys, str(ndjson(tmp_path, lines)), "--site", "blog", "--no-etl")
    assert (code, summary["accepted"]) == (0, 4)
    stored = db.execute(
        "select visitor_id, site_id, ip_hash, country, region, city, user_agent from events order by visitor_id"
    ).fetchall()
    salt = bytes(db.execute("select salt from daily_salts where day = current_date").fetchone()[0])  # type: ignore[index]
    hashed = ip_hash(salt, ipaddress.ip_address("8.8.8.8"))
    assert stored == [
        ("a", "shop", hashed, "DE", "DE-BE", "Berlin", CHROME),
        ("b", "shop", hashed, "SE", None, "Malmö", CHROME),
        ("c", "shop", None, None, None, None, None),
        ("d", "blog", None, None, None, None, CHROME),
    ]
    payloads = [row[0] for row in db.execute("select payload from events")]
    for payload in payloads:
        assert payload["context"] == {"source": "import"}
        assert not {"ip", "userAgent", "country", "region", "city"} & payload.keys()
    for address in ("8.8.8.8", "9.9.9.9"):  # nowhere in any text column of any table
        for table, column in db.execute(
            """select table_name, column_name from information_schema.columns
               where table_schema = 'sluice' and data_type in ('text', 'jsonb', 'bytea')"""
        ).fetchall():
            found = db.execute(
                psycopg.sql.SQL("select count(*) from {} where {}::text like %s").format(
                    psycopg.sql.Identifier(table), psycopg.sql.Identifier(column)
                ),
                (f"%{address}%",),
            ).fetchone()
            assert found == (0,), f"{address} in {table}.{column}"


def test_old_imported_events_reach_every_table_and_equal_a_rebuild(
    settings: Settings, db: psycopg.Connection, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # live traffic today, processed before the import
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    insert(db, [event(at_=now, site="shop", visitor="live")])
    pipeline.run(settings)
    history = [
        line(visitorId="v1", timestamp=OLD.isoformat(), url="https://shop.example/a"),
        line(visitorId="v1", timestamp=(OLD + timedelta(minutes=2)).isoformat(), url="https://shop.example/b"),
        line(visitorId="v2", timestamp=(OLD + timedelta(days=3)).isoformat()),
        line(visitorId="bot", userAgent=None, timestamp=OLD.isoformat()),  # no agent: a script, as live
    ]
    code, summary, _ = run(capsys, str(ndjson(tmp_path, history)))
    assert code == 0
    assert (summary["first_day"], summary["last_day"]) == ("2025-03-10", "2025-03-13")
    assert summary["etl"]["kind"] == "backfill"
    assert summary["etl"]["events_processed"] == 4
    daily = rows(db, "select day, pageviews, visitors, sessions from daily_metrics order by day")
    assert daily[:2] == [
        {"day": date(2025, 3, 10), "pageviews": 2, "visitors": 1, "sessions": 1},
        {"day": date(2025, 3, 13), "pageviews": 1, "visitors": 1, "sessions": 1},
    ]
    assert daily[2]["day"] == now.date()  # the live day, untouched
    assert rows(db, "select count(*) as n from sessions where is_bot") == [{"n": 1}]
    # a live event as late is still left out
    insert(db, [event(at_=OLD + timedelta(days=1), received=now, site="shop", visitor="late")])
    assert pipeline.run(settings).events_too_late == 1
    tables = snapshot(db)
    pipeline.run(settings, "rebuild")
    assert snapshot(db) == tables


def test_csv_with_a_header_standard_input_and_a_dry_run(
    db: psycopg.Connection, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (
        "eventType,siteId,timestamp,url,props,userAgent\n"
        f'pageview,shop,{OLD.isoformat()},https://shop.example/,"{{""plan"": ""pro""}}","{CHROME}"\n'
        'custom,shop,yesterday,,"a\nb",\n'  # a quoted field over two lines: the next record is line 5
        f"pageview,shop,{OLD.isoformat()},https://shop.example/x,,\n"
        "pageview,shop\n"
    )
    path = tmp_path / "events.csv"
    path.write_text(text)
    code, summary, err = run(capsys, str(path), "--format", "csv", "--dry-run")
    assert (code, summary["accepted"], summary["rejected"], summary["dry_run"]) == (1, 2, 2, True)
    assert "line 3: wrong_type (props)" in err
    assert "line 6: malformed_json: the record has 2 fields; the header names 6" in err
    assert db.execute("select count(*) from events").fetchone() == (0,)  # a dry run stores nothing

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    code, summary, _ = run(capsys, "-", "--format", "csv", "--no-etl")
    assert (code, summary["accepted"]) == (1, 2)
    assert db.execute("select payload -> 'props' from events where payload ->> 'props' is not null").fetchall() == [
        ({"plan": "pro"},)
    ]


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, str(tmp_path / "missing.ndjson"))[0] == 2
    (tmp_path / "empty.csv").write_text("")
    code, _, err = run(capsys, str(tmp_path / "empty.csv"), "--format", "csv")
    assert code == 2
    assert "first line must name the fields" in err
    (tmp_path / "twice.csv").write_text("siteId,siteId\nshop,shop\n")
    assert run(capsys, str(tmp_path / "twice.csv"), "--format", "csv")[0] == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["import", "x", "--format", "xml"])
    assert exit_info.value.code == 2


def test_a_line_too_long_is_skipped_to_its_end(
    db: psycopg.Connection, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    huge = b'{"eventType": "pageview", "siteId": "shop", "title": "' + b"x" * (importer.MAX_LINE_BYTES * 2) + b'"}'
    path = ndjson(tmp_path, [line(timestamp=OLD.isoformat()), huge, line(visitorId="after", timestamp=OLD.isoformat())])
    code, summary, err = run(capsys, str(path), "--no-etl")
    assert (code, summary["accepted"], summary["rejected_by_code"]) == (1, 2, {"event_too_large": 1})
    assert "line 2: event_too_large" in err
    assert db.execute("select count(*) from events where visitor_id = 'after'").fetchone() == (1,)


def test_unknown_sites_are_rejected_when_sites_must_be_known(
    db: psycopg.Connection, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sluice.collector import sites

    sites.add(db, "shop", None, [])
    monkeypatch.setenv("SLUICE_REQUIRE_KNOWN_SITES", "1")
    path = ndjson(tmp_path, [line(timestamp=OLD.isoformat()), line(siteId="other", timestamp=OLD.isoformat())])
    code, summary, err = run(capsys, str(path), "--no-etl")
    assert (code, summary["accepted"], summary["rejected_by_code"]) == (1, 1, {"unknown_site": 1})
    assert "line 2: unknown_site (siteId)" in err


def test_the_progress_bar_goes_to_a_terminal_only(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = importer.Reporter(1000, show_progress=True)
    reporter.advance(500, 10)
    reporter.rejected(3, importer.unknown_site("x"))
    reporter.close()
    err = capsys.readouterr().err
    assert "import" in err
    assert "line 3: unknown_site (siteId)" in err
    assert "%" in err  # tqdm's bar: 50%


def test_the_days_touched_are_utc_days_whatever_the_offset(
    db: psycopg.Connection, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 22:30 at UTC-5 on the 13th is 03:30 UTC on the 14th: the day the ETL counts it on, so the
    # backfill must reach the 14th (the 13th in the line's own zone would leave it out)
    late_evening = datetime(2025, 3, 13, 22, 30, tzinfo=timezone(timedelta(hours=-5)))
    early = datetime(2025, 3, 10, 0, 30, tzinfo=timezone(timedelta(hours=2)))  # the 9th, 22:30 UTC
    lines = [
        line(visitorId="v1", timestamp=early.isoformat()),
        line(visitorId="v2", timestamp=late_evening.isoformat()),
    ]
    code, summary, _ = run(capsys, str(ndjson(tmp_path, lines)))
    assert code == 0
    assert (summary["first_day"], summary["last_day"]) == ("2025-03-09", "2025-03-14")
    assert summary["etl"]["events_processed"] == 2
    assert rows(db, "select day, pageviews from daily_metrics order by day") == [
        {"day": date(2025, 3, 9), "pageviews": 1},
        {"day": date(2025, 3, 14), "pageviews": 1},
    ]


def test_an_address_seen_in_earlier_batches_is_hashed_alike_and_forgotten_with_its_salt(
    db: psycopg.Connection, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "CHUNK_LINES", 1)  # a batch per line, all in one worker
    monkeypatch.setattr(importer, "_ORIGINS_MAX", 1)  # the worker's addresses forgotten past one
    addresses = ["8.8.8.8", "9.9.9.9", "8.8.8.8", "2001:4860:4860::8888", "8.8.8.8"]
    lines = [line(visitorId=f"v{n}", ip=ip, timestamp=OLD.isoformat()) for n, ip in enumerate(addresses)]
    code, summary, _ = run(capsys, str(ndjson(tmp_path, lines)), "--workers", "1", "--no-etl")
    assert (code, summary["accepted"]) == (0, 5)
    salt = bytes(db.execute("select salt from daily_salts where day = current_date").fetchone()[0])  # type: ignore[index]
    stored = db.execute("select visitor_id, ip_hash from events order by visitor_id").fetchall()
    assert stored == [(f"v{n}", ip_hash(salt, ipaddress.ip_address(ip))) for n, ip in enumerate(addresses)]
    # in this process: another salt finds none of the addresses of the one before
    origins = importer._origins_of(b"a" * 32)
    origins["8.8.8.8"] = ("hash", NOWHERE)
    assert importer._origins_of(b"a" * 32) == {"8.8.8.8": ("hash", NOWHERE)}
    assert importer._origins_of(b"b" * 32) == {}


def test_importing_again_sends_no_batch_whose_every_id_is_stored(
    db: psycopg.Connection, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []  # the events of each batch the import hands to the writer

    class Writer(GroupCommitWriter):
        async def write_copy_rows(self, data: bytes, events: int, oldest: datetime) -> None:
            sent.append(events)
            await super().write_copy_rows(data, events, oldest)

    monkeypatch.setattr(importer, "GroupCommitWriter", Writer)
    monkeypatch.setattr(importer, "CHUNK_LINES", 1)  # a batch per line
    same_id = "019a4f7e-1c2d-7a3b-9e8f-5d6c7b8a9f01"
    lines = [line(visitorId=f"v{n}", timestamp=(OLD + timedelta(minutes=n)).isoformat()) for n in range(30)]
    lines[20:22] = [line(visitorId="twice", eventId=same_id, timestamp=OLD.isoformat())] * 2
    path = ndjson(tmp_path, lines)
    assert run(capsys, str(path), "--no-etl")[0] == 0
    stored = db.execute("select event_id, payload from events order by event_id").fetchall()
    assert len(stored) == 29  # (the two lines with one id: one event)
    assert len(sent) == 30

    sent.clear()
    new = line(visitorId="new", timestamp=OLD.isoformat())
    code, summary, _ = run(capsys, str(ndjson(tmp_path, [*lines, new], "again.ndjson")), "--no-etl")
    assert (code, summary["accepted"], summary["rejected"]) == (0, 31, 0)
    # the first batches go to the writer before any of its writes has found a stored id; then only
    # the batch with a new event is sent
    assert len(sent) <= importer.AHEAD + 2, sent
    assert sent[-1] == 1
    after = db.execute("select event_id, payload from events where visitor_id <> 'new' order by event_id").fetchall()
    assert after == stored
    assert db.execute("select count(*) from events where visitor_id = 'new'").fetchone() == (1,)


def test_a_made_id_is_the_uuid5_of_the_line_and_its_rank_among_equal_lines() -> None:
    content = b'{"eventType":"pageview","siteId":"shop"}'
    assert importer.event_id_of(content, 0) == uuid.uuid5(importer.ID_NAMESPACE, content.decode())
    assert importer.event_id_of(content, 2) == uuid.uuid5(importer.ID_NAMESPACE, content.decode() + "#2")
    assert importer.event_id_of(content, 0) == importer.event_id_of(content, 0)  # (the namespace's SHA-1 is copied)
