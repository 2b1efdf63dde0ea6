"""Transactional outbox: events written in the same Postgres transaction as the state they
describe, published to Kafka right after commit, re-published by a relay after a crash.

Flow::

    handler --OutboundRecord--> stage(conn) --INSERT in the caller's transaction-->  outbox table
    after commit: publish() --producer.send in order--> Kafka --acked--> DELETE rows
    relay (every interval): rows older than the grace period --send, acked--> DELETE

A row is deleted only after Kafka acknowledged it, so a crash between commit and publish loses
nothing; it can duplicate a record (published, then crashed before the delete), which every
consumer tolerates by event id or seq.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from services.runtime.db import Connection
from services.runtime.metrics import OUTBOX_PUBLISHED

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    """A Kafka record to publish once the transaction that made it commits."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class Outbox:
    """Stages records in ``<schema>.outbox`` and publishes them.

    Args:
        schema: the owning service's Postgres schema (its ``outbox`` table).
        producer: a started idempotent producer.
        max_pending_confirms: publish batches awaiting Kafka acks before ``publish`` waits.
    """

    def __init__(
        self, *, schema: str, producer: AIOKafkaProducer, max_pending_confirms: int = 64
    ) -> None:
        self._table = f'"{schema}".outbox'
        self._producer = producer
        self._confirm_slots = asyncio.Semaphore(max_pending_confirms)
        self._confirms: set[asyncio.Task[None]] = set()

    async def stage(self, conn: Connection, records: Sequence[OutboundRecord]) -> list[int]:
        """Insert records in the caller's open transaction; returns their row ids in order."""
        if not records:
            return []
        rows = await conn.fetch(
            f"INSERT INTO {self._table} (topic, key, value, headers)"
            " SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::jsonb[])"
            " RETURNING id",
            [record.topic for record in records],
            [record.key for record in records],
            [record.value for record in records],
            [_encode_headers(record.headers) for record in records],
        )
        return [row["id"] for row in rows]

    async def publish(
        self, pool: asyncpg.Pool, ids: list[int], records: Sequence[OutboundRecord]
    ) -> None:
        """Hand committed records to the producer in order; acks are awaited in the background.

        Enqueueing in order here (not in the background) keeps per-key order across batches; the
        semaphore bounds how many batches may wait for acks, which is our backpressure.
        """
        if not records:
            return
        await self._confirm_slots.acquire()
        try:
            futures = [
                await self._producer.send(
                    record.topic, record.value, key=record.key, headers=list(record.headers)
                )
                for record in records
            ]
        except BaseException:
            self._confirm_slots.release()
            raise
        task = asyncio.create_task(self._confirm(pool, ids, futures))
        self._confirms.add(task)
        task.add_done_callback(self._confirms.discard)

    async def _confirm(
        self, pool: asyncpg.Pool, ids: list[int], futures: list[asyncio.Future[object]]
    ) -> None:
        try:
            await asyncio.gather(*futures)
            async with pool.acquire() as conn:
                await conn.execute(self._unflushed_delete(ids))
            OUTBOX_PUBLISHED.labels("direct").inc(len(ids))
        except Exception:
            # The rows stay; the relay publishes them after the grace period.
            log.exception(
                "outbox publish not confirmed; relay will retry", extra={"rows": len(ids)}
            )
        finally:
            self._confirm_slots.release()

    def _unflushed_delete(self, ids: list[int]) -> str:
        """One round trip that deletes published rows without waiting for the WAL flush.

        A delete lost in a crash only means the relay publishes the rows again, which consumers
        tolerate. The statements go as one simple query (no parameters allowed there); the ids
        are our own bigints, formatted as integers, so nothing from outside enters the SQL.
        """
        id_list = ",".join(str(int(row_id)) for row_id in ids)
        return (
            "BEGIN; SET LOCAL synchronous_commit = off;"
            f" DELETE FROM {self._table} WHERE id IN ({id_list}); COMMIT"
        )

    async def drain(self) -> None:
        """Wait for every background confirmation (used at shutdown)."""
        if self._confirms:
            await asyncio.gather(*self._confirms, return_exceptions=True)

    async def relay_once(self, pool: asyncpg.Pool, *, older_than_ms: int, limit: int = 1000) -> int:
        """Publish rows left behind (a crash after commit, a Kafka outage); returns the count.

        ``SKIP LOCKED`` lets several instances relay side by side without publishing a row twice.
        """
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT id, topic, key, value, headers FROM {self._table}"
                " WHERE created_at < now() - make_interval(secs => $1::float8 / 1000)"
                " ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
                older_than_ms,
                limit,
            )
            if not rows:
                return 0
            futures = [
                await self._producer.send(
                    row["topic"],
                    row["value"],
                    key=row["key"],
                    headers=_decode_headers(row["headers"]),
                )
                for row in rows
            ]
            await asyncio.gather(*futures)
            await conn.execute(
                f"DELETE FROM {self._table} WHERE id = ANY($1::bigint[])",
                [row["id"] for row in rows],
            )
        OUTBOX_PUBLISHED.labels("relay").inc(len(rows))
        log.info("outbox relayed leftovers", extra={"rows": len(rows)})
        return len(rows)

    async def run_relay(self, pool: asyncpg.Pool, *, interval_ms: int, older_than_ms: int) -> None:
        """Relay forever; errors are logged and retried at the next interval."""
        while True:
            try:
                while await self.relay_once(pool, older_than_ms=older_than_ms) > 0:
                    pass
            except Exception:
                log.exception("outbox relay failed; retrying")
            await asyncio.sleep(interval_ms / 1000)


def _encode_headers(headers: tuple[tuple[str, bytes], ...]) -> str | None:
    if not headers:
        return None
    return orjson.dumps([[name, value.decode()] for name, value in headers]).decode()


def _decode_headers(raw: str | None) -> list[tuple[str, bytes]]:
    if raw is None:
        return []
    return [(name, value.encode()) for name, value in orjson.loads(raw)]
