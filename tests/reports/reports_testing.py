"""A known site for the reports' tests: its events, the ETL run over them, a client with a fixed clock.

Site `shop`, read at NOW = 2026-03-10 12:30 UTC (so `7d` is 2026-03-04..10 and the period before it
2026-02-25..03-03):

| visitor | when (UTC)          | events                                                     | session            |
| ------- | ------------------- | ---------------------------------------------------------- | ------------------ |
| v1      | 03-08 10:00, 10:05  | pageview /a (from google.com), pageview /b                 | 2 pageviews, 300 s |
| v1      | 03-09 09:00         | pageview /a                                                | bounce             |
| v1      | 03-10 11:00         | pageview /a                                                | bounce             |
| v2      | 03-10 11:30..11:32  | pageview /b (utm news/email/spring, iPhone, DE), click to  | 6 events, 120 s    |
|         |                     | out.org, redirect with shortCode `spring`, three custom    |                    |
|         |                     | events (Add to cart twice, Checkout; durationMs 120, 80.5, |                    |
|         |                     | none)                                                      |                    |
| v3      | 03-02 08:00         | pageview /a                                                | bounce (before 7d) |
| bot     | 03-10 10:00         | pageview /a (Googlebot)                                    | left out           |
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from eventlog import GOOGLEBOT, IPHONE, at, event

from sluice.settings import Settings

NOW = at("2026-03-10 12:30")
READ = {"Authorization": "Bearer read-t0ken"}
ADMIN = {"Authorization": "Bearer admin-t0ken"}


def shop_events() -> list[dict[str, Any]]:
    page = "https://shop.test"
    return [
        event(at_="2026-03-08 10:00", site="shop", visitor="v1", url=f"{page}/a", referrer="https://www.google.com/"),
        event(at_="2026-03-08 10:05", site="shop", visitor="v1", url=f"{page}/b", referrer=f"{page}/a"),
        event(at_="2026-03-09 09:00", site="shop", visitor="v1", url=f"{page}/a"),
        event(at_="2026-03-10 11:00", site="shop", visitor="v1", url=f"{page}/a"),
        event(
            at_="2026-03-10 11:30",
            site="shop",
            visitor="v2",
            country="DE",
            user_agent=IPHONE,
            url=f"{page}/b?utm_source=news&utm_medium=email&utm_campaign=spring",
        ),
        event(
            "click",
            at_="2026-03-10 11:31",
            site="shop",
            visitor="v2",
            country="DE",
            user_agent=IPHONE,
            url=f"{page}/b",
            target="https://out.org/x",
        ),
        event(
            "redirect",
            at_="2026-03-10 11:32",
            site="shop",
            visitor="v2",
            country="DE",
            user_agent=IPHONE,
            url=f"{page}/b",
            shortCode="spring",
        ),
        *(
            event(
                "custom",
                at_=f"2026-03-10 11:31:{second}",
                site="shop",
                visitor="v2",
                country="DE",
                user_agent=IPHONE,
                url=f"{page}/b",
                eventName=name,
                props={"item": item} if item else None,
                **duration,
            )
            for second, name, item, duration in (
                ("10", "Add to cart", "hat", {"durationMs": 120}),
                ("20", "Add to cart", "scarf", {"durationMs": 80.5}),
                ("30", "Checkout", None, {}),
            )
        ),
        event(at_="2026-03-02 08:00", site="shop", visitor="v3", url=f"{page}/a"),
        event(at_="2026-03-10 10:00", site="shop", visitor="bot", user_agent=GOOGLEBOT, url=f"{page}/a"),
    ]


def reports_settings(settings: Settings) -> Settings:
    return replace(settings, read_token="read-t0ken", admin_token="admin-t0ken")
