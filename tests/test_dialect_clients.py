"""The products' own clients, unmodified, send to a running `sluice serve`: segment-analytics-python,
rudder-sdk-python and posthog (Python, in this process), @segment/analytics-node,
@rudderstack/rudder-sdk-node and posthog-node (Node.js, tests/dialect_clients/send.js). Each sends
a page, a track and an identify, flushes, and reports no error; then the ETL runs and the rows say
who the visitor was, their pageviews, the custom event's name and properties, the UTM and the
country of the end user's address (8.8.8.8: US)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import posthog
import psycopg
import pytest
import rudderstack.analytics.client as rudderstack
import segment.analytics.client as segment
from eventlog import settle
from serving import Serving, start_serve

from sluice.collector import sites
from sluice.etl import pipeline
from sluice.settings import Settings

REPO = Path(__file__).resolve().parent.parent
CLIENTS = ("segment-py", "rudder-py", "posthog-py", "segment-node", "rudder-node", "posthog-node")
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
CONTEXT = {
    "ip": "8.8.8.8",
    "userAgent": CHROME,
    "page": {"url": "https://shop.example/pricing?utm_source=news", "path": "/pricing", "title": "Pricing"},
    "campaign": {"source": "news", "medium": "email", "name": "spring", "term": "plans", "content": "banner"},
}
POSTHOG_PROPERTIES = {"$ip": "8.8.8.8", "utm_source": "news", "utm_medium": "email", "utm_campaign": "spring"}


@pytest.fixture
def keys(db: psycopg.Connection) -> dict[str, str]:
    """A site per client, so that each one's rows are told apart."""
    made = {}
    for name in CLIENTS:
        site = sites.add(db, name, None, [])
        assert site is not None
        made[name] = site[1]
    return made


@pytest.fixture
def sluice(settings: Settings, tmp_path: Path) -> Iterator[Serving]:
    env = {"DATABASE_URL": settings.database_url, "SLUICE_SCHEMA": settings.schema, "SLUICE_ETL_SCHEDULE": "off"}
    serving = start_serve(env, tmp_path, cwd=REPO)
    try:
        yield serving
    finally:
        serving.stop()


@pytest.fixture(scope="session")
def node_clients() -> Path:
    subprocess.run([str(REPO / "scripts" / "install-dialect-clients.sh")], check=True)
    return Path(os.environ.get("SLUICE_NODE_CLIENTS", REPO / ".venv" / "node-clients")) / "node_modules"


def _segment_like(client: Any, name: str) -> None:
    anonymous_id = f"{name}-anon"
    client.page(anonymous_id=anonymous_id, name="Pricing", properties={"section": "top"}, context=CONTEXT)
    client.track(
        anonymous_id=anonymous_id, event="Plan Chosen", properties={"plan": "pro", "seats": 3}, context=CONTEXT
    )
    client.identify(
        anonymous_id=anonymous_id, user_id=f"{name}-user", traits={"email": "a@shop.example"}, context=CONTEXT
    )
    client.flush()
    client.join()


def test_the_real_clients_send_and_the_etl_reads_them(
    sluice: Serving, keys: dict[str, str], node_clients: Path, db: psycopg.Connection, settings: Settings
) -> None:
    errors: list[str] = []

    def failed(error: Exception, batch: Any) -> None:
        errors.append(repr(error))

    _segment_like(segment.Client(keys["segment-py"], host=sluice.url, on_error=failed, max_retries=0), "segment-py")
    _segment_like(rudderstack.Client(keys["rudder-py"], host=sluice.url, on_error=failed, max_retries=0), "rudder-py")
    ph = posthog.Posthog(keys["posthog-py"], host=sluice.url, on_error=failed, max_retries=0)
    anon = "posthog-py-anon"
    page = {**POSTHOG_PROPERTIES, "$current_url": "https://shop.example/pricing", "$pathname": "/pricing"}
    ph.capture("$pageview", distinct_id=anon, properties=page)
    ph.capture("Plan Chosen", distinct_id=anon, properties={**POSTHOG_PROPERTIES, "plan": "pro", "seats": 3})
    ph.capture("$identify", distinct_id="posthog-py-user", properties={"$anon_distinct_id": anon, "$ip": "8.8.8.8"})
    ph.flush()
    ph.shutdown()
    assert errors == []

    node_keys = {"segment": keys["segment-node"], "rudderstack": keys["rudder-node"], "posthog": keys["posthog-node"]}
    sent = subprocess.run(
        ["node", str(REPO / "tests" / "dialect_clients" / "send.js"), sluice.url, json.dumps(node_keys)],
        env={**os.environ, "NODE_PATH": str(node_clients)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (sent.returncode, sent.stderr, sent.stdout.strip()) == (0, "", "sent")

    settle(db)
    pipeline.run(settings)
    rows = db.execute(
        """select s.site_id, s.event_type, s.visitor_key, s.user_id, s.path, s.utm_source, s.utm_medium,
                  s.utm_campaign, s.country, e.payload ->> 'eventName', e.payload -> 'props'
           from stg_events as s inner join events as e using (event_id)
           order by s.site_id, s.event_type"""
    ).fetchall()
    expected = []
    for name in CLIENTS:
        anon = f"{name}-anon"
        utm = ("news", "email", "spring")
        if name.startswith("posthog"):
            props = {"utm_source": "news", "utm_medium": "email", "utm_campaign": "spring"}
            traits = {"email": "a@shop.example"} if name == "posthog-node" else {}  # (identify() is node's only)
            expected += [
                (name, "custom", anon, None, None, *utm, "US", "Plan Chosen", {**props, "plan": "pro", "seats": 3}),
                (name, "identify", anon, f"{name}-user", None, None, None, None, "US", None, traits),
                (name, "pageview", anon, None, "/pricing", *utm, "US", None, props),
            ]
        else:
            expected += [
                (name, "custom", anon, None, "/pricing", *utm, "US", "Plan Chosen", {"plan": "pro", "seats": 3}),
                (name, "identify", anon, f"{name}-user", "/pricing", *utm, "US", None, {"email": "a@shop.example"}),
                (name, "pageview", anon, None, "/pricing", *utm, "US", "Pricing", {"section": "top"}),
            ]
    assert rows == sorted(expected, key=lambda row: (row[0], row[1]))
    # the end user's address was used (the country), then dropped: no raw IP at rest
    assert db.execute("select count(*) from events where payload::text like '%8.8.8.8%'").fetchone() == (0,)
    # all five UTM fields are kept in the log
    utm_params = db.execute(
        "select distinct payload -> 'attribution' -> 'utmParams' from events where site_id = 'segment-py'"
    ).fetchall()
    assert utm_params == [
        (
            {
                "utm_source": "news",
                "utm_medium": "email",
                "utm_campaign": "spring",
                "utm_term": "plans",
                "utm_content": "banner",
            },
        )
    ]
    # each identify linked the anonymous visitor to the user
    linked = db.execute("select site_id, visitor_key, user_id from visitor_users order by site_id").fetchall()
    assert linked == sorted((name, f"{name}-anon", f"{name}-user") for name in CLIENTS)
    sessions = db.execute(
        "select site_id, visitor_key, pageview_count, is_bot from sessions order by site_id"
    ).fetchall()
    assert sessions == sorted((name, f"{name}-anon", 1, False) for name in CLIENTS)
    # every dialect's custom events reach the tracker's custom-events tables (issue 15)
    custom = db.execute(
        "select site_id, event_name, events, visitors, sessions from daily_custom_events order by site_id"
    ).fetchall()
    assert custom == sorted((name, "Plan Chosen", 1, 1, 1) for name in CLIENTS)
    custom_props = db.execute(
        """select site_id, prop_key, prop_value, events from daily_custom_event_props
           where event_name = 'Plan Chosen' and prop_key in ('plan', 'seats') order by site_id, prop_key"""
    ).fetchall()
    assert custom_props == sorted(
        row for name in CLIENTS for row in ((name, "plan", "pro", 1), (name, "seats", "3", 1))
    )
