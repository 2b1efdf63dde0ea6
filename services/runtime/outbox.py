"""Transactional outbox: events written in the same Postgres transaction as the state they
describe, published to Kafka right after commit, re-published by a relay after a crash.

Flow::

    handler --OutboundRecord--> stage(): the batch's closing statement --INSERT one row holding
                                every record of the batch, in order--> outbox table
                                (and DELETE of rows published since; the offset store's write
                                rides along the same statement)
                                (while Postgres runs it: the records grouped into producer
                                batches per partition, in order; nothing sent yet)
    after commit: committed() --those producer batches, in order--> Kafka
                  --all acked--> the row's id noted as published
    relay (every interval): the backlog is measured (rows, oldest row's age); DELETE
                            published rows no batch came to delete; rows older than the grace
                            period (and not this instance's, still being published) --send,
                            acked--> DELETE
    withdraw (in a handler's transaction): remove from unpublished rows the records a record
                                about to be staged supersedes

A row is one transaction's records, not one record: a batch of hundreds of messages writes one
row, and deletes it once Kafka acknowledged every record in it. The records are packed into
one byte string in staging order (:func:`pack_records`), stored uncompressed (TOAST
``EXTERNAL``): compressing megabytes that live milliseconds cost more than writing them. A
record that carries a frame its transaction stores in the owner's stream
(``OutboundRecord.stream_frame``) is packed without it: the relay puts the frame back from
``<schema>.user_events`` (as it is then: rewritten by an erasure, or gone with its user's
stream, and then the record is dropped: nobody is left to deliver it to).

Every statement on the outbox table is in this module. A row is deleted only after Kafka
acknowledged it, so a crash between commit and publish loses nothing; it can duplicate a
record (published, then crashed before the delete), which every consumer tolerates by event id
or seq. Deleting published rows in the next batch's statement costs no round trip of its own;
the relay deletes them within its interval when no batch comes, well inside the grace period
after which it would publish them again.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder

from services.runtime.db import Connection, Cte, overlapped
from services.runtime.metrics import (
    OUTBOX_BACKLOG_ROWS,
    OUTBOX_OLDEST_ROW_AGE,
    OUTBOX_PUBLISHED,
)
from services.runtime.partitioning import default_partitioner

log = logging.getLogger(__name__)


@dataclass(slots=True)
class OutboundRecord:
    """A Kafka record to publish once the transaction that made it commits; never changed
    once made (not ``frozen``: a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``, 0.78 us a record against 0.32, and a job alert makes 10,000).

    Attributes:
        stream_frame: the frame of the key's stream (in the outbox's schema) that ``value``
            carries, as (its seq, its bytes), when the same transaction stores it there: the
            outbox row keeps the value without it, and the relay reads it back from the
            stream (a delivery record is two-thirds its frame). ``None``: kept whole.
    """

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    stream_frame: tuple[int, bytes] | None = None


@dataclass(frozen=True, slots=True)
class ProducerBatch:
    """Records for one partition, in order, in a producer batch not handed to the producer yet."""

    topic: str
    partition: int
    builder: BatchBuilder


@dataclass(frozen=True, slots=True)
class Staged:
    """What one closing statement did: the row staged (its id; none without records), the
    rows deleted, and the staged records as producer batches ready to send. Handed back to
    :meth:`Outbox.committed` once the transaction committed."""

    ids: list[int]
    records: int
    deleted: list[int]
    batches: list[ProducerBatch]


#: How long a publish may wait for Kafka's acknowledgement. The producer answers or fails within
#: its request timeout and retries; this bound is for a future that would never resolve, which
#: would otherwise hold a confirmation slot (and, at shutdown, the process) forever. The rows
#: stay and the relay publishes them again.
CONFIRM_TIMEOUT_S = 30.0

#: The backlog gauge counts rows up to this many: enough to tell "stuck" from "busy", and the
#: measurement stays an index scan of bounded length however far Kafka has fallen behind.
BACKLOG_COUNT_LIMIT = 10_000


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
        self._frames = f'"{schema}".user_events'
        self._backlog_rows = OUTBOX_BACKLOG_ROWS.labels(schema)
        self._oldest_row_age = OUTBOX_OLDEST_ROW_AGE.labels(schema)
        self._producer = producer
        self._confirm_slots = asyncio.Semaphore(max_pending_confirms)
        self._handoff = asyncio.Lock()
        self._confirms: set[asyncio.Task[None]] = set()
        # Rows Kafka acknowledged and nobody deleted yet.
        self._published: set[int] = set()
        # Rows handed to the producer and not yet acknowledged (or given up on): the relay
        # leaves them alone, however old.
        self._in_flight: set[int] = set()

    async def stage(
        self, conn: Connection, records: Sequence[OutboundRecord], *, along: Cte | None = None
    ) -> Staged:
        """In one statement: insert ``records`` as one row (none when there are none), delete
        the rows published since the last call, and run ``along`` (another module's part of the
        same statement, e.g. the offset store's write).

        Runs in the caller's transaction (or alone, in autocommit, with nothing to stage).
        While Postgres runs the statement, the records are put into producer batches (the
        partitioner and the batch appends cost a few microseconds per record, otherwise spent
        after the commit, before the consumer's next batch); nothing is sent until
        :meth:`committed` is given the result.
        """
        deleted = list(self._published)
        topics, packed = pack_records(records)
        head = ""
        args: tuple[object, ...] = ()
        if along is not None:
            head, args = f"{along.name} AS ({along.sql}), ", along.args
        n = len(args)
        # Data-modifying CTEs run whether or not the insert writes its row.
        rows, batches = await overlapped(
            conn.fetch(
                f"WITH {head}published AS"
                f" (DELETE FROM {self._table} WHERE id = ANY(${n + 1}::bigint[]))"
                f" INSERT INTO {self._table} (topics, records)"
                f" SELECT ${n + 2}::text[], ${n + 3}::bytea"
                f" WHERE cardinality(${n + 2}::text[]) > 0 RETURNING id",
                *args,
                deleted,
                topics,
                packed,
            ),
            lambda: self._batches(records),
        )
        return Staged(
            ids=[row["id"] for row in rows],
            records=len(records),
            deleted=deleted,
            batches=batches,
        )

    async def committed(self, staged: Staged) -> None:
        """The statement of ``staged`` committed: forget the rows it deleted and hand its
        producer batches to the producer in order; acks are awaited in the background.

        Enqueueing in order here (not in the background) keeps per-key order across batches; the
        semaphore bounds how many batches may wait for acks, which is our backpressure. One
        transaction's batches at a time, in the order the calls come (the order of the
        commits): the service's consumers and a consumer's parallel transactions share this
        outbox, and a transaction that waited for another's row locks (the same users: the same
        keys) committed after it, so its records must not go between the other's batches.
        """
        self._published.difference_update(staged.deleted)
        if not staged.records:
            return
        async with self._handoff:
            await self._confirm_slots.acquire()
            try:
                futures = await self._send(staged.batches)
            except BaseException:
                self._confirm_slots.release()
                raise
        self._in_flight.update(staged.ids)
        task = asyncio.create_task(self._confirm(staged.ids, futures, staged.records))
        self._confirms.add(task)
        task.add_done_callback(self._confirms.discard)

    async def _batches(self, records: Sequence[OutboundRecord]) -> list[ProducerBatch]:
        """``records`` as producer batches, one or more per partition, each in the given order.

        ``producer.send`` per record costs tens of microseconds (a partitioner call, a future, an
        accumulator append), several times the rest of a record's way through this service; a
        batch per partition does that work once. The partition comes from the producers' own
        partitioner (:func:`services.runtime.partitioning.default_partitioner`), so consumers
        find records exactly where ``send`` would have put them.
        """
        partitions: dict[str, list[int]] = {}
        groups: dict[tuple[str, int], list[OutboundRecord]] = {}
        for record in records:
            known = partitions.get(record.topic)
            if known is None:
                known = partitions[record.topic] = sorted(
                    await self._producer.partitions_for(record.topic)
                )
            partition = default_partitioner(record.key, known, known)
            groups.setdefault((record.topic, partition), []).append(record)
        batches: list[ProducerBatch] = []
        for (topic, partition), group in groups.items():
            batch = ProducerBatch(topic, partition, self._producer.create_batch())
            for record in group:
                headers = list(record.headers)
                # A full batch (the producer's batch size) is closed and a new one started; a
                # new one takes any first record whatever its size, so this loops at most twice.
                while not batch.builder.append(
                    key=record.key, value=record.value, timestamp=None, headers=headers
                ):
                    batches.append(batch)
                    batch = ProducerBatch(topic, partition, self._producer.create_batch())
            batches.append(batch)
        return batches

    async def _send(self, batches: list[ProducerBatch]) -> list[asyncio.Future[object]]:
        """Hand ``batches`` to the producer in order; returns their delivery futures."""
        return [
            await self._producer.send_batch(batch.builder, batch.topic, partition=batch.partition)
            for batch in batches
        ]

    async def _confirm(
        self, ids: list[int], futures: list[asyncio.Future[object]], records: int
    ) -> None:
        try:
            await asyncio.wait_for(asyncio.gather(*futures), CONFIRM_TIMEOUT_S)
            self._published.update(ids)
            OUTBOX_PUBLISHED.labels("direct").inc(records)
        except Exception:
            # The rows stay; the relay publishes them after the grace period.
            log.exception(
                "outbox publish not confirmed; relay will retry", extra={"records": records}
            )
        finally:
            self._in_flight.difference_update(ids)
            self._confirm_slots.release()

    async def delete_published(self, pool: asyncpg.Pool) -> None:
        """Delete the rows Kafka acknowledged, without waiting for the WAL flush.

        A delete lost in a crash only means the relay publishes the rows again, which consumers
        tolerate. The statements go as one simple query (one round trip; no parameters allowed
        there); the ids are our own bigints, formatted as integers, so nothing from outside
        enters the SQL.
        """
        ids = list(self._published)
        if not ids:
            return
        id_list = ",".join(str(int(row_id)) for row_id in ids)
        async with pool.acquire() as conn:
            await conn.execute(
                "BEGIN; SET LOCAL synchronous_commit = off;"
                f" DELETE FROM {self._table} WHERE id IN ({id_list}); COMMIT"
            )
        self._published.difference_update(ids)

    async def drain(self) -> None:
        """Wait for every background confirmation (used at shutdown)."""
        if self._confirms:
            await asyncio.gather(*self._confirms, return_exceptions=True)

    async def withdraw(self, conn: Connection, *, topic: str, key: str) -> None:
        """Remove the staged, unpublished records of ``key`` on ``topic`` from the outbox, in the
        caller's transaction, before staging a record that supersedes them.

        For a compacted topic whose records each carry a whole state: the relay publishes
        leftovers of a crashed instance late, possibly after a newer record, and compaction
        would then keep the older state as the key's last word. Rows the relay is publishing
        right now (locked) are left to it rather than waited for. Rare (group changes): one
        statement to find the rows, one per row changed.
        """
        rows = await conn.fetch(
            f"SELECT {_ROW_COLUMNS} FROM {self._table}"
            " WHERE $1 = ANY(topics) ORDER BY id FOR UPDATE SKIP LOCKED",
            topic,
        )
        encoded = key.encode()
        for row in rows:
            records = await self._row_records(conn, row)
            kept = [r for r in records if not (r.topic == topic and r.key == encoded)]
            if len(kept) == len(records):
                continue
            if not kept:
                await conn.execute(f"DELETE FROM {self._table} WHERE id = $1", row["id"])
                continue
            topics, packed = pack_records(kept)
            await conn.execute(
                f"UPDATE {self._table} SET topics = $2, records = $3,"
                " keys = NULL, payloads = NULL, headers = NULL WHERE id = $1",
                row["id"],
                topics,
                packed,
            )

    async def relay_once(self, pool: asyncpg.Pool, *, older_than_ms: int, limit: int = 100) -> int:
        """Publish rows left behind (a crash after commit, a Kafka outage), each row's records
        in order; returns the number of records.

        ``SKIP LOCKED`` lets several instances relay side by side without publishing a row twice.
        Rows this instance handed to the producer and has not heard back about, or heard back
        about and not deleted yet, are not left behind: under a long backlog Kafka's
        acknowledgement may take longer than the grace period (a job alert to 40,000 users on
        a loaded machine), and publishing them again only doubled the work and the frames.
        """
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT {_ROW_COLUMNS} FROM {self._table}"
                " WHERE created_at < now() - make_interval(secs => $1::float8 / 1000)"
                " AND id <> ALL($3::bigint[])"
                " ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
                older_than_ms,
                limit,
                [*self._in_flight, *self._published],
            )
            if not rows:
                return 0
            records = [record for row in rows for record in await self._row_records(conn, row)]
            futures = await self._send(await self._batches(records))
            await asyncio.wait_for(asyncio.gather(*futures), CONFIRM_TIMEOUT_S)
            await conn.execute(
                f"DELETE FROM {self._table} WHERE id = ANY($1::bigint[])",
                [row["id"] for row in rows],
            )
        OUTBOX_PUBLISHED.labels("relay").inc(len(records))
        log.info("outbox relayed leftovers", extra={"rows": len(rows), "records": len(records)})
        return len(records)

    async def _row_records(self, conn: Connection, row: asyncpg.Record) -> list[OutboundRecord]:
        """A row's records, whole: the stream frames packed without them read back from the
        stream (those no longer there are dropped)."""
        if row["records"] is None:
            return _old_row_records(row)
        unpacked = unpack_records(row["topics"], row["records"])
        if not unpacked.gaps:
            return unpacked.records
        frames = {
            (row_["user_id"], row_["seq"]): row_["frame"].encode()
            for row_ in await conn.fetch(
                f"SELECT user_id, seq, frame FROM {self._frames}"
                " WHERE (user_id, seq) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))",
                [key.decode() for key, _, _ in unpacked.gaps.values()],
                [seq for _, seq, _ in unpacked.gaps.values()],
            )
        }
        return unpacked.filled(frames)

    async def measure_backlog(self, pool: asyncpg.Pool) -> None:
        """Set the backlog gauges: rows waiting (up to :data:`BACKLOG_COUNT_LIMIT`) and the
        age of the oldest, the signal of a Kafka that does not acknowledge (alert
        ``RealtimeOutboxBacklog``).

        Ids grow with time, so the oldest rows are the first by the primary key: no index on
        ``created_at`` is needed, and a healthy outbox (a handful of rows) costs one tiny scan.
        """
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT count(*) AS rows,"
                " COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS age"
                f" FROM (SELECT created_at FROM {self._table} ORDER BY id LIMIT $1) AS head",
                BACKLOG_COUNT_LIMIT,
            )
        assert row is not None  # an aggregate always returns one row
        self._backlog_rows.set(row["rows"])
        self._oldest_row_age.set(max(row["age"], 0.0))

    async def run_relay(self, pool: asyncpg.Pool, *, interval_ms: int, older_than_ms: int) -> None:
        """Delete published rows, relay leftovers and measure the backlog forever; errors are
        logged and retried at the next interval."""
        while True:
            try:
                await self.delete_published(pool)
                # Before relaying: while Kafka is down the relay fails, and then most of all
                # the gauge must move.
                await self.measure_backlog(pool)
                while await self.relay_once(pool, older_than_ms=older_than_ms) > 0:
                    pass
            except Exception:
                log.exception("outbox relay failed; retrying")
            await asyncio.sleep(interval_ms / 1000)


#: What a row is read as (both formats: see :meth:`Outbox._row_records`).
_ROW_COLUMNS = "id, topics, records, keys, payloads, headers"

# The packed format, after a version byte, per record: topic index (into the row's
# ``topics``), key length (-1: no key), length of the value as stored, header count, the seq of
# the stream frame cut out of the value (-1: none) and where it was; the key, the value as
# stored; per header: name length, value length, the name (UTF-8), the value. Version 1 (rows
# staged before stream frames were cut out) has no seq and offset.
_FORMAT_V1 = b"\x01"
_FORMAT_VERSION = b"\x02"
_RECORD_HEAD_V1 = struct.Struct(">HiIH")
_RECORD_HEAD = struct.Struct(">HiIHqI")
_HEADER_HEAD = struct.Struct(">HI")


def pack_records(records: Sequence[OutboundRecord]) -> tuple[list[str], bytes]:
    """A row's ``topics`` (each once, in order of first use) and ``records`` column.

    A struct header and the bytes as they are, joined once: about a microsecond a record,
    where arrays of one element per record cost several (asyncpg checks each element of an
    array parameter with a Python-level call, and the server builds the array element by
    element). A record's stream frame is left out (see :class:`OutboundRecord`).
    """
    topics: dict[str, int] = {}
    parts = [_FORMAT_VERSION]
    append = parts.append
    head = _RECORD_HEAD.pack
    for record in records:
        index = topics.get(record.topic)
        if index is None:
            index = topics[record.topic] = len(topics)
        key, value, headers = record.key, record.value, record.headers
        key_length = -1 if key is None else len(key)
        stream_frame = record.stream_frame
        cut = -1 if stream_frame is None else value.find(stream_frame[1])
        if stream_frame is None or cut < 0:
            append(head(index, key_length, len(value), len(headers), -1, 0))
            if key:
                append(key)
            append(value)
        else:
            seq, frame = stream_frame
            append(head(index, key_length, len(value) - len(frame), len(headers), seq, cut))
            if key:
                append(key)
            append(value[:cut])
            append(value[cut + len(frame) :])
        for name, header_value in headers:
            raw_name = name.encode()
            append(_HEADER_HEAD.pack(len(raw_name), len(header_value)))
            append(raw_name)
            append(header_value)
    return list(topics), b"".join(parts)


@dataclass(slots=True)
class Unpacked:
    """A row's records as packed: those whose stream frame was cut out lack it.

    Attributes:
        records: in staging order.
        gaps: by index in ``records``: the record's key, the seq of its frame, and where
            the frame goes back in the value.
    """

    records: list[OutboundRecord]
    gaps: dict[int, tuple[bytes, int, int]]

    def filled(self, frames: dict[tuple[str, int], bytes]) -> list[OutboundRecord]:
        """The records whole, each frame put back from ``frames`` ((user, seq) -> frame);
        a record whose frame is not there is dropped."""
        whole: list[OutboundRecord] = []
        for index, record in enumerate(self.records):
            gap = self.gaps.get(index)
            if gap is None:
                whole.append(record)
                continue
            key, seq, at = gap
            frame = frames.get((key.decode(), seq))
            if frame is None:
                continue
            value = record.value
            whole.append(
                OutboundRecord(
                    record.topic,
                    record.key,
                    value[:at] + frame + value[at:],
                    record.headers,
                    (seq, frame),
                )
            )
        return whole


def unpack_records(topics: Sequence[str], packed: bytes) -> Unpacked:
    """The records :func:`pack_records` packed, in order (those with a frame cut out without
    it: :meth:`Unpacked.filled` puts it back).

    Raises:
        ValueError: ``packed`` is not in a format this version knows.
    """
    version = packed[:1]
    if version not in (_FORMAT_VERSION, _FORMAT_V1):
        raise ValueError(f"unknown outbox row format {version!r}")
    record_head = _RECORD_HEAD if version == _FORMAT_VERSION else _RECORD_HEAD_V1
    view = memoryview(packed)
    unpacked = Unpacked([], {})
    records = unpacked.records
    at, end = 1, len(packed)
    while at < end:
        seq, cut = -1, 0
        if version == _FORMAT_VERSION:
            index, key_length, value_length, header_count, seq, cut = record_head.unpack_from(
                view, at
            )
        else:
            index, key_length, value_length, header_count = record_head.unpack_from(view, at)
        at += record_head.size
        key = None
        if key_length >= 0:
            key = bytes(view[at : at + key_length])
            at += key_length
        value = bytes(view[at : at + value_length])
        at += value_length
        headers = []
        for _ in range(header_count):
            name_length, header_length = _HEADER_HEAD.unpack_from(view, at)
            at += _HEADER_HEAD.size
            name = bytes(view[at : at + name_length]).decode()
            at += name_length
            headers.append((name, bytes(view[at : at + header_length])))
            at += header_length
        if seq >= 0:
            unpacked.gaps[len(records)] = (key or b"", seq, cut)
        records.append(OutboundRecord(topics[index], key, value, tuple(headers)))
    return unpacked


def _old_row_records(row: asyncpg.Record) -> list[OutboundRecord]:
    """The records of a row staged before outbox/0004: arrays of one element per record."""
    return [
        OutboundRecord(topic=topic, key=key, value=value, headers=_decode_headers(headers))
        for topic, key, value, headers in zip(
            row["topics"], row["keys"], row["payloads"], row["headers"], strict=True
        )
    ]


def _decode_headers(raw: str | None) -> tuple[tuple[str, bytes], ...]:
    """Headers of a row staged before ``outbox/0004``: a JSON array of [name, value] pairs."""
    if raw is None:
        return ()
    return tuple((name, value.encode()) for name, value in orjson.loads(raw))
