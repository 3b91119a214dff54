"""Odd input must get a 4xx, never a 500: a 500 from bad input is a bug."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from collector_testing import collector_client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from sluice.settings import Settings

ANSWERS = {202, 400, 413, 415, 422}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Events that look almost right: the known fields, each with a value of any type.
known = ["eventType", "siteId", "eventId", "timestamp", "visitorId", "props", "attribution", "url", "sentAt"]
near_events = st.dictionaries(st.sampled_from(known), json_values, max_size=6).map(
    lambda d: {"eventType": "x", "siteId": "s", **d}
)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe\x00garbage",
        b'{"eventType": "x", "siteId": "s\xff"}',
        b'{"eventType": "x", "siteId": "s", "n": 123456789012345678901234567890}',
        b'{"eventType": "x", "siteId": "s", "n": 1e400}',
        b'{"eventType": "x", "siteId": "s", "n": NaN}',
        b'{"eventType": "x", "siteId": "s", "t": "\\ud800"}',
        b'{"eventType": "x", "siteId": "s\\u0000"}',
        b'{"eventType": "x", "siteId": "s", "timestamp": "+275760-09-13T00:00:00Z"}',
        b'{"eventType": "x", "siteId": "s", "timestamp": "0001-01-01T00:00:00+14:00"}',
        b'{"eventType": "x", "siteId": "s", "timestamp": "9999-12-31T23:59:59-12:00"}',
        b'{"events": [{"eventType": "x", "siteId": "s", "timestamp": "0001-01-01T00:00:00Z"}],'
        b' "sentAt": "9999-12-31T23:59:59Z"}',
        b"[" * 2000 + b"]" * 2000,
        b'{"eventType": "x", "siteId": "s", "p": ' + b"[" * 1000 + b"]" * 1000 + b"}",
        b'{"events": null}',
        b"[null, 1, [], {}]",
        b'"just a string"',
    ],
)
def test_odd_bodies_get_an_answer_not_a_crash(settings: Settings, body: bytes) -> None:
    with collector_client(settings) as client:
        for encoded, headers in ((body, {}), (gzip.compress(body), {"Content-Encoding": "gzip"})):
            response = client.post("/collect", content=encoded, headers={"Content-Type": "text/plain", **headers})
            assert response.status_code in ANSWERS, response.text
            assert "error" in response.json() or response.status_code == 202


def test_fuzzed_events_and_query_strings(settings: Settings) -> None:
    with collector_client(settings) as client:

        @hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(body=st.one_of(near_events, st.lists(near_events, max_size=3), json_values))
        def posts(body: Any) -> None:
            response = client.post("/collect", content=json.dumps(body), headers={"Content-Type": "application/json"})
            assert response.status_code in ANSWERS, response.text

        @hypothesis_settings(max_examples=100, deadline=None)
        @given(params=st.dictionaries(st.sampled_from([*known, "x"]), st.text(max_size=20), max_size=5))
        def pixels(params: dict[str, str]) -> None:
            response = check_pixel(client, params)
            assert response in {200, 400, 413, 422}

        posts()
        pixels()


def check_pixel(client: TestClient, params: dict[str, str]) -> int:
    return client.get("/collect", params={"eventType": "x", "siteId": "s", **params}).status_code
