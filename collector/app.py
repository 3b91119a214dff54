"""Collector routes and resources. (Skeleton: filled in by the collector work.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from sluice.settings import Settings


def routes(settings: Settings) -> list[BaseRoute]:
    return []


def middleware(settings: Settings) -> list[Middleware]:
    return []


@asynccontextmanager
async def lifespan(settings: Settings, state: dict[str, Any]) -> AsyncIterator[None]:
    yield
