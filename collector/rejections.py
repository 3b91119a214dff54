"""The small, named set of reasons a request or an event is turned away, and its HTTP status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# reason -> HTTP status. A 500 from bad input is a bug: every way input can be wrong maps here.
STATUS = {
    "malformed_json": 400,  # the body is not JSON (or not UTF-8), or has the wrong shape
    "malformed_body": 400,  # a gzip/deflate body that does not decompress
    "missing_field": 400,
    "wrong_type": 400,
    "bad_parameter": 400,  # a query parameter of the operators' endpoints
    "body_too_large": 413,
    "too_many_events": 413,
    "event_too_large": 413,
    "unsupported_media_type": 415,
    "unsupported_encoding": 415,
    "invalid_value": 422,  # well-typed but meaningless: an unparseable timestamp, a non-UUID eventId
}


@dataclass(frozen=True, slots=True)
class Rejection(Exception):
    """Why a request, or one event of a batch (`index`), was rejected; `field` names the culprit."""

    reason: str
    message: str
    field: str | None = None
    index: int | None = None

    def __post_init__(self) -> None:
        if self.reason not in STATUS:
            raise ValueError(f"unknown rejection reason {self.reason!r}")

    @property
    def status(self) -> int:
        return STATUS[self.reason]

    def at(self, index: int) -> Rejection:
        return Rejection(self.reason, self.message, self.field, index)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.reason, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        if self.index is not None:
            out["index"] = self.index
        return out
