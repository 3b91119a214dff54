"""The period a report covers: `period=NAME`, or `from=YYYY-MM-DD&to=YYYY-MM-DD` (inclusive UTC days).

A Period is a half-open UTC interval [start, end). Every named period but `24h` is made of whole UTC
days ending today (so the daily tables answer it); `24h` is the 24 whole hours ending with the current
one, answered from `sessions`. The previous period is the interval of equal length just before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

NAMES = ("today", "yesterday", "24h", "7d", "30d", "month", "last-month", "12mo", "all")  # in display order
DEFAULT = "30d"
MAX_DAYS = 3660  # ten years: far beyond any retention, and a bound on the points of a time series


Interval = Literal["hour", "day", "week", "month"]
INTERVALS: tuple[Interval, ...] = ("hour", "day", "week", "month")


class BadParameter(Exception):
    """A query parameter a report cannot use: 400 when it does not parse, 422 when it means nothing."""

    def __init__(self, status_code: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status_code, self.field, self.message = status_code, field, message


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


@dataclass(frozen=True)
class Period:
    name: str  # one of NAMES, or "custom" for from/to
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC

    @property
    def whole_days(self) -> bool:
        """Starts and ends at UTC midnight: the daily tables can answer it."""
        return self.start.time() == time() and self.end.time() == time()

    @property
    def first_day(self) -> date:
        return self.start.date()

    @property
    def last_day(self) -> date:
        """The last UTC day the period touches (inclusive)."""
        return (self.end - timedelta(microseconds=1)).date()

    def default_interval(self) -> Interval:
        """The time series' points when none are asked for: hours up to two days, days up to about
        three months, else months."""
        length = self.end - self.start
        if length <= timedelta(days=2):
            return "hour"
        return "day" if length <= timedelta(days=92) else "month"

    def previous(self) -> Period:
        length = self.end - self.start
        return Period(f"before {self.name}", self.start - length, self.start)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "from": self.first_day.isoformat(),
            "to": self.last_day.isoformat(),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }


def named(name: str, now: datetime, first_day: date | None = None) -> Period:
    """The named period at `now` (aware). `all` starts on `first_day` (a site's first day with data)."""
    today = now.astimezone(UTC).date()
    tomorrow = midnight(today + timedelta(days=1))
    if name == "today":
        return Period(name, midnight(today), tomorrow)
    if name == "yesterday":
        return Period(name, midnight(today - timedelta(days=1)), midnight(today))
    if name == "24h":
        hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return Period(name, hour - timedelta(hours=23), hour + timedelta(hours=1))
    if name in ("7d", "30d"):
        return Period(name, midnight(today - timedelta(days=int(name[:-1]) - 1)), tomorrow)
    if name == "month":
        return Period(name, midnight(today.replace(day=1)), tomorrow)
    if name == "last-month":
        this_month = today.replace(day=1)
        return Period(name, midnight((this_month - timedelta(days=1)).replace(day=1)), midnight(this_month))
    if name == "12mo":
        months_back = today.year * 12 + today.month - 1 - 11
        return Period(name, midnight(date(months_back // 12, months_back % 12 + 1, 1)), tomorrow)
    if name == "all":
        return Period(name, midnight(min(first_day or today, today)), tomorrow)
    raise BadParameter(422, "period", f"period={name!r} is not one of {', '.join(NAMES)} (or give from= and to=)")


def _day(params: Mapping[str, str], field: str) -> date:
    raw = params.get(field, "")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadParameter(400, field, f"{field}={raw!r} is not a date (YYYY-MM-DD)") from None


def parse(params: Mapping[str, str], now: datetime, first_day: date | None = None) -> Period:
    """The period a request's query parameters ask for; `period=30d` when they name none."""
    has_range = "from" in params or "to" in params
    if has_range and "period" in params:
        raise BadParameter(400, "period", "give either period= or from= and to=, not both")
    if not has_range:
        return named(params.get("period") or DEFAULT, now, first_day)
    for field in ("from", "to"):
        if not params.get(field):
            raise BadParameter(
                400, field, f"{field}=YYYY-MM-DD is required with {'to' if field == 'from' else 'from'}="
            )
    first, last = _day(params, "from"), _day(params, "to")
    if last < first:
        raise BadParameter(422, "to", f"to={last} is before from={first}")
    if (last - first).days + 1 > MAX_DAYS:
        raise BadParameter(422, "from", f"from={first} to={last} spans more than {MAX_DAYS} days")
    return Period("custom", midnight(first), midnight(last + timedelta(days=1)))
