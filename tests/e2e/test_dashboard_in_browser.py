"""The dashboard in headless Chromium, through nginx: sign in, the page's numbers against the API's,
another period, the CSV links on the cookie, no console errors, no sideways scrolling at 375 px.
Screenshots of the phone and the desktop layouts are saved under the test's tmp_path (printed)."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from eventlog import event, insert
from page_numbers import from_api, shown
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select

from .chromium import browser_log
from .conftest import ADMIN_TOKEN, READ_TOKEN
from .harness import fetch, run_etl_until_caught_up, wait_until
from .nginx_conf import Nginx
from .sluice_server import Sluice

SITE = "e2e-news"


def news_events(now: datetime) -> list[dict[str, Any]]:
    """Four visitors: two this week, one 20 days ago (in 30d, not in 7d), one right now (realtime)."""
    page = "https://news.test"
    return [
        event(at_=now - timedelta(days=2), site=SITE, visitor="v1", url=f"{page}/"),
        event(at_=now - timedelta(days=2, minutes=-3), site=SITE, visitor="v1", url=f"{page}/post"),
        event(
            at_=now - timedelta(hours=1),
            site=SITE,
            visitor="v2",
            url=f"{page}/post",
            referrer="https://www.google.com/",
        ),
        event(at_=now - timedelta(days=20), site=SITE, visitor="v3", url=f"{page}/about"),
        event(at_=now - timedelta(minutes=1), site=SITE, visitor="v4", url=f"{page}/live", country="DE"),
    ]


def api_of(server: Sluice) -> Any:
    def get(path: str, **params: str) -> Any:
        url = f"{server.url}/api/v1/sites/{SITE}/{path}?{urllib.parse.urlencode(params)}"
        reply = fetch("GET", url, headers={"Authorization": f"Bearer {READ_TOKEN}"})
        assert reply.status == 200, reply.body
        return reply.json()

    return get


def page_is(browser: WebDriver, query: str) -> bool:
    return bool(browser.current_url.endswith(f"/dashboard?{query}"))


def screenshot(browser: WebDriver, width: int, path: Path) -> None:
    """The whole page at `width` CSS pixels: the window is made as tall as the document."""
    browser.set_window_size(width, 900)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(width, height + 100)
    assert browser.save_screenshot(str(path))
    print(f"screenshot: {path}")


def test_the_dashboard_in_chromium(
    browser: WebDriver, front: Nginx, sluice_server: Sluice, db: psycopg.Connection, tmp_path: Path
) -> None:
    insert(db, news_events(datetime.now(UTC)))
    run_etl_until_caught_up(front.url(), ADMIN_TOKEN)
    base = f"http://stats.test:{front.port}"

    # No cookie yet: the page sends the browser to the sign-in form; the read token opens it.
    browser.get(f"{base}/")
    assert browser.current_url == f"{base}/login?next=%2F"
    browser.find_element(By.ID, "token").send_keys(READ_TOKEN)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(lambda: page_is(browser, f"site={SITE}&period=7d"), "the dashboard after signing in")
    (cookie,) = browser.get_cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (
        "sluice_session",
        True,
        "Strict",
        False,  # plain http here; Secure behind https (tests/reports/test_dashboard_login.py)
    )
    assert browser.execute_script("return document.cookie") == ""  # HttpOnly: no script sees it

    # Every number on the page is the API's, and these are the known ones.
    api = api_of(sluice_server)
    week = shown(browser.page_source)
    assert week == from_api(api, {"period": "7d"})
    assert (week["summary"]["visitors"], week["summary"]["pageviews"], week["realtime"]) == (3, 4, 1)
    assert week["lists"]["path"] == [["/post", 2, 2], ["/", 1, 1], ["/live", 1, 1]]

    # Another period, through the picker (its script submits the form on change).
    Select(browser.find_element(By.ID, "period")).select_by_value("30d")
    wait_until(lambda: page_is(browser, f"site={SITE}&period=30d"), "the 30-day page")
    month = shown(browser.page_source)
    assert month == from_api(api, {"period": "30d"})
    assert (month["summary"]["visitors"], month["summary"]["pageviews"]) == (4, 5)

    # The CSV links work in the browser on the session cookie alone.
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a[href*='format=csv']")]
    assert len(links) > 2
    statuses = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "Promise.all(arguments[0].map((u) => fetch(u).then((r) => r.status + ' ' + r.headers.get('content-type'))))"
        ".then(done, (e) => done(String(e)))",
        links,
    )
    assert statuses == ["200 text/csv; charset=utf-8"] * len(links)

    # A phone: nothing wider than the screen.
    browser.set_window_size(375, 800)
    assert browser.execute_script("return window.innerWidth") == 375
    widths = browser.execute_script("const e = document.documentElement; return [e.scrollWidth, e.clientWidth]")
    assert widths[0] <= widths[1], f"horizontal scroll at 375 px: {widths}"
    screenshot(browser, 375, tmp_path / "dashboard-375px.png")
    screenshot(browser, 1280, tmp_path / "dashboard-1280px.png")

    # Nothing went wrong in the page: no script error, no failed load (a missing favicon would show).
    assert [entry for entry in browser_log(browser) if entry["level"] in ("SEVERE", "WARNING")] == []
