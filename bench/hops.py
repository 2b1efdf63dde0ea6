"""Scenario ``hops``: where the time of one message goes at low load, hop by hop.

One sender messages one recipient at a low rate while a plain Kafka consumer (no group) tails
the deployment's command and delivery topics. Each record's ``CreateTime`` is stamped by the
process that produced it, so with the client's own wall-clock times a message's way splits into

    gateway in    client sends message.send -> the gateway produced the command
    kafka hop     the command produced -> this tail consumer received it (the broker's share)
    chat          the command produced -> chat produced the recipient's delivery record
                  (chat's fetch, its Postgres transaction and its publish)
    gateway out   the delivery record produced -> the recipient's client received message.new
                  (a Kafka hop, the gateway's work and the WebSocket write)

All clocks are this machine's wall clock; ``CreateTime`` has millisecond resolution, so hop
figures are good to about a millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from bench.client import Frame, LoadClient
from bench.progress import Progress, bar
from bench.stats import summarize
from bench.system import System
from schemas import topics


async def hops(
    system: System, progress: Progress, *, messages: int, rate: float
) -> dict[str, object]:
    """Send ``messages`` at ``rate`` msgs/s and summarise each hop (p50/p95/p99/max, ms)."""
    sent: dict[int, float] = {}
    received: dict[int, float] = {}
    command_made: dict[int, float] = {}
    command_seen: dict[int, float] = {}
    delivery_made: dict[int, float] = {}

    def on_frame(client: LoadClient, frame: Frame, now: float) -> None:
        if frame["type"] == "message.new" and frame["message"]["sender_id"] != client.user_id:
            received.setdefault(int(frame["message"]["client_msg_id"]), time.time())

    tag = f"hops-{int(time.time())}"
    sender = await LoadClient.open(system.ws_url, 0, f"{tag}-sender", on_frame)
    recipient = await LoadClient.open(system.ws_url, 1, f"{tag}-recipient", on_frame)
    prefix = system.env["KAFKA_TOPIC_PREFIX"]
    commands_topic, delivery_topic = prefix + topics.CHAT_COMMANDS, prefix + topics.DELIVERY

    def note(record: ConsumerRecord) -> None:
        seen = time.time()
        data = orjson.loads(record.value).get("data") or {}
        if record.topic == commands_topic:
            if data.get("sender_id") == sender.user_id:
                index = int(data["client_msg_id"])
                command_made[index] = record.timestamp / 1000
                command_seen[index] = seen
            return
        if data.get("user_id") != recipient.user_id:
            return
        # One frame, or a batch's frames for the user (services/runtime/delivery.py).
        for item in data.get("frames") or [data]:
            frame = item.get("frame") or {}
            message = frame.get("message") if frame.get("type") == "message.new" else None
            if message:
                delivery_made.setdefault(int(message["client_msg_id"]), record.timestamp / 1000)

    tail = AIOKafkaConsumer(
        commands_topic,
        delivery_topic,
        bootstrap_servers=system.env["KAFKA_BOOTSTRAP_SERVERS"],
        group_id=None,
        auto_offset_reset="latest",
        fetch_max_wait_ms=50,
    )
    await tail.start()

    async def follow() -> None:
        while True:
            batches = await tail.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    note(record)

    follower = asyncio.create_task(follow())
    try:
        # The tail must be positioned before the first message is produced.
        await _until(lambda: bool(tail.assignment()), timeout_s=10.0)
        for tp in tail.assignment():
            await tail.position(tp)
        start = time.perf_counter()
        for index in range(messages):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[index] = time.time()
            await sender.send_message(recipient.user_id, index)
            progress.update(f"hops {bar((index + 1) / messages)} {index + 1}/{messages}")
        await _until(lambda: len(received) >= messages, timeout_s=10.0)
        await asyncio.sleep(0.5)  # the tail's last fetch
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await tail.stop()
        await sender.close()
        await recipient.close()
    whole = [i for i in sent if i in received and i in command_made and i in delivery_made]
    end_to_end = summarize([received[i] - sent[i] for i in whole])
    progress.done(f"hops at {rate:g}/s: end to end p50 {end_to_end['p50_ms']} ms")
    return {
        "messages": messages,
        "rate": rate,
        "traced": len(whole),
        "gateway_in": summarize([command_made[i] - sent[i] for i in whole]),
        "kafka_hop": summarize([command_seen[i] - command_made[i] for i in whole]),
        "chat": summarize([delivery_made[i] - command_made[i] for i in whole]),
        "gateway_out": summarize([received[i] - delivery_made[i] for i in whole]),
        "end_to_end": end_to_end,
    }


async def _until(condition: Callable[[], bool], *, timeout_s: float) -> None:
    """Poll ``condition`` every 50 ms until it holds or ``timeout_s`` passes."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if condition():
            return
        await asyncio.sleep(0.05)
