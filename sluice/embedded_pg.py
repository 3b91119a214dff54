"""A private PostgreSQL for `sluice serve` when DATABASE_URL is empty. (Skeleton.)"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sluice.settings import Settings


@contextmanager
def database_for(settings: Settings) -> Iterator[Settings]:
    if not settings.database_url:
        raise RuntimeError("embedded PostgreSQL is not implemented yet: set DATABASE_URL")
    yield settings


def export(settings: Settings) -> None:
    os.environ["DATABASE_URL"] = settings.database_url
