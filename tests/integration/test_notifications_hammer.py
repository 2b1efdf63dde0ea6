"""Unread counts never drift: notifications created (job alerts on several partitions, messages
in several conversations) while two devices of the user read them (by ids, by conversation,
all) at the same time; at the end the count shown equals the number of unread rows.

The writers meet on the user's stream row lock in the notifier, from different partitions and
topics; the count is moved in the statement that changes the rows (services/notifier/storage.py).
"""

from __future__ import annotations

import asyncio
import random
import uuid

import orjson

from schemas import topics
from services.runtime.kafka import make_producer
from tests.integration.harness import Client, Frame, System, seconds, send_frame, unique
from tests.integration.notifications import (
    JOB_SOURCE,
    fetch,
    job_alert,
    unread_rows,
    until,
)

ALERTS = 40
# Alerts published after the readers stopped: the final count is not zero by construction.
LAST_ALERTS = 3
SENDERS = 3
MESSAGES = 10
ROUNDS = 25


async def test_unread_count_equals_unread_rows_after_concurrent_creates_and_reads(
    system: System,
) -> None:
    rng = random.Random(8)
    bob = unique("bob")
    phone = await Client.connect(system.ws_url, bob)
    laptop = await Client.connect(system.ws_url, bob)
    senders = [await Client.connect(system.ws_url, unique("sender")) for _ in range(SENDERS)]
    conversations: dict[str, int] = {}
    jobs: list[str] = []

    async def alerts(count: int) -> None:
        producer = make_producer(system.kafka_bootstrap, client_id="it-hammer")
        await producer.start()
        try:
            for _ in range(count):
                data = job_alert([bob])
                jobs.append(str(data["job_id"]))
                await producer.send_and_wait(
                    system.topic(topics.JOBS_EVENTS),
                    orjson.dumps(data),
                    key=str(data["job_id"]).encode(),
                    headers=[
                        ("ce_specversion", b"1.0"),
                        ("ce_id", uuid.uuid4().hex.encode()),
                        ("ce_source", JOB_SOURCE.encode()),
                        ("ce_type", topics.JOB_ALERT_MATCHED.encode()),
                    ],
                )
                await asyncio.sleep(rng.random() / 50)
        finally:
            await producer.stop()

    async def messages(sender: Client) -> None:
        for i in range(MESSAGES):
            answer = await sender.request_within_rate(
                send_frame(to=bob, client_msg_id=f"h{i}", body=f"hammer {i}")
            )
            message = answer["message"]
            conversations[message["conversation_id"]] = message["seq"]
            await asyncio.sleep(rng.random() / 50)

    def seen_ids(device: Client) -> list[str]:
        return [
            frame["notification"]["id"]
            for frame in device.frames
            if frame.get("type") == "notification.new"
        ]

    async def reads_by_id(device: Client) -> None:
        for round_ in range(ROUNDS):
            ids = seen_ids(device)
            if round_ % 10 == 9:
                answer = await device.request_within_rate(
                    {"type": "notification.read", "all": True}
                )
            elif ids:
                picked = rng.sample(ids, min(len(ids), rng.randint(1, 3)))
                answer = await device.request_within_rate(
                    {"type": "notification.read", "ids": picked}
                )
            else:
                await asyncio.sleep(0.05)
                continue
            assert answer["type"] == "ack", answer
            await asyncio.sleep(rng.random() / 20)

    async def reads_by_conversation(device: Client) -> None:
        for _ in range(ROUNDS):
            if conversations:
                conversation = rng.choice(sorted(conversations))
                seq = rng.randint(1, conversations[conversation])
                answer = await device.request_within_rate(
                    {
                        "type": "receipt",
                        "conversation_id": conversation,
                        "seq": seq,
                        "status": "read",
                    }
                )
                assert answer["type"] == "ack", answer
            await asyncio.sleep(rng.random() / 20)

    await asyncio.gather(
        alerts(ALERTS),
        *(messages(sender) for sender in senders),
        reads_by_id(phone),
        reads_by_conversation(laptop),
        reads_by_id(laptop),
    )
    await alerts(LAST_ALERTS)

    async def everything_applied() -> bool:
        rows = await fetch(
            system,
            "SELECT (SELECT count(*) FROM notifier.notifications WHERE user_id = $1"
            "   AND kind = 'job_alert') AS alerts,"
            " (SELECT count(*) FROM unnest($2::text[], $3::bigint[]) AS c (id, seq)"
            "   WHERE greatest("
            "     (SELECT max(last_message_seq) FROM notifier.notifications n"
            "       WHERE n.user_id = $1 AND n.conversation_id = c.id),"
            "     (SELECT read_seq FROM notifier.conversation_reads r"
            "       WHERE r.user_id = $1 AND r.conversation_id = c.id)) = c.seq) AS done",
            bob,
            list(conversations),
            list(conversations.values()),
        )
        return bool(rows[0]["alerts"] == ALERTS + LAST_ALERTS and rows[0]["done"] == SENDERS)

    await until(everything_applied, seconds(60), "every alert and message applied")
    counted, unread = await unread_rows(system, bob)
    assert counted == unread
    assert unread >= LAST_ALERTS

    # Both devices end up showing that count: the latest frame of the stream says it.
    stream = await fetch(
        system, "SELECT last_seq FROM notifier.user_streams WHERE user_id = $1", bob
    )
    last_seq = stream[0]["last_seq"]

    async def latest(device: Client) -> Frame:
        await until(lambda: _has_seq(device, last_seq), seconds(30), "the last frame arrives")
        return next(
            frame
            for frame in device.frames
            if frame.get("stream") == "notifications" and frame.get("seq") == last_seq
        )

    for device in (phone, laptop):
        assert (await latest(device))["unread_count"] == unread
    bell = await phone.request({"type": "notifications.list", "limit": 100})
    assert bell["unread_count"] == unread
    assert sum(1 for n in bell["notifications"] if not n["read"]) == unread
    for client in (phone, laptop, *senders):
        await client.close()


async def _has_seq(device: Client, seq: int) -> bool:
    return any(
        frame.get("stream") == "notifications" and frame.get("seq") == seq
        for frame in device.frames
    )
