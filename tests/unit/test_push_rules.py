"""Web Push rules, pure, with a fake clock: allow-list, subscriptions, payload cutting, headers,
answers of push services and the retry schedule."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.notifier.domain.push import (
    DEFAULT_ENDPOINT_ALLOWLIST,
    ELLIPSIS,
    MAX_PAYLOAD_BYTES,
    EndpointAllowList,
    Outcome,
    PayloadTooLarge,
    PushHeaders,
    PushMessage,
    PushNotification,
    RetryPolicy,
    SubscriptionRejected,
    TransportError,
    b64url_encode,
    backoff,
    build_push,
    classify,
    latest_per_topic,
    next_attempt_at,
    parse_retry_after,
    parse_subscription,
    push_headers,
    topic_for,
)

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DEFAULT = EndpointAllowList.parse(DEFAULT_ENDPOINT_ALLOWLIST)
TESTS = EndpointAllowList.parse(DEFAULT_ENDPOINT_ALLOWLIST + ",127.0.0.1")


def _point() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )


def _subscription(
    endpoint: str = "https://fcm.googleapis.com/fcm/send/abc:def", **keys: str
) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "expirationTime": None,
        "keys": {"p256dh": b64url_encode(_point()), "auth": b64url_encode(b"a" * 16)} | keys,
    }


# --- allow-list --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "origin"),
    [
        ("https://fcm.googleapis.com/fcm/send/abc", "https://fcm.googleapis.com:443"),
        ("https://updates.push.services.mozilla.com/wpush/v2/gAAA", None),
        ("https://wns2-par02p.notify.windows.com/w/?token=BQYAAAB%2bx", None),
        ("https://web.push.apple.com/QGuQyavXutnMH", "https://web.push.apple.com:443"),
        ("https://FCM.googleapis.com/fcm/send/abc", "https://fcm.googleapis.com:443"),
        ("https://fcm.googleapis.com:8443/x", "https://fcm.googleapis.com:8443"),
    ],
)
def test_the_major_browsers_push_services_are_allowed_by_default(
    endpoint: str, origin: str | None
) -> None:
    found = DEFAULT.check(endpoint)
    if origin is not None:
        assert found == origin


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://evil.example/push",
        "https://fcm.googleapis.com.evil.example/push",
        "https://notify.windows.com/w/",  # a wildcard never matches the apex
        "https://push.apple.com/x",
        "https://10.0.0.1/push",  # IP literals only when listed
        "https://[::1]/push",
        "https://127.0.0.1/push",
        "http://wns2-par02p.notify.windows.com/w/",  # wildcard hosts: https only
        "http://web.push.apple.com/x",
    ],
)
def test_other_hosts_ip_literals_and_plain_http_on_wildcards_are_forbidden(endpoint: str) -> None:
    with pytest.raises(SubscriptionRejected) as refused:
        DEFAULT.check(endpoint)
    assert refused.value.code == "forbidden"


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://user:pw@fcm.googleapis.com/fcm/send/x",  # userinfo
        "https://fcm.googleapis.com@evil.example/x",
        "https://fcm.googleapis.com\\@evil.example/x",  # parsers disagree: refused early
        "ftp://fcm.googleapis.com/x",
        "javascript:alert(1)",
        "https://fcm.googleapis.com/x#frag",
        "https://fcm.googleapis.com/x y",
        "https://fcm.googleapis.com:99999/x",
        "https:///nohost",
        "https://fcm.googleapis.com/" + "a" * 2100,
        "https://fcm.googleapis.com/caf\u00e9",
    ],
)
def test_malformed_endpoints_are_bad_requests(endpoint: str) -> None:
    with pytest.raises(SubscriptionRejected) as refused:
        DEFAULT.check(endpoint)
    assert refused.value.code == "bad_request"


def test_a_host_listed_exactly_may_be_plain_http_on_any_port() -> None:
    assert TESTS.check("http://127.0.0.1:41234/push/abc") == "http://127.0.0.1:41234"
    assert TESTS.check("https://127.0.0.1/push/abc") == "https://127.0.0.1:443"
    ipv6 = EndpointAllowList.parse("[::1]")
    assert ipv6.check("http://[::1]:8080/p") == "http://[::1]:8080"


@pytest.mark.parametrize("entry", ["*.com", "*", "fcm googleapis.com", "http://x.example", "*."])
def test_unreadable_allow_list_entries_fail_at_start_up(entry: str) -> None:
    with pytest.raises(ValueError):
        EndpointAllowList.parse(entry)


# --- subscriptions -----------------------------------------------------------------------------


def test_a_browser_subscription_is_parsed() -> None:
    raw = _subscription()
    raw["expirationTime"] = 1_800_000_000_000
    parsed = parse_subscription(raw, DEFAULT)
    assert parsed.endpoint == raw["endpoint"]
    assert parsed.origin == "https://fcm.googleapis.com:443"
    assert len(parsed.p256dh) == 65 and parsed.auth == b"a" * 16
    assert parsed.expiration_time == datetime(2027, 1, 15, 8, 0, tzinfo=UTC)


def test_padded_base64url_keys_are_accepted() -> None:
    raw = _subscription(auth=b64url_encode(b"b" * 16) + "==")
    assert parse_subscription(raw, DEFAULT).auth == b"b" * 16


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"endpoint": None}, "endpoint:missing"),
        ({"keys": None}, "keys:missing"),
        ({"keys": {"auth": b64url_encode(b"a" * 16)}}, "keys.p256dh:missing"),
        ({"keys": {"p256dh": "BBBB+/==", "auth": "x"}}, "keys.p256dh:not_base64url"),
        ({"expirationTime": "tomorrow"}, "expirationTime:invalid"),
        ({"expirationTime": True}, "expirationTime:invalid"),
    ],
)
def test_missing_or_malformed_fields_are_bad_requests(
    change: dict[str, object], reason: str
) -> None:
    raw = _subscription() | change
    with pytest.raises(SubscriptionRejected) as refused:
        parse_subscription(raw, DEFAULT)
    assert (refused.value.code, refused.value.reason) == ("bad_request", reason)


def test_keys_must_be_an_uncompressed_p256_point_and_a_16_byte_secret() -> None:
    compressed = b"\x02" + _point()[1:33]
    off_curve = b"\x04" + bytes(range(64))
    reasons = []
    for p256dh, auth in [
        (compressed, b"a" * 16),
        (off_curve, b"a" * 16),
        (_point(), b"a" * 15),
        (_point(), b"a" * 17),
    ]:
        raw = _subscription(p256dh=b64url_encode(p256dh), auth=b64url_encode(auth))
        with pytest.raises(SubscriptionRejected) as refused:
            parse_subscription(raw, DEFAULT)
        assert refused.value.code == "bad_request"
        reasons.append(refused.value.reason)
    assert reasons == [
        "keys.p256dh:not_uncompressed_p256",
        "keys.p256dh:not_on_curve",
        "keys.auth:not_16_bytes",
        "keys.auth:not_16_bytes",
    ]


def test_a_well_formed_subscription_elsewhere_is_forbidden() -> None:
    with pytest.raises(SubscriptionRejected) as refused:
        parse_subscription(_subscription("https://attacker.example/hook"), DEFAULT)
    assert refused.value.code == "forbidden"


# --- payload -----------------------------------------------------------------------------------


def _notification(
    title: str = "Alice", body: str = "hi", data: dict[str, object] | None = None
) -> PushNotification:
    return PushNotification(
        id="n1",
        kind="message",
        title=title,
        body=body,
        data={"conversation_id": "dm_a_b", "sender_id": "alice", "message_id": "m1", "count": 1}
        if data is None
        else data,
        created_at=T0,
    )


def test_a_short_notification_is_pushed_whole() -> None:
    message = build_push(_notification(), user_id="bob", unread_count=3)
    assert orjson.loads(message.payload) == {
        "notification": {
            "id": "n1",
            "kind": "message",
            "title": "Alice",
            "body": "hi",
            "data": {
                "conversation_id": "dm_a_b",
                "sender_id": "alice",
                "message_id": "m1",
                "count": 1,
            },
            "created_at": "2026-11-30T12:00:00Z",
        },
        "unread_count": 3,
    }
    assert (message.user_id, message.notification_id) == ("bob", "n1")


def _payload(message: PushMessage) -> dict[str, object]:
    decoded: dict[str, object] = orjson.loads(message.payload)["notification"]
    return decoded


def test_a_long_body_is_cut_first_and_the_title_and_data_stay() -> None:
    body = '\U0001f600\u00e9"\n\x01' * 2000  # 4-, 2-byte characters and escapes
    message = build_push(_notification(body=body), user_id="bob", unread_count=1)
    assert len(message.payload) <= MAX_PAYLOAD_BYTES
    shown = _payload(message)
    assert shown["title"] == "Alice"
    assert shown["data"] == _notification().data
    cut = str(shown["body"])
    assert cut.endswith(ELLIPSIS) and body.startswith(cut[: -len(ELLIPSIS)])
    # The longest cut that fits: one more character would not.
    longer = body[: len(cut)] + ELLIPSIS
    bigger = build_push(_notification(body=longer), user_id="bob", unread_count=1, max_bytes=10**6)
    assert len(bigger.payload) > MAX_PAYLOAD_BYTES


def test_a_title_too_long_for_any_body_is_cut_after_the_body() -> None:
    message = build_push(
        _notification(title="T" * 5000, body="b" * 100), user_id="bob", unread_count=1
    )
    shown = _payload(message)
    assert len(message.payload) <= MAX_PAYLOAD_BYTES
    assert shown["body"] == ""
    assert str(shown["title"]).startswith("TTT") and str(shown["title"]).endswith(ELLIPSIS)


def test_cuts_fit_exactly_for_random_texts() -> None:
    rng = random.Random(7)
    alphabet = string.printable + '\u00e9\u4e2d\U0001f600\x00\x1f\\"'
    for _ in range(200):
        limit = rng.randint(250, 900)
        title = "".join(rng.choices(alphabet, k=rng.randint(0, 300)))
        body = "".join(rng.choices(alphabet, k=rng.randint(0, 900)))
        payload = build_push(
            _notification(title=title, body=body, data={"k": "v"}),
            user_id="u",
            unread_count=rng.randint(0, 10**6),
            max_bytes=limit,
        ).payload
        assert len(payload) <= limit
        shown = orjson.loads(payload)["notification"]
        assert shown["data"] == {"k": "v"}
        if shown["title"] != title:
            assert shown["body"] == ""


def test_data_that_cannot_fit_is_refused_rather_than_cut() -> None:
    with pytest.raises(PayloadTooLarge):
        build_push(_notification(data={"url": "x" * 3000}), user_id="bob", unread_count=1)


# --- headers -----------------------------------------------------------------------------------


def test_headers_by_kind() -> None:
    message = push_headers("message", {"conversation_id": "dm_a_b"})
    status = push_headers("application_status", {"application_id": "a-9"})
    alert = push_headers("job_alert", {"job_id": "j-1"})
    other = push_headers("something_new", {})
    assert (message.urgency, status.urgency, alert.urgency, other.urgency) == (
        "high",
        "normal",
        "low",
        "normal",
    )
    assert all(h.ttl_s > 0 for h in (message, status, alert, other))
    assert message.topic == topic_for("message", "dm_a_b")
    assert status.topic == topic_for("application_status", "a-9")
    assert alert.topic is None and other.topic is None
    assert push_headers("message", {}).topic is None


def test_topics_are_32_url_safe_characters_one_per_conversation() -> None:
    topics = {topic_for("message", f"conversation-{n}" * (n % 7 + 1)) for n in range(500)}
    assert len(topics) == 500
    allowed = set(string.ascii_letters + string.digits + "-_")
    assert all(len(topic) == 32 and set(topic) <= allowed for topic in topics)
    assert topic_for("message", "dm_a_b") == topic_for("message", "dm_a_b")
    assert topic_for("message", "x") != topic_for("application_status", "x")


def _message(user: str, notification: str, topic: str | None) -> PushMessage:
    return PushMessage(
        user_id=user,
        notification_id=notification,
        payload=notification.encode(),
        headers=PushHeaders(ttl_s=60, urgency="high", topic=topic),
    )


def test_a_batch_keeps_the_last_version_and_the_last_of_each_user_topic() -> None:
    batch = [
        _message("u1", "n1", "t"),
        _message("u2", "n2", "t"),  # another user's topic is another topic
        _message("u1", "n3", None),
        _message("u1", "n1", "t"),  # n1 updated in place
        _message("u1", "n4", "t"),  # replaces n1 for u1
        _message("u1", "n3", None),
    ]
    kept = [(m.user_id, m.notification_id) for m in latest_per_topic(batch)]
    assert kept == [("u2", "n2"), ("u1", "n4"), ("u1", "n3")]


# --- answers and retries -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "outcome", "reason"),
    [
        (201, None, Outcome.DELIVERED, "ok"),
        (202, None, Outcome.DELIVERED, "ok"),
        (404, None, Outcome.GONE, "http_404"),
        (410, None, Outcome.GONE, "http_410"),
        (429, None, Outcome.RETRY, "http_429"),
        (500, None, Outcome.RETRY, "http_5xx"),
        (503, None, Outcome.RETRY, "http_5xx"),
        (408, None, Outcome.RETRY, "http_408"),
        (None, TransportError.TIMEOUT, Outcome.RETRY, "timeout"),
        (None, TransportError.CONNECTION, Outcome.RETRY, "connection"),
        (400, None, Outcome.FAILED, "http_400"),
        (401, None, Outcome.FAILED, "http_401"),
        (403, None, Outcome.FAILED, "http_403"),
        (413, None, Outcome.FAILED, "http_413"),
        (301, None, Outcome.FAILED, "http_3xx"),
        (418, None, Outcome.FAILED, "http_4xx"),
    ],
)
def test_answers_are_classified(
    status: int | None, error: TransportError | None, outcome: Outcome, reason: str
) -> None:
    verdict = classify(status, error)
    assert (verdict.outcome, verdict.reason) == (outcome, reason)


POLICY = RetryPolicy(
    base=timedelta(seconds=1), cap=timedelta(seconds=60), give_up_after=timedelta(minutes=10)
)


def test_backoff_doubles_up_to_the_cap_and_jitter_takes_at_most_half() -> None:
    full = [backoff(POLICY, attempts=n, jitter=0.999999) for n in range(1, 10)]
    assert [round(wait.total_seconds()) for wait in full] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert backoff(POLICY, attempts=3, jitter=0.0) == timedelta(seconds=2)
    assert backoff(POLICY, attempts=10_000, jitter=0.5) == timedelta(seconds=45)


def test_retries_stop_at_the_deadline() -> None:
    deadline = T0 + POLICY.give_up_after
    now, attempts, times = T0, 0, []
    while True:
        attempts += 1
        due = next_attempt_at(POLICY, attempts=attempts, now=now, deadline=deadline, jitter=0.5)
        if due is None:
            break
        assert due > now
        times.append(due)
        now = due
    assert times and times[-1] <= deadline
    # The next wait (capped at 45 s with this jitter) would have crossed the deadline.
    assert times[-1] + timedelta(seconds=45) > deadline


def test_retry_after_is_honoured_when_longer_than_the_backoff() -> None:
    deadline = T0 + POLICY.give_up_after
    longer = next_attempt_at(
        POLICY,
        attempts=1,
        now=T0,
        deadline=deadline,
        jitter=0.0,
        retry_after=timedelta(seconds=120),
    )
    shorter = next_attempt_at(
        POLICY, attempts=4, now=T0, deadline=deadline, jitter=0.0, retry_after=timedelta(seconds=1)
    )
    beyond = next_attempt_at(
        POLICY, attempts=1, now=T0, deadline=deadline, jitter=0.0, retry_after=timedelta(hours=1)
    )
    assert longer == T0 + timedelta(seconds=120)
    assert shorter == T0 + timedelta(seconds=4)
    assert beyond is None


def test_retry_after_seconds_or_http_date() -> None:
    assert parse_retry_after("120", T0) == timedelta(seconds=120)
    assert parse_retry_after(" 0 ", T0) == timedelta(0)
    assert parse_retry_after("Mon, 30 Nov 2026 12:01:30 GMT", T0) == timedelta(seconds=90)
    assert parse_retry_after("Mon, 30 Nov 2026 11:00:00 GMT", T0) == timedelta(0)
    assert parse_retry_after("soon", T0) is None
    assert parse_retry_after("-5", T0) is None
    assert parse_retry_after(None, T0) is None
