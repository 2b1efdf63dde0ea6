"""Presence learns memberships from chat.conversations.v1: one fact per conversation, however
many messages follow; a repeated fact (the outbox publishes at least once) costs no transaction,
and its offset is still stored."""

from __future__ import annotations

import asyncio

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from tests.integration.harness import (
    Client,
    System,
    metric_value,
    of_type,
    seconds,
    send_frame,
    unique,
)


async def read_topic(system: System, topic: str) -> tuple[list[ConsumerRecord], dict[int, int]]:
    """Every record of ``topic`` so far, and each partition's end offset."""
    # From the first offset by the reset policy, not seek_to_beginning(): a seek can race the
    # fetch that assign() started from the default policy (latest), and lose.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=system.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        count = int(system.env["CHAT_PARTITIONS"])
        partitions = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        # Not consumer.position(): it may already count records prefetched in the background.
        reached = dict.fromkeys(partitions, 0)
        records: list[ConsumerRecord] = []
        deadline = asyncio.get_running_loop().time() + seconds(10)
        while any(reached[tp] < ends[tp] for tp in partitions):
            assert asyncio.get_running_loop().time() < deadline, f"stuck at {reached} of {ends}"
            for tp, batch in (await consumer.getmany(timeout_ms=200)).items():
                records.extend(batch)
                reached[tp] = batch[-1].offset + 1
    finally:
        await consumer.stop()
    return records, {tp.partition: offset for tp, offset in ends.items()}


async def skipped_since(system: System, topic: str, before: float, *, within_s: float) -> bool:
    """Whether presence counts a skipped record of ``topic`` beyond ``before`` within the time."""
    deadline = asyncio.get_running_loop().time() + within_s
    while asyncio.get_running_loop().time() < deadline:
        if await metric_value(system.presence, "realtime_records_skipped", topic=topic) > before:
            return True
        await asyncio.sleep(0.1)
    return False


async def test_one_conversation_fact_per_conversation_and_repeats_are_skipped(
    system: System,
) -> None:
    topic = system.topic("chat.conversations.v1")
    alice, bob = unique("alice"), unique("bob")
    alice_1 = await Client.connect(system.ws_url, alice)
    bob_1 = await Client.connect(system.ws_url, bob)

    # The first message creates the conversation and introduces the two (a presence frame
    # each way); the others add nothing to chat.conversations.v1.
    for i in range(5):
        ack = await alice_1.request(send_frame(to=bob, client_msg_id=f"s{i}"))
        assert ack["type"] == "ack", ack
        await bob_1.take(of_type("message.new"))
    conversation_id = ack["message"]["conversation_id"]
    # The introduction may come before presence applied the other's connection (then an
    # "online" follows it): wait for the settled state.
    await alice_1.take(of_type("presence", user_id=bob, status="online"))
    await bob_1.take(of_type("presence", user_id=alice, status="online"))

    records, _ = await read_topic(system, topic)
    facts = [r for r in records if r.key == conversation_id.encode()]
    assert len(facts) == 1, facts
    fact = orjson.loads(facts[0].value)
    assert fact["type"] == "chat.conversation.created"
    assert fact["subject"] == conversation_id
    assert fact["data"] == {
        "conversation_id": conversation_id,
        "kind": "direct",
        "member_ids": sorted([alice, bob]),
    }

    # The same fact again, as a relay re-publishing after a crash would: nothing to do. Only a
    # fetch made of such records skips its transaction; one that shares its fetch with another
    # topic's record (a connection event of this shared system) rides in that batch's
    # transaction as a no-op instead, so the repeat is published until one comes alone.
    skipped_before = await metric_value(system.presence, "realtime_records_skipped", topic=topic)
    producer = AIOKafkaProducer(bootstrap_servers=system.kafka_bootstrap)
    await producer.start()
    try:
        for _ in range(5):
            await producer.send_and_wait(
                topic, facts[0].value, key=facts[0].key, headers=list(facts[0].headers)
            )
            if await skipped_since(system, topic, skipped_before, within_s=seconds(5)):
                break
        else:
            raise AssertionError("no repeat was skipped")
    finally:
        await producer.stop()
    await alice_1.settle()
    assert not alice_1.matching(of_type("presence", user_id=bob, status="online"))

    # Skipped or applied, every record's offset reaches Postgres (within the hint interval).
    _, ends = await read_topic(system, topic)
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
