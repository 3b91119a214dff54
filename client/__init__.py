"""Sending events to Sluice from Python services: `Client`, `AsyncClient`, and the ASGI middleware.

Only the standard library: a service that installs sluice to send events imports this and nothing
of the server (no starlette, psycopg or uvicorn).
"""

from __future__ import annotations

from sluice.client.api import AsyncClient, Client
from sluice.client.middleware import SluiceMiddleware
from sluice.client.worker import Retry, Stats

__all__ = ["AsyncClient", "Client", "Retry", "SluiceMiddleware", "Stats"]
