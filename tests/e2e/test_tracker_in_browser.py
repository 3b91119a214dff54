"""A real visit: headless Chromium on a shop's page that embeds the tracker from nginx, then the ETL,
then SQL on the tables analysts query."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from sluice.collector.client_ip import ip_hash

from .conftest import ADMIN_TOKEN
from .harness import free_port, run_etl_until_caught_up, static_site, wait_until
from .netns import Namespace
from .nginx_conf import Nginx, nginx
from .sluice_server import sluice_serve

SITE = "e2e-shop"

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Shop</title>
<script>
  window.sluice = window.sluice || function () { (sluice.q = sluice.q || []).push(arguments) }
  sluice('track', 'early', { from: 'stub' })
</script>
<script defer src="http://stats.test:{nginx_port}/sluice.js" data-site="{site}"></script>
</head>
<body>
<a id="outbound" href="http://partner.test:{site_port}/offer" target="_blank">Our partner's offer</a>
<a id="leave" href="http://partner.test:{site_port}/offer?from=shop">Leave for the partner</a>
<a id="signup" href="/signup" data-sluice-click="hero-cta">Sign up</a>
<a id="about" href="/about">About</a>
<button id="checkout">Checkout</button>
<script>
  // The smallest single-page app: two routes pushed with history.pushState.
  const go = (path, title) => { history.pushState({}, '', path); document.title = title }
  document.getElementById('signup').addEventListener('click', (e) => { e.preventDefault(); go('/signup', 'Sign up') })
  document.getElementById('about').addEventListener('click', (e) => e.preventDefault())
  document.getElementById('checkout').addEventListener('click', () => go('/checkout', 'Checkout'))
</script>
</body>
</html>
"""


@contextmanager
def shop_site(netns: Namespace, front: Nginx) -> Iterator[str]:
    """The shop's site; its page loads the tracker from nginx (another origin, as in real life)."""
    pages: dict[str, str] = {}
    with static_site(netns.host_ip, pages) as port:
        pages["/"] = PAGE.replace("{nginx_port}", str(front.port)).replace("{site_port}", port).replace("{site}", SITE)
        pages["/cookieless"] = pages["/"].replace('data-site="', 'data-cookieless data-site="')
        pages["/offer"] = "<!doctype html><title>Partner</title><p>Elsewhere."
        yield f"http://shop.test:{port}"


@pytest.fixture
def shop(netns: Namespace, front: Nginx) -> Iterator[str]:
    with shop_site(netns, front) as url:
        yield url


def rows(db: psycopg.Connection, query: str, *params: Any) -> list[tuple[Any, ...]]:
    return db.execute(query, params).fetchall()


def records(db: psycopg.Connection, query: str, *params: Any) -> list[dict[str, Any]]:
    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def test_a_visit_lands_in_the_tables(
    browser: WebDriver, shop: str, front: Nginx, netns: Namespace, db: psycopg.Connection, person_user_agent: str
) -> None:
    browser.get(f"{shop}/?utm_source=newsletter&utm_medium=email&utm_campaign=launch")
    wait_until(lambda: browser.execute_script("return !!(window.sluice && window.sluice.loaded)"), "the tracker")
    user_agent = browser.execute_script("return navigator.userAgent")
    assert user_agent == person_user_agent
    shop_tab = browser.current_window_handle

    browser.find_element(By.ID, "outbound").click()  # opens the partner's page in a new tab
    browser.switch_to.window(shop_tab)
    browser.find_element(By.ID, "about").click()  # an internal link: not a click event
    browser.find_element(By.ID, "signup").click()  # marked: a click event, then SPA route 1
    browser.find_element(By.ID, "checkout").click()  # SPA route 2
    browser.execute_script("sluice.track('purchase', { plan: 'pro', value: 42 })")
    # The page's own handler, added after the tracker's: it tracks while the page is going away.
    browser.execute_script("addEventListener('pagehide', () => sluice.track('goodbye'))")
    browser.close()  # the shop's tab

    expected_events = 8  # 3 page views, 2 clicks, 3 custom events
    wait_until(
        lambda: rows(db, "select count(*) from events")[0][0] >= expected_events, "the visit's events", timeout_s=20
    )

    # The raw log: one visitor, one session, the client's address hashed (the browser's, not nginx's).
    events = rows(
        db,
        """select event_type, payload->>'path', payload->>'eventName', payload->>'target',
                  visitor_id, session_id, ip_hash, user_agent
           from events order by occurred_at, event_type""",
    )
    assert len(events) == expected_events
    assert len({e[4] for e in events}) == 1
    assert len({e[5] for e in events}) == 1
    assert {e[7] for e in events} == {user_agent}
    salt = rows(db, "select salt from daily_salts where day = (now() at time zone 'UTC')::date")[0][0]
    browser_ip = ipaddress.ip_address(netns.client_ip)
    assert {e[6] for e in events} == {ip_hash(bytes(salt), browser_ip)}
    assert ip_hash(bytes(salt), ipaddress.ip_address("127.0.0.1")) not in {e[6] for e in events}
    assert sorted((e[0], e[1], e[2], e[3]) for e in events) == sorted(
        [
            ("pageview", "/", None, None),
            ("custom", "/", "early", None),
            ("click", "/", None, f"http://partner.test:{shop.rsplit(':', 1)[1]}/offer"),
            ("click", "/", None, f"{shop}/signup"),
            ("pageview", "/signup", None, None),
            ("pageview", "/checkout", None, None),
            ("custom", "/checkout", "purchase", None),
            ("custom", "/checkout", "goodbye", None),
        ]
    )
    visitor_id, session_id = events[0][4], events[0][5]

    # The ETL, run the way an operator would: through nginx, from loopback, with the token.
    run_etl_until_caught_up(front.url(), ADMIN_TOKEN)

    sessions = records(
        db,
        """select session_key, visitor_key, pageview_count, event_count, entry_path, exit_path,
                  utm_source, utm_medium, utm_campaign, device_type, browser, os, is_bot, is_bounce
           from sessions where site_id = %s""",
        SITE,
    )
    assert sessions == [
        {
            "session_key": session_id,
            "visitor_key": visitor_id,
            "pageview_count": 3,
            "event_count": 8,
            "entry_path": "/",
            "exit_path": "/checkout",
            "utm_source": "newsletter",
            "utm_medium": "email",
            "utm_campaign": "launch",
            "device_type": "desktop",
            "browser": "Chrome",
            "os": "Linux",
            "is_bot": False,
            "is_bounce": False,
        }
    ]
    port = shop.rsplit(":", 1)[1]
    clicks = records(
        db,
        """select session_key, visitor_key, source_path, target_url, target_domain, link_text,
                  device_type, browser, is_bot
           from clicks where site_id = %s order by occurred_at""",
        SITE,
    )
    same = {"session_key": session_id, "visitor_key": visitor_id, "source_path": "/"}
    person = {"device_type": "desktop", "browser": "Chrome", "is_bot": False}
    assert clicks == [
        {
            **same,
            "target_url": f"http://partner.test:{port}/offer",
            "target_domain": "partner.test",
            "link_text": "Our partner's offer",
            **person,
        },
        {**same, "target_url": f"{shop}/signup", "target_domain": "shop.test", "link_text": "Sign up", **person},
    ]
    assert rows(
        db, "select pageviews, events, visitors, sessions, bounces from daily_metrics where site_id = %s", SITE
    ) == [(3, 8, 1, 1, 0)]


def test_a_click_on_a_link_that_leaves_the_page_is_not_lost(
    browser: WebDriver, shop: str, db: psycopg.Connection
) -> None:
    browser.get(shop)
    wait_until(lambda: browser.execute_script("return !!(window.sluice && window.sluice.loaded)"), "the tracker")
    browser.find_element(By.ID, "leave").click()  # same tab: the shop's page unloads at once
    wait_until(lambda: browser.title == "Partner", "the partner's page")
    clicks = "select payload->>'target' from events where event_type = 'click'"
    wait_until(lambda: len(rows(db, clicks)) >= 1, "the click", timeout_s=20)
    assert rows(db, clicks) == [(f"http://partner.test:{shop.rsplit(':', 1)[1]}/offer?from=shop",)]


def test_a_cookieless_visit_is_one_session_by_the_servers_daily_key(
    browser: WebDriver, shop: str, front: Nginx, db: psycopg.Connection
) -> None:
    browser.get(f"{shop}/cookieless")
    wait_until(lambda: browser.execute_script("return !!(window.sluice && window.sluice.loaded)"), "the tracker")
    browser.find_element(By.ID, "signup").click()
    browser.find_element(By.ID, "checkout").click()
    assert browser.execute_script("return Object.keys(localStorage)") == []  # nothing stored
    browser.close()

    wait_until(lambda: rows(db, "select count(*) from events")[0][0] >= 5, "the visit's events", timeout_s=20)
    # No client ids: the visitor is the server's hash of the day's IP hash and the user agent.
    assert rows(db, "select count(*) from events where visitor_id is not null or session_id is not null") == [(0,)]
    run_etl_until_caught_up(front.url(), ADMIN_TOKEN)
    assert records(
        db,
        """select is_client_session, pageview_count, event_count, entry_path, exit_path
           from sessions where site_id = %s""",
        SITE,
    ) == [
        {
            "is_client_session": False,
            "pageview_count": 3,
            "event_count": 5,  # 3 page views, the stub's custom event, the marked link's click
            "entry_path": "/cookieless",
            "exit_path": "/checkout",
        }
    ]


@pytest.mark.chromium_prefs({"enable_do_not_track": True})
def test_with_do_not_track_nothing_leaves_the_browser(
    browser: WebDriver, shop: str, front: Nginx, db: psycopg.Connection
) -> None:
    browser.get(shop)
    wait_until(lambda: browser.execute_script("return !!(window.sluice && window.sluice.loaded)"), "the tracker")
    assert browser.execute_script("return navigator.doNotTrack") == "1"
    browser.find_element(By.ID, "signup").click()
    browser.execute_script("sluice.track('purchase', { plan: 'pro' })")
    assert browser.execute_script("return Object.keys(localStorage)") == []
    browser.close()
    time.sleep(1)  # what the page would have sent is long gone by now
    assert "/collect" not in (front.prefix / "access.log").read_text()  # no request reached nginx
    assert rows(db, "select count(*) from events") == [(0,)]


def test_events_sent_while_the_collector_is_down_are_stored_once_after_the_next_page_load(
    browser: WebDriver, netns: Namespace, sluice_env: dict[str, str], tmp_path: Path, db: psycopg.Connection
) -> None:
    # nginx in front of a collector port nothing listens on yet: it answers 503 with its JSON
    # `upstream_unavailable` page, which carries no CORS header, so the page's fetch fails outright.
    collector_port = free_port()
    with (
        nginx(
            addresses=["127.0.0.1", netns.host_ip], upstream=f"127.0.0.1:{collector_port}", prefix=tmp_path / "nginx"
        ) as front,
        shop_site(netns, front) as shop,
    ):
        access_log = front.prefix / "access.log"

        def refused_posts() -> int:
            lines = access_log.read_text().splitlines() if access_log.exists() else []
            return sum('"POST /collect ' in line and '" 503 ' in line for line in lines)

        def waiting_in_the_browser() -> list[dict[str, Any]]:
            return list(json.loads(browser.execute_script("return localStorage.sluice_retry || '[]'")))

        browser.get(f"{shop}/")
        wait_until(lambda: browser.execute_script("return !!(window.sluice && window.sluice.loaded)"), "the tracker")
        wait_until(lambda: refused_posts() == 1, "nginx to refuse the page view")  # with the stub's event
        browser.execute_script("sluice.track('purchase', { plan: 'pro' })")
        wait_until(lambda: refused_posts() == 2, "nginx to refuse the purchase")
        kept = waiting_in_the_browser()
        assert [(e["eventType"], e.get("eventName")) for e in kept] == [
            ("pageview", None),
            ("custom", "early"),
            ("custom", "purchase"),
        ]
        assert rows(db, "select count(*) from events") == [(0,)]

        with sluice_serve(sluice_env, tmp_path, port=collector_port):
            browser.get(f"{shop}/next")  # the next page load: a page view and the stub's event of its own
            wait_until(lambda: waiting_in_the_browser() == [], "the browser to have sent everything", timeout_s=20)
            wait_until(lambda: rows(db, "select count(*) from events")[0][0] >= 5, "the events", timeout_s=20)

            stored = rows(db, "select event_id::text, event_type, payload->>'eventName', payload->>'path' from events")
            assert len(stored) == 5
            assert sorted(s[0] for s in stored if s[0] in {e["eventId"] for e in kept}) == sorted(
                e["eventId"] for e in kept
            )  # every kept event, each once, by the id it was first sent with
            assert sorted(s[1:] for s in stored) == sorted(
                [
                    ("pageview", None, "/"),
                    ("custom", "early", "/"),
                    ("custom", "purchase", "/"),
                    ("pageview", None, "/next"),
                    ("custom", "early", "/next"),
                ]
            )
