"""Records a handler knows to change nothing cost no transaction, and their offsets are still
stored: presence, which only needs a conversation's first message, skips the rest."""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.integration.harness import (
    Client,
    System,
    metric_value,
    of_type,
    seconds,
    send_frame,
    unique,
)


async def chat_events_end_offsets(system: System) -> dict[int, int]:
    topic = system.topic("chat.events.v1")
    consumer = AIOKafkaConsumer(bootstrap_servers=system.kafka_bootstrap)
    await consumer.start()
    try:
        count = int(system.env["CHAT_PARTITIONS"])
        partitions = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        ends = {tp: await consumer.position(tp) for tp in partitions}
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


async def test_presence_skips_messages_of_known_conversations(system: System) -> None:
    topic = system.topic("chat.events.v1")
    alice, bob = unique("alice"), unique("bob")
    alice_1 = await Client.connect(system.ws_url, alice)
    bob_1 = await Client.connect(system.ws_url, bob)
    skipped_before = await metric_value(system.presence, "realtime_records_skipped", topic=topic)

    # The first message introduces the two (a presence frame each way); the others change
    # nothing presence stores.
    for i in range(10):
        await alice_1.send({**send_frame(to=bob, client_msg_id=f"s{i}"), "id": f"s{i}"})
        await bob_1.take(of_type("message.new"))
    await alice_1.take(of_type("presence", user_id=bob))

    deadline = asyncio.get_running_loop().time() + seconds(10)
    while (
        await metric_value(system.presence, "realtime_records_skipped", topic=topic)
        <= skipped_before
    ):
        assert asyncio.get_running_loop().time() < deadline, "no chat fact was skipped"
        await asyncio.sleep(0.1)

    # Skipped or applied, every fact's offset reaches Postgres (within the hint interval).
    ends = await chat_events_end_offsets(system)
    conn = await asyncpg.connect(system.database_url)
    try:
        deadline = asyncio.get_running_loop().time() + seconds(15)
        while True:
            rows = await conn.fetch(
                "SELECT partition, next_offset FROM presence.consumer_offsets WHERE topic = $1",
                topic,
            )
            stored = {row["partition"]: row["next_offset"] for row in rows}
            if all(stored.get(p, 0) >= end for p, end in ends.items()):
                break
            assert asyncio.get_running_loop().time() < deadline, f"{stored} behind {ends}"
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    for client in (alice_1, bob_1):
        await client.close()
