"""A batch handler's writes left to the batch's closing statement (``apply_batch`` returning
statement parts), on real Kafka and Postgres: they commit with the batch's offsets, and a write
that Postgres refuses there re-runs the batch record by record, which dead-letters the record
at fault and applies the others.

The handler notes each record's number in a table that refuses 13 (a CHECK constraint): a
write that the Python before it could not know would fail.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas.topics import dlq_topic
from services.runtime.consumer import InboundRecord, TransactionalConsumer
from services.runtime.db import Connection, Cte
from services.runtime.kafka import make_producer
from services.runtime.outbox import OutboundRecord, Outbox
from tests.integration.harness import (
    System,
    create_topics,
    dead_letters_until,
    running,
    runtime_schema,
    seconds,
)

SCHEMA = "it_closing"


def _number(record: InboundRecord) -> int:
    number = record.envelope.data["n"]
    assert isinstance(number, int)
    return number


class Noting:
    """Notes record numbers: a batch's in a part of the closing statement, a single record's
    (the careful path) at once."""

    def __init__(self) -> None:
        self.batches = 0
        self.singles = 0

    async def apply(
        self, conn: Connection, record: InboundRecord, out: list[OutboundRecord]
    ) -> None:
        self.singles += 1
        await conn.execute(f"INSERT INTO {SCHEMA}.noted (n) VALUES ($1)", _number(record))

    async def apply_batch(
        self, conn: Connection, records: Sequence[InboundRecord], out: list[OutboundRecord]
    ) -> Sequence[Cte]:
        self.batches += 1
        numbers = [_number(record) for record in records]
        return [
            Cte(
                "noted",
                f"INSERT INTO {SCHEMA}.noted (n) SELECT * FROM unnest($1::int[])",
                (numbers,),
            )
        ]


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    noted = f"CREATE TABLE {SCHEMA}.noted (n int PRIMARY KEY CHECK (n <> 13))"
    async with runtime_schema(database_url, SCHEMA, ("offsets", "outbox"), ddl=[noted]) as pool:
        yield pool


@pytest.fixture
async def topic(system: System) -> str:
    """A fresh one-partition topic (with its DLQ), by its name without the run's prefix."""
    name = f"it.closing.{uuid.uuid4().hex[:8]}.v1"
    await create_topics(system, {system.topic(name): 1, dlq_topic(system.topic(name)): 1})
    return name


async def publish(system: System, topic: str, numbers: Sequence[int]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=system.kafka_bootstrap)
    await producer.start()
    try:
        for n in numbers:
            await producer.send(
                system.topic(topic),
                orjson.dumps({"n": n}),
                key=f"k-{n}".encode(),
                headers=[
                    ("ce_specversion", b"1.0"),
                    ("ce_id", f"evt-{n}".encode()),
                    ("ce_source", b"/it/closing"),
                    ("ce_type", b"it.closing.happened"),
                    ("content-type", b"application/json"),
                ],
            )
        await producer.flush()
    finally:
        await producer.stop()


async def consume_until_stored(
    system: System, pool: asyncpg.Pool, topic: str, handler: Noting, next_offset: int
) -> None:
    """Run a consumer until the topic's stored offset reaches ``next_offset``."""
    producer = make_producer(system.kafka_bootstrap, client_id="it-closing-out")
    await producer.start()
    group = f"g-{topic}"
    consumer = TransactionalConsumer(
        bootstrap_servers=system.kafka_bootstrap,
        group_id=group,
        topics=[system.topic(topic)],
        pool=pool,
        schema=SCHEMA,
        handler=handler,
        outbox=Outbox(schema=SCHEMA, producer=producer),
        client_id="it-closing",
        max_batch_records=1000,
    )
    try:
        async with running(consumer):
            deadline = asyncio.get_running_loop().time() + seconds(30)
            while (
                await pool.fetchval(
                    f"SELECT next_offset FROM {SCHEMA}.consumer_offsets WHERE group_id = $1",
                    group,
                )
                or 0
            ) < next_offset:
                assert asyncio.get_running_loop().time() < deadline, "batch not committed"
                await asyncio.sleep(0.1)
    finally:
        await producer.stop()


async def noted(pool: asyncpg.Pool, numbers: Sequence[int]) -> set[int]:
    rows = await pool.fetch(f"SELECT n FROM {SCHEMA}.noted WHERE n = ANY($1::int[])", numbers)
    return {row["n"] for row in rows}


async def test_a_batch_s_writes_commit_in_its_closing_statement(
    system: System, pool: asyncpg.Pool, topic: str
) -> None:
    numbers = list(range(100, 120))
    await publish(system, topic, numbers)
    handler = Noting()
    await consume_until_stored(system, pool, topic, handler, next_offset=len(numbers))
    assert await noted(pool, numbers) == set(numbers)
    assert handler.batches >= 1
    assert handler.singles == 0


async def test_a_write_refused_in_the_closing_statement_dead_letters_only_its_record(
    system: System, pool: asyncpg.Pool, topic: str
) -> None:
    numbers = list(range(1, 21))
    await publish(system, topic, numbers)
    handler = Noting()
    await consume_until_stored(system, pool, topic, handler, next_offset=len(numbers))
    assert await noted(pool, numbers) == set(numbers) - {13}
    # The fast path failed in its closing statement, and the batch ran again record by record.
    assert handler.batches >= 1
    assert handler.singles >= 1
    dead = await dead_letters_until(system, topic, b"k-13")
    assert [record.key for record in dead] == [b"k-13"]
