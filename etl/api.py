"""ETL control routes and the scheduler. (Skeleton: filled in by the ETL work.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.routing import BaseRoute

from sluice.settings import Settings


def routes(settings: Settings) -> list[BaseRoute]:
    return []


@asynccontextmanager
async def lifespan(settings: Settings, state: dict[str, Any]) -> AsyncIterator[None]:
    yield
