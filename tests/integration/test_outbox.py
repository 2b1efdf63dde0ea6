"""The outbox's rows on real Postgres and Kafka: what the relay publishes after a crash between
commit and publish, rows staged by the version before packed records, records kept without the
stream frames they carry, and withdrawals.

An outbox of the runtime runs in this process on a schema of its own; "a crash after commit"
is a transaction that staged and committed without :meth:`Outbox.committed` ever being called.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from services.runtime.kafka import Producer, make_producer
from services.runtime.outbox import OutboundRecord, Outbox
from services.runtime.streams import Stream
from tests.integration.harness import System, create_topics, runtime_schema, seconds

SCHEMA = "it_outbox"


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with runtime_schema(database_url, SCHEMA, ("outbox", "streams")) as pool:
        yield pool


@pytest.fixture
async def topics(system: System) -> tuple[str, str]:
    """Two fresh one-partition topics of this run's prefix (one partition: one order)."""
    first, second = (system.topic(f"it.outbox.{uuid.uuid4().hex[:8]}.{n}.v1") for n in (1, 2))
    await create_topics(system, {first: 1, second: 1})
    return first, second


@pytest.fixture
async def producer(system: System) -> AsyncIterator[Producer]:
    producer = make_producer(system.kafka_bootstrap, client_id="it-outbox")
    await producer.start()
    yield producer
    await producer.stop()


async def consumed(system: System, topic: str, count: int) -> list[OutboundRecord]:
    """The first ``count`` records of ``topic``, as outbound records."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=system.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    got: list[OutboundRecord] = []
    try:
        deadline = asyncio.get_running_loop().time() + seconds(20)
        while len(got) < count:
            assert asyncio.get_running_loop().time() < deadline, f"{len(got)} of {count} came"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got.extend(
                    OutboundRecord(r.topic, r.key, r.value, tuple(r.headers)) for r in records
                )
    finally:
        await consumer.stop()
    return got


async def rows(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox"))


async def test_rows_left_by_a_crash_after_commit_are_relayed_in_order(
    system: System, pool: asyncpg.Pool, topics: tuple[str, str], producer: Producer
) -> None:
    first, second = topics
    staged = [
        OutboundRecord(first, b"u-1", b'{"n":1}', (("content-type", b"application/json"),)),
        OutboundRecord(second, None, b"no key"),
        OutboundRecord(first, b"u-2", b"x" * 300_000),
        OutboundRecord(first, b"", b"", (("a", b"\x00\xff"), ("b", b""))),
    ]
    outbox = Outbox(schema=SCHEMA, producer=producer)
    async with pool.acquire() as conn, conn.transaction():
        await outbox.stage(conn, staged)
    # A row staged by the version before packed records (runtime migration outbox/0004).
    await pool.execute(
        f"INSERT INTO {SCHEMA}.outbox (topics, keys, payloads, headers)"
        " VALUES ($1, $2, $3, $4::jsonb[])",
        [second, first],
        [b"old-1", None],
        [b"old value 1", b"old value 2"],
        ['[["traceparent","00-ab"]]', None],
    )

    # A new instance's relay: nothing of this instance's is in flight.
    relay = Outbox(schema=SCHEMA, producer=producer)
    assert await relay.relay_once(pool, older_than_ms=0) == 6

    assert await consumed(system, first, 4) == [
        staged[0],
        staged[2],
        staged[3],
        OutboundRecord(first, None, b"old value 2"),
    ]
    assert await consumed(system, second, 2) == [
        staged[1],
        OutboundRecord(second, b"old-1", b"old value 1", (("traceparent", b"00-ab"),)),
    ]
    assert await rows(pool) == 0


async def test_withdraw_removes_only_the_keys_records(
    system: System, pool: asyncpg.Pool, topics: tuple[str, str], producer: Producer
) -> None:
    first, second = topics
    outbox = Outbox(schema=SCHEMA, producer=producer)
    async with pool.acquire() as conn, conn.transaction():
        await outbox.stage(
            conn,
            [
                OutboundRecord(first, b"g-1", b"state 1"),
                OutboundRecord(second, b"g-1", b"other topic"),
                OutboundRecord(first, b"g-2", b"state 2"),
            ],
        )
        await outbox.stage(conn, [OutboundRecord(first, b"g-1", b"only this")])
    async with pool.acquire() as conn, conn.transaction():
        await outbox.withdraw(conn, topic=first, key="g-1")
    assert await rows(pool) == 1
    relay = Outbox(schema=SCHEMA, producer=producer)
    assert await relay.relay_once(pool, older_than_ms=0) == 2
    assert await consumed(system, first, 1) == [OutboundRecord(first, b"g-2", b"state 2")]
    assert await consumed(system, second, 1) == [OutboundRecord(second, b"g-1", b"other topic")]
    assert await rows(pool) == 0


async def test_records_kept_without_their_stream_frames_are_relayed_with_them(
    system: System, pool: asyncpg.Pool, topics: tuple[str, str], producer: Producer
) -> None:
    # A delivery record is two-thirds the frame its transaction stores in the user's stream:
    # the row keeps the rest, and the relay reads the frame back as it is then.
    first, _ = topics
    stream = Stream("notifications", schema=SCHEMA)
    users = [f"u-{uuid.uuid4().hex[:8]}-{n}" for n in range(4)]

    def frame(user: str, seq: int) -> bytes:
        return b'{"type":"notification.new","seq":%d,"body":"hello %s"}' % (seq, user.encode())

    def record(user: str, seq: int, carried: bytes) -> OutboundRecord:
        value = b'{"id":"e-%s","data":{"frame":%s,"user_id":"%s"}}' % (
            user.encode(),
            carried,
            user.encode(),
        )
        return OutboundRecord(first, user.encode(), value, (), (seq, carried))

    outbox = Outbox(schema=SCHEMA, producer=producer)
    async with pool.acquire() as conn, conn.transaction():
        appended = await stream.append_each(conn, users, frame)
        staged = [record(user, seq, data) for user, seq, data in appended]
        staged.insert(2, OutboundRecord(first, b"plain", b"kept whole"))
        await outbox.stage(conn, staged)
        stored = await conn.fetchval(f"SELECT octet_length(records) FROM {SCHEMA}.outbox")
    assert stored < sum(len(r.value) for r in staged) - sum(len(f) for _, _, f in appended) + 200
    # Before the relay: one frame rewritten in place (an erasure of the preview), one user's
    # stream deleted (an erased user: nobody left to deliver to).
    async with pool.acquire() as conn, conn.transaction():
        await stream.rewrite_where(
            conn, lambda f: {**f, "body": ""}, of_users=[users[1]], mentioning="hello"
        )
        await stream.delete(conn, users[3])

    relay = Outbox(schema=SCHEMA, producer=producer)
    assert await relay.relay_once(pool, older_than_ms=0) == 4
    got = await consumed(system, first, 4)
    rewritten = b'{"type":"notification.new","seq":1,"body":""}'
    assert [(r.key, r.value) for r in got] == [
        (r.key, r.value)
        for r in [
            staged[0],
            record(users[1], 1, rewritten),
            staged[2],
            staged[3],
        ]
    ]
    assert await rows(pool) == 0


async def test_withdraw_keeps_the_other_records_stream_frames_out_of_the_row(
    system: System, pool: asyncpg.Pool, topics: tuple[str, str], producer: Producer
) -> None:
    first, second = topics
    stream = Stream("notifications", schema=SCHEMA)
    user = f"w-{uuid.uuid4().hex[:8]}"
    carried = b'{"type":"notification.new","seq":1}'
    outbox = Outbox(schema=SCHEMA, producer=producer)
    async with pool.acquire() as conn, conn.transaction():
        await stream.append_each(conn, [user], lambda _, __: carried)
        await outbox.stage(
            conn,
            [
                OutboundRecord(first, b"g-1", b"state 1"),
                OutboundRecord(second, user.encode(), b"[" + carried + b"]", (), (1, carried)),
            ],
        )
    async with pool.acquire() as conn, conn.transaction():
        await outbox.withdraw(conn, topic=first, key="g-1")
        stored = await conn.fetchval(f"SELECT records FROM {SCHEMA}.outbox")
    assert carried not in stored
    relay = Outbox(schema=SCHEMA, producer=producer)
    assert await relay.relay_once(pool, older_than_ms=0) == 1
    assert [(r.key, r.value) for r in await consumed(system, second, 1)] == [
        (user.encode(), b"[" + carried + b"]")
    ]
    assert await rows(pool) == 0
