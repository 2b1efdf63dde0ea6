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
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from bench.client import Frame, LoadClient
from bench.progress import Progress, bar
from bench.stats import summarize
from bench.system import System
from schemas import topics


async def hops(
    system: System, progress: Progress, *, messages: int, rate: float, keep: bool = False
) -> dict[str, object]:
    """Send ``messages`` at ``rate`` msgs/s and summarise each hop (p50/p95/p99/max, ms).

    With ``keep``, every message's hops are in the result too (``per_message``: send time in
    seconds from the first send, then gateway in, Kafka hop, chat, gateway out in ms), the
    chat service's histogram of batch transaction times over the run (``chat_batches``), and
    the slow ``fsync()`` calls of a probe that writes and syncs 4 KiB every 10 ms on the disk
    Postgres and Kafka write to (``slow_fsyncs``: seconds from the first send, ms): where a
    slow message's time went, and whether the transactions or the disk explain it.
    """
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
    batches_before = await _batch_histogram(system) if keep else {}
    probe_stop = threading.Event()
    slow_fsyncs: list[tuple[float, float]] = []
    probe = (
        asyncio.create_task(
            asyncio.to_thread(_fsync_probe, system.log_dir / "fsync-probe", probe_stop, slow_fsyncs)
        )
        if keep
        else None
    )
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
        probe_stop.set()
        if probe is not None:
            await probe
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await tail.stop()
        await sender.close()
        await recipient.close()
    whole = [i for i in sent if i in received and i in command_made and i in delivery_made]
    end_to_end = summarize([received[i] - sent[i] for i in whole])
    progress.done(f"hops at {rate:g}/s: end to end p50 {end_to_end['p50_ms']} ms")
    kept: dict[str, object] = {}
    if keep:
        first = min(sent.values(), default=0.0)
        kept["per_message"] = [
            [
                round(sent[i] - first, 3),
                round((command_made[i] - sent[i]) * 1000, 1),
                round((command_seen[i] - command_made[i]) * 1000, 1),
                round((delivery_made[i] - command_made[i]) * 1000, 1),
                round((received[i] - delivery_made[i]) * 1000, 1),
            ]
            for i in whole
        ]
        after = await _batch_histogram(system)
        kept["chat_batches"] = {
            le: after.get(le, 0) - batches_before.get(le, 0) for le in sorted(after, key=float)
        }
        kept["slow_fsyncs"] = [
            [round(at - first, 3), round(took * 1000, 1)] for at, took in slow_fsyncs
        ]
    return {
        **kept,
        "messages": messages,
        "rate": rate,
        "traced": len(whole),
        "gateway_in": summarize([command_made[i] - sent[i] for i in whole]),
        "kafka_hop": summarize([command_seen[i] - command_made[i] for i in whole]),
        "chat": summarize([delivery_made[i] - command_made[i] for i in whole]),
        "gateway_out": summarize([received[i] - delivery_made[i] for i in whole]),
        "end_to_end": end_to_end,
    }


def _fsync_probe(path: Path, stop: threading.Event, slow: list[tuple[float, float]]) -> None:
    """Write and fsync 4 KiB every 10 ms until ``stop``; note (wall time, seconds) of each
    fsync slower than 20 ms. Runs in a thread: a slow fsync must not stall the load."""
    block = os.urandom(4096)
    with path.open("wb") as handle:
        while not stop.wait(0.01):
            started = time.time()
            handle.seek(0)
            handle.write(block)
            handle.flush()
            os.fsync(handle.fileno())
            took = time.time() - started
            if took > 0.02:
                slow.append((started, took))


async def _batch_histogram(system: System) -> dict[str, float]:
    """Cumulative buckets of chat's ``realtime_db_seconds{operation="consume_batch"}``."""
    import httpx

    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{system.chat.port}/metrics")).text
    buckets: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("realtime_db_seconds_bucket{") and 'operation="consume_batch"' in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            if le != "+Inf":
                buckets[le] = float(line.rsplit(" ", 1)[1])
    return buckets


async def _until(condition: Callable[[], bool], *, timeout_s: float) -> None:
    """Poll ``condition`` every 50 ms until it holds or ``timeout_s`` passes."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if condition():
            return
        await asyncio.sleep(0.05)
