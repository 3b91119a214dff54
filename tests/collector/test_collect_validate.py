from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from sluice.collector.rejections import Rejection
from sluice.collector.validate import MAX_EVENT_BYTES, MAX_EVENTS, parse_body, to_event

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
        "5B0C8A8E-7F4E-4C1E-9D7A-2F1E0C7B9A11",
        "{5b0c8a8e-7f4e-4c1e-9d7a-2f1e0c7b9a11}",
        "urn:uuid:5b0c8a8e-7f4e-4c1e-9d7a-2f1e0c7b9a11",
        "5b0c8a8e7f4e4c1e9d7a2f1e0c7b9a11",
        "5b0c8a8e-7f4e-4c1e-9d7a-2f1e0c7b9a1",
        "5b0c8a8e-7f4e-4c1e-9d7a-2f1e0c7b9a1g",
        "{}",
        "",
    ],
)
def test_a_client_event_id_is_read_as_uuid_reads_it(sent: str) -> None:
    try:
        expected: uuid.UUID | str = uuid.UUID(sent)
    except ValueError:
        expected = "invalid_value"
    raw = {"eventType": "x", "siteId": "s", "eventId": sent}
    assert (check(raw).event_id if isinstance(expected, uuid.UUID) else rejection(raw).reason) == expected


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


def test_a_correction_past_the_calendar_is_invalid() -> None:
    with pytest.raises(Rejection) as info:
        check({"eventType": "x", "siteId": "s", "timestamp": "9999-12-31T23:59:59Z"}, skew=timedelta(days=2))
    assert (info.value.reason, info.value.field) == ("invalid_value", "timestamp")


def test_nesting_deeper_than_can_be_stored_is_rejected_not_a_crash() -> None:
    deep: Any = "x"
    for _ in range(600):
        deep = [deep]
    assert rejection({"eventType": "x", "siteId": "s", "props": {"a": deep}}).reason == "invalid_value"
