"""Inbound CloudEvents are applied once per (source, id), on real Kafka and Postgres.

A transactional consumer of the runtime runs in this process with a handler that records
what it applies, in a schema of its own built from the runtime's tables (offsets, outbox,
inbound). Events are published as another team's service would: binary mode, retried as new
records. The same consumer without the opt-in applies every copy, so what is measured is the
facility, not the publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from schemas.topics import dlq_topic
from services.runtime.consumer import InboundRecord, TransactionalConsumer
from services.runtime.db import Connection
from services.runtime.errors import RecordRejected
from services.runtime.kafka import make_producer
from services.runtime.outbox import OutboundRecord, Outbox
from tests.integration.harness import System, create_topics, running, runtime_schema, seconds

SCHEMA = "it_inbound"


class Recorder:
    """Applies a record by noting its event and the consuming group; ``{"poison": true}``
    data is refused (dead-lettered)."""

    def __init__(self, group: str) -> None:
        self._group = group

    async def apply(
        self, conn: Connection, record: InboundRecord, out: list[OutboundRecord]
    ) -> None:
        if record.envelope.data.get("poison"):
            raise RecordRejected("invalid_data:poison")
        await conn.execute(
            f"INSERT INTO {SCHEMA}.applied (grp, source, id, topic_offset) VALUES ($1, $2, $3, $4)",
            self._group,
            record.envelope.source,
            record.envelope.id,
            record.offset,
        )


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    applied = f"CREATE TABLE {SCHEMA}.applied (grp text, source text, id text, topic_offset bigint)"
    tables = ("offsets", "outbox", "inbound")
    async with runtime_schema(database_url, SCHEMA, tables, ddl=[applied]) as pool:
        yield pool


@pytest.fixture
async def topic(system: System) -> str:
    """A fresh two-partition topic (and its DLQ) of this run's prefix."""
    name = system.topic(f"it.inbound.{uuid.uuid4().hex[:8]}.v1")
    await create_topics(system, {name: 2, dlq_topic(name): 1})
    return name


@contextlib.asynccontextmanager
async def consuming(
    system: System, pool: asyncpg.Pool, topic: str, group: str, *, dedupe: bool
) -> AsyncIterator[TransactionalConsumer]:
    """A running transactional consumer of ``topic``; stopped (leaving its group) on exit."""
    producer = make_producer(system.kafka_bootstrap, client_id=f"{group}-out")
    await producer.start()
    consumer = TransactionalConsumer(
        bootstrap_servers=system.kafka_bootstrap,
        group_id=group,
        topics=[topic],
        pool=pool,
        schema=SCHEMA,
        handler=Recorder(group),
        outbox=Outbox(schema=SCHEMA, producer=producer),
        client_id=group,
        dedupe_topics=[topic] if dedupe else (),
    )
    try:
        async with running(consumer):
            yield consumer
    finally:
        await producer.stop()


async def publish(
    system: System, topic: str, events: Sequence[tuple[str, str, dict[str, object]]]
) -> None:
    """Binary-mode CloudEvents (source, id, data), each a new record, all keyed by one job id:
    one partition, so a test that waits for a later event knows the earlier ones were read."""
    producer = AIOKafkaProducer(bootstrap_servers=system.kafka_bootstrap)
    await producer.start()
    try:
        for source, event_id, data in events:
            await producer.send_and_wait(
                topic,
                orjson.dumps(data),
                key=b"job-1",
                headers=[
                    ("ce_specversion", b"1.0"),
                    ("ce_id", event_id.encode()),
                    ("ce_source", source.encode()),
                    ("ce_type", b"jobs.test.happened"),
                    ("content-type", b"application/json"),
                ],
            )
    finally:
        await producer.stop()


async def applied(pool: asyncpg.Pool, group: str) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        f"SELECT source, id FROM {SCHEMA}.applied WHERE grp = $1 ORDER BY source, id", group
    )
    return [(row["source"], row["id"]) for row in rows]


async def until_applied(pool: asyncpg.Pool, group: str, event: tuple[str, str]) -> None:
    deadline = asyncio.get_running_loop().time() + seconds(30)
    while event not in await applied(pool, group):
        assert asyncio.get_running_loop().time() < deadline, f"{event} never applied"
        await asyncio.sleep(0.1)


def duplicates_counted(topic: str) -> float:
    value = REGISTRY.get_sample_value("realtime_inbound_duplicates_total", {"topic": topic})
    return value or 0.0


async def test_same_event_twice_across_a_consumer_restart_is_applied_once(
    system: System, pool: asyncpg.Pool, topic: str
) -> None:
    dedupe, plain = f"dedupe-{topic}", f"plain-{topic}"
    e1, e2 = ("/jobs/board-1", "evt-1"), ("/jobs/board-1", "evt-2")
    async with (
        consuming(system, pool, topic, dedupe, dedupe=True),
        consuming(system, pool, topic, plain, dedupe=False),
    ):
        await publish(system, topic, [(*e1, {"n": 1})])
        await until_applied(pool, dedupe, e1)
        await until_applied(pool, plain, e1)

    # The publisher retries (a new record of the same event) while nobody consumes, and
    # publishes another event after it.
    await publish(system, topic, [(*e1, {"n": 1}), (*e2, {"n": 2})])
    async with (
        consuming(system, pool, topic, dedupe, dedupe=True),
        consuming(system, pool, topic, plain, dedupe=False),
    ):
        await until_applied(pool, dedupe, e2)
        await until_applied(pool, plain, e2)

    assert await applied(pool, dedupe) == [e1, e2]
    # Without the opt-in, offsets alone cannot tell a retried event from a new one.
    assert await applied(pool, plain) == [e1, e1, e2]
    assert duplicates_counted(topic) == 1


async def test_repeats_inside_one_batch_and_other_sources(
    system: System, pool: asyncpg.Pool, topic: str
) -> None:
    group = f"batch-{topic}"
    # Published before the consumer starts, so they arrive together.
    events: list[tuple[str, str, dict[str, object]]] = [
        ("/jobs/board-1", "evt-7", {}),
        ("/jobs/board-1", "evt-7", {}),
        ("/apps/tracker", "evt-7", {}),
        ("/jobs/board-1", "evt-7", {}),
        ("/jobs/board-1", "evt-8", {}),
    ]
    await publish(system, topic, events)
    async with consuming(system, pool, topic, group, dedupe=True):
        await until_applied(pool, group, ("/jobs/board-1", "evt-8"))
        await until_applied(pool, group, ("/apps/tracker", "evt-7"))
    assert await applied(pool, group) == [
        ("/apps/tracker", "evt-7"),
        ("/jobs/board-1", "evt-7"),
        ("/jobs/board-1", "evt-8"),
    ]
    assert duplicates_counted(topic) == 2


async def test_a_dead_lettered_event_is_not_remembered(
    system: System, pool: asyncpg.Pool, topic: str
) -> None:
    group = f"poison-{topic}"
    bad = ("/jobs/board-1", "evt-9")
    async with consuming(system, pool, topic, group, dedupe=True):
        # Refused by the handler: dead-lettered, its key must not be kept...
        await publish(system, topic, [(*bad, {"poison": True}), ("/jobs/board-1", "m1", {})])
        await until_applied(pool, group, ("/jobs/board-1", "m1"))
        # ...so the corrected event, re-published under the same id, is applied.
        await publish(system, topic, [(*bad, {"fixed": True})])
        await until_applied(pool, group, bad)
    assert await applied(pool, group) == [("/jobs/board-1", "evt-9"), ("/jobs/board-1", "m1")]
    assert duplicates_counted(topic) == 0
    dead = REGISTRY.get_sample_value(
        "realtime_dlq_records_total", {"topic": topic, "reason": "invalid_data"}
    )
    assert dead == 1
