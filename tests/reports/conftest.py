"""Fixtures of the reports' tests: the known shop (reports_testing.py) behind a fixed clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import psycopg
import pytest
from eventlog import insert
from starlette.testclient import TestClient

from sluice.app import create_app
from sluice.etl import pipeline
from sluice.reports import api
from sluice.settings import Settings

from .reports_testing import NOW, reports_settings, shop_events


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(api, "now", lambda: NOW)
    return NOW


@pytest.fixture
def shop(db: psycopg.Connection, settings: Settings, fixed_clock: datetime) -> Iterator[TestClient]:
    """A client of the app over the shop's events, processed by the ETL."""
    insert(db, shop_events())
    pipeline.run(settings)
    with TestClient(create_app(reports_settings(settings))) as client:
        yield client


@pytest.fixture(params=["sketches", "exact"])
def counted_shop(request: pytest.FixtureRequest, db: psycopg.Connection, settings: Settings) -> Iterator[TestClient]:
    """The shop, twice: in a database with postgresql-hll (visitors of several days from sketches)
    and in one without it (the ETL keeps no sketches; visitors counted from sessions)."""
    if request.param == "exact":
        db.execute("drop extension hll cascade")
    yield request.getfixturevalue("shop")
    assert_sketches_kept(db, request.param == "sketches")


def assert_sketches_kept(db: psycopg.Connection, kept: bool) -> None:
    """With the extension, every day has its sketch; without it, none."""
    row = db.execute(
        "select (select count(*) from daily_visitor_sketches), (select count(*) from daily_metrics)"
    ).fetchone()
    assert row is not None
    assert row[0] == (row[1] if kept else 0)
