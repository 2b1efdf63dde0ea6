"""Web Push through the whole system: browsers subscribe over the WebSocket, notifications are
made by chat messages and job alerts, the notifier's worker pushes to a fake push service on
loopback that verifies every VAPID signature and decrypts every body with the browser's key
(tests/integration/push_service.py).

"Connected" is presence's fact as the notifier applied it; tests wait until the notifier's row
says so before making notifications. A push that must not happen is checked where it would be:
staged in the very transaction that made the notification (so absent from push_jobs once the
notification reached the user) and never received by the push service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from schemas import topics
from services.notifier.domain.push import topic_for
from tests.integration.harness import (
    Client,
    System,
    metric_value,
    of_type,
    seconds,
    send_frame,
    unique,
)
from tests.integration.notifications import (
    fetch,
    job_alert,
    publish_binary,
    until,
    wait_connected,
)
from tests.integration.push_service import (
    HANG,
    Answer,
    BrowserSubscription,
    FakePushService,
    until as holds,
)


@pytest.fixture
async def fake(system: System) -> AsyncIterator[FakePushService]:
    service = FakePushService(vapid_public_key=system.vapid_public_key)
    await service.start()
    yield service
    await service.stop()
    assert service.rejected == [], "the push service refused requests as malformed"


async def subscribed(system: System, user: str, browser: BrowserSubscription) -> Client:
    """A device of ``user`` that subscribed ``browser`` (still connected)."""
    device = await Client.connect(system.ws_url, user)
    answer = await device.request({"type": "push.subscribe", "subscription": browser.to_json()})
    assert answer["type"] == "ack", answer
    return device


async def offline_subscriber(
    system: System, fake: FakePushService, user: str, *answers: Answer
) -> BrowserSubscription:
    """``user`` subscribed on ``fake`` (answering as scripted) and then went away."""
    browser = fake.subscribe()
    if answers:
        fake.script(browser.endpoint, *answers)
    device = await subscribed(system, user, browser)
    await wait_connected(system, user, True)
    await device.close()
    await wait_connected(system, user, False)
    return browser


async def alert(system: System, users: list[str], title: str = "Engineer") -> None:
    data = job_alert(users)
    data["title"] = title
    await publish_binary(
        system, topics.JOBS_EVENTS, topics.JOB_ALERT_MATCHED, key=users[0], data=data
    )


async def staged_for(system: System, user: str) -> int:
    rows = await fetch(
        system, "SELECT count(*) AS n FROM notifier.push_jobs WHERE user_id = $1", user
    )
    return int(rows[0]["n"])


async def test_the_pushed_payload_is_right_and_nothing_is_pushed_to_a_connected_user(
    system: System, fake: FakePushService
) -> None:
    alice, bob, carol = unique("alice"), unique("bob"), unique("carol")
    bob_browser = await offline_subscriber(system, fake, bob)
    carol_browser = fake.subscribe()
    carol_1 = await subscribed(system, carol, carol_browser)
    await wait_connected(system, carol, True)

    alice_1 = await Client.connect(system.ws_url, alice)
    to_bob = await alice_1.request(send_frame(to=bob, client_msg_id="b1", body="Hello Bob"))
    to_carol = await alice_1.request(send_frame(to=carol, client_msg_id="c1", body="Hi Carol"))
    await alert(system, [bob, carol])
    await holds(lambda: len(fake.pushes_to(bob_browser.endpoint)) == 2, seconds(30))
    await carol_1.take_n(of_type("notification.new"), 2, seconds(20))

    message_push, alert_push = sorted(
        fake.pushes_to(bob_browser.endpoint),
        key=lambda push: push.payload["notification"]["kind"] != "message",
    )
    conversation = to_bob["message"]["conversation_id"]
    notification = message_push.payload["notification"]
    assert set(message_push.payload) == {"notification", "unread_count"}
    assert set(notification) == {"id", "kind", "title", "body", "data", "created_at"}
    assert (notification["kind"], notification["title"], notification["body"]) == (
        "message",
        f"New message from {alice}",
        "Hello Bob",
    )
    assert notification["data"] == {
        "conversation_id": conversation,
        "sender_id": alice,
        "message_id": to_bob["message"]["id"],
        "count": 1,
    }
    assert message_push.payload["unread_count"] in (1, 2)  # before or after the alert
    assert (message_push.ttl, message_push.urgency) == (86_400, "high")
    assert message_push.topic == topic_for("message", conversation)
    assert alert_push.payload["notification"]["kind"] == "job_alert"
    assert (alert_push.ttl, alert_push.urgency, alert_push.topic) == (3 * 86_400, "low", None)
    assert {message_push.payload["unread_count"], alert_push.payload["unread_count"]} == {1, 2}
    assert all(push.payload_bytes <= 3000 for push in fake.received)

    # The same notifications reached bob's stream with the ids the pushes carry.
    bob_1 = await Client.connect(system.ws_url, bob)
    bell = await bob_1.request({"type": "notifications.list"})
    assert {n["id"] for n in bell["notifications"]} == {
        message_push.payload["notification"]["id"],
        alert_push.payload["notification"]["id"],
    }
    # carol was connected: her notifications were made, and no push was even staged.
    assert to_carol["type"] == "ack"
    assert await staged_for(system, carol) == 0
    assert fake.pushes_to(carol_browser.endpoint) == []
    for client in (alice_1, bob_1, carol_1):
        await client.close()


async def test_a_gone_endpoint_is_deleted(system: System, fake: FakePushService) -> None:
    dave = unique("dave")
    browser = await offline_subscriber(system, fake, dave, Answer(410))
    gone_before = await metric_value(
        system.notifier, "realtime_pushes", outcome="gone", reason="http_410"
    )
    await alert(system, [dave])

    async def deleted() -> bool:
        rows = await fetch(
            system,
            "SELECT count(*) AS n FROM notifier.push_subscriptions WHERE endpoint = $1",
            browser.endpoint,
        )
        return bool(rows[0]["n"] == 0)

    await until(deleted, seconds(30), "the subscription is deleted")
    assert [push.answer.status for push in fake.pushes_to(browser.endpoint)] == [410]
    gone = await metric_value(system.notifier, "realtime_pushes", outcome="gone", reason="http_410")
    assert gone == gone_before + 1
    assert await staged_for(system, dave) == 0


async def test_server_errors_and_timeouts_are_retried_while_other_pushes_go_out(
    system: System, fake: FakePushService
) -> None:
    erin, frank, grace = unique("erin"), unique("frank"), unique("grace")
    failing = await offline_subscriber(system, fake, erin, Answer(500), Answer(500), Answer(201))
    hanging = await offline_subscriber(system, fake, frank, HANG, Answer(201))
    healthy = await offline_subscriber(system, fake, grace)
    retried_before = {
        reason: await metric_value(
            system.notifier, "realtime_pushes", outcome="retried", reason=reason
        )
        for reason in ("http_5xx", "timeout")
    }

    await alert(system, [erin, frank])
    await holds(lambda: fake.hanging == 1, seconds(30))
    # While frank's push service hangs, grace's notification is made and pushed.
    await alert(system, [grace])
    await holds(lambda: len(fake.delivered()) >= 1 and _has(fake, healthy), seconds(30))
    assert _has(fake, healthy) and not _delivered(fake, hanging)

    await holds(lambda: _delivered(fake, failing), seconds(30))
    await holds(lambda: _delivered(fake, hanging), seconds(60))
    assert [push.answer.status for push in fake.pushes_to(failing.endpoint)] == [500, 500, 201]
    answers = [push.answer for push in fake.pushes_to(hanging.endpoint)]
    assert answers[0].hang and answers[-1].status == 201
    for reason, more in (("http_5xx", 2), ("timeout", 1)):
        retried = await metric_value(
            system.notifier, "realtime_pushes", outcome="retried", reason=reason
        )
        assert retried >= retried_before[reason] + more, reason
    # Each user's push went out once it was accepted: the same notification, never twice.
    for browser in (failing, hanging, healthy):
        ids = {p.payload["notification"]["id"] for p in fake.pushes_to(browser.endpoint)}
        assert len(ids) == 1


async def test_a_notification_read_before_its_push_left_is_never_pushed(
    system: System, fake: FakePushService
) -> None:
    crowded = FakePushService(vapid_public_key=system.vapid_public_key)
    await crowded.start()
    try:
        # Four users whose pushes hang fill the notifier's slots for that push service
        # (PUSH_PER_ORIGIN_CONCURRENCY=4): helen's push waits for a free slot.
        stuck = [unique("stuck") for _ in range(4)]
        for user in stuck:
            await offline_subscriber(system, crowded, user, HANG)
        helen = unique("helen")
        browser = await offline_subscriber(system, crowded, helen)
        await alert(system, stuck)
        await holds(lambda: crowded.hanging == 4, seconds(30))

        alice_1 = await Client.connect(system.ws_url, unique("alice"))
        sent = await alice_1.request(send_frame(to=helen, client_msg_id="h1", body="Hi"))

        async def staged() -> bool:
            return await staged_for(system, helen) == 1

        await until(staged, seconds(20), "helen's push is staged")
        helen_1 = await Client.connect(system.ws_url, helen)
        await helen_1.request(
            {
                "type": "receipt",
                "conversation_id": sent["message"]["conversation_id"],
                "seq": 1,
                "status": "read",
            }
        )
        await helen_1.take(of_type("notification.read"), seconds(20))
        assert await staged_for(system, helen) == 0
        assert crowded.pushes_to(browser.endpoint) == []
        await alice_1.close()
        await helen_1.close()
    finally:
        await crowded.stop()
    assert crowded.rejected == []


def _delivered(fake: FakePushService, browser: BrowserSubscription) -> bool:
    return any(push in fake.delivered() for push in fake.pushes_to(browser.endpoint))


def _has(fake: FakePushService, browser: BrowserSubscription) -> bool:
    return bool(fake.pushes_to(browser.endpoint))
