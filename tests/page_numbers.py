"""Reads the dashboard's numbers back out of its HTML: each shown number is a `<data value=...>`
inside an element with a known id (`metric-KEY`, the `timeseries` table, `top-DIMENSION`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

from sluice.reports import queries, view
from sluice.reports.periods import Period


def number(raw: str) -> int | float | None:
    """A `<data value>` back into the JSON value it was written from (empty: null)."""
    if raw == "":
        return None
    return int(raw) if raw.lstrip("-").isdigit() else float(raw)


@dataclass
class Section:
    values: list[int | float | None] = field(default_factory=list)  # every <data value> in it, in order
    rows: list[list[str]] = field(default_factory=list)  # each table body row's cells, as text


class PageNumbers(HTMLParser):
    """`sections[id]` for every element whose id is `realtime`, `timeseries`, `metric-*` or `top-*`."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: dict[str, Section] = {}
        self._open: list[tuple[str, str | None]] = []  # (tag, section id it opened)
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(html)
        self.close()

    def _current(self) -> list[Section]:
        return [self.sections[name] for _, name in self._open if name is not None]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        ident = found.get("id") or ""
        opens = ident if ident in ("realtime", "timeseries") or ident.startswith(("metric-", "top-")) else None
        if opens:
            self.sections[opens] = Section()
        if tag not in ("input", "meta", "link", "br", "img", "rect", "line", "polyline"):
            self._open.append((tag, opens))
        if tag == "data":
            for section in self._current():
                section.values.append(number(found.get("value") or ""))
        if tag == "tr" and self._current():
            self._row = []
        if tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        while any(open_tag == tag for open_tag, _ in self._open):
            open_tag, _ = self._open.pop()
            if open_tag == tag:
                break
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr" and self._row is not None:
            if self._row and self._current():
                self._current()[-1].rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def shown(html: str) -> dict[str, Any]:
    """The page's numbers in the API's shapes: summary, timeseries points, breakdown rows, realtime."""
    page = PageNumbers(html)
    sections = page.sections
    summary: dict[str, Any] = {"previous": {}, "change": {}}
    for name, section in sections.items():
        if name.startswith("metric-"):
            key = name.removeprefix("metric-")
            value, *rest = section.values
            summary[key] = value
            # "+12.5% from 8" shows the change and the previous value; "from 0" only the previous one
            change, previous = (rest if len(rest) == 2 else [None, *rest]) if rest else (None, None)
            summary["previous"][key], summary["change"][key] = previous, change
    points = [
        {"label": row[0], "pageviews": cells[0], "visitors": cells[1], "sessions": cells[2]}
        for row, cells in zip(
            sections["timeseries"].rows[1:],
            _chunks(sections["timeseries"].values, 3),
            strict=True,
        )
    ]
    lists = {}
    for name, section in sections.items():
        if name.startswith("top-"):
            rows = section.rows[1:]  # the head row first
            columns = len(section.values) // len(rows) if rows else 0
            lists[name.removeprefix("top-")] = [
                [row[0], *values] for row, values in zip(rows, _chunks(section.values, columns), strict=True)
            ]
    return {"summary": summary, "points": points, "lists": lists, "realtime": sections["realtime"].values[0]}


def from_api(get: Callable[..., Any], query: dict[str, str]) -> dict[str, Any]:
    """What the page must show for `query` (`period=` or `from=`/`to=`), from the API's JSON, in the
    shape `shown` reads the page into. `get(path, **params)` answers `/api/v1/sites/SITE/<path>`."""
    summary = get("summary", **query)
    cards = [key for key, _ in view.CARDS]
    bounds = summary["period"]
    interval = Period(
        bounds["name"], datetime.fromisoformat(bounds["start"]), datetime.fromisoformat(bounds["end"])
    ).default_interval()
    series = get("timeseries", **query, interval=interval, metrics=",".join(view.CHART_METRICS))
    lists = {}
    for dimension in queries.DIMENSIONS:
        found = get(f"breakdown/{dimension}", **query)
        metrics = [found["order"], "visitors"]
        if dimension == "event_name" and not found["rows"]:
            continue  # the page shows custom events only when the period has some
        lists[dimension] = [[row["value"], *(row[m] for m in metrics)] for row in found["rows"]]
    return {
        "summary": {
            **{key: summary[key] for key in cards},
            "previous": {key: summary["previous"][key] for key in cards},
            "change": {key: summary["change"][key] for key in cards},
        },
        "points": [
            {"label": view.point_label(p["start"], interval), **{m: p[m] for m in view.CHART_METRICS}}
            for p in series["points"]
        ],
        "lists": lists,
        "realtime": get("realtime")["visitors"],
    }


def _chunks(values: list[Any], size: int) -> list[list[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)] if size else []
