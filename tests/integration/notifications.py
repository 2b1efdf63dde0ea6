"""Helpers of the notifier's integration tests: publishing other teams' events the way they do
(``kcat``, a non-Python Kafka client, in either CloudEvents binding), reading the notifier's
rows and the DLQ, waiting on conditions.

Nothing here stands in for Kafka or Postgres: events go through the real broker to the real
notifier process, and what is read back is what Postgres holds.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import topics
from tests.integration.harness import Frame, System, seconds

JOB_SOURCE = "//jobs.example.org/matcher"
APPLICATION_SOURCE = "//applications.example.org/tracker"


def kcat() -> str:
    """The kcat binary (`make test` apt-installs the Debian package when it is missing)."""
    path = shutil.which("kcat") or shutil.which("kafkacat")
    if path is None:
        pytest.fail("kcat is not installed: `make test` installs it (apt-get install kcat)")
    return path


def kcat_argv(
    system: System, topic: str, *, key: str, headers: Sequence[tuple[str, str]] = ()
) -> list[str]:
    """kcat producing one record to ``topic`` of this run, as another team's service would
    (acks from all replicas)."""
    argv = [
        kcat(),
        "-P",
        "-b",
        system.kafka_bootstrap,
        "-t",
        system.topic(topic),
        "-k",
        key,
        "-X",
        "request.required.acks=all",
    ]
    for name, header_value in headers:
        argv += ["-H", f"{name}={header_value}"]
    return argv


async def kcat_publish(
    system: System,
    topic: str,
    *,
    key: str,
    value: bytes,
    headers: Sequence[tuple[str, str]] = (),
) -> None:
    """Publish one record with kcat (:func:`kcat_argv`).

    ``value`` must be one line: kcat takes one record per line of its input.
    """
    assert b"\n" not in value
    process = await asyncio.create_subprocess_exec(
        *kcat_argv(system, topic, key=key, headers=headers),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(value + b"\n"), seconds(30))
    assert process.returncode == 0, stderr.decode(errors="replace")


def job_alert(user_ids: Sequence[str], *, job_id: str | None = None) -> dict[str, Any]:
    """``data`` of a ``job.alert.matched`` (events.md's example, with fresh ids)."""
    job = job_id or f"j-{uuid.uuid4().hex[:8]}"
    return {
        "job_id": job,
        "title": "Cleared Systems Engineer",
        "company": "Acme",
        "location": "Reston, VA",
        "url": f"https://example.org/jobs/{job}",
        "user_ids": list(user_ids),
    }


def status_change(
    candidate: str,
    *,
    application_id: str,
    status: str,
    previous: str | None,
    changed_at: datetime,
) -> dict[str, Any]:
    """``data`` of an ``application.status.changed``."""
    return {
        "application_id": application_id,
        "job_id": "j-123",
        "job_title": "Cleared Systems Engineer",
        "candidate_id": candidate,
        "status": status,
        "previous_status": previous,
        "changed_at": changed_at.isoformat().replace("+00:00", "Z"),
        "note": "We will call you.",
    }


def binary_record(
    event_type: str,
    *,
    data: Mapping[str, Any],
    event_id: str,
    source: str,
    time_: datetime | None = None,
) -> tuple[bytes, list[tuple[str, str]]]:
    """A CloudEvent in the Kafka binding's binary mode: (value = ``data``, ``ce_*`` headers)."""
    headers = [
        ("ce_specversion", "1.0"),
        ("ce_id", event_id),
        ("ce_source", source),
        ("ce_type", event_type),
        ("content-type", "application/json; charset=utf-8"),
    ]
    if time_ is not None:
        headers.append(("ce_time", time_.isoformat().replace("+00:00", "Z")))
    return orjson.dumps(data), headers


def structured_record(
    event_type: str, *, data: Mapping[str, Any], event_id: str, source: str
) -> tuple[bytes, list[tuple[str, str]]]:
    """A CloudEvent in structured mode: (value = the whole event, content-type header)."""
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type,
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": data,
    }
    return orjson.dumps(event), [("content-type", "application/cloudevents+json; charset=utf-8")]


async def publish_binary(
    system: System,
    topic: str,
    event_type: str,
    *,
    key: str,
    data: Mapping[str, Any],
    event_id: str | None = None,
    source: str = JOB_SOURCE,
    time_: datetime | None = None,
) -> str:
    """A CloudEvent in binary mode (:func:`binary_record`), published by kcat; returns its id."""
    event_id = event_id or uuid.uuid4().hex
    value, headers = binary_record(
        event_type, data=data, event_id=event_id, source=source, time_=time_
    )
    await kcat_publish(system, topic, key=key, value=value, headers=headers)
    return event_id


async def publish_structured(
    system: System,
    topic: str,
    event_type: str,
    *,
    key: str,
    data: Mapping[str, Any],
    event_id: str | None = None,
    source: str = APPLICATION_SOURCE,
) -> str:
    """A CloudEvent in structured mode (:func:`structured_record`), by kcat; its id."""
    event_id = event_id or uuid.uuid4().hex
    value, headers = structured_record(event_type, data=data, event_id=event_id, source=source)
    await kcat_publish(system, topic, key=key, value=value, headers=headers)
    return event_id


async def until(
    condition: Callable[[], Awaitable[bool]], timeout_s: float = seconds(20), what: str = ""
) -> None:
    """Poll an async condition until it holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what or condition}")
        await asyncio.sleep(0.05)


async def fetch(system: System, query: str, *args: object) -> list[asyncpg.Record]:
    """Rows as Postgres holds them, on a fresh connection."""
    conn = await asyncpg.connect(system.database_url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def unread_rows(system: System, user: str) -> tuple[int, int]:
    """(the user's stored unread count, the number of unread notification rows)."""
    rows = await fetch(
        system,
        "SELECT (SELECT unread FROM notifier.inbox WHERE user_id = $1) AS counted,"
        " (SELECT count(*) FROM notifier.notifications WHERE user_id = $1"
        "  AND read_at IS NULL) AS rows",
        user,
    )
    return int(rows[0]["counted"] or 0), int(rows[0]["rows"])


async def wait_connected(system: System, user: str, connected: bool) -> None:
    """Until the notifier has applied presence's fact that ``user`` has (or has not) a live
    connection: the push decision reads it."""

    async def applied() -> bool:
        rows = await fetch(
            system, "SELECT connected FROM notifier.connectivity WHERE user_id = $1", user
        )
        return bool(rows) and rows[0]["connected"] is connected

    await until(applied, what=f"notifier sees {user} connected={connected}")


async def notifications_stream(client: Any) -> list[Frame]:
    """Every frame of the client user's ``notifications`` stream, by sync."""
    frames: list[Frame] = []
    cursor: dict[str, int] = {}
    while True:
        page = await client.request({"type": "sync", "cursor": cursor})
        assert page["type"] == "ack", page
        frames += [event for event in page["events"] if event["stream"] == "notifications"]
        cursor = page["cursor"]
        if not page["has_more"]:
            return frames


async def stream_until(
    client: Any, done: Callable[[list[Frame]], bool], timeout_s: float = seconds(20)
) -> list[Frame]:
    """Sync the client user's ``notifications`` stream until ``done(frames)`` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        frames = await notifications_stream(client)
        if done(frames):
            return frames
        assert time.monotonic() < deadline, f"the stream never got there: {frames}"
        await asyncio.sleep(0.1)


async def dead_letters(system: System, topic: str) -> list[tuple[dict[str, str], bytes]]:
    """Every record of ``<topic>.dlq`` so far: (headers, value)."""
    name = topics.dlq_topic(system.topic(topic))
    consumer = AIOKafkaConsumer(bootstrap_servers=system.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(name, 0)
        consumer.assign([partition])
        await consumer.seek_to_end(partition)
        end = await consumer.position(partition)
        await consumer.seek_to_beginning(partition)
        records: list[tuple[dict[str, str], bytes]] = []
        while await consumer.position(partition) < end:
            batch = await consumer.getmany(partition, timeout_ms=1000)
            for record in batch.get(partition, []):
                headers = {k: v.decode() for k, v in record.headers}
                records.append((headers, record.value or b""))
        return records
    finally:
        await consumer.stop()
