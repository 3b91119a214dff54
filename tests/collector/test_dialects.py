"""The dialects' translations, as pure functions: a body in another product's shape -> the
collector's events (collector/dialects/)."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import orjson
import pytest

from sluice.collector.dialects import plausible, posthog, segment, umami
from sluice.collector.dialects.shared import MESSAGE_ID_NAMESPACE, event_id
from sluice.collector.rejections import Rejection
from sluice.collector.sources import EndUser

MESSAGE_UUID = "6f1c6a9e-8f9c-4b8e-9d3c-2a1b0c9d8e7f"


def test_a_message_id_that_is_a_uuid_is_the_event_id_and_any_other_a_uuid5_of_site_and_id() -> None:
    # parsed once here, and handed on as a UUID (to_event takes it as it is)
    assert event_id("s", MESSAGE_UUID) == uuid.UUID(MESSAGE_UUID)
    assert event_id("s", MESSAGE_UUID.replace("-", "").upper()) == uuid.UUID(MESSAGE_UUID)
    assert event_id("s", "ajs-next-1700000000000-abc") == uuid.uuid5(
        MESSAGE_ID_NAMESPACE, "s\x00ajs-next-1700000000000-abc"
    )
    assert event_id("s", MESSAGE_UUID[:-1] + "g") == uuid.uuid5(MESSAGE_ID_NAMESPACE, "s\x00" + MESSAGE_UUID[:-1] + "g")
    assert event_id("s", "m1") != event_id("t", "m1")
    assert event_id("s", None) is None


def test_a_segment_batch_becomes_one_event_per_message() -> None:
    body = {
        "sentAt": "2026-01-01T10:00:05Z",
        "batch": [
            {
                "type": "track",
                "event": "Signed Up",
                "messageId": MESSAGE_UUID,
                "anonymousId": "anon-1",
                "userId": "user-1",
                "timestamp": "2026-01-01T10:00:00Z",
                "properties": {"plan": "pro", "seats": 3},
                "context": {
                    "ip": "203.0.113.9",
                    "userAgent": "Mozilla/5.0",
                    "page": {"url": "https://example.com/signup?x=1", "path": "/signup", "title": "Sign up"},
                    "campaign": {"source": "news", "medium": "email", "name": "spring", "term": "t", "content": "c"},
                    "library": {"name": "analytics-python", "version": "2.4.0"},
                },
            },
            {"type": "page", "messageId": "m2", "userId": "user-1", "properties": {"url": "https://example.com/"}},
            {"type": "identify", "anonymousId": "anon-1", "userId": "user-1", "traits": {"email": "a@b.c"}},
        ],
    }
    translated = segment.translate(body, "shop", "batch")
    assert translated.sent_at == "2026-01-01T10:00:05Z"
    assert translated.events == [
        {
            "siteId": "shop",
            "visitorId": "anon-1",
            "userId": "user-1",
            "eventId": uuid.UUID(MESSAGE_UUID),
            "timestamp": "2026-01-01T10:00:00Z",
            "eventType": "custom",
            "eventName": "Signed Up",
            "props": {"plan": "pro", "seats": 3},
            "url": "https://example.com/signup?x=1",
            "path": "/signup",
            "title": "Sign up",
            "attribution": {
                "utmParams": {
                    "utm_source": "news",
                    "utm_medium": "email",
                    "utm_campaign": "spring",
                    "utm_term": "t",
                    "utm_content": "c",
                }
            },
            "context": {"source": "server"},
        },
        {
            "siteId": "shop",
            "visitorId": "user-1",
            "userId": "user-1",
            "eventId": uuid.uuid5(MESSAGE_ID_NAMESPACE, "shop\x00m2"),
            "eventType": "pageview",
            "url": "https://example.com/",
            "props": {"url": "https://example.com/"},
            "context": {"source": "server"},
        },
        {
            "siteId": "shop",
            "visitorId": "anon-1",
            "userId": "user-1",
            "eventType": "identify",
            "props": {"email": "a@b.c"},
            "context": {"source": "server"},
        },
    ]
    # each message's end user, read where the message is (the same one object for the same pair)
    assert translated.users == [EndUser("203.0.113.9", "Mozilla/5.0"), EndUser(None, None), EndUser(None, None)]


def test_a_segment_single_endpoint_takes_its_type_from_the_path() -> None:
    translated = segment.translate({"event": "Clicked", "anonymousId": "a"}, "shop", "track")
    assert translated.events == [
        {
            "siteId": "shop",
            "visitorId": "a",
            "eventType": "custom",
            "eventName": "Clicked",
            "props": {},
            "context": {"source": "server"},
        }
    ]
    assert translated.users == [EndUser(None, None)]


def test_segment_measures_messages_only_when_the_body_could_hold_one_too_large() -> None:
    big = {"anonymousId": "a", "properties": {"x": "y" * 33_000}}
    with pytest.raises(Rejection):
        segment.translate(big, "shop", "track", body_bytes=33_100)
    # (a body of at most 32 KB holds no message over 32 KB: nothing is measured)
    assert len(segment.translate({"anonymousId": "a"}, "shop", "track", body_bytes=40).events) == 1


@pytest.mark.parametrize("place", [0, 5, 10, 20, 39])
def test_a_batch_finds_its_message_too_large_wherever_it_is(place: int) -> None:
    """The messages measured bound the others only by what is left of the body: one over 32 KB is
    found first, among, or after the small ones, in a group measured together or not."""
    small = {"type": "track", "event": "e", "anonymousId": "a", "properties": {"x": "y" * 1000}}
    big = {**small, "properties": {"x": "y" * 33_000}}
    batch = [small] * 40
    batch.insert(place, big)
    body = orjson.dumps({"batch": batch})
    with pytest.raises(Rejection) as raised:
        segment.translate(orjson.loads(body), "shop", "batch", len(body))
    assert (raised.value.reason, raised.value.index) == ("message_too_large", place)
    # and the same batch without it, over 32 KB as a body, is taken whole
    body = orjson.dumps({"batch": [small] * 40})
    assert len(body) > segment.MAX_MESSAGE_BYTES
    assert len(segment.translate(orjson.loads(body), "shop", "batch", len(body)).events) == 40


# A server's batch: every message of one page, one campaign and one end user, which is what lets
# the 32 KB check count what the messages weigh at least instead of serialising them
_RUN_MESSAGE: dict[str, Any] = {
    "type": "track",
    "event": "e",
    "anonymousId": "a",
    "properties": {"n": 1},
    "context": {
        "ip": "203.0.113.9",
        "userAgent": "Mozilla/5.0 " + "x" * 400,
        "page": {"url": "https://example.com/" + "p" * 300, "path": "/p", "title": "Pricing"},
        "campaign": {"source": "news", "medium": "email"},
    },
}


def test_a_batch_whose_messages_weigh_enough_at_least_is_not_serialised(monkeypatch: pytest.MonkeyPatch) -> None:
    body = orjson.dumps({"batch": [_RUN_MESSAGE] * 100})
    assert len(body) > 2 * segment.MAX_MESSAGE_BYTES

    def refused(_: object) -> bytes:
        raise AssertionError("a message was serialised")

    monkeypatch.setattr(segment, "_dumps", refused)
    assert len(segment.translate(orjson.loads(body), "shop", "batch", len(body)).events) == 100


@pytest.mark.parametrize("place", [0, 1, 50, 99])
@pytest.mark.parametrize("where", ["properties", "context.page", "context.userAgent", "context.library"])
@pytest.mark.parametrize("fault", [None, "before", "after"])
def test_a_message_over_32_kb_among_ones_that_weigh_enough_at_least_is_found(
    place: int, where: str, fault: str | None
) -> None:
    """The count of what the messages weigh at least cannot vouch for a message over 32 KB,
    whichever field makes it so (counted, like its page, or not); and a refusal of another message
    waits until the messages before it are measured: the first at fault is turned away."""
    big: dict[str, Any] = {**_RUN_MESSAGE, "context": {**_RUN_MESSAGE["context"]}}
    if where == "properties":
        big["properties"] = {"x": "y" * 33_000}
    elif where == "context.page":
        big["context"]["page"] = {"url": "https://example.com/" + "p" * 33_000}
    elif where == "context.userAgent":
        big["context"]["userAgent"] = "Mozilla/5.0 " + "x" * 33_000
    else:
        big["context"]["library"] = {"name": "n" * 33_000}
    batch: list[Any] = [_RUN_MESSAGE] * 100
    batch[place] = big
    at_fault = {"before": place - 1, "after": place + 1}.get(fault or "", -1)
    if 0 <= at_fault < len(batch):
        batch[at_fault] = {"type": "track", "event": "e"} if at_fault % 2 else ["not a message"]
    else:
        at_fault = -1
    body = orjson.dumps({"batch": batch})
    assert len(body) < segment.MAX_BATCH_BYTES
    with pytest.raises(Rejection) as raised:
        segment.translate(orjson.loads(body), "shop", "batch", len(body))
    if at_fault == -1 or at_fault > place:
        assert (raised.value.reason, raised.value.index) == ("message_too_large", place)
    else:
        assert raised.value.reason in ("missing_field", "wrong_type")
        assert raised.value.index == at_fault


def test_a_body_just_over_32_kb_with_one_message_over_it() -> None:
    """The narrowest case the count must turn away: one message a byte over 32 KB and a small one."""
    small = {"type": "track", "event": "e", "anonymousId": "a"}
    big: dict[str, Any] = {**small, "properties": {"x": ""}}
    big["properties"]["x"] = "y" * (segment.MAX_MESSAGE_BYTES + 1 - len(orjson.dumps(big)))
    assert len(orjson.dumps(big)) == segment.MAX_MESSAGE_BYTES + 1
    for batch in ([big, small], [small, big], [big]):
        body = orjson.dumps({"batch": batch})
        with pytest.raises(Rejection) as raised:
            segment.translate(orjson.loads(body), "shop", "batch", len(body))
        assert (raised.value.reason, raised.value.index) == ("message_too_large", batch.index(big))
    # and at exactly 32 KB it is taken, with a small one beside it
    big["properties"]["x"] = big["properties"]["x"][1:]
    body = orjson.dumps({"batch": [small, big]})
    assert len(body) > segment.MAX_MESSAGE_BYTES
    assert len(segment.translate(orjson.loads(body), "shop", "batch", len(body)).events) == 2
    # a single message's endpoint: its body is the message
    single: dict[str, Any] = {"event": "e", "anonymousId": "a", "properties": {"x": ""}}
    single["properties"]["x"] = "y" * (segment.MAX_MESSAGE_BYTES - len(orjson.dumps(single)))
    body = orjson.dumps(single)
    assert len(body) == segment.MAX_MESSAGE_BYTES
    assert len(segment.translate(orjson.loads(body), "shop", "track", len(body) + 1).events) == 1
    single["properties"]["x"] += "y"
    body = orjson.dumps(single)
    with pytest.raises(Rejection) as raised:
        segment.translate(orjson.loads(body), "shop", "track", len(body))
    assert (raised.value.reason, raised.value.index) == ("message_too_large", None)


@pytest.mark.parametrize(("fault", "big"), [(3, 10), (3, 20), (20, 3), (30, 17)])
def test_the_first_message_at_fault_is_the_one_turned_away(fault: int, big: int) -> None:
    """Measuring messages in groups for the 32 KB limit turns none away early: a batch with a
    message over 32 KB and another without anonymousId is refused for the first of the two."""
    small = {"type": "track", "event": "e", "anonymousId": "a", "properties": {"x": "y" * 1000}}
    batch = [small] * 40
    batch[fault] = {"type": "track", "event": "e"}
    batch[big] = {**small, "properties": {"x": "y" * 33_000}}
    body = orjson.dumps({"batch": batch})
    with pytest.raises(Rejection) as raised:
        segment.translate(orjson.loads(body), "shop", "batch", len(body))
    first = min(fault, big)
    reason = "missing_field" if first == fault else "message_too_large"
    assert (raised.value.reason, raised.value.index) == (reason, first)


@pytest.mark.parametrize(
    ("body", "kind", "reason", "field", "index"),
    [
        ({"batch": [{"type": "track", "event": "x"}]}, "batch", "missing_field", "anonymousId", 0),
        ({"batch": [{"type": "launch", "anonymousId": "a"}]}, "batch", "invalid_value", "type", 0),
        # (a type that cannot be hashed was a TypeError, a 500)
        ({"batch": [{"type": ["track"], "anonymousId": "a"}]}, "batch", "invalid_value", "type", 0),
        ({"batch": [{"type": {"t": 1}, "anonymousId": "a"}]}, "batch", "invalid_value", "type", 0),
        ({"batch": {}}, "batch", "wrong_type", "batch", None),
        ({"batch": []}, "batch", "missing_field", "batch", None),
        ({"anonymousId": "a", "properties": [1]}, "track", "wrong_type", "properties", None),
        ({"anonymousId": "a", "properties": {"x": "y" * 33_000}}, "track", "message_too_large", None, None),
    ],
)
def test_segment_refusals_name_the_field_and_message(
    body: dict[str, object], kind: str, reason: str, field: str | None, index: int | None
) -> None:
    with pytest.raises(Rejection) as raised:
        segment.translate(body, "shop", kind)
    assert (raised.value.reason, raised.value.field, raised.value.index) == (reason, field, index)


def test_segment_write_key_from_the_body() -> None:
    assert segment.write_key_of({"writeKey": "k", "batch": []}) == "k"
    assert segment.write_key_of({"batch": [{"writeKey": "k2"}]}) == "k2"
    assert segment.write_key_of({"batch": []}) is None


def test_a_posthog_batch_becomes_pageviews_identifies_and_custom_events() -> None:
    body = {
        "api_key": "key",
        "sent_at": "2026-01-01T10:00:05Z",
        "batch": [
            {
                "event": "$pageview",
                "distinct_id": "d1",
                "uuid": MESSAGE_UUID,
                "timestamp": "2026-01-01T10:00:00Z",
                "properties": {
                    "$current_url": "https://example.com/a?utm_source=x",
                    "$pathname": "/a",
                    "$referrer": "https://search.example/",
                    "$session_id": "s1",
                    "$ip": "203.0.113.9",
                    "$lib": "posthog-python",
                    "utm_source": "x",
                    "plan": "pro",
                },
            },
            {
                "event": "$identify",
                "distinct_id": "user-1",
                "properties": {"$anon_distinct_id": "d1", "$set": {"a": 1}},
            },
            {"event": "Clicked", "properties": {"distinct_id": "d1", "n": 2}},
        ],
    }
    assert posthog.api_key_of(body) == "key"
    translated = posthog.translate(body, "shop")
    assert translated.sent_at == "2026-01-01T10:00:05Z"
    assert translated.events == [
        {
            "siteId": "shop",
            "eventType": "pageview",
            "visitorId": "d1",
            "eventId": uuid.UUID(MESSAGE_UUID),
            "timestamp": "2026-01-01T10:00:00Z",
            "sessionId": "s1",
            "url": "https://example.com/a?utm_source=x",
            "path": "/a",
            "referrer": "https://search.example/",
            "props": {"utm_source": "x", "plan": "pro"},
            "posthog": {"$lib": "posthog-python"},
            "attribution": {"utmParams": {"utm_source": "x"}},
            "context": {"ip": "203.0.113.9"},
        },
        {"siteId": "shop", "eventType": "identify", "visitorId": "d1", "userId": "user-1", "props": {"a": 1}},
        {"siteId": "shop", "eventType": "custom", "eventName": "Clicked", "visitorId": "d1", "props": {"n": 2}},
    ]


def test_posthog_js_sends_an_array_with_the_token_in_each_event_and_may_form_encode_it() -> None:
    events = [{"event": "$pageview", "properties": {"token": "key", "distinct_id": "d"}}]
    form = b"data=" + base64.b64encode(orjson.dumps(events))
    doc = posthog.parse(form, form=True)
    assert posthog.api_key_of(doc) == "key"
    assert posthog.translate(doc, "shop").events == [
        {"siteId": "shop", "eventType": "pageview", "visitorId": "d", "props": {}}
    ]


@pytest.mark.parametrize(
    ("body", "reason", "field", "index"),
    [
        ({"api_key": "k", "event": "x"}, "missing_field", "distinct_id", None),
        ({"api_key": "k", "distinct_id": "d"}, "missing_field", "event", None),
        ({"api_key": "k", "batch": [{"event": "x", "distinct_id": "d"}, 3]}, "wrong_type", None, 1),
        ({"api_key": "k", "batch": []}, "missing_field", "batch", None),
    ],
)
def test_posthog_refusals(body: dict[str, object], reason: str, field: str | None, index: int | None) -> None:
    with pytest.raises(Rejection) as raised:
        posthog.translate(body, "shop")
    assert (raised.value.reason, raised.value.field, raised.value.index) == (reason, field, index)


def test_plausible_tracker_and_api_shapes() -> None:
    tracker = {
        "n": "pageview",
        "u": "https://example.com/a",
        "d": "example.com",
        "r": "https://ref.example/",
        "w": 1280,
    }
    assert plausible.translate(tracker).events == [
        {
            "siteId": "example.com",
            "url": "https://example.com/a",
            "eventType": "pageview",
            "referrer": "https://ref.example/",
        }
    ]
    api = {"name": "Signup", "url": "https://example.com/", "domain": "a.com,b.com", "props": '{"plan": "pro"}'}
    assert plausible.translate(api).events == [
        {
            "siteId": site,
            "url": "https://example.com/",
            "eventType": "custom",
            "eventName": "Signup",
            "props": {"plan": "pro"},
        }
        for site in ("a.com", "b.com")
    ]
    with pytest.raises(Rejection) as raised:
        plausible.translate({"n": "pageview", "u": "https://example.com/"})
    assert (raised.value.reason, raised.value.field) == ("missing_field", "domain")


def test_umami_event_and_identify() -> None:
    pageview = {
        "type": "event",
        "payload": {
            "website": "w-1",
            "hostname": "example.com",
            "url": "/a?utm_source=x",
            "referrer": "https://ref.example/",
            "title": "A",
            "screen": "1280x800",
            "language": "en",
            "ip": "203.0.113.9",
            "timestamp": 1767261600,
        },
    }
    assert umami.translate(pageview).events == [
        {
            "siteId": "w-1",
            "eventType": "pageview",
            "path": "/a",
            "url": "https://example.com/a?utm_source=x",
            "referrer": "https://ref.example/",
            "title": "A",
            "timestamp": "2026-01-01T10:00:00+00:00",
            "screen": "1280x800",
            "language": "en",
            "hostname": "example.com",
            "context": {"ip": "203.0.113.9"},
        }
    ]
    custom = {"type": "event", "payload": {"website": "w-1", "name": "Signup", "data": {"plan": "pro"}, "id": "u1"}}
    assert umami.translate(custom).events == [
        {
            "siteId": "w-1",
            "eventType": "custom",
            "eventName": "Signup",
            "visitorId": "u1",
            "userId": "u1",
            "props": {"plan": "pro"},
        }
    ]
    with pytest.raises(Rejection) as raised:
        umami.translate({"type": "event", "payload": {}})
    assert (raised.value.reason, raised.value.field) == ("missing_field", "payload.website")
    with pytest.raises(Rejection) as raised:
        umami.translate({"type": "pageleave", "payload": {"website": "w"}})
    assert (raised.value.reason, raised.value.field) == ("invalid_value", "type")


# As Umami's tracker builds them (src/tracker/index.ts: getPayload() plus the metrics; errors.ts)
UMAMI_PERFORMANCE = {
    "type": "performance",
    "payload": {
        "website": "w-1",
        "screen": "1280x800",
        "language": "en-US",
        "title": "A",
        "hostname": "example.com",
        "url": "https://example.com/a",
        "referrer": "",
        "id": "u1",
        "ttfb": 38.2,
        "fcp": 412.5,
        "lcp": 1210.0,
        "cls": 0.031,
        "inp": 48,
        "duration": 15023,
    },
}
UMAMI_ERROR = {
    "type": "error",
    "payload": {
        "version": 1,
        "website": "w-1",
        "eventId": "0c9f4b2e-8d4a-4f7e-9b1d-3e2a5c6d7f80",
        "timestamp": 1767261600123,
        "name": "TypeError",
        "message": "Cannot read properties of undefined (reading 'x')",
        "stack": "TypeError: Cannot read properties of undefined\n    at https://example.com/app.js:1:20",
        "handled": False,
        "url": "/a",
        "id": "u1",
        "screen": "1280x800",
        "language": "en-US",
        "release": "1.4.2",
        "environment": "production",
        "tags": {"area": "checkout"},
    },
}

# Umami's engagement: the tracker's payload with the milliseconds engaged on the page being left
# (src/app/api/send/request-schema.ts and route.test.ts: `engagement`, an integer, 1 to 86,400,000)
UMAMI_ENGAGEMENT = {
    "type": "engagement",
    "payload": {
        "website": "w-1",
        "screen": "1280x800",
        "language": "en-US",
        "title": "Getting started",
        "hostname": "example.com",
        "url": "/docs/getting-started?ref=nav",
        "referrer": "",
        "id": "u1",
        "engagement": 42000,
    },
}


def test_umami_engagement_is_an_engagement_event_with_its_milliseconds() -> None:
    assert umami.translate(UMAMI_ENGAGEMENT).events == [
        {
            "siteId": "w-1",
            "eventType": "engagement",
            "engagedMs": 42000,
            "visitorId": "u1",
            "userId": "u1",
            "path": "/docs/getting-started",
            "url": "https://example.com/docs/getting-started?ref=nav",
            "title": "Getting started",
            "screen": "1280x800",
            "language": "en-US",
            "hostname": "example.com",
        }
    ]
    # Umami's bounds (route.test.ts "validates the engaged time"), and its 400 without the time
    assert (
        umami.translate({"type": "engagement", "payload": {"website": "w", "engagement": 5000}}).events[0]["engagedMs"]
        == 5000
    )
    for value, reason in [
        (None, "missing_field"),
        (0, "invalid_value"),
        (86_400_001, "invalid_value"),
        (1.5, "wrong_type"),
        ("5000", "wrong_type"),
        (True, "wrong_type"),
    ]:
        payload = {"website": "w"} if value is None else {"website": "w", "engagement": value}
        with pytest.raises(Rejection) as raised:
            umami.translate({"type": "engagement", "payload": payload})
        assert (raised.value.reason, raised.value.field) == (reason, "payload.engagement")


def test_umami_performance_is_a_performance_event_with_its_vitals() -> None:
    assert umami.translate(UMAMI_PERFORMANCE).events == [
        {
            "siteId": "w-1",
            "eventType": "performance",
            "vitals": {"lcp": 1210.0, "inp": 48, "cls": 0.031, "fcp": 412.5, "ttfb": 38.2},
            "pageDurationMs": 15023,
            "visitorId": "u1",
            "userId": "u1",
            "url": "https://example.com/a",
            "title": "A",
            "screen": "1280x800",
            "language": "en-US",
            "hostname": "example.com",
        }
    ]
    # a page left before any metric was observed: the event, without vitals
    assert "vitals" not in umami.translate({"type": "performance", "payload": {"website": "w"}}).events[0]
    for name, value, reason in [
        ("lcp", -1, "invalid_value"),
        ("inp", 60001, "invalid_value"),
        ("cls", 101, "invalid_value"),
        ("ttfb", "12", "wrong_type"),
        ("fcp", True, "wrong_type"),
        ("duration", -5, "invalid_value"),
    ]:
        with pytest.raises(Rejection) as raised:
            umami.translate({"type": "performance", "payload": {"website": "w", name: value}})
        assert (raised.value.reason, raised.value.field) == (reason, f"payload.{name}")


def test_umami_error_is_an_error_event_with_its_id_and_millisecond_time() -> None:
    assert umami.translate(UMAMI_ERROR).events == [
        {
            "siteId": "w-1",
            "eventType": "error",
            "error": {
                "name": "TypeError",
                "message": "Cannot read properties of undefined (reading 'x')",
                "stack": "TypeError: Cannot read properties of undefined\n    at https://example.com/app.js:1:20",
                "release": "1.4.2",
                "environment": "production",
                "handled": False,
                "tags": {"area": "checkout"},
            },
            "eventId": uuid.UUID("0c9f4b2e-8d4a-4f7e-9b1d-3e2a5c6d7f80"),
            "visitorId": "u1",
            "userId": "u1",
            "path": "/a",
            "timestamp": "2026-01-01T10:00:00.123000+00:00",
            "screen": "1280x800",
            "language": "en-US",
        }
    ]
    payload = UMAMI_ERROR["payload"]
    assert isinstance(payload, dict)
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"name": None}, "missing_field", "payload.name"),
        ({"name": ""}, "invalid_value", "payload.name"),
        ({"message": None}, "missing_field", "payload.message"),
        ({"message": "x" * 2001}, "invalid_value", "payload.message"),
        ({"stack": 3}, "wrong_type", "payload.stack"),
        ({"handled": "no"}, "wrong_type", "payload.handled"),
        ({"tags": {"a": 1}}, "wrong_type", "payload.tags"),
        ({"tags": {str(n): "v" for n in range(21)}}, "invalid_value", "payload.tags"),
        ({"fingerprint": []}, "invalid_value", "payload.fingerprint"),
        ({"version": 2}, "invalid_value", "payload.version"),
        ({"timestamp": "now"}, "wrong_type", "payload.timestamp"),
    ]
    for changed, reason, field in cases:
        with pytest.raises(Rejection) as raised:
            umami.translate({"type": "error", "payload": {**payload, **changed}})
        assert (raised.value.reason, raised.value.field) == (reason, field)


def test_a_segment_batch_translates_each_message_as_it_would_alone() -> None:
    """What consecutive messages share (the template of type, page and campaign; the end user) is
    reused only where it gives each event what its own message would: a page or campaign equal
    under `==` but not the same (1 and True, 1 and 1.0), a change of page, type or end user, and
    nested or unhashable values all give each message's own fields."""
    page = {"url": "https://example.com/a", "path": "/a", "title": "A"}
    campaign = {"source": "news", "medium": "email"}
    context = {"ip": "203.0.113.9", "userAgent": "Mozilla/5.0", "page": page, "campaign": campaign}
    base = {"type": "track", "event": "e", "anonymousId": "a", "properties": {"p": 1}, "context": context}
    deep: Any = "x"
    for _ in range(200):  # (nested, within what orjson writes)
        deep = [deep]
    messages: list[dict[str, Any]] = [
        base,
        {**base, "event": "f", "userId": "u"},
        {**base, "context": {**context, "page": {**page, "path": "/b"}}},
        {**base, "context": {**context, "page": {**page, "path": "/b"}}},
        {**base, "context": {**context, "page": {**page, "title": 1}}},
        {**base, "context": {**context, "page": {**page, "title": True}}},
        {**base, "context": {**context, "page": {**page, "title": 1.0}}},
        {**base, "context": {**context, "page": {**page, "extra": deep}}},
        {**base, "context": {**context, "page": {**page, "extra": deep}}},
        {**base, "context": {**context, "campaign": {"source": "ads"}}},
        {**base, "context": {**context, "campaign": {"source": "ads", "extra": deep}}},
        {**base, "context": {**context, "campaign": {"source": "ads", "extra": deep}}},
        {**base, "context": {**context, "campaign": None}},
        {**base, "context": {**context, "campaign": {}}},
        {**base, "type": "screen", "name": "Home"},
        {**base, "type": "page", "properties": {"url": "https://example.com/p"}},
        {**base, "type": "page", "context": {**context, "page": {"path": "/q"}}},
        {**base, "type": "identify", "traits": {"email": "a@b.c"}},
        {**base, "type": "group", "groupId": "g", "traits": {"n": 1}},
        {**base, "type": "alias", "previousId": "old"},
        {**base, "context": {**context, "ip": "198.51.100.1"}},
        {**base, "context": {**context, "ip": ["198.51.100.1"]}},
        {**base, "context": {**context, "ip": ["198.51.100.1"]}},
        {**base, "context": {**context, "userAgent": deep}},
        {**base, "context": {**context, "userAgent": deep}},
        {**base, "context": {}},
        base,
    ]
    batch = segment.translate({"batch": messages}, "shop", "batch")
    alone = [segment.translate(message, "shop", message["type"]) for message in messages]
    assert batch.events == [each.events[0] for each in alone]
    assert [(user.ip, user.user_agent) for user in batch.users or []] == [
        (user.ip, user.user_agent) for each in alone for user in each.users or []
    ]
    # (1, True and 1.0 are three titles)
    assert [event.get("title") for event in batch.events[4:7]] == ["1", None, "1.0"]


def test_a_message_nested_deeper_than_json_is_written_is_refused_not_an_error() -> None:
    """orjson reads deeper than it writes: measuring such a message for the 32 KB limit is a
    clean 400, as storing one is (validate.to_event), not a TypeError."""
    deep = b"[" * 300 + b'"x"' + b"]" * 300
    body = b'{"batch": [{"type": "track", "anonymousId": "a", "context": {"library": ' + deep + b"}}]}"
    with pytest.raises(Rejection) as raised:
        segment.translate(orjson.loads(body), "shop", "batch", body_bytes=40_000)
    assert (raised.value.reason, raised.value.index) == ("invalid_value", 0)
