"""Every route of the reports: the API under /api/v1 and the seeds' endpoints under /analytics."""

from __future__ import annotations

from starlette.routing import BaseRoute

from sluice.reports import api, compat
from sluice.settings import Settings


def routes(settings: Settings) -> list[BaseRoute]:
    return [*api.routes(settings), *compat.routes(settings)]
