"""Job alerts and application status from other teams' services (../shared/events.md), published
with kcat (a non-Python client) in both CloudEvents Kafka bindings, to real users.

Events of one test share a record key, so they land in one partition in order: waiting for the
last one proves the notifier has applied the earlier ones too.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson

from schemas import topics
from tests.integration.harness import (
    Client,
    Frame,
    System,
    metric_value,
    of_type,
    seconds,
    unique,
)
from tests.integration.notifications import (
    JOB_SOURCE,
    dead_letters,
    job_alert,
    kcat_publish,
    notifications_stream,
    publish_binary,
    publish_structured,
    status_change,
    stream_until,
)


async def test_a_job_alert_in_binary_mode_reaches_its_recipients_live_and_by_sync(
    system: System,
) -> None:
    online, offline, bystander = unique("online"), unique("offline"), unique("bystander")
    online_1 = await Client.connect(system.ws_url, online)
    data = job_alert([online, offline])
    await publish_binary(
        system, topics.JOBS_EVENTS, topics.JOB_ALERT_MATCHED, key=data["job_id"], data=data
    )

    live = await online_1.take(of_type("notification.new"), seconds(20))
    assert (live["stream"], live["seq"], live["unread_count"]) == ("notifications", 1, 1)
    notification = live["notification"]
    assert notification["kind"] == "job_alert"
    assert notification["read"] is False
    assert notification["title"] == "New job: Cleared Systems Engineer"
    assert notification["data"] == {
        "job_id": data["job_id"],
        "url": data["url"],
        "title": "Cleared Systems Engineer",
        "company": "Acme",
        "location": "Reston, VA",
    }

    # Offline when it came: it waits in the user's stream, exactly as it would have been pushed.
    offline_1 = await Client.connect(system.ws_url, offline)
    [synced] = await notifications_stream(offline_1)
    assert synced["seq"] == 1 and synced["unread_count"] == 1
    assert synced["notification"]["data"] == notification["data"]
    assert synced["notification"]["id"] != notification["id"]
    bystander_1 = await Client.connect(system.ws_url, bystander)
    assert await notifications_stream(bystander_1) == []
    for client in (online_1, offline_1, bystander_1):
        await client.close()


async def test_an_application_status_in_structured_mode_reaches_the_candidate(
    system: System,
) -> None:
    candidate = unique("candidate")
    candidate_1 = await Client.connect(system.ws_url, candidate)
    application = f"a-{uuid.uuid4().hex[:8]}"
    await publish_structured(
        system,
        topics.APPLICATIONS_EVENTS,
        topics.APPLICATION_STATUS_CHANGED,
        key=application,
        data=status_change(
            candidate,
            application_id=application,
            status="interview",
            previous="submitted",
            changed_at=datetime.now(UTC),
        ),
    )
    live = await candidate_1.take(of_type("notification.new"), seconds(20))
    notification = live["notification"]
    assert notification["kind"] == "application_status"
    assert notification["title"] == "Application update: Cleared Systems Engineer"
    assert notification["body"] == "You are invited to an interview. We will call you."
    assert notification["data"] == {
        "application_id": application,
        "job_id": "j-123",
        "status": "interview",
        "previous_status": "submitted",
    }
    await candidate_1.close()


async def test_the_same_event_twice_makes_one_notification(system: System) -> None:
    user = unique("user")
    job = f"j-{uuid.uuid4().hex[:8]}"
    duplicates_before = await metric_value(
        system.notifier, "realtime_inbound_duplicates", topic=system.topic(topics.JOBS_EVENTS)
    )
    event_id = uuid.uuid4().hex
    for _ in range(2):  # the publisher retried after a timeout: same source, same id
        await publish_binary(
            system,
            topics.JOBS_EVENTS,
            topics.JOB_ALERT_MATCHED,
            key=job,
            data=job_alert([user], job_id=job),
            event_id=event_id,
        )
    marker = job_alert([user], job_id=job)
    marker["title"] = "Marker"
    await publish_binary(system, topics.JOBS_EVENTS, topics.JOB_ALERT_MATCHED, key=job, data=marker)

    user_1 = await Client.connect(system.ws_url, user)
    frames = await stream_until(user_1, lambda frames: bool(frames) and _is_marker(frames[-1]))
    assert [frame["notification"]["title"] for frame in frames] == [
        "New job: Cleared Systems Engineer",
        "New job: Marker",
    ]
    duplicates = await metric_value(
        system.notifier, "realtime_inbound_duplicates", topic=system.topic(topics.JOBS_EVENTS)
    )
    assert duplicates == duplicates_before + 1
    await user_1.close()


async def test_a_late_status_event_makes_no_notification(system: System) -> None:
    candidate = unique("candidate")
    application = f"a-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    changes = [
        ("interview", "shortlisted", now),
        ("shortlisted", "viewed", now - timedelta(minutes=5)),  # older than the one applied
        ("interview", "shortlisted", now),  # the same change again, under another event id
        ("offer", "interview", now + timedelta(minutes=5)),
    ]
    for status, previous, changed_at in changes:
        await publish_structured(
            system,
            topics.APPLICATIONS_EVENTS,
            topics.APPLICATION_STATUS_CHANGED,
            key=application,
            data=status_change(
                candidate,
                application_id=application,
                status=status,
                previous=previous,
                changed_at=changed_at,
            ),
        )
    candidate_1 = await Client.connect(system.ws_url, candidate)
    frames = await stream_until(
        candidate_1,
        lambda frames: any(f["notification"]["data"]["status"] == "offer" for f in frames),
    )
    assert [frame["notification"]["data"]["status"] for frame in frames] == ["interview", "offer"]
    await candidate_1.close()


async def test_poison_records_go_to_the_dlq_with_a_reason_and_the_next_event_arrives(
    system: System,
) -> None:
    user = unique("user")
    job = f"j-{uuid.uuid4().hex[:8]}"
    topic = system.topic(topics.JOBS_EVENTS)
    binary = [
        ("ce_specversion", "1.0"),
        ("ce_source", JOB_SOURCE),
        ("ce_type", topics.JOB_ALERT_MATCHED),
        ("content-type", "application/json"),
    ]
    good = orjson.dumps(job_alert([user], job_id=job))
    poison: list[tuple[bytes, list[tuple[str, str]], str]] = [
        (b"not json at all", [*binary, ("ce_id", uuid.uuid4().hex)], "invalid_binary_event"),
        (good, binary, "invalid_binary_event:id"),  # no ce_id
        (good, [*binary, ("ce_id", uuid.uuid4().hex), ("ce_type", "job.deleted")], "unknown_type"),
        (
            orjson.dumps({**job_alert([user], job_id=job), "user_ids": []}),
            [*binary, ("ce_id", uuid.uuid4().hex)],
            "invalid_data:user_ids",
        ),
        (
            good,
            [*binary[:-1], ("content-type", "text/plain"), ("ce_id", uuid.uuid4().hex)],
            "invalid_binary_event:content_type",
        ),
        (good, [("content-type", "application/cloudevents+json")], "invalid_envelope"),
    ]
    dlq_before = {
        reason.split(":")[0]: await metric_value(
            system.notifier, "realtime_dlq_records", topic=topic, reason=reason.split(":")[0]
        )
        for _, _, reason in poison
    }
    for value, headers, _ in poison:
        await kcat_publish(system, topics.JOBS_EVENTS, key=job, value=value, headers=headers)
    await publish_binary(
        system,
        topics.JOBS_EVENTS,
        topics.JOB_ALERT_MATCHED,
        key=job,
        data=job_alert([user], job_id=job),
    )

    user_1 = await Client.connect(system.ws_url, user)
    [frame] = await stream_until(user_1, lambda frames: bool(frames))
    assert frame["notification"]["data"]["job_id"] == job

    letters = [
        (headers, value)
        for headers, value in await dead_letters(system, topics.JOBS_EVENTS)
        if value in {v for v, _, _ in poison}
    ]
    reasons = sorted(headers["dlq.reason"] for headers, _ in letters)
    for _, _, expected in poison:
        assert any(reason.startswith(expected) for reason in reasons), (expected, reasons)
    assert all(headers["dlq.topic"] == topic for headers, _ in letters)
    for kind in dlq_before:
        counted = await metric_value(
            system.notifier, "realtime_dlq_records", topic=topic, reason=kind
        )
        assert counted > dlq_before[kind], kind
    await user_1.close()


async def test_chat_facts_the_notifier_does_not_handle_are_skipped_not_dead_lettered(
    system: System,
) -> None:
    alice, bob = unique("alice"), unique("bob")
    alice_1 = await Client.connect(system.ws_url, alice)
    sent = await alice_1.request(
        {"type": "message.send", "to": bob, "client_msg_id": "m1", "kind": "text", "body": "hi"}
    )
    conversation = sent["message"]["conversation_id"]
    # A fact of a kind chat will add (an edit), on chat's topic, keyed by the conversation.
    fact_id = uuid.uuid4().hex
    await publish_structured(
        system,
        topics.CHAT_EVENTS,
        "chat.message.updated",
        key=conversation,
        data={"change": "edited", "message": sent["message"], "member_ids": [alice, bob]},
        event_id=fact_id,
        source="/chat/elsewhere",
    )
    await alice_1.request(
        {"type": "message.send", "to": bob, "client_msg_id": "m2", "kind": "text", "body": "2"}
    )
    bob_1 = await Client.connect(system.ws_url, bob)
    frames = await stream_until(
        bob_1, lambda frames: any(f["notification"]["data"]["count"] == 2 for f in frames)
    )
    # Both messages may land in one of the notifier's batches, which then sends only count 2.
    assert [frame["notification"]["data"]["count"] for frame in frames] in ([1, 2], [2])
    letters = await dead_letters(system, topics.CHAT_EVENTS)
    assert not [value for _, value in letters if fact_id.encode() in value]
    for client in (alice_1, bob_1):
        await client.close()


def _is_marker(frame: Frame) -> bool:
    return bool(frame["notification"]["title"] == "New job: Marker")
