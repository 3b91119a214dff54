"""sluice.client against the real collector, over real HTTP: refusals, recovery, batching, the full queue."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from asgi_server import Front, serve
from e2e.harness import free_port, wait_until

from sluice.app import create_app
from sluice.client import AsyncClient, Client, Retry, Stats
from sluice.client.transport import parse_retry_after
from sluice.client.version import USER_AGENT
from sluice.settings import Settings

FAST_RETRY = Retry(base_s=0.01, max_s=0.05, attempts=10)


@pytest.fixture
def collector(settings: Settings) -> Iterator[Front]:
    """The real app behind a Front that, by default, lets everything through; yields the Front
    (its `url` attribute is where to send)."""
    front = Front(create_app(settings))
    with serve(front) as url:
        front.url = url  # type: ignore[attr-defined]
        yield front


def url_of(front: Front) -> str:
    url: str = front.url  # type: ignore[attr-defined]
    return url


def stored(db: psycopg.Connection) -> list[tuple[Any, ...]]:
    return db.execute(
        "select event_type, payload ->> 'eventName', payload ->> 'n', count(*) from events group by 1, 2, 3 order by 3"
    ).fetchall()


def test_every_event_is_stored_exactly_once_through_refusals_and_a_lost_answer(
    collector: Front, db: psycopg.Connection
) -> None:
    # first answer lost after the commit, then a plain 503, then 429 with Retry-After: 1
    collector.script = ["stored-503", "503", "429"]
    client = Client(url_of(collector), "shop", retry=FAST_RETRY, flush_interval_s=60)
    for n in range(10):
        client.track("signup", {"plan": "pro"}, n=f"{n:02d}")
    assert client.flush(timeout_s=30) is True
    assert stored(db) == [("custom", "signup", f"{n:02d}", 1) for n in range(10)]
    assert [seen.answered for seen in collector.seen] == [503, 503, 429, 202]
    assert [seen.events for seen in collector.seen] == [10, 10, 10, 10]
    assert client.stats == Stats(sent=10, retried=30, dropped=0, queued=0)
    assert client.close() is True


def test_events_sent_while_the_collector_is_not_listening_arrive_once_it_is(
    settings: Settings, db: psycopg.Connection
) -> None:
    port = free_port()
    retry = Retry(base_s=0.05, max_s=0.2, attempts=1000)
    client = Client(f"http://127.0.0.1:{port}", "shop", retry=retry, flush_interval_s=0.01)
    client.pageview("https://shop.example/a", n="1")
    client.click("https://elsewhere.example/", n="2", text="out")
    # connection refused until the server is up: the worker keeps retrying meanwhile
    wait_until(lambda: client.stats.retried >= 4, "the client to retry")
    with serve(create_app(settings), port=port):
        assert client.flush(timeout_s=30) is True
    rows = db.execute("select event_type, payload ->> 'url', payload ->> 'target', payload ->> 'text' from events")
    assert sorted(rows.fetchall(), key=str) == sorted(
        [("pageview", "https://shop.example/a", None, None), ("click", None, "https://elsewhere.example/", "out")],
        key=str,
    )
    assert client.stats.sent == 2
    assert client.stats.dropped == 0
    client.close()


def test_what_is_stored_carries_the_client_made_id_time_and_fields(collector: Front, db: psycopg.Connection) -> None:
    client = Client(url_of(collector), "shop", flush_interval_s=60)
    client.track("signup", {"plan": "pro"}, visitorId="v-1", userId="u-7")
    client.send({"eventType": "download", "siteId": "docs", "file": "a.pdf"})
    client.pageview("https://shop.example/p", siteId="other", title="P")
    assert client.flush(timeout_s=30)
    rows = db.execute(
        """select site_id, event_type, visitor_id, payload - 'eventId' - 'timestamp',
                  event_id::text = payload ->> 'eventId', client_timestamp is not null, user_agent
           from events order by event_type"""
    ).fetchall()
    assert rows == [
        ("shop", "custom", "v-1", {"eventType": "custom", "siteId": "shop", "eventName": "signup",
                                   "props": {"plan": "pro"}, "visitorId": "v-1", "userId": "u-7"},
         True, True, USER_AGENT),
        ("docs", "download", None, {"eventType": "download", "siteId": "docs", "file": "a.pdf"},
         True, True, USER_AGENT),
        ("other", "pageview", None, {"eventType": "pageview", "siteId": "other", "url": "https://shop.example/p",
                                     "title": "P"}, True, True, USER_AGENT),
    ]  # fmt: skip
    versions = db.execute("select distinct substr(event_id::text, 15, 1) from events").fetchall()
    assert versions == [("7",)]  # UUID version 7
    assert [seen.content_encoding for seen in collector.seen] == ["gzip"]
    client.close()


def test_batches_hold_at_most_500_events(collector: Front, db: psycopg.Connection) -> None:
    client = Client(url_of(collector), "shop", flush_interval_s=60, max_queue=5000)
    for n in range(1200):
        client.track("tick", n=f"{n:04d}")
    assert client.flush(timeout_s=60)
    assert [seen.events for seen in collector.seen] == [500, 500, 200]
    assert db.execute("select count(distinct event_id), count(*) from events").fetchone() == (1200, 1200)
    client.close()


def test_batches_hold_at_most_one_mebibyte(collector: Front, db: psycopg.Connection) -> None:
    client = Client(url_of(collector), "shop", flush_interval_s=60)
    for n in range(40):
        client.track("big", {"blob": "x" * 40_000}, n=f"{n:02d}")
    assert client.flush(timeout_s=60)
    assert [seen.events for seen in collector.seen] == [26, 14]
    assert all(seen.body_bytes <= 1 << 20 for seen in collector.seen)
    assert db.execute("select count(*) from events").fetchone() == (40,)
    client.close()


def test_a_mebibyte_queued_wakes_the_sender_before_its_timer(collector: Front, db: psycopg.Connection) -> None:
    # the timer is a minute away and the count far off: only the bytes can wake the thread
    client = Client(url_of(collector), "shop", flush_interval_s=60)
    client.track("first")  # starts the thread, which then waits for its timer
    for n in range(20):  # ~800 KB: under the mark, nothing is sent
        client.track("big", {"blob": "x" * 40_000}, n=f"{n:02d}")
    assert client.stats.queued == 21
    # (the thread had a second to act: it sent nothing)
    with pytest.raises(TimeoutError):
        wait_until(lambda: bool(collector.seen), "a batch", timeout_s=1.0)
    for n in range(20, 40):  # past 1 MiB queued: the thread wakes and sends, with no flush
        client.track("big", {"blob": "x" * 40_000}, n=f"{n:02d}")
    wait_until(lambda: client.stats.sent >= 27, "the sender to send a full batch unasked", timeout_s=30)
    first = collector.seen[0]
    assert (first.events, first.body_bytes <= 1 << 20) == (27, True)  # "first" and 26 big: cut at 1 MiB
    assert client.flush(timeout_s=30)
    assert sum(seen.events for seen in collector.seen) == 41
    assert all(seen.body_bytes <= 1 << 20 for seen in collector.seen)
    assert db.execute("select count(*) from events").fetchone() == (41,)
    client.close()


def test_the_size_estimate_is_close_to_and_not_over_the_json() -> None:
    from sluice.client.worker import estimated_bytes

    events: list[dict[str, Any]] = [
        {"eventType": "custom", "siteId": "shop", "eventName": "signup", "props": {"plan": "pro", "seats": 3}},
        {"eventType": "request", "siteId": "api", "route": "/users/{id}", "status": 200, "durationMs": 1.5},
        {"eventType": "big", "siteId": "s", "props": {"blob": "x" * 40_000}, "tags": ["a", "b"]},
        {"eventType": "deep", "siteId": "s", "props": {"nested": {"blob": "y" * 1000}}},
    ]
    for event in events:
        size = len(json.dumps(event, separators=(",", ":"), ensure_ascii=False))
        assert size - 1100 <= estimated_bytes(event) <= size, event  # the deep one's blob is not seen
    assert estimated_bytes(events[2]) >= 40_000


def test_a_full_queue_drops_the_oldest_events(collector: Front, db: psycopg.Connection) -> None:
    collector.hold = threading.Event()
    client = Client(url_of(collector), "shop", max_queue=5, flush_interval_s=0.01)
    client.track("e", n="00")
    assert collector.arrived.wait(timeout=30)  # e00 is in flight, held by the front
    for n in range(1, 9):
        client.track("e", n=f"{n:02d}")
    assert client.stats == Stats(sent=0, retried=0, dropped=3, queued=6)
    collector.hold.set()
    assert client.flush(timeout_s=30)
    assert stored(db) == [("custom", "e", n, 1) for n in ("00", "04", "05", "06", "07", "08")]
    assert client.stats == Stats(sent=6, retried=0, dropped=3, queued=0)
    client.close()


def test_refused_events_are_logged_once_and_dropped_the_rest_stored(
    collector: Front, db: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client(url_of(collector), "shop", flush_interval_s=60, retry=FAST_RETRY)
    client.send({"eventType": "ok", "n": "1"})
    client.send({"eventType": "bad", "timestamp": "yesterday"})
    client.send({"eventType": "bad", "timestamp": "today"})
    assert client.flush(timeout_s=30)
    # a batch of nothing but bad events: the collector answers 422, which is not retried
    client.send({"eventType": "bad", "eventId": "not-a-uuid"})
    assert client.flush(timeout_s=30)
    assert db.execute("select event_type from events").fetchall() == [("ok",)]
    assert client.stats == Stats(sent=1, retried=0, dropped=3, queued=0)
    assert [seen.answered for seen in collector.seen] == [202, 422]
    warnings = [r.getMessage() for r in caplog.records if r.name == "sluice.client" and r.levelno == logging.WARNING]
    assert len(warnings) == 2  # the second `invalid_value` event of the first batch is not logged again
    assert "invalid_value" in warnings[0]
    assert "HTTP 422 invalid_value" in warnings[1]
    client.close()


def test_recording_never_raises_and_counts_what_it_cannot_send(collector: Front, db: psycopg.Connection) -> None:
    client = Client(url_of(collector), "shop", flush_interval_s=60)
    client.track("", {"a": 1})  # no name
    client.track(None)  # type: ignore[arg-type]
    client.track("ok", {"unserialisable": object()})
    client.track("ok", {"nan": float("nan")})  # not JSON
    client.track("ok", "not a mapping")  # type: ignore[arg-type]
    client.send(42)  # type: ignore[arg-type]
    client.track("fine")
    assert client.flush(timeout_s=30)
    assert db.execute("select payload ->> 'eventName' from events").fetchall() == [("fine",)]
    assert client.stats == Stats(sent=1, retried=0, dropped=6, queued=0)
    client.close()
    client.track("after close")
    assert client.stats == Stats(sent=1, retried=0, dropped=7, queued=0)


def test_close_gives_up_at_its_deadline_and_counts_the_rest(collector: Front) -> None:
    collector.script = ["503"] * 1000
    client = Client(url_of(collector), "shop", retry=Retry(base_s=0.05, max_s=0.1, attempts=1000))
    for n in range(3):
        client.track("e", n=str(n))
    assert client.close(timeout_s=0.5) is False
    assert client.stats.dropped == 3
    assert client.stats.sent == 0
    assert client.stats.queued == 0


def test_the_async_client_flushes_and_closes_without_blocking_the_loop(
    collector: Front, db: psycopg.Connection
) -> None:
    async def main() -> Stats:
        async with AsyncClient(url_of(collector), "shop", flush_interval_s=60) as client:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.001)

            collector.script = ["503"]
            task = asyncio.create_task(ticker())
            client.track("async", n="1")
            assert await client.flush(timeout_s=30)
            task.cancel()
            assert ticks > 1  # the loop kept running while flush waited
        return client.stats

    assert asyncio.run(main()) == Stats(sent=1, retried=1, dropped=0, queued=0)
    assert stored(db) == [("custom", "async", "1", 1)]


def test_events_queued_at_interpreter_exit_are_sent(collector: Front, db: psycopg.Connection) -> None:
    script = f"""
from sluice.client import Client
client = Client({url_of(collector)!r}, "shop", flush_interval_s=60)
for n in range(3):
    client.track("exit", n=str(n))
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert stored(db) == [("custom", "exit", str(n), 1) for n in range(3)]


def test_importing_the_client_imports_nothing_of_the_server() -> None:
    script = """
import sys, json
import sluice.client, sluice.client.middleware, sluice.middleware
assert sluice.middleware.SluiceMiddleware is sluice.client.SluiceMiddleware  # one class, two import paths
print(json.dumps(sorted(sys.modules)))
"""
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    loaded = set(json.loads(out))
    server = {"starlette", "psycopg", "psycopg_pool", "uvicorn", "orjson", "jinja2", "apscheduler", "ua_parser"}
    assert server.isdisjoint(m.split(".")[0] for m in loaded)
    assert {m for m in loaded if m.startswith("sluice.") and not m.startswith("sluice.client")} == {"sluice.middleware"}


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), (None, None), ("", None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after_is_seconds_or_a_date(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds
