"""Helpers shared by the collector tests: the whole app, served in-process with its lifespan."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import orjson
from starlette.testclient import TestClient

from sluice.app import create_app
from sluice.settings import Settings

# TestClient's default peer ("testclient") is no IP; tests speak as a real address.
VISITOR = ("203.0.113.7", 50000)  # TEST-NET-3: not loopback, so not a trusted proxy by default
PROXY = ("127.0.0.1", 50000)


@contextmanager
def collector_client(settings: Settings, peer: tuple[str, int] = VISITOR) -> Iterator[TestClient]:
    with TestClient(create_app(settings), client=peer) as client:
        yield client


def event(**fields: Any) -> dict[str, Any]:
    """A valid pageview; keyword arguments override or add fields (None removes one)."""
    base: dict[str, Any] = {"eventType": "pageview", "siteId": "site-1", "url": "https://example.com/"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def post(client: TestClient, body: Any, **headers: str) -> httpx2.Response:
    return client.post("/collect", content=orjson.dumps(body), headers={"Content-Type": "application/json", **headers})


def gzipped(body: Any) -> bytes:
    return gzip.compress(orjson.dumps(body))
