"""A fetch split into transactions side by side (``parallel_transactions``), on real Kafka and
Postgres: every record applied exactly once, each partition in order, across a restart.

A transactional consumer of the runtime runs in this process with a handler that notes each
record it applies and the backend that applied it, in a schema of its own built from the
runtime's tables. Every fetch of more than one partition is split (``parallel_min_bytes=1``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from schemas.topics import dlq_topic
from services.runtime.commit_effects import after_commit
from services.runtime.consumer import InboundRecord, TransactionalConsumer
from services.runtime.db import Connection
from services.runtime.errors import InfrastructureError, RecordRejected
from services.runtime.kafka import make_producer
from services.runtime.outbox import OutboundRecord, Outbox
from tests.integration.harness import System, create_topics, running, runtime_schema, seconds

SCHEMA = "it_parallel"
PARTITIONS = 4


class Recorder:
    """Notes each record applied, the backend applying it, and stages one record per record
    (so every transaction publishes too)."""

    def __init__(self, echo_topic: str) -> None:
        self._echo_topic = echo_topic

    async def apply(
        self, conn: Connection, record: InboundRecord, out: list[OutboundRecord]
    ) -> None:
        await conn.execute(
            f"INSERT INTO {SCHEMA}.applied (part, topic_offset, backend)"
            " VALUES ($1, $2, pg_backend_pid())",
            record.partition,
            record.offset,
        )
        out.append(OutboundRecord(self._echo_topic, record.key, record.envelope.id.encode()))


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    applied = (
        f"CREATE TABLE {SCHEMA}.applied (seq bigserial PRIMARY KEY, part int,"
        " topic_offset bigint, backend int)"
    )
    async with runtime_schema(database_url, SCHEMA, ("offsets", "outbox"), ddl=[applied]) as pool:
        yield pool


@pytest.fixture
async def topics(system: System) -> tuple[str, str]:
    """A fresh topic of four partitions (with its DLQ) and a topic for what is staged."""
    name = system.topic(f"it.parallel.{uuid.uuid4().hex[:8]}.v1")
    echo = name + ".echo"
    await create_topics(system, {name: PARTITIONS, dlq_topic(name): 1, echo: 1})
    return name, echo


class Flaky(Recorder):
    """A Recorder that counts what it applied once the transaction committed, fails one record
    once as a lost connection would, and rejects another every time."""

    def __init__(self, echo_topic: str) -> None:
        super().__init__(echo_topic)
        self.counted: list[tuple[int, int]] = []
        self._failed = False

    async def apply(
        self, conn: Connection, record: InboundRecord, out: list[OutboundRecord]
    ) -> None:
        await super().apply(conn, record, out)
        after_commit(functools.partial(self.counted.append, (record.partition, record.offset)))
        if (record.partition, record.offset) == (1, 5) and not self._failed:
            self._failed = True
            raise InfrastructureError("connection lost")
        if (record.partition, record.offset) == (2, 7):
            raise RecordRejected("poison")


@contextlib.asynccontextmanager
async def consuming(
    system: System,
    pool: asyncpg.Pool,
    topic: str,
    echo: str,
    handler: Recorder | None = None,
) -> AsyncIterator[TransactionalConsumer]:
    producer = make_producer(system.kafka_bootstrap, client_id="it-parallel-out")
    await producer.start()
    consumer = TransactionalConsumer(
        bootstrap_servers=system.kafka_bootstrap,
        group_id=f"g-{topic}",
        topics=[topic],
        pool=pool,
        schema=SCHEMA,
        handler=handler or Recorder(echo),
        outbox=Outbox(schema=SCHEMA, producer=producer),
        client_id="it-parallel",
        max_batch_records=1000,
        parallel_transactions=2,
        parallel_min_bytes=1,
    )
    try:
        async with running(consumer):
            yield consumer
    finally:
        await producer.stop()


async def publish(system: System, topic: str, first: int, count: int) -> None:
    """Binary-mode CloudEvents ``first`` .. ``first + count - 1``, spread over the partitions."""
    producer = AIOKafkaProducer(bootstrap_servers=system.kafka_bootstrap)
    await producer.start()
    try:
        for n in range(first, first + count):
            await producer.send(
                topic,
                b"{}",
                partition=n % PARTITIONS,
                key=f"k-{n}".encode(),
                headers=[
                    ("ce_specversion", b"1.0"),
                    ("ce_id", f"evt-{n}".encode()),
                    ("ce_source", b"/it/parallel"),
                    ("ce_type", b"it.parallel.happened"),
                    ("content-type", b"application/json"),
                ],
            )
        await producer.flush()
    finally:
        await producer.stop()


async def until_applied(pool: asyncpg.Pool, count: int) -> None:
    deadline = asyncio.get_running_loop().time() + seconds(30)
    while await pool.fetchval(f"SELECT count(*) FROM {SCHEMA}.applied") < count:
        assert asyncio.get_running_loop().time() < deadline, "records not applied in time"
        await asyncio.sleep(0.1)


async def test_split_fetches_apply_every_record_once_in_partition_order(
    system: System, pool: asyncpg.Pool, topics: tuple[str, str]
) -> None:
    topic, echo = topics
    # Published before the consumer starts, so that its fetches span every partition.
    await publish(system, topic, 0, 400)
    async with consuming(system, pool, topic, echo):
        await until_applied(pool, 400)
    await publish(system, topic, 400, 200)
    async with consuming(system, pool, topic, echo):
        await until_applied(pool, 600)
        await asyncio.sleep(0.5)

    rows = await pool.fetch(
        f"SELECT part, topic_offset, backend FROM {SCHEMA}.applied ORDER BY seq"
    )
    applied = [(row["part"], row["topic_offset"]) for row in rows]
    assert len(applied) == len(set(applied)) == 600
    for part in range(PARTITIONS):
        offsets = [offset for p, offset in applied if p == part]
        assert offsets == list(range(150)), f"partition {part} out of order"
    # The parts ran on connections of their own (one consumer keeps one per part).
    assert len({row["backend"] for row in rows[:400]}) >= 2
    stored = await pool.fetch(
        f"SELECT topic, partition, next_offset FROM {SCHEMA}.consumer_offsets WHERE group_id = $1",
        f"g-{topic}",
    )
    assert {row["partition"]: row["next_offset"] for row in stored} == dict.fromkeys(
        range(PARTITIONS), 150
    )


async def test_effects_after_commit_run_once_for_what_committed(
    system: System, pool: asyncpg.Pool, topics: tuple[str, str]
) -> None:
    # Counting what a batch did must survive a retried batch (counted once) and a record
    # dead-lettered on the careful path (not counted): services/runtime/commit_effects.py.
    topic, echo = topics
    await pool.execute(f"TRUNCATE {SCHEMA}.applied")
    try:
        await publish(system, topic, 0, 40)
        flaky = Flaky(echo)
        async with consuming(system, pool, topic, echo, handler=flaky):
            await until_applied(pool, 39)
            await asyncio.sleep(0.5)
        rows = await pool.fetch(f"SELECT part, topic_offset FROM {SCHEMA}.applied")
        applied = sorted((row["part"], row["topic_offset"]) for row in rows)
        assert len(applied) == 39
        assert (2, 7) not in applied
        assert (1, 5) in applied
        assert sorted(flaky.counted) == applied
    finally:
        await pool.execute(f"TRUNCATE {SCHEMA}.applied")
