"""A notifier crash (SIGKILL) while job alerts are published loses no alert and repeats none:
every recipient gets each alert exactly once (by stream seq), unread counts exact. Publisher
retries of the same events after the restart change nothing (dedupe by (source, id))."""

from __future__ import annotations

import asyncio
import uuid

import orjson

from schemas import topics
from services.runtime.kafka import make_producer
from tests.integration.harness import Client, Frame, System, seconds, unique
from tests.integration.notifications import (
    JOB_SOURCE,
    job_alert,
    stream_until,
    unread_rows,
)

ALERTS = 200
KILL_AFTER = 60
RETRIED = 20


async def test_sigkill_of_the_notifier_while_alerts_arrive_loses_and_repeats_nothing(
    system: System,
) -> None:
    recipients = [unique("recipient") for _ in range(3)]
    live = await Client.connect(system.ws_url, recipients[0])
    producer = make_producer(system.kafka_bootstrap, client_id="it-job-board")
    await producer.start()
    events = [(uuid.uuid4().hex, job_alert(recipients)) for _ in range(ALERTS)]

    async def publish(event_id: str, data: dict[str, object]) -> None:
        # Binary mode, keyed by job: the alerts spread over every partition of the topic.
        await producer.send_and_wait(
            system.topic(topics.JOBS_EVENTS),
            orjson.dumps(data),
            key=str(data["job_id"]).encode(),
            headers=[
                ("ce_specversion", b"1.0"),
                ("ce_id", event_id.encode()),
                ("ce_source", JOB_SOURCE.encode()),
                ("ce_type", topics.JOB_ALERT_MATCHED.encode()),
                ("content-type", b"application/json"),
            ],
        )

    try:
        for index, (event_id, data) in enumerate(events):
            await publish(event_id, data)
            if index + 1 == KILL_AFTER:
                system.notifier.kill()
        system.notifier.start()
        await system.notifier.wait_ready()
        # The job board's own retries of events it is unsure about, after the restart.
        for event_id, data in events[:RETRIED]:
            await publish(event_id, data)
    finally:
        await producer.stop()

    jobs = sorted(str(data["job_id"]) for _, data in events)
    for user in recipients:
        device = await Client.connect(system.ws_url, user)
        frames = await stream_until(
            device, lambda frames: len(frames) >= ALERTS, timeout_s=seconds(90)
        )
        await device.close()
        assert [frame["seq"] for frame in frames] == list(range(1, ALERTS + 1))
        assert all(frame["type"] == "notification.new" for frame in frames)
        assert sorted(frame["notification"]["data"]["job_id"] for frame in frames) == jobs
        assert len({frame["notification"]["id"] for frame in frames}) == ALERTS
        assert frames[-1]["unread_count"] == ALERTS
        assert await unread_rows(system, user) == (ALERTS, ALERTS)

    # The connected device saw every seq live (some possibly twice: at least once), each as
    # sync replays it.
    deadline = asyncio.get_running_loop().time() + seconds(60)
    while {f["seq"] for f in live.matching(_notification)} != set(range(1, ALERTS + 1)):
        assert asyncio.get_running_loop().time() < deadline, "live frames missing"
        await asyncio.sleep(0.1)
    by_seq = {frame["seq"]: frame for frame in live.matching(_notification)}
    synced_device = await Client.connect(system.ws_url, recipients[0])
    synced = await stream_until(synced_device, lambda frames: len(frames) >= ALERTS)
    assert [by_seq[frame["seq"]] for frame in synced] == synced
    for client in (live, synced_device):
        await client.close()


def _notification(frame: Frame) -> bool:
    return bool(frame.get("type") == "notification.new")
