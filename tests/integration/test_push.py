"""Web Push end to end against real Postgres and a real (fake) push service on loopback.

Pushes are staged as the notifier stages them (``stage_pushes`` in a transaction), sent by the
real worker (http_ece encryption, py-vapid signatures, httpx) to ``FakePushService``, which
verifies the VAPID JWT and decrypts every body with the browser's private key. Kafka is not
involved. Waits poll conditions; nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import string
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest
from prometheus_client import REGISTRY

from services.notifier import push_storage
from services.notifier.domain.push import (
    MAX_PAYLOAD_BYTES,
    EndpointAllowList,
    PushMessage,
    PushNotification,
    SubscriptionRejected,
    build_push,
    parse_subscription,
    topic_for,
)
from services.notifier.push_settings import PushSettings
from services.notifier.push_worker import PushWorker, build_push_worker
from services.notifier.vapid import generate
from services.runtime.lifecycle import new_id
from tests.integration.push_service import (
    HANG,
    UNIT_S,
    Answer,
    BrowserSubscription,
    FakePushService,
    fresh_push_database,
    until,
)

ALLOWLIST = "fcm.googleapis.com,127.0.0.1"
ALLOW = EndpointAllowList.parse(ALLOWLIST)
PRIVATE_KEY, PUBLIC_KEY = generate()
SUBJECT = "mailto:ops@example.org"
WAIT_S = 15 * UNIT_S


def _admin_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        pytest.fail("DATABASE_URL is not set: run integration tests with `make test`")
    return url


@pytest.fixture(scope="module")
async def database_url() -> AsyncIterator[str]:
    async with fresh_push_database(_admin_url()) as url:
        yield url


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=6)
    yield pool
    await pool.close()


@pytest.fixture
async def fake() -> AsyncIterator[FakePushService]:
    service = FakePushService(vapid_public_key=PUBLIC_KEY)
    await service.start()
    yield service
    await service.stop()
    assert service.rejected == [], "the push service refused requests as malformed"


@contextlib.asynccontextmanager
async def running_worker(
    pool: asyncpg.Pool,
    database_url: str,
    *,
    timeout_s: float = 5 * UNIT_S,
    give_up_after: timedelta = timedelta(minutes=5),
    per_origin: int = 4,
    poll_interval_s: float = 60.0,
) -> AsyncIterator[PushWorker]:
    """The worker as the notifier builds it, with test bounds. The poll interval is long by
    default: pushes arriving then prove that staging woke the worker (LISTEN/NOTIFY)."""
    settings = PushSettings(
        vapid_private_key=PRIVATE_KEY,
        vapid_subject=SUBJECT,
        push_endpoint_allowlist=ALLOWLIST,
        push_concurrency=16,
        push_per_origin_concurrency=per_origin,
        push_request_timeout_ms=int(timeout_s * 1000),
        push_retry_base_ms=50,
        push_retry_max_ms=200,
        push_give_up_after_ms=int(give_up_after.total_seconds() * 1000),
        push_poll_interval_ms=int(poll_interval_s * 1000),
    )
    worker = build_push_worker(
        settings, pool=pool, database_url=database_url, now=lambda: datetime.now(UTC)
    )
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.request_stop()
        await task


async def _subscribe(pool: asyncpg.Pool, user_id: str, browser: BrowserSubscription) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await push_storage.subscribe(
            conn,
            user_id=user_id,
            subscription=parse_subscription(browser.to_json(), ALLOW),
            now=datetime.now(UTC),
        )


def _user() -> str:
    return f"u-{new_id()[:10]}"


def _notification(
    kind: str = "message",
    *,
    notification_id: str | None = None,
    title: str = "Alice",
    body: str = "hello",
    data: Mapping[str, object] | None = None,
) -> PushNotification:
    return PushNotification(
        id=notification_id or new_id(),
        kind=kind,
        title=title,
        body=body,
        data=data if data is not None else {"conversation_id": "dm_x", "count": 1},
        created_at=datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
    )


async def _stage(
    pool: asyncpg.Pool, *messages: PushMessage, give_up_after: timedelta = timedelta(minutes=5)
) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return await push_storage.stage_pushes(
            conn, messages, now=datetime.now(UTC), give_up_after=give_up_after
        )


async def _jobs_of(pool: asyncpg.Pool, user_id: str) -> int:
    return int(
        await pool.fetchval("SELECT count(*) FROM notifier.push_jobs WHERE user_id = $1", user_id)
    )


def _pushes_counted(outcome: str) -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "realtime_pushes":
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels.get("outcome") == outcome:
                    total += sample.value
    return total


# --- subscriptions -----------------------------------------------------------------------------


async def test_subscribing_again_updates_moves_between_users_and_keeps_the_newest_20(
    pool: asyncpg.Pool, fake: FakePushService
) -> None:
    alice, bob = _user(), _user()
    browser = fake.subscribe()
    await _subscribe(pool, alice, browser)
    renewed = BrowserSubscription.create(browser.endpoint)  # same endpoint, new keys
    await _subscribe(pool, alice, renewed)
    row = await pool.fetchrow(
        "SELECT user_id, p256dh FROM notifier.push_subscriptions WHERE endpoint = $1",
        browser.endpoint,
    )
    assert row is not None and (row["user_id"], bytes(row["p256dh"])) == (alice, renewed.p256dh)

    # A push staged for alice must not reach the browser once bob holds the endpoint.
    await _stage(pool, build_push(_notification(), user_id=alice, unread_count=1))
    assert await _jobs_of(pool, alice) == 1
    await _subscribe(pool, bob, renewed)
    async with pool.acquire() as conn:
        assert await push_storage.subscription_count(conn, alice) == 0
        assert await push_storage.subscription_count(conn, bob) == 1
    assert await _jobs_of(pool, alice) == 0

    # 21 subscriptions: the least recently renewed one goes.
    browsers = [fake.subscribe() for _ in range(20)]
    for each in browsers:
        await _subscribe(pool, bob, each)
    endpoints = {
        r["endpoint"]
        for r in await pool.fetch(
            "SELECT endpoint FROM notifier.push_subscriptions WHERE user_id = $1", bob
        )
    }
    assert endpoints == {each.endpoint for each in browsers}

    # Unsubscribing is by endpoint, and only one's own.
    async with pool.acquire() as conn:
        assert not await push_storage.unsubscribe(
            conn, user_id=alice, endpoint=browsers[0].endpoint
        )
        assert await push_storage.unsubscribe(conn, user_id=bob, endpoint=browsers[0].endpoint)
        assert await push_storage.subscription_count(conn, bob) == 19


async def test_endpoints_off_the_allow_list_are_refused(fake: FakePushService) -> None:
    browser = BrowserSubscription.create("https://attacker.example/collect")
    with pytest.raises(SubscriptionRejected) as refused:
        parse_subscription(browser.to_json(), ALLOW)
    assert refused.value.code == "forbidden"


async def test_a_claim_fills_each_push_services_free_slots_only(
    pool: asyncpg.Pool, fake: FakePushService
) -> None:
    other = FakePushService(vapid_public_key=PUBLIC_KEY)  # another push service (origin)
    await other.start()
    try:
        crowded = [_user() for _ in range(10)]
        quiet = [_user() for _ in range(2)]
        for user in crowded:
            await _subscribe(pool, user, fake.subscribe())
        for user in quiet:
            await _subscribe(pool, user, other.subscribe())
        await _stage(
            pool,
            *(
                build_push(_notification("job_alert", data={}), user_id=u, unread_count=1)
                for u in crowded + quiet
            ),
        )
        origin = ALLOW.check(f"{fake.origin}/push/x")
        async with pool.acquire() as conn:
            claimed = await push_storage.claim_jobs(
                conn,
                now=datetime.now(UTC),
                limit=10,
                lease=timedelta(minutes=1),
                claim=new_id(),
                in_flight={origin: 3},
                per_origin=4,
            )
            again = await push_storage.claim_jobs(
                conn,
                now=datetime.now(UTC),
                limit=10,
                lease=timedelta(minutes=1),
                claim=new_id(),
                in_flight={origin: 4},
                per_origin=4,
            )
        # One slot was free on the crowded service; the quiet one had all its slots.
        claimed_users = [job.user_id for job in claimed]
        assert len(claimed_users) == 3
        assert set(quiet) <= set(claimed_users)
        assert len(set(claimed_users) & set(crowded)) == 1
        assert again == []  # leased jobs are not claimed twice; the full service is skipped
    finally:
        await other.stop()
        await pool.execute("DELETE FROM notifier.push_jobs")


# --- sending -----------------------------------------------------------------------------------


async def test_every_subscription_gets_the_decrypted_payload_with_headers(
    pool: asyncpg.Pool, database_url: str, fake: FakePushService
) -> None:
    user, laptop, phone = _user(), fake.subscribe(), fake.subscribe()
    await _subscribe(pool, user, laptop)
    await _subscribe(pool, user, phone)
    rng = random.Random(3)
    body = "".join(rng.choices(string.ascii_letters + '\u00e9\U0001f600"\\\n', k=4000))
    message = _notification(body=body, data={"conversation_id": "dm_ab", "count": 2})
    alert = _notification(
        "job_alert", title="Cleared Systems Engineer", data={"job_id": "j-1", "url": "https://x"}
    )
    async with running_worker(pool, database_url):
        staged = await _stage(
            pool,
            build_push(message, user_id=user, unread_count=4),
            build_push(alert, user_id=user, unread_count=5),
        )
        assert staged == 4
        await until(lambda: len(fake.delivered()) == 4, WAIT_S)

    by_id: dict[str, list[dict[str, object]]] = {}
    for push in fake.delivered():
        assert push.payload_bytes <= MAX_PAYLOAD_BYTES
        by_id.setdefault(push.payload["notification"]["id"], []).append(
            {
                "endpoint": push.endpoint,
                "ttl": push.ttl,
                "urgency": push.urgency,
                "topic": push.topic,
            }
        )
    assert {p["endpoint"] for p in by_id[message.id]} == {laptop.endpoint, phone.endpoint}
    assert {p["endpoint"] for p in by_id[alert.id]} == {laptop.endpoint, phone.endpoint}
    assert {(p["ttl"], p["urgency"], p["topic"]) for p in by_id[message.id]} == {
        (86_400, "high", topic_for("message", "dm_ab"))
    }
    assert {(p["ttl"], p["urgency"], p["topic"]) for p in by_id[alert.id]} == {
        (3 * 86_400, "low", None)
    }
    pushed = next(p for p in fake.delivered() if p.payload["notification"]["id"] == message.id)
    expected = orjson.loads(build_push(message, user_id=user, unread_count=4).payload)
    assert pushed.payload == expected
    assert pushed.payload["unread_count"] == 4
    assert set(pushed.payload["notification"]) == {
        "id",
        "kind",
        "title",
        "body",
        "data",
        "created_at",
    }
    assert body.startswith(pushed.payload["notification"]["body"][:-1])
    assert await _jobs_of(pool, user) == 0


async def test_a_gone_endpoint_is_deleted_and_its_other_pushes_with_it(
    pool: asyncpg.Pool, database_url: str, fake: FakePushService
) -> None:
    user, gone, missing, alive = _user(), fake.subscribe(), fake.subscribe(), fake.subscribe()
    for browser in (gone, missing, alive):
        await _subscribe(pool, user, browser)
    fake.script(gone.endpoint, Answer(410))
    fake.script(missing.endpoint, Answer(404))
    sent_before = _pushes_counted("gone")
    async with running_worker(pool, database_url):
        await _stage(pool, build_push(_notification(), user_id=user, unread_count=1))
        await until(lambda: _pushes_counted("gone") - sent_before == 2, WAIT_S)
        await until(lambda: len(fake.delivered()) == 1, WAIT_S)
        await until(lambda: fake.answered == 3, WAIT_S)
    left = {
        r["endpoint"]
        for r in await pool.fetch(
            "SELECT endpoint FROM notifier.push_subscriptions WHERE user_id = $1", user
        )
    }
    assert left == {alive.endpoint}
    assert await _jobs_of(pool, user) == 0


async def test_server_errors_and_timeouts_are_retried_then_given_up(
    pool: asyncpg.Pool, database_url: str, fake: FakePushService
) -> None:
    user, failing, hanging, throttled = (
        _user(),
        fake.subscribe(),
        fake.subscribe(),
        fake.subscribe(),
    )
    for browser in (failing, hanging, throttled):
        await _subscribe(pool, user, browser)
    fake.script(failing.endpoint, Answer(500))
    fake.script(hanging.endpoint, HANG)
    fake.script(throttled.endpoint, Answer(429, retry_after="0"), Answer(503), Answer(201))
    given_up_before = _pushes_counted("given_up")
    give_up_after = timedelta(seconds=3 * UNIT_S)
    async with running_worker(
        pool, database_url, timeout_s=0.5 * UNIT_S, give_up_after=give_up_after, poll_interval_s=0.1
    ):
        await _stage(
            pool,
            build_push(_notification(), user_id=user, unread_count=1),
            give_up_after=give_up_after,
        )
        await until(lambda: _pushes_counted("given_up") - given_up_before == 2, WAIT_S)
        await until(lambda: len(fake.delivered()) >= 1, WAIT_S)
    # (A 201 taking longer than the short timeout on a loaded machine would be sent again.)
    statuses = [push.answer.status for push in fake.pushes_to(throttled.endpoint)]
    assert statuses[:3] == [429, 503, 201]
    assert len(fake.pushes_to(failing.endpoint)) >= 2  # retried
    assert len(fake.pushes_to(hanging.endpoint)) >= 2  # timed out, retried
    assert await _jobs_of(pool, user) == 0
    # Given up is not gone: the subscriptions stay for the next notification.
    async with pool.acquire() as conn:
        assert await push_storage.subscription_count(conn, user) == 3


async def test_a_hanging_push_service_does_not_hold_up_other_users(
    pool: asyncpg.Pool, database_url: str, fake: FakePushService
) -> None:
    stuck = FakePushService(vapid_public_key=PUBLIC_KEY)
    await stuck.start()
    try:
        stuck_users = [_user() for _ in range(12)]
        for stuck_user in stuck_users:
            browser = stuck.subscribe()
            await _subscribe(pool, stuck_user, browser)
            stuck.script(browser.endpoint, HANG)
        lucky, browser = _user(), fake.subscribe()
        await _subscribe(pool, lucky, browser)
        async with running_worker(pool, database_url, timeout_s=120 * UNIT_S, per_origin=4):
            await _stage(
                pool,
                *(build_push(_notification(), user_id=u, unread_count=1) for u in stuck_users),
            )
            await until(lambda: stuck.hanging == 4, WAIT_S)
            await _stage(pool, build_push(_notification(), user_id=lucky, unread_count=1))
            await until(lambda: len(fake.delivered()) == 1, WAIT_S)
            # The other service still hangs, on no more requests than its share.
            assert stuck.hanging == 4 and stuck.answered == 0
            assert len(stuck.received) == 4
            # Its requests end (503) before the worker stops, which waits for them.
            await stuck.stop()
    finally:
        await stuck.stop()
    assert stuck.rejected == []


async def test_a_push_cancelled_before_it_left_is_never_sent(
    pool: asyncpg.Pool, database_url: str, fake: FakePushService
) -> None:
    user, browser = _user(), fake.subscribe()
    await _subscribe(pool, user, browser)
    read = _notification(data={"conversation_id": "dm_read"})
    later = _notification("job_alert", data={"job_id": "j-9"})
    await _stage(pool, build_push(read, user_id=user, unread_count=1))
    async with pool.acquire() as conn, conn.transaction():
        cancelled = await push_storage.cancel_pushes(conn, user_id=user, notification_ids=[read.id])
    assert cancelled == 1
    await _stage(pool, build_push(later, user_id=user, unread_count=1))
    async with running_worker(pool, database_url):
        await until(lambda: len(fake.delivered()) == 1, WAIT_S)
        await until(lambda: fake.answered == 1, WAIT_S)
    assert [p.payload["notification"]["id"] for p in fake.received] == [later.id]
    assert await _jobs_of(pool, user) == 0


async def test_a_newer_push_of_the_same_conversation_replaces_one_not_sent(
    pool: asyncpg.Pool, database_url: str, fake: FakePushService
) -> None:
    user, browser = _user(), fake.subscribe()
    await _subscribe(pool, user, browser)
    conversation = {"conversation_id": "dm_topic"}
    first = _notification(body="first", data=conversation)
    updated = _notification(notification_id=first.id, body="second", data=conversation)
    other = _notification(body="elsewhere", data={"conversation_id": "dm_other"})
    newer = _notification(body="third", data=conversation)
    await _stage(pool, build_push(first, user_id=user, unread_count=1))
    await _stage(pool, build_push(updated, user_id=user, unread_count=1))
    await _stage(pool, build_push(other, user_id=user, unread_count=2))
    await _stage(pool, build_push(newer, user_id=user, unread_count=2))
    assert await _jobs_of(pool, user) == 2
    async with running_worker(pool, database_url):
        await until(lambda: fake.answered == 2, WAIT_S)
    bodies = sorted(push.payload["notification"]["body"] for push in fake.received)
    assert bodies == ["elsewhere", "third"]
    assert await _jobs_of(pool, user) == 0


async def test_workers_side_by_side_send_each_push_once(
    pool: asyncpg.Pool, database_url: str, fake: FakePushService
) -> None:
    users = [_user() for _ in range(30)]
    for user in users:
        await _subscribe(pool, user, fake.subscribe())
    messages = [
        build_push(_notification("job_alert", data={"job_id": "j"}), user_id=u, unread_count=1)
        for u in users
    ]
    async with (
        running_worker(pool, database_url, poll_interval_s=0.05),
        running_worker(pool, database_url, poll_interval_s=0.05),
    ):
        for start in range(0, len(messages), 5):
            await _stage(pool, *messages[start : start + 5])
        await until(lambda: fake.answered == len(messages), WAIT_S)
    sent = sorted(push.payload["notification"]["id"] for push in fake.received)
    assert sent == sorted(message.notification_id for message in messages)
