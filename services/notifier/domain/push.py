"""Web Push rules, pure: what a push carries, how it is sent, when it is retried, where it may go.

No I/O and no clock: ``now`` and jitter are passed in, so every rule is unit-tested with a fake
clock (tests/unit/test_push_rules.py). The adapters around it: ``webpush`` (encryption, VAPID,
HTTP), ``push_storage`` (subscriptions and jobs in Postgres), ``push_worker`` (the sending loop).

Rules, in the order a push meets them::

    parse_subscription   browser's PushSubscription.toJSON() -> PushSubscription
                         (keys checked, endpoint on the allow-list) or SubscriptionRejected
    build_push           notification + unread count -> PushMessage: payload JSON (<= 3,000
                         bytes: the body is cut first, then the title; data is never cut)
                         and headers (TTL, Urgency, Topic by kind)
    classify             the push service's answer -> delivered | gone | retry | failed
    next_attempt_at      retry time (exponential backoff, jitter, Retry-After) or None: give up
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

import orjson
from cryptography.hazmat.primitives.asymmetric import ec

#: Most bytes of the JSON a push carries before encryption (protocol.md, Web Push). RFC 8030
#: push services must accept 4,096 bytes of encrypted body; aes128gcm adds 103 to one record.
MAX_PAYLOAD_BYTES = 3000
#: Subscriptions one user may hold (protocol.md); one more evicts the least recently renewed.
MAX_SUBSCRIPTIONS_PER_USER = 20
#: Longest endpoint URL accepted. Browsers' endpoints are a few hundred characters.
MAX_ENDPOINT_CHARS = 2048
#: RFC 8030 section 5.4: a Topic is at most 32 characters of the URL-safe base64 alphabet.
TOPIC_CHARS = 32
#: Appended to a cut title or body, so that a reader sees it was cut.
ELLIPSIS = "\u2026"
#: The push services of the major browsers (hosts as their endpoints carry them): Chrome,
#: Edge's Chromium predecessors, Opera, Brave, Samsung Internet use FCM; Firefox uses Mozilla's
#: autopush; Edge uses WNS (per-region hosts such as wns2-par02p.notify.windows.com); Safari uses
#: APNs (web.push.apple.com today; Apple asks servers to allow *.push.apple.com).
DEFAULT_ENDPOINT_ALLOWLIST = (
    "fcm.googleapis.com,updates.push.services.mozilla.com,*.notify.windows.com,*.push.apple.com"
)

Urgency = Literal["very-low", "low", "normal", "high"]
ErrorCode = Literal["bad_request", "forbidden"]


class PushError(Exception):
    """Base of the push rules' errors."""


class SubscriptionRejected(PushError):
    """A ``push.subscribe`` cannot be accepted.

    Attributes:
        code: the protocol error code for the client (``bad_request`` or ``forbidden``).
        reason: machine-readable cause (``keys.p256dh:not_on_curve``), never the input.
    """

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code: ErrorCode = code
        self.reason = reason


class PayloadTooLarge(PushError):
    """A notification's ``data`` alone does not fit in a push: nothing can be pushed for it."""


# --- endpoints and the allow-list --------------------------------------------------------------

# Characters RFC 3986 allows in a URL (unreserved, reserved, percent). Anything else (spaces,
# backslashes, controls, non-ASCII) is refused before parsing: parsers disagree about such URLs,
# and the host we check must be the host the HTTP client connects to.
_URL_CHARS = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+$")
_HOST_LABELS = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")


@dataclass(frozen=True, slots=True)
class EndpointAllowList:
    """Hosts push endpoints may point at (``PUSH_ENDPOINT_ALLOWLIST``): protection against SSRF.

    Entries are host names, ``*.`` wildcards (any subdomain, never the apex) or IP literals.
    Endpoints must be https, except on a host listed exactly (not through a wildcard): such a
    host may be plain http, as the tests' fake push service on 127.0.0.1 is. IP literals are
    refused unless listed exactly. Any port is accepted on an allowed host.
    """

    exact: frozenset[str]
    suffixes: tuple[str, ...]

    @classmethod
    def parse(cls, setting: str) -> EndpointAllowList:
        """Read a comma-separated list; blanks are ignored, case does not matter.

        Raises:
            ValueError: an entry is neither a host name, a ``*.`` wildcard nor an IP literal.
        """
        exact: set[str] = set()
        suffixes: list[str] = []
        for raw in setting.split(","):
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            if entry.startswith("*."):
                if not _HOST_LABELS.match(entry[2:]) or "." not in entry[2:]:
                    raise ValueError(f"allow-list wildcard {entry!r} must be *.<domain>")
                suffixes.append(entry[1:])
                continue
            host = entry.strip("[]")
            if not (_HOST_LABELS.match(host) or _ip_literal(host)):
                raise ValueError(f"allow-list entry {entry!r} is not a host name or IP address")
            exact.add(host)
        return cls(exact=frozenset(exact), suffixes=tuple(suffixes))

    def check(self, endpoint: str) -> str:
        """The endpoint's origin (``scheme://host:port``) when the endpoint may be pushed to.

        Raises:
            SubscriptionRejected: ``bad_request`` for a malformed URL, ``forbidden`` for a
                well-formed URL this list does not allow.
        """
        parts = _split_endpoint(endpoint)
        host = (parts.hostname or "").rstrip(".")
        listed = host in self.exact
        if _ip_literal(host):
            if not listed:
                raise SubscriptionRejected("forbidden", "endpoint:ip_literal_not_allowed")
        elif not listed and not any(host.endswith(suffix) for suffix in self.suffixes):
            raise SubscriptionRejected("forbidden", "endpoint:host_not_allowed")
        if parts.scheme != "https" and not listed:
            raise SubscriptionRejected("forbidden", "endpoint:https_required")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        shown = f"[{host}]" if ":" in host else host
        return f"{parts.scheme}://{shown}:{port}"


def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _split_endpoint(endpoint: str) -> SplitResult:
    if len(endpoint) > MAX_ENDPOINT_CHARS:
        raise SubscriptionRejected("bad_request", "endpoint:too_long")
    if not _URL_CHARS.match(endpoint):
        raise SubscriptionRejected("bad_request", "endpoint:invalid_characters")
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 -- parsing the port raises ValueError when it is not a number
    except ValueError as exc:
        raise SubscriptionRejected("bad_request", "endpoint:invalid_url") from exc
    if parts.scheme not in ("https", "http"):
        raise SubscriptionRejected("bad_request", "endpoint:scheme")
    if "@" in parts.netloc:
        raise SubscriptionRejected("bad_request", "endpoint:userinfo")
    if parts.fragment or "#" in endpoint:
        raise SubscriptionRejected("bad_request", "endpoint:fragment")
    host = parts.hostname or ""
    if not host or not (_HOST_LABELS.match(host.rstrip(".")) or _ip_literal(host)):
        raise SubscriptionRejected("bad_request", "endpoint:host")
    return parts


# --- subscriptions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """A browser's push subscription, validated.

    Attributes:
        endpoint: the push resource URL (on the allow-list).
        origin: ``scheme://host:port`` of the endpoint: the VAPID audience and the unit of
            the worker's per-push-service concurrency cap.
        p256dh: the browser's ECDH public key, 65 bytes, uncompressed P-256 point.
        auth: the 16-byte authentication secret.
        expiration_time: when the browser says the subscription ends, if it says.
    """

    endpoint: str
    origin: str
    p256dh: bytes
    auth: bytes
    expiration_time: datetime | None


def parse_subscription(raw: Mapping[str, Any], allow: EndpointAllowList) -> PushSubscription:
    """Validate ``PushSubscription.toJSON()``: ``{endpoint, expirationTime, keys: {p256dh, auth}}``.

    Raises:
        SubscriptionRejected: ``bad_request`` when a field is missing or malformed (keys not
            base64url, p256dh not an uncompressed point on P-256, auth not 16 bytes);
            ``forbidden`` when the endpoint is not on the allow-list.
    """
    endpoint = raw.get("endpoint")
    if not isinstance(endpoint, str):
        raise SubscriptionRejected("bad_request", "endpoint:missing")
    keys = raw.get("keys")
    if not isinstance(keys, Mapping):
        raise SubscriptionRejected("bad_request", "keys:missing")
    p256dh = _b64url_field(keys.get("p256dh"), "keys.p256dh")
    auth = _b64url_field(keys.get("auth"), "keys.auth")
    if len(p256dh) != 65 or p256dh[0] != 0x04:
        raise SubscriptionRejected("bad_request", "keys.p256dh:not_uncompressed_p256")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError as exc:
        raise SubscriptionRejected("bad_request", "keys.p256dh:not_on_curve") from exc
    if len(auth) != 16:
        raise SubscriptionRejected("bad_request", "keys.auth:not_16_bytes")
    origin = allow.check(endpoint)
    return PushSubscription(
        endpoint=endpoint,
        origin=origin,
        p256dh=p256dh,
        auth=auth,
        expiration_time=_expiration(raw.get("expirationTime")),
    )


def _b64url_field(value: object, name: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise SubscriptionRejected("bad_request", f"{name}:missing")
    try:
        return b64url_decode(value)
    except (binascii.Error, ValueError) as exc:
        raise SubscriptionRejected("bad_request", f"{name}:not_base64url") from exc


def _expiration(value: object) -> datetime | None:
    # PushSubscription.expirationTime: milliseconds since the epoch, or null.
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise SubscriptionRejected("bad_request", "expirationTime:invalid")
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise SubscriptionRejected("bad_request", "expirationTime:invalid") from exc


def b64url_decode(value: str) -> bytes:
    """Decode base64url with or without padding; other alphabets are refused.

    Raises:
        ValueError: not base64url (``binascii.Error`` is a ``ValueError``).
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", value):
        raise ValueError("not base64url")
    stripped = value.rstrip("=")
    return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))


def b64url_encode(value: bytes) -> str:
    """base64url without padding, as the Push API and VAPID spell keys."""
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


# --- payload and headers -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushNotification:
    """The notification fields a push carries (protocol.md: ``read`` is left out)."""

    id: str
    kind: str
    title: str
    body: str
    data: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class KindPolicy:
    """How pushes of one kind are sent.

    Attributes:
        ttl_s: RFC 8030 ``TTL``: how long the push service keeps a push for an offline device.
        urgency: RFC 8030 ``Urgency``: lets a device on battery defer low-value pushes.
        topic_field: the ``data`` field whose value names what a newer push replaces (one
            ``Topic`` per value), or None for no Topic: every push of the kind is shown.
    """

    ttl_s: int
    urgency: Urgency
    topic_field: str | None


#: Per kind: a message is worth waking a device for and is stale after a day, and a newer push of
#: the same conversation replaces one not yet delivered; a status change matters for a week and
#: the latest status of an application supersedes earlier ones; a job alert can wait for a
#: charger and each job is distinct. Kinds added later get ``DEFAULT_KIND_POLICY``.
KIND_POLICIES: Mapping[str, KindPolicy] = {
    "message": KindPolicy(ttl_s=86_400, urgency="high", topic_field="conversation_id"),
    "application_status": KindPolicy(
        ttl_s=7 * 86_400, urgency="normal", topic_field="application_id"
    ),
    "job_alert": KindPolicy(ttl_s=3 * 86_400, urgency="low", topic_field=None),
}
DEFAULT_KIND_POLICY = KindPolicy(ttl_s=86_400, urgency="normal", topic_field=None)


@dataclass(frozen=True, slots=True)
class PushHeaders:
    """RFC 8030 headers of a push (``TTL`` always > 0)."""

    ttl_s: int
    urgency: Urgency
    topic: str | None


@dataclass(frozen=True, slots=True)
class PushMessage:
    """A push for every subscription of one user, ready to stage.

    Attributes:
        user_id: the recipient.
        notification_id: the notification it announces (cancelling and replacing go by it).
        payload: the JSON to encrypt at send time, at most ``MAX_PAYLOAD_BYTES``.
        headers: TTL, Urgency, Topic.
    """

    user_id: str
    notification_id: str
    payload: bytes
    headers: PushHeaders


def topic_for(kind: str, key: str) -> str:
    """The RFC 8030 Topic of ``kind``'s pushes about ``key`` (a conversation, an application).

    A hash, because a Topic is at most 32 URL-safe base64 characters whatever the id looks like,
    and because the push service, which sees headers in clear, need not learn our ids. 24 bytes
    of SHA-256 are exactly 32 characters.
    """
    digest = hashlib.sha256(f"{kind}\0{key}".encode()).digest()
    return b64url_encode(digest[:24])


def push_headers(kind: str, data: Mapping[str, Any]) -> PushHeaders:
    """The headers of a push of ``kind`` about ``data`` (see ``KIND_POLICIES``)."""
    policy = KIND_POLICIES.get(kind, DEFAULT_KIND_POLICY)
    topic = None
    if policy.topic_field is not None:
        key = data.get(policy.topic_field)
        if isinstance(key, str) and key:
            topic = topic_for(kind, key)
    return PushHeaders(ttl_s=policy.ttl_s, urgency=policy.urgency, topic=topic)


def build_push(
    notification: PushNotification,
    *,
    user_id: str,
    unread_count: int,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> PushMessage:
    """The push announcing ``notification`` to ``user_id``.

    The payload is ``{"notification": {id, kind, title, body, data, created_at},
    "unread_count": n}`` as compact UTF-8 JSON of at most ``max_bytes``. When it is longer the
    body is cut first, then (if the body alone was not enough) the title, each at a character
    boundary and ending with an ellipsis; ``data`` is never cut, since links depend on it.

    Raises:
        PayloadTooLarge: even with an empty title and body the payload is too long.
    """
    payload = fit_payload(notification, unread_count=unread_count, max_bytes=max_bytes)
    return PushMessage(
        user_id=user_id,
        notification_id=notification.id,
        payload=payload,
        headers=push_headers(notification.kind, notification.data),
    )


def fit_payload(notification: PushNotification, *, unread_count: int, max_bytes: int) -> bytes:
    """The payload JSON, cut to ``max_bytes`` (see :func:`build_push`).

    Raises:
        PayloadTooLarge: even with an empty title and body the payload is too long.
    """

    def size(title: str, body: str) -> int:
        return len(_encode_payload(notification, title, body, unread_count))

    title, body = notification.title, notification.body
    if size(title, body) <= max_bytes:
        return _encode_payload(notification, title, body, unread_count)
    if size("", "") > max_bytes:
        raise PayloadTooLarge(notification.kind)
    if size(title, "") <= max_bytes:
        body = _longest_fit(body, lambda cut: size(title, cut) <= max_bytes)
    else:
        title, body = _longest_fit(title, lambda cut: size(cut, "") <= max_bytes), ""
    return _encode_payload(notification, title, body, unread_count)


def _longest_fit(text: str, fits: Callable[[str], bool]) -> str:
    """The longest ``text[:n] + ELLIPSIS`` that ``fits``, or "" (which the caller knows fits).

    JSON escaping makes a character cost 1 to 6 bytes, so the cut is searched, not computed;
    slicing a ``str`` cuts between code points, so the UTF-8 encoding is never split.
    """
    low, high = 0, len(text) - 1
    best = ""
    while low <= high:
        middle = (low + high) // 2
        candidate = text[:middle] + ELLIPSIS
        if fits(candidate):
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best


def _encode_payload(
    notification: PushNotification, title: str, body: str, unread_count: int
) -> bytes:
    return orjson.dumps(
        {
            "notification": {
                "id": notification.id,
                "kind": notification.kind,
                "title": title,
                "body": body,
                "data": notification.data,
                "created_at": notification.created_at,
            },
            "unread_count": unread_count,
        },
        # The same time format as frames (pydantic): UTC as "Z".
        option=orjson.OPT_UTC_Z,
    )


def latest_per_topic(messages: Iterable[PushMessage]) -> list[PushMessage]:
    """The pushes of a batch worth staging: for each notification only its last version, and
    for each (user, Topic) only the last notification, which replaces the earlier ones."""
    kept: dict[tuple[str, str], PushMessage] = {}
    topic_holder: dict[tuple[str, str], tuple[str, str]] = {}
    for message in messages:
        key = (message.user_id, message.notification_id)
        kept.pop(key, None)
        if message.headers.topic is not None:
            previous = topic_holder.get((message.user_id, message.headers.topic))
            if previous is not None and previous != key:
                kept.pop(previous, None)
            topic_holder[(message.user_id, message.headers.topic)] = key
        kept[key] = message
    return list(kept.values())


# --- answers of push services, and retries -----------------------------------------------------


class Outcome(enum.Enum):
    """What to do with a push job after an attempt."""

    DELIVERED = "sent"  # the push service took it: done
    GONE = "gone"  # the subscription no longer exists: delete it (and its jobs)
    RETRY = "retried"  # try again later, unless the deadline has passed
    FAILED = "failed"  # refused for good: drop the job, count the reason


class TransportError(enum.Enum):
    """A push attempt that got no HTTP answer."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"


@dataclass(frozen=True, slots=True)
class Verdict:
    """An attempt's outcome and its reason (a metric label: a small fixed set of values)."""

    outcome: Outcome
    reason: str


_FAILED_STATUSES = frozenset({400, 401, 403, 413})


def classify(status: int | None, error: TransportError | None = None) -> Verdict:
    """Judge a push service's answer (RFC 8030 section 5 and 8292 section 4).

    2xx (201 Created, 202 Accepted) delivered; 404/410 the subscription is gone; 429, 408,
    5xx and no answer at all (timeout, connection refused or reset) are worth retrying;
    400/401/403/413 and every other status (redirects are not followed) failed for good.
    """
    if status is None:
        return Verdict(Outcome.RETRY, (error or TransportError.CONNECTION).value)
    if 200 <= status < 300:
        return Verdict(Outcome.DELIVERED, "ok")
    if status in (404, 410):
        return Verdict(Outcome.GONE, f"http_{status}")
    if status == 429:
        return Verdict(Outcome.RETRY, "http_429")
    if status == 408:
        return Verdict(Outcome.RETRY, "http_408")
    if 500 <= status < 600:
        return Verdict(Outcome.RETRY, "http_5xx")
    if status in _FAILED_STATUSES:
        return Verdict(Outcome.FAILED, f"http_{status}")
    return Verdict(Outcome.FAILED, f"http_{status // 100}xx")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded in total time.

    Attributes:
        base: the wait after the first failed attempt (before jitter).
        cap: the longest wait between two attempts (before jitter), Retry-After aside.
        give_up_after: from staging, after which no attempt is made (the job's deadline).
    """

    base: timedelta
    cap: timedelta
    give_up_after: timedelta


def backoff(policy: RetryPolicy, *, attempts: int, jitter: float) -> timedelta:
    """The wait after ``attempts`` failed attempts: ``min(cap, base * 2**(attempts-1))``, of
    which a random half (``jitter`` in [0, 1)) is left out, so that pushes failing together
    (a push service's outage) do not come back together, while the wait still doubles."""
    # 2**30 times any sane base is far past any cap, and keeps timedelta from overflowing.
    exponent = min(max(attempts - 1, 0), 30)
    full = min(policy.cap, policy.base * (1 << exponent))
    return full * (0.5 + 0.5 * jitter)


def next_attempt_at(
    policy: RetryPolicy,
    *,
    attempts: int,
    now: datetime,
    deadline: datetime,
    jitter: float,
    retry_after: timedelta | None = None,
) -> datetime | None:
    """When to try again after ``attempts`` failed attempts, or None to give up.

    A push service's ``Retry-After`` is honoured when it asks for longer than the backoff.
    Nothing is tried after ``deadline`` (staging time + ``give_up_after``).
    """
    wait = backoff(policy, attempts=attempts, jitter=jitter)
    if retry_after is not None and retry_after > wait:
        wait = retry_after
    due = now + wait
    return None if due > deadline else due


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` (RFC 9110 10.2.3: delay-seconds or an HTTP-date) as a wait; None when
    absent or unreadable (the backoff then decides alone)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return timedelta(seconds=int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(when - now, timedelta(0))
