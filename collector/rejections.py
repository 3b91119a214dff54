"""Why a request or an event is turned away: a code of the shared vocabulary (sluice/errors.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sluice.errors import status_of


@dataclass(frozen=True, slots=True)
class Rejection(Exception):
    """Why a request, or one event of a batch (`index`), was rejected; `field` names the culprit."""

    reason: str  # an error code of sluice/errors.py
    message: str
    field: str | None = None
    index: int | None = None

    def __post_init__(self) -> None:
        status_of(self.reason)  # refuses a code the vocabulary does not declare

    @property
    def status(self) -> int:
        return status_of(self.reason)

    def at(self, index: int) -> Rejection:
        return Rejection(self.reason, self.message, self.field, index)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.reason, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        if self.index is not None:
            out["index"] = self.index
        return out
