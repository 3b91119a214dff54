from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator

import httpx2
import orjson
import pytest
from collector_testing import collector_client, event
from starlette.testclient import TestClient

from sluice.collector.body import MAX_BODY_BYTES
from sluice.settings import Settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with collector_client(settings) as client:
        yield client


def send(
    client: TestClient, body: bytes, content_type: str = "application/json", encoding: str = ""
) -> httpx2.Response:
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    return client.post("/collect", content=body, headers=headers)


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "text/plain;charset=UTF-8"]
)
def test_json_and_beacon_content_types_are_accepted(client: TestClient, content_type: str) -> None:
    assert send(client, orjson.dumps(event()), content_type).status_code == 202


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data", ""])
def test_other_content_types_are_415(client: TestClient, content_type: str) -> None:
    response = client.post("/collect", content=orjson.dumps(event()), headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


def test_an_unknown_content_encoding_is_415(client: TestClient) -> None:
    response = send(client, orjson.dumps(event()), encoding="br")
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_encoding"


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),  # the zlib format HTTP means by "deflate"
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some clients send it
    ],
)
def test_compressed_bodies_are_accepted(client: TestClient, encoding: str, compress: Callable[[bytes], bytes]) -> None:
    body = compress(orjson.dumps([event(), event()]))
    response = send(client, body, encoding=encoding)
    assert response.status_code == 202
    assert len(response.json()["event_ids"]) == 2


def test_a_decompression_bomb_is_413_without_inflating_it(client: TestClient) -> None:
    bomb = gzip.compress(b"[" + b" " * (200 * MAX_BODY_BYTES) + b"]")  # 200 MiB of JSON in ~200 KiB
    assert len(bomb) < MAX_BODY_BYTES
    response = send(client, bomb, encoding="gzip")
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


def test_a_plain_body_over_the_limit_is_413(client: TestClient) -> None:
    body = orjson.dumps([event(props={"pad": "x" * 60_000}) for _ in range(20)])
    assert len(body) > MAX_BODY_BYTES
    assert send(client, body).status_code == 413


def test_a_body_that_does_not_decompress_is_400(client: TestClient) -> None:
    truncated = gzip.compress(orjson.dumps(event()))[:-12]
    for body in (b"definitely not gzip", truncated):
        response = send(client, body, encoding="gzip")
        assert response.status_code == 400
        assert response.json()["error"] == "malformed_body"
