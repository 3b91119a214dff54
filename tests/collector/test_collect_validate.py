from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from collector_testing import collector_client, event, post

from sluice.collector.rejections import Rejection
from sluice.collector.validate import MAX_EVENT_BYTES, MAX_EVENTS, parse_body, to_event
from sluice.settings import Settings

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
MAX_FUTURE = timedelta(seconds=60)


def check(raw: Any, skew: timedelta = timedelta(0)) -> Any:
    return to_event(raw, NOW, skew, NOW + MAX_FUTURE)


def rejection(raw: Any) -> Rejection:
    with pytest.raises(Rejection) as info:
        check(raw)
    return info.value


def test_the_three_body_shapes() -> None:
    one = {"eventType": "pageview", "siteId": "s"}
    single = parse_body(orjson.dumps(one))
    assert (single.events, single.sent_at, single.single) == ([one], None, True)
    array = parse_body(orjson.dumps([one, one]))
    assert (len(array.events), array.single) == (2, False)
    wrapped = parse_body(orjson.dumps({"events": [one], "sentAt": "2026-05-04T11:00:00Z"}))
    assert wrapped.sent_at == NOW - timedelta(hours=1)
    assert wrapped.single is False


@pytest.mark.parametrize(
    ("body", "reason", "field"),
    [
        (b"{", "malformed_json", None),
        (b"\xff\xfe", "malformed_json", None),
        (b"42", "malformed_json", None),
        (b"null", "malformed_json", None),
        # a raw U+0000 is not JSON: only the escape can carry one (what Batch.may_hold_nul relies on)
        (b'{"eventType": "x", "siteId": "s\x00"}', "malformed_json", None),
        (b"[]", "missing_field", "events"),
        (b'{"events": {}}', "wrong_type", "events"),
        (b'{"events": [{}], "sentAt": 5}', "wrong_type", "sentAt"),
        (b'{"events": [{}], "sentAt": "yesterday"}', "invalid_value", "sentAt"),
        (orjson.dumps([{}] * (MAX_EVENTS + 1)), "too_many_events", None),
    ],
)
def test_bad_bodies_name_their_fault(body: bytes, reason: str, field: str | None) -> None:
    with pytest.raises(Rejection) as info:
        parse_body(body)
    assert (info.value.reason, info.value.field) == (reason, field)


@pytest.mark.parametrize(
    ("raw", "reason", "field"),
    [
        ("pageview", "wrong_type", None),
        ({"siteId": "s"}, "missing_field", "eventType"),
        ({"eventType": "pageview"}, "missing_field", "siteId"),
        ({"eventType": "pageview", "siteId": None}, "missing_field", "siteId"),
        ({"eventType": 7, "siteId": "s"}, "wrong_type", "eventType"),
        ({"eventType": "", "siteId": "s"}, "invalid_value", "eventType"),
        ({"eventType": "pageview", "siteId": "s" * 201}, "invalid_value", "siteId"),
        ({"eventType": "pageview", "siteId": "s", "eventId": 12}, "wrong_type", "eventId"),
        ({"eventType": "pageview", "siteId": "s", "eventId": "not-a-uuid"}, "invalid_value", "eventId"),
        ({"eventType": "pageview", "siteId": "s", "timestamp": 1714820000}, "wrong_type", "timestamp"),
        ({"eventType": "pageview", "siteId": "s", "timestamp": "soon"}, "invalid_value", "timestamp"),
        ({"eventType": "pageview", "siteId": "s", "timestamp": "2026-05-04T12:00:00"}, "invalid_value", "timestamp"),
        ({"eventType": "pageview", "siteId": "s", "url": ["x"]}, "wrong_type", "url"),
        ({"eventType": "pageview", "siteId": "s", "visitorId": 5}, "wrong_type", "visitorId"),
        ({"eventType": "pageview", "siteId": "s", "props": "x"}, "wrong_type", "props"),
        (
            {"eventType": "pageview", "siteId": "s", "attribution": {"utmParams": 1}},
            "wrong_type",
            "attribution.utmParams",
        ),
        ({"eventType": "pageview", "siteId": "s", "props": {"a": "b\x00"}}, "invalid_value", None),
        ({"eventType": "pageview", "siteId": "s", "props": {"x" * MAX_EVENT_BYTES: 1}}, "event_too_large", None),
    ],
)
def test_bad_events_name_their_field(raw: Any, reason: str, field: str | None) -> None:
    assert (rejection(raw).reason, rejection(raw).field) == (reason, field)


@pytest.mark.parametrize(
    ("body", "may_hold_nul"),
    [
        (b'{"eventType": "pageview", "siteId": "s", "props": {"a": "b"}}', False),
        (b'[{"eventType": "pageview", "siteId": "s"}, {"eventType": "x", "siteId": "s", "p": {"k": "\\u0000"}}]', True),
        (b'{"events": [{"eventType": "pageview", "siteId": "s", "\\u0000": 1}]}', True),
        # a backslash then the text u0000, not the character: flagged, then cleared per event
        (b'{"eventType": "pageview", "siteId": "s", "title": "\\\\u0000"}', True),
    ],
)
def test_a_body_says_whether_its_events_may_hold_u0000(body: bytes, may_hold_nul: bool) -> None:
    batch = parse_body(body)
    assert batch.may_hold_nul is may_hold_nul
    outcomes = []
    for raw in batch.events:
        try:
            to_event(raw, NOW, timedelta(0), NOW + MAX_FUTURE, may_hold_nul=batch.may_hold_nul)
            outcomes.append("stored")
        except Rejection as rejected:
            outcomes.append(rejected.reason)
    holds_nul = [any("\x00" in text for text in _strings(raw)) for raw in batch.events]
    assert outcomes == ["invalid_value" if nul else "stored" for nul in holds_nul]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in (key, *_strings(item))]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def test_an_event_keeps_unknown_fields_and_gets_an_id() -> None:
    raw = {"eventType": "click", "siteId": "s", "visitorId": "v", "extra": {"deep": [1, None]}, "sessionId": None}
    event = check(raw)
    assert orjson.loads(event.payload) == raw
    assert event.event_id.version == 7
    assert (event.site_id, event.event_type, event.visitor_id, event.session_id) == ("s", "click", "v", None)
    assert event.occurred_at == NOW
    assert event.client_timestamp is None


def test_a_client_event_id_is_kept() -> None:
    event_id = uuid.uuid4()
    assert check({"eventType": "x", "siteId": "s", "eventId": str(event_id)}).event_id == event_id


def test_made_event_ids_are_version_7_uuids_in_time_order() -> None:
    before = time.time_ns() // 1_000_000
    made = [check({"eventType": "x", "siteId": "s"}).event_id for _ in range(1000)]
    after = time.time_ns() // 1_000_000
    assert len(set(made)) == 1000
    for event_id in made:
        assert (event_id.version, event_id.variant) == (7, uuid.RFC_4122)
        assert before <= event_id.int >> 80 <= after  # the milliseconds they were made in
        assert uuid.UUID(str(event_id)) == event_id
        assert hash(uuid.UUID(str(event_id))) == hash(event_id)


@pytest.mark.parametrize(
    "sent",
    [
        "5b0c8a8e-7f4e-4c1e-9d7a-2f1e0c7b9a11",
        "5B0C8A8E-7F4E-4C1E-9D7A-2F1E0C7B9A11",
        "5b0c8a8e7f4e4c1e9d7a2f1e0c7b9a11",
        "5B0c8A8e7F4e4C1e9D7a2F1e0C7b9A11",
    ],
)
def test_a_client_event_id_is_a_canonical_uuid_or_32_hex_digits_in_any_case(sent: str) -> None:
    assert check({"eventType": "x", "siteId": "s", "eventId": sent}).event_id == uuid.UUID(sent)


@pytest.mark.parametrize(
    "sent",
    [
        # what uuid.UUID (or int(..., 16)) also reads, and no UUID is written as
        "{5b0c8a8e-7f4e-4c1e-9d7a-2f1e0c7b9a11}",
        "urn:uuid:5b0c8a8e-7f4e-4c1e-9d7a-2f1e0c7b9a11",
        "--0123456789abcdef0123456789abcdef--",
        "0123-4567-89ab-cdef-0123-4567-89ab-cdef",
        "5b0c8a8e-7f4e-4c1e-9d7a-2f1e0c7b9a1\u0661",  # ARABIC-INDIC DIGIT ONE
        "\uff15b0c8a8e-7f4e-4c1e-9d7a-2f1e0c7b9a11",  # FULLWIDTH DIGIT FIVE
        "0x0c8a8e7f4e4c1e9d7a2f1e0c7b9a11",
        "5b0c8a8e_7f4e_4c1e_9d7a_2f1e0c7b9a11",
        "+b0c8a8e7f4e4c1e9d7a2f1e0c7b9a11",
        " 5b0c8a8e-7f4e-4c1e-9d7a-2f1e0c7b9a11",
        "5b0c8a8e-7f4e-4c1e-9d7a-2f1e0c7b9a11\n",
        "5b0c8a8e7f4e-4c1e-9d7a-2f1e0c7b9a11",
        "5b0c8a8e-7f4e-4c1e-9d7a-2f1e0c7b9a1",
        "5b0c8a8e-7f4e-4c1e-9d7a-2f1e0c7b9a1g",
        "{}",
        "",
    ],
)
def test_any_other_event_id_is_refused_naming_the_field(sent: str) -> None:
    refused = rejection({"eventType": "x", "siteId": "s", "eventId": sent})
    assert (refused.reason, refused.field, refused.status) == ("invalid_value", "eventId", 422)


def test_timestamp_is_corrected_by_the_clients_skew() -> None:
    # The client's clock is an hour behind: it said sentAt 11:00 when the server read 12:00.
    event = check({"eventType": "x", "siteId": "s", "timestamp": "2026-05-04T10:59:50Z"}, skew=timedelta(hours=1))
    assert event.client_timestamp == datetime(2026, 5, 4, 10, 59, 50, tzinfo=UTC)
    assert event.occurred_at == NOW - timedelta(seconds=10)


def test_a_timestamp_far_in_the_future_is_clamped_and_both_are_kept() -> None:
    far = check({"eventType": "x", "siteId": "s", "timestamp": "2026-05-05T12:00:00+02:00"})
    assert far.client_timestamp == datetime(2026, 5, 5, 10, 0, tzinfo=UTC)
    assert far.occurred_at == NOW
    near = check({"eventType": "x", "siteId": "s", "timestamp": "2026-05-04T12:00:30Z"})
    assert near.occurred_at == NOW + timedelta(seconds=30)  # within the allowed skew: believed


@pytest.mark.parametrize(
    "timestamp",
    [
        # in UTC, past year 9999 or before year 1: PostgreSQL stores them, Python cannot read them back
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "9999-12-31T00:00:00Z",
        "1999-12-31T23:59:59.999999Z",
        "2000-01-01T00:30:00+01:00",
        "1970-01-01T00:00:00Z",
    ],
)
def test_a_client_time_outside_2000_to_9999_is_refused_naming_the_field(timestamp: str) -> None:
    refused = rejection({"eventType": "x", "siteId": "s", "timestamp": timestamp})
    assert (refused.reason, refused.field, refused.status) == ("invalid_value", "timestamp", 422)
    with pytest.raises(Rejection) as info:
        parse_body(orjson.dumps({"events": [{"eventType": "x", "siteId": "s"}], "sentAt": timestamp}))
    assert (info.value.reason, info.value.field, info.value.status) == ("invalid_value", "sentAt", 422)


@pytest.mark.parametrize("timestamp", ["2000-01-01T00:00:00Z", "2000-01-01T01:00:00+01:00", "9999-12-30T23:59:59Z"])
def test_the_window_ends_are_believed(timestamp: str) -> None:
    event = check({"eventType": "x", "siteId": "s", "timestamp": timestamp})
    assert event.client_timestamp == datetime.fromisoformat(timestamp)
    assert parse_body(orjson.dumps({"events": [{}], "sentAt": timestamp})).sent_at == datetime.fromisoformat(timestamp)


@pytest.mark.parametrize(
    ("timestamp", "skew"),
    [
        ("9999-12-30T23:59:59Z", timedelta(days=2)),  # past the calendar
        ("2000-01-01T00:00:10Z", -timedelta(seconds=11)),  # a sentAt ahead of the timestamp, into 1999
    ],
)
def test_a_correction_out_of_the_window_is_invalid(timestamp: str, skew: timedelta) -> None:
    with pytest.raises(Rejection) as info:
        check({"eventType": "x", "siteId": "s", "timestamp": timestamp}, skew=skew)
    assert (info.value.reason, info.value.field) == ("invalid_value", "timestamp")


def test_nesting_deeper_than_can_be_stored_is_rejected_not_a_crash() -> None:
    deep: Any = "x"
    for _ in range(600):
        deep = [deep]
    assert rejection({"eventType": "x", "siteId": "s", "props": {"a": deep}}).reason == "invalid_value"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (event(timestamp="9999-12-31T23:59:59-23:59"), "timestamp"),
        (event(timestamp="0001-01-01T00:00:00+23:59"), "timestamp"),
        ({"events": [event()], "sentAt": "9999-12-31T23:59:59-23:59"}, "sentAt"),
        (event(eventId="--0123456789abcdef0123456789abcdef--"), "eventId"),
        (event(eventId="5b0c8a8e-7f4e-4c1e-9d7a-2f1e0c7b9a1\u0661"), "eventId"),
    ],
)
def test_a_refused_time_or_id_stores_nothing_and_the_log_still_reads(
    settings: Settings, db: psycopg.Connection, body: Any, field: str
) -> None:
    token = {"Authorization": "Bearer op-token"}
    with collector_client(replace(settings, admin_token="op-token")) as client:
        refused = post(client, body)
        assert (refused.status_code, refused.json()["error"], refused.json()["field"]) == (422, "invalid_value", field)
        assert db.execute("select count(*) from events").fetchone() == (0,)
        assert post(client, event(n=1)).status_code == 202
        recent = client.get("/events/recent", headers=token)
        assert recent.status_code == 200
        assert [e["payload"]["n"] for e in recent.json()["events"]] == [1]
