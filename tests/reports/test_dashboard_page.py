"""The dashboard page over the known shop (reports_testing): what it shows, that every number is the
API's for the same period, the pickers' URLs, the CSV links, and escaping of the visitors' text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest
from eventlog import event, insert
from page_numbers import from_api, shown
from starlette.testclient import TestClient

from sluice.app import create_app
from sluice.etl import pipeline
from sluice.reports import queries, view
from sluice.settings import Settings

from .reports_testing import READ, reports_settings

ORIGIN = {"Origin": "http://testserver"}


def sign_in(client: TestClient) -> TestClient:
    response = client.post("/login", data={"token": "read-t0ken"}, headers=ORIGIN, follow_redirects=False)
    assert response.status_code == 303
    return client


@pytest.fixture
def signed_in(shop: TestClient) -> TestClient:
    return sign_in(shop)


def api(client: TestClient, path: str, **params: str) -> Any:
    response = client.get(f"/api/v1/sites/shop/{path}", params=params, headers=READ)
    assert response.status_code == 200, response.text
    return response.json()


def test_home_leads_to_the_first_site_over_seven_days(signed_in: TestClient) -> None:
    response = signed_in.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard?site=shop&period=7d"
    response = signed_in.get("/dashboard", follow_redirects=False)
    assert response.headers["location"] == "/dashboard?site=shop&period=7d"


def test_the_page_shows_the_known_week(signed_in: TestClient) -> None:
    response = signed_in.get("/dashboard?site=shop&period=7d")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert re.fullmatch(r"queries;dur=\d+\.\d, render;dur=\d+\.\d", response.headers["server-timing"])
    numbers = shown(response.text)
    # 7d is 03-04..03-10: v1's three sessions and v2's; before it (02-25..03-03), v3's one bounce.
    assert {key: numbers["summary"][key] for key, _ in view.CARDS} == {
        "visitors": 2,
        "pageviews": 5,
        "sessions": 4,
        "bounce_rate": 0.5,
        "avg_session_duration_s": 105.0,
        "events": 10,
    }
    assert numbers["summary"]["previous"] == {
        "visitors": 1,
        "pageviews": 1,
        "sessions": 1,
        "bounce_rate": 1.0,
        "avg_session_duration_s": 0.0,
        "events": 1,
    }
    html = response.text
    assert "<title>shop · Last 7 days · Sluice</title>" in html
    assert "Last 7 days: 2026-03-04 to 2026-03-10 (UTC), against 2026-02-25 to 2026-03-03" in html
    card = re.search(r'<li class="card metric" id="metric-bounce_rate">.*?</li>', html, re.S)
    assert card is not None
    assert '<p class="value"><data value="0.5">50.0%</data></p>' in card.group(0)
    assert '<span class="up"><data value="-0.5">\u221250.0%</data></span>' in card.group(0)  # fewer bounces: good
    assert numbers["points"] == [
        {"label": f"2026-03-{day:02d}", "pageviews": pv, "visitors": vi, "sessions": se}
        for day, pv, vi, se in [
            (4, 0, 0, 0),
            (5, 0, 0, 0),
            (6, 0, 0, 0),
            (7, 0, 0, 0),
            (8, 2, 1, 1),
            (9, 1, 1, 1),
            (10, 2, 2, 2),
        ]
    ]
    assert numbers["lists"]["path"] == [["/a", 3, 1], ["/b", 2, 2]]
    assert numbers["lists"]["short_code"] == [["(none)", 1, 1], ["spring", 1, 1]]
    assert numbers["lists"]["referrer_domain"] == [["(none)", 3, 2], ["google.com", 2, 1]]
    assert numbers["lists"]["event_name"] == [["Add to cart", 2, 1], ["Checkout", 1, 1]]  # events, visitors
    assert numbers["realtime"] == 0  # NOW is 03-10 12:30; the last event was at 11:32


@pytest.mark.parametrize(
    "query",
    [
        {"period": "7d"},
        {"period": "30d"},
        {"period": "today"},
        {"period": "yesterday"},
        {"period": "24h"},
        {"period": "month"},
        {"period": "last-month"},
        {"period": "12mo"},
        {"period": "all"},
        {"from": "2026-03-08", "to": "2026-03-09"},
    ],
)
def test_every_number_on_the_page_is_the_apis(counted_shop: TestClient, query: dict[str, str]) -> None:
    """With and without postgresql-hll (visitors of several days from sketches, or exact)."""
    signed_in = sign_in(counted_shop)
    response = signed_in.get("/dashboard", params={"site": "shop", **query})
    assert response.status_code == 200
    page = shown(response.text)
    assert page == from_api(lambda path, **params: api(signed_in, path, **params), query)
    assert set(queries.DIMENSIONS) - page["lists"].keys() <= {"event_name"}  # shown when it has rows


@pytest.mark.parametrize("period", ["7d", "12mo", "24h"])
def test_the_lists_bars_are_the_apis_shares(counted_shop: TestClient, period: str) -> None:
    """The page's lists take their totals from its summary (one totals() for the page, not one per
    list): each row's bar is still the API's share, which asks for the total itself."""
    signed_in = sign_in(counted_shop)
    html = signed_in.get("/dashboard", params={"site": "shop", "period": period}).text
    bars = [float(width) for width in re.findall(r'<rect width="([0-9.]+)" height="1"/>', html)]
    expected = []
    for dimension, _, _ in view.LISTS:
        if dimension not in queries.DIMENSIONS:
            continue
        rows = api(signed_in, f"breakdown/{dimension}", period=period, limit="10")["rows"]
        expected += [round((row["share"] or 0) * 100, 1) for row in rows]
    assert bars == expected
    assert any(0 < bar < 100 for bar in bars)


def test_changing_the_period_changes_the_numbers(signed_in: TestClient) -> None:
    week = shown(signed_in.get("/dashboard?site=shop&period=7d").text)["summary"]
    month = shown(signed_in.get("/dashboard?site=shop&period=30d").text)["summary"]
    assert (week["visitors"], week["sessions"]) == (2, 4)
    assert (month["visitors"], month["sessions"]) == (3, 5)  # v3's visit on 03-02 too


def test_the_csv_links_answer_with_the_cookie_alone(signed_in: TestClient) -> None:
    html = signed_in.get("/dashboard?site=shop&period=7d").text
    links = re.findall(r'<a href="(/api/v1/[^"]+)"', html)
    assert "/api/v1/sites/shop/summary?period=7d&amp;format=csv" in links
    assert (
        "/api/v1/sites/shop/timeseries?period=7d&amp;interval=day&amp;metrics=pageviews%2Cvisitors%2Csessions&amp;format=csv"
        in links
    )
    assert len(links) == 2 + len(queries.DIMENSIONS)
    for link in links:
        response = signed_in.get(link.replace("&amp;", "&"))  # no Authorization header: the cookie
        assert response.status_code == 200, link
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
    summary_csv = signed_in.get("/api/v1/sites/shop/summary?period=7d&format=csv").text
    assert summary_csv.splitlines()[:2] == ["metric,value,previous,change", "pageviews,5,1,4.0"]


def test_the_pickers_are_labelled_get_forms_naming_the_choice(signed_in: TestClient) -> None:
    html = signed_in.get("/dashboard?site=shop&period=30d").text
    assert '<form class="pickers" method="get" action="/dashboard" id="pickers">' in html
    assert '<label for="site">Site</label>' in html
    assert '<option value="shop" selected>shop</option>' in html
    assert '<label for="period">Period</label>' in html
    assert '<option value="30d" selected>Last 30 days</option>' in html
    assert '<label for="from">From</label><input id="from" name="from" type="date" value="2026-02-09" required>' in html
    nonce = re.search(r'<script nonce="([^"]+)">', html)
    assert nonce is not None
    policy = signed_in.get("/dashboard?site=shop&period=30d").headers["content-security-policy"]
    assert policy.startswith("default-src 'none'; style-src 'nonce-")
    assert "script-src 'nonce-" in policy


def test_a_custom_range_shows_in_the_period_picker(signed_in: TestClient) -> None:
    html = signed_in.get("/dashboard?site=shop&from=2026-03-08&to=2026-03-09").text
    assert '<option value="custom" selected>2026-03-08 to 2026-03-09</option>' in html
    assert (
        '<input type="hidden" name="from" value="2026-03-08"><input type="hidden" name="to" value="2026-03-09">' in html
    )
    assert shown(html)["summary"]["sessions"] == 2


@pytest.mark.parametrize(
    ("query", "location"),
    [
        ("site=shop&period=7d&from=2026-03-08&to=2026-03-09", "/dashboard?site=shop&period=7d"),
        ("site=shop&period=custom&from=2026-03-08&to=2026-03-09", "/dashboard?site=shop&from=2026-03-08&to=2026-03-09"),
        ("site=shop", "/dashboard?site=shop&period=7d"),  # the URL always names the period
    ],
)
def test_the_pickers_mixed_choice_redirects_to_a_clean_url(signed_in: TestClient, query: str, location: str) -> None:
    response = signed_in.get(f"/dashboard?{query}", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == location


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("site=shop&period=fortnight", 422, "period=&#39;fortnight&#39; is not one of today, yesterday"),
        ("site=shop&from=2026-03-09&to=2026-03-01", 422, "to=2026-03-01 is before from=2026-03-09"),
        ("site=shop&from=March&to=2026-03-01", 400, "from=&#39;March&#39; is not a date (YYYY-MM-DD)"),
        ("site=nowhere&period=7d", 404, "Sluice has no data for site &#39;nowhere&#39;."),
    ],
)
def test_a_bad_choice_shows_the_reason_with_the_pickers(
    signed_in: TestClient, query: str, status: int, message: str
) -> None:
    response = signed_in.get(f"/dashboard?{query}")
    assert response.status_code == status
    assert '<p class="error" role="alert">' + message in response.text
    assert '<label for="site">Site</label>' in response.text
    assert 'id="metric-' not in response.text


def test_without_any_data_the_page_says_so(settings: Settings) -> None:
    with TestClient(create_app(reports_settings(settings))) as client:
        client.post("/login", data={"token": "read-t0ken"}, headers=ORIGIN)
        response = client.get("/")
    assert response.status_code == 200
    assert str(response.url) == "http://testserver/dashboard"
    assert "No data yet: a site appears here once the ETL has counted its first visit." in response.text


def test_a_bearer_token_reaches_the_page_too(shop: TestClient) -> None:
    assert shop.get("/dashboard?site=shop&period=7d", headers=READ).status_code == 200


HOSTILE = '"><script>alert(1)</script>'


@pytest.fixture
def hostile(db: psycopg.Connection, settings: Settings, fixed_clock: datetime) -> Iterator[TestClient]:
    """A site whose visitors wrote markup into everything they control: the path, the referrer,
    the UTM tags, the link target, and the site id itself."""
    site = f"<b>{HOSTILE}</b>"
    url = f"https://shop.test/{HOSTILE}?utm_source={HOSTILE}&utm_campaign=%3Cimg%20src%3Dx%3E"
    insert(
        db,
        [
            event(at_="2026-03-10 10:00", site=site, url=url, referrer=f"https://{HOSTILE}.example/"),
            event("click", at_="2026-03-10 10:01", site=site, url=url, target=f"https://x.example/{HOSTILE}"),
        ],
    )
    pipeline.run(settings)
    with TestClient(create_app(reports_settings(settings))) as client:
        client.post("/login", data={"token": "read-t0ken"}, headers=ORIGIN)
        yield client


def test_the_visitors_text_is_escaped_everywhere(hostile: TestClient) -> None:
    response = hostile.get("/", follow_redirects=True)
    assert response.status_code == 200
    html = response.text
    assert html.count("<script") == 1  # the page's own
    assert "<img" not in html
    assert "<b>" not in html
    assert "&lt;b&gt;&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;/b&gt;" in html  # the site, in the picker
    numbers = shown(html)
    assert ["/" + HOSTILE, 1, 1] in numbers["lists"]["path"]
    assert [HOSTILE, 1, 1] in numbers["lists"]["utm_source"]
    assert ["<img src=x>", 1, 1] in numbers["lists"]["utm_campaign"]
    # the CSV links carry the site quoted into the path and the query
    assert "/api/v1/sites/%3Cb%3E%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E%3C%2Fb%3E/summary?" in html
