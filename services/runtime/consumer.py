"""The transactional consumer loop: Kafka in, one Postgres transaction per batch, outbox out.

Flow for each batch returned by ``getmany``::

    BEGIN
      offsets.fence:  one statement locks the batch's rows in <schema>.consumer_offsets;
                      records already applied are dropped
      inbound.claim:  (topics with dedupe only) one statement records the batch's CloudEvent
                      (source, id) keys; repeats of an event applied before are dropped
      per record:     decode envelope -> handler.apply(conn, record, out)   (DLQ on rejection)
                      (or, for a handler with apply_batch, every record in one call: a few
                      set-based statements per batch instead of several per record)
      outbox.stage:   one statement stages ``out``, deletes the rows published since the last
                      batch and (offsets.store riding along) stores every partition's next offset
    COMMIT
    outbox.committed  producer, in order; rows deleted once Kafka acked them
    (every few seconds) commit the same offsets to Kafka: only a hint for tools

Each concern has its module: the offset store (:mod:`~services.runtime.offsets`), the outbox
and its statements (:mod:`~services.runtime.outbox`), dead letters
(:mod:`~services.runtime.dlq`), inbound event keys (:mod:`~services.runtime.inbound`), the
Kafka-contact probe for timers (:mod:`~services.runtime.contact`); this one is the loop, the
handler contracts and the retry policy.

A handler that can tell a record changes nothing (``SkippingRecordHandler``) spares a batch of
such records the transaction; their offsets ride along with the next one.

Offsets live in Postgres, in the transaction of the state they produced, so a record's effects
are applied exactly once whatever crashes. On assignment the consumer creates the partitions'
rows if missing and seeks to the stored offsets; the offsets committed to Kafka are only a hint
for tools. The offset row lock fences a consumer that lost its partition in a rebalance but
still has a batch in flight.

Failures: a record that cannot be decoded or applied (``RecordRejected`` or any unexpected
error raised by the handler) goes to ``<topic>.dlq`` with the reason, in the same transaction.
The fast path runs without savepoints; only when a record fails is the batch re-run with one
savepoint per record. Infrastructure errors (connection lost, deadlock, serialization failure,
any ``RuntimeServiceError`` that says it is ``retriable``, such as a stream created by another
transaction meanwhile) roll the batch back and retry it with a bounded backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import asyncpg
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from asyncpg.pool import PoolConnectionProxy

from schemas.envelope import Envelope
from services.runtime import codec
from services.runtime.commit_effects import Pending, gathering
from services.runtime.contact import ContactProbe
from services.runtime.db import Connection
from services.runtime.dlq import count_dead_letter, dead_letter
from services.runtime.errors import RecordRejected, RuntimeServiceError
from services.runtime.inbound import EventKey, InboundEvents, first_of_each
from services.runtime.kafka import make_consumer, stop_consumer
from services.runtime.metrics import (
    BATCH_SIZE,
    CONSUMER_LAG,
    DB_SECONDS,
    ERRORS,
    INBOUND_DUPLICATES,
    RECORDS_PROCESSED,
    RECORDS_SKIPPED,
)
from services.runtime.offsets import OffsetStore
from services.runtime.outbox import OutboundRecord, Outbox

log = logging.getLogger(__name__)

# SQLSTATE classes after which the same transaction may succeed on a second try:
# 08 connection exception, 40 transaction rollback (deadlock, serialization), 53 insufficient
# resources, 57 operator intervention (shutdown, restart), 58 system error.
_RETRIABLE_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})


#: How often inbound event keys past their retention are deleted.
_PRUNE_INTERVAL_S = 600.0


@dataclass(frozen=True, slots=True)
class InboundRecord:
    """A decoded record handed to a handler."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    envelope: Envelope


@runtime_checkable
class BatchRecordHandler(Protocol):
    """A handler that can also apply a whole batch at once (fewer statements per record).

    ``apply_batch`` must leave the same state and stage the same records, in the same order,
    as ``apply`` called on each record in turn; it raises like ``apply`` does, and the consumer
    then re-runs the batch record by record with savepoints.
    """

    async def apply_batch(
        self, conn: Connection, records: Sequence[InboundRecord], out: list[OutboundRecord]
    ) -> None: ...


@runtime_checkable
class SkippingRecordHandler(Protocol):
    """A handler that can tell, without Postgres, that a record would change nothing.

    A batch made only of such records is marked applied without a transaction (its offsets are
    stored with the next transaction, or within the offset hint interval). ``needs_transaction``
    may answer False only when applying the record is known to be a no-op on committed state;
    after a crash those records are simply consumed again and applied, which is harmless.
    """

    def needs_transaction(self, record: InboundRecord) -> bool: ...


class RecordHandler(Protocol):
    """Applies one record inside the batch transaction, appending what to publish to ``out``."""

    async def apply(
        self, conn: Connection, record: InboundRecord, out: list[OutboundRecord]
    ) -> None: ...


def is_retriable(exc: BaseException) -> bool:
    """Whether a failure is the infrastructure's (retry the batch) rather than the record's."""
    if isinstance(exc, RuntimeServiceError):
        return exc.retriable
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None) or ""
        return sqlstate[:2] in _RETRIABLE_SQLSTATE_CLASSES
    return isinstance(
        exc,
        asyncpg.InterfaceError
        | asyncpg.PostgresConnectionError
        | OSError
        | TimeoutError
        | KafkaError,
    )


class _PoisonRecord(Exception):
    """A record failed on the fast path: re-run the batch with savepoints."""


@contextlib.contextmanager
def _poison_on_failure() -> Iterator[None]:
    """On the fast path, a record's own failure means: re-run the batch carefully; an
    infrastructure failure propagates to be retried as it is."""
    try:
        yield
    except RecordRejected:
        raise _PoisonRecord from None
    except Exception as exc:
        if is_retriable(exc):
            raise
        raise _PoisonRecord from exc


def _next_offsets(batches: dict[TopicPartition, list[ConsumerRecord]]) -> dict[TopicPartition, int]:
    return {tp: records[-1].offset + 1 for tp, records in batches.items()}


def in_produced_order(partitions: list[list[ConsumerRecord]]) -> list[ConsumerRecord]:
    """Interleave partitions by record timestamp, never reordering a partition's records.

    Kafka orders records only within a partition; across partitions the timestamp is the best
    guess of the order they were produced in (a client that reuses an idempotency key in two
    conversations expects its first use to win). ``heapq.merge`` only ever takes the head of
    each partition's list, so each partition keeps its own order even if clocks disagree.
    """
    return list(heapq.merge(*partitions, key=lambda record: record.timestamp))


def split_by_partition(
    batches: dict[TopicPartition, list[ConsumerRecord]], *, most: int, min_bytes: int
) -> list[dict[TopicPartition, list[ConsumerRecord]]]:
    """A fetch as up to ``most`` parts of whole partitions, each carrying at least
    ``min_bytes`` of record values, as even in bytes as a greedy split makes them (the
    largest partition to the lightest part); one part when the fetch is too small to split.

    A job alert fetch (10 alerts of 1,000 recipients) is Python deciding while Postgres
    waits, then Postgres writing while Python waits; two parts overlap one's Python with the
    other's statements.
    """
    if most < 2 or len(batches) < 2:
        return [batches]
    size = {
        tp: sum(len(record.value or b"") for record in records) for tp, records in batches.items()
    }
    count = min(most, len(batches), sum(size.values()) // max(min_bytes, 1))
    if count < 2:
        return [batches]
    parts: list[dict[TopicPartition, list[ConsumerRecord]]] = [{} for _ in range(count)]
    weights = [0] * count
    for tp in sorted(batches, key=size.__getitem__, reverse=True):
        lightest = weights.index(min(weights))
        parts[lightest][tp] = batches[tp]
        weights[lightest] += size[tp]
    return parts


@dataclass(slots=True)
class _Outcome:
    """What a committed batch transaction did besides its effects (counted after commit)."""

    # (topic, reason) of each dead-lettered record.
    dead_letters: list[tuple[str, str]] = field(default_factory=list)
    # Topic of each record skipped as a repeat of an inbound event applied before.
    repeats: list[str] = field(default_factory=list)


def _event_key(record: ConsumerRecord) -> EventKey | None:
    """The CloudEvent identity of a record; None when it does not decode (the DLQ's then)."""
    try:
        envelope = codec.decode(record.value, record.headers, timestamp_ms=record.timestamp)
    except RecordRejected:
        return None
    return envelope.source, envelope.id


def _inbound(record: ConsumerRecord) -> InboundRecord:
    """Decode a consumed record for a handler.

    Raises:
        RecordRejected: the record is not a valid CloudEvent.
    """
    return InboundRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        envelope=codec.decode(record.value, record.headers, timestamp_ms=record.timestamp),
    )


class TransactionalConsumer:
    """Consumes topics as part of a group and applies records with exactly-once effects.

    Args:
        bootstrap_servers: Kafka bootstrap list.
        group_id: consumer group (also the key of stored offsets).
        topics: topics to subscribe to.
        pool: Postgres pool of the owning service.
        schema: the owning service's schema (``consumer_offsets`` and ``outbox`` tables).
        handler: applies records.
        outbox: publishes what handlers staged.
        max_batch_records: most records per transaction.
        offset_hint_interval_ms: how often stored offsets are also committed to Kafka.
        contact_timeout_ms: Kafka counts as unreachable when it does not answer a request
            for the assigned partitions' end offsets within this (see :meth:`caught_up`).
        dedupe_topics: topics whose events are applied once per CloudEvent (source, id)
            (:mod:`services.runtime.inbound`; the schema needs the ``inbound`` tables):
            opt in for topics fed by other teams' services.
        inbound_retention_ms: how long those keys are remembered.
        fetch_max_wait_ms: how long the broker may hold a fetch for ``fetch_min_bytes``.
        fetch_min_bytes: what the broker waits for before it answers a fetch.
        parallel_transactions: most transactions one fetch is split into, by partition, run
            side by side on as many connections (1: one transaction per fetch). Only for
            handlers whose records in different partitions commute: each part applies its
            partitions' records in order, but the parts commit in either order.
        parallel_min_bytes: record bytes each part of a split fetch carries at least (a
            small fetch stays one transaction: each part pays its own fence, staging and
            commit).
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        group_id: str,
        topics: Sequence[str],
        pool: asyncpg.Pool,
        schema: str,
        handler: RecordHandler,
        outbox: Outbox,
        client_id: str,
        max_batch_records: int = 500,
        offset_hint_interval_ms: int = 5000,
        contact_timeout_ms: int = 1000,
        dedupe_topics: Collection[str] = (),
        inbound_retention_ms: int = 7 * 86_400_000,
        fetch_max_wait_ms: int = 500,
        fetch_min_bytes: int = 1,
        parallel_transactions: int = 1,
        parallel_min_bytes: int = 65_536,
    ) -> None:
        self._topics = list(topics)
        self._dedupe_topics = frozenset(dedupe_topics)
        self._inbound = (
            InboundEvents(schema=schema, retention_s=inbound_retention_ms / 1000)
            if self._dedupe_topics
            else None
        )
        self._pool = pool
        self._offsets = OffsetStore(schema=schema, group_id=group_id)
        self._handler = handler
        self._batch_handler = handler if isinstance(handler, BatchRecordHandler) else None
        self._skipping_handler = handler if isinstance(handler, SkippingRecordHandler) else None
        self._outbox = outbox
        self._max_batch_records = max_batch_records
        self._offset_hint_interval_s = offset_hint_interval_ms / 1000
        self._batch_lock = asyncio.Lock()
        self._parallel = parallel_transactions
        self._parallel_min_bytes = parallel_min_bytes
        # Held across batches, one per transaction of a fetch (lane): a pool acquire/release
        # costs a reset round trip per batch.
        self._conns: dict[int, PoolConnectionProxy[asyncpg.Record]] = {}
        self._stopping = asyncio.Event()
        self._pending_hints: dict[TopicPartition, int] = {}
        # Next offset to apply per partition, as committed in Postgres (or skipped as no-ops).
        self._applied: dict[TopicPartition, int] = {}
        # Next offsets of batches skipped as no-ops, not yet stored in Postgres.
        self._unstored: dict[TopicPartition, int] = {}
        self._consumer = make_consumer(
            bootstrap_servers,
            client_id=client_id,
            group_id=group_id,
            start_at="earliest",
            fetch_max_wait_ms=fetch_max_wait_ms,
            fetch_min_bytes=fetch_min_bytes,
        )
        self._contact = ContactProbe(self._consumer, timeout_ms=contact_timeout_ms)
        self._contact_timeout_s = contact_timeout_ms / 1000

    @property
    def assigned(self) -> bool:
        """Whether this instance currently owns at least one partition (readiness)."""
        return bool(self._consumer.assignment())

    async def caught_up(self, *, in_contact_for_s: float = 0.0) -> bool:
        """Whether every assigned partition has been consumed up to its high watermark and,
        when ``in_contact_for_s`` is given, Kafka has answered without a miss for that long.

        Timers that act on the *absence* of records (a gateway that stopped heart-beating) must
        wait for this. After a restart, a backlog not yet read would look like silence. While
        Kafka is down, the last known high watermark is stale (so "caught up" proves nothing)
        and the producers the timer waits for cannot publish either: their silence means
        something only once Kafka has answered for as long as the timer's own period, and
        everything the broker held a moment ago (its end offsets as it gave them then, not the
        last fetch's) is applied.
        """
        assignment = self._consumer.assignment()
        if not assignment:
            return False
        if in_contact_for_s <= 0:
            for tp in assignment:
                highwater = self._consumer.highwater(tp)
                # Committed, not merely fetched: a batch read but not yet applied is backlog.
                if highwater is None or self._applied.get(tp, -1) < highwater:
                    return False
            return True
        if not self._contact.in_contact_for(in_contact_for_s):
            return False
        # Everything the broker held a moment ago applied: after an outage the group may still
        # be rejoining, and records produced since are not even fetched (the last fetch's high
        # watermark is from before the outage). The newest answer the consumer has caught up
        # with must be at most a contact timeout old.
        for age_s, ends in self._contact.recent_ends():
            if all(self._applied.get(tp, -1) >= ends.get(tp, 0) for tp in assignment):
                return age_s <= self._contact_timeout_s
        return False

    async def start(self) -> None:
        """Connect and join the group; partitions arrive through the rebalance listener."""
        await self._consumer.start()
        self._consumer.subscribe(self._topics, listener=_Listener(self))

    def request_stop(self) -> None:
        """Ask :meth:`run` to return after the batch in flight."""
        self._stopping.set()

    async def run(self) -> None:
        """Consume until :meth:`request_stop`; then leave the group cleanly.

        Leaving commits the offset hints, stops the consumer (revoking its partitions so the
        group rebalances at once rather than after the session timeout) and waits for the
        outbox confirmations in flight.
        """
        next_hint = time.monotonic() + self._offset_hint_interval_s
        pruning = (
            asyncio.create_task(
                self._inbound.run_pruning(self._pool, interval_s=_PRUNE_INTERVAL_S),
                name="inbound-pruning",
            )
            if self._inbound is not None
            else None
        )
        try:
            while not self._stopping.is_set():
                batches = await self._consumer.getmany(
                    timeout_ms=200, max_records=self._max_batch_records
                )
                if batches:
                    async with self._batch_lock:
                        await self._process(batches)
                if time.monotonic() >= next_hint:
                    next_hint = time.monotonic() + self._offset_hint_interval_s
                    async with self._batch_lock:
                        await self._store_unstored()
                    await self._commit_hints()
                    await self._update_lag()
        finally:
            if pruning is not None:
                pruning.cancel()
                await asyncio.gather(pruning, return_exceptions=True)
            await self._contact.stop()
            await stop_consumer(self._consumer)
            await self._outbox.drain()
            for lane in list(self._conns):
                await self._release_connection(lane)

    async def _process(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        BATCH_SIZE.observe(sum(len(records) for records in batches.values()))
        if self._all_noops(batches):
            self._unstored.update(_next_offsets(batches))
            for tp, records in batches.items():
                RECORDS_SKIPPED.labels(tp.topic).inc(len(records))
            self._mark_applied(batches)
            return
        parts = split_by_partition(batches, most=self._parallel, min_bytes=self._parallel_min_bytes)
        if len(parts) == 1:
            outcomes = [await self._transact(batches, lane=0, lanes=parts)]
        else:
            # A part that fails for good cancels the others (their transactions roll back),
            # and its error is the consumer's, as with one part.
            try:
                async with asyncio.TaskGroup() as group:
                    tasks = [
                        group.create_task(self._transact(part, lane=lane, lanes=parts))
                        for lane, part in enumerate(parts)
                    ]
            except BaseExceptionGroup as failed:
                raise failed.exceptions[0] from None
            outcomes = [task.result() for task in tasks]
        for outcome in outcomes:
            for topic, reason in outcome.dead_letters:
                count_dead_letter(topic, reason)
            for topic in outcome.repeats:
                INBOUND_DUPLICATES.labels(topic).inc()
        self._mark_applied(batches)

    async def _transact(
        self,
        batches: dict[TopicPartition, list[ConsumerRecord]],
        *,
        lane: int,
        lanes: Sequence[dict[TopicPartition, list[ConsumerRecord]]],
    ) -> _Outcome:
        """Run one part of a fetch as a transaction until it commits: again record by record
        after a poison record, again after a retriable failure (with backoff)."""
        careful = False
        backoff_s = 0.05
        while True:
            try:
                return await self._run_transaction(batches, careful=careful, lane=lane, lanes=lanes)
            except _PoisonRecord:
                careful = True
            except Exception as exc:
                if not is_retriable(exc):
                    raise
                # The connection may be the thing that broke: the pool vets it on release.
                await self._release_connection(lane)
                ERRORS.labels("consumer_retry").inc()
                log.warning(
                    "batch failed; retrying",
                    extra={"error": type(exc).__name__, "backoff_s": backoff_s},
                )
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 5.0)

    def _mark_applied(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        for tp, records in batches.items():
            RECORDS_PROCESSED.labels(tp.topic).inc(len(records))
        following = _next_offsets(batches)
        self._pending_hints.update(following)
        self._applied.update(following)

    def _all_noops(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> bool:
        """Whether the handler says no record of the batch would change anything."""
        if self._skipping_handler is None:
            return False
        for records in batches.values():
            for record in records:
                try:
                    inbound = _inbound(record)
                except RecordRejected:
                    return False  # the transaction dead-letters it
                if self._skipping_handler.needs_transaction(inbound):
                    return False
        return True

    async def _run_transaction(
        self,
        batches: dict[TopicPartition, list[ConsumerRecord]],
        *,
        careful: bool,
        lane: int,
        lanes: Sequence[dict[TopicPartition, list[ConsumerRecord]]],
    ) -> _Outcome:
        out: list[OutboundRecord] = []
        outcome = _Outcome()
        started = time.perf_counter()
        conn = await self._connection(lane)
        with gathering() as effects:
            async with conn.transaction():
                stored = await self._offsets.fence(conn, list(batches))
                fresh = {
                    tp: [record for record in records if record.offset >= stored.get(tp, 0)]
                    for tp, records in batches.items()
                }
                if self._inbound is not None and not careful:
                    fresh = await self._drop_repeats(conn, fresh, outcome)
                whole: list[list[ConsumerRecord]] = []
                for records in fresh.values():
                    if self._batch_handler is not None and not careful:
                        # Applied below, all partitions at once; same transaction, same outcome.
                        whole.append(records)
                        continue
                    for record in records:
                        reason = await self._apply(
                            conn, record, out, outcome, careful=careful, effects=effects
                        )
                        if reason is not None:
                            out.append(dead_letter(record, reason))
                            outcome.dead_letters.append((record.topic, reason))
                if whole:
                    await self._apply_batch(conn, in_produced_order(whole), out)
                unstored = self._unstored_for(batches, lane=lane, lanes=lanes)
                offsets = {**unstored, **_next_offsets(batches)}
                staged = await self._outbox.stage(conn, out, along=self._offsets.store(offsets))
        effects.run()
        DB_SECONDS.labels("consume_batch").observe(time.perf_counter() - started)
        self._forget_unstored(unstored)
        await self._outbox.committed(staged)
        return outcome

    def _unstored_for(
        self,
        batches: dict[TopicPartition, list[ConsumerRecord]],
        *,
        lane: int,
        lanes: Sequence[dict[TopicPartition, list[ConsumerRecord]]],
    ) -> dict[TopicPartition, int]:
        """The no-op offsets a transaction stores: those of its own partitions, and the first
        part takes those of partitions in no part. Never another part's: that part's fence
        holds those offset rows locked until it commits, so storing them here would wait for
        it while it may be waiting for this transaction's stream row locks."""
        others = {tp for other in lanes if other is not batches for tp in other}
        return {
            tp: offset
            for tp, offset in self._unstored.items()
            if tp in batches or (lane == 0 and tp not in others)
        }

    async def _drop_repeats(
        self,
        conn: Connection,
        fresh: dict[TopicPartition, list[ConsumerRecord]],
        outcome: _Outcome,
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Claim the event keys of the fresh records of deduplicated topics (one statement)
        and leave out the records whose event was applied before, or earlier in this batch."""
        assert self._inbound is not None
        candidates = in_produced_order(
            [records for tp, records in fresh.items() if tp.topic in self._dedupe_topics]
        )
        if not candidates:
            return fresh
        keys = [_event_key(record) for record in candidates]
        new = await self._inbound.claim(conn, list(dict.fromkeys(k for k in keys if k)))
        repeats = {
            (record.topic, record.partition, record.offset)
            for record, keep in zip(candidates, first_of_each(keys, new), strict=True)
            if not keep
        }
        if not repeats:
            return fresh
        outcome.repeats.extend(topic for topic, _, _ in repeats)
        return {
            tp: [r for r in records if (r.topic, r.partition, r.offset) not in repeats]
            for tp, records in fresh.items()
        }

    async def _store_unstored(self) -> None:
        """Store the offsets of no-op batches when no transaction came along to carry them."""
        if not self._unstored:
            return
        unstored = dict(self._unstored)
        try:
            # The batch's closing statement with nothing to stage, on its own (autocommit).
            conn = await self._connection()
            staged = await self._outbox.stage(conn, (), along=self._offsets.store(unstored))
        except Exception as exc:
            if not is_retriable(exc):
                raise
            # Only a shortcut: the records are consumed again after a crash, and harmless.
            await self._release_connection()
            log.info("no-op offsets not stored yet", extra={"error": type(exc).__name__})
            return
        self._forget_unstored(unstored)
        await self._outbox.committed(staged)

    def _forget_unstored(self, stored: dict[TopicPartition, int]) -> None:
        for tp, offset in stored.items():
            if self._unstored.get(tp) == offset:
                del self._unstored[tp]

    async def _connection(self, lane: int = 0) -> PoolConnectionProxy[asyncpg.Record]:
        """The lane's connection, kept across batches (acquired again after a failure
        dropped it)."""
        conn = self._conns.get(lane)
        if conn is None:
            conn = self._conns[lane] = await self._pool.acquire()
        return conn

    async def _release_connection(self, lane: int = 0) -> None:
        conn = self._conns.pop(lane, None)
        if conn is not None:
            with contextlib.suppress(Exception):
                await self._pool.release(conn)

    async def _apply_batch(
        self, conn: Connection, records: list[ConsumerRecord], out: list[OutboundRecord]
    ) -> None:
        """Fast path of a batch handler: any failure re-runs the batch record by record."""
        assert self._batch_handler is not None
        with _poison_on_failure():
            inbound = [_inbound(record) for record in records]
            await self._batch_handler.apply_batch(conn, inbound, out)

    async def _apply(
        self,
        conn: Connection,
        record: ConsumerRecord,
        out: list[OutboundRecord],
        outcome: _Outcome,
        *,
        careful: bool,
        effects: Pending,
    ) -> str | None:
        """Apply one record; returns a DLQ reason when it must be dead-lettered.

        On the careful path the record's event key (deduplicated topics) is claimed inside
        the record's savepoint: a record that is then rejected leaves no claim behind, and
        none of the effects it asked for after the commit.
        """
        try:
            inbound = _inbound(record)
        except RecordRejected as exc:
            return exc.reason
        if not careful:
            with _poison_on_failure():
                await self._handler.apply(conn, inbound, out)
            return None
        staged, mark = len(out), effects.mark()
        try:
            async with conn.transaction():
                if not await self._first_claim(conn, inbound):
                    outcome.repeats.append(record.topic)
                    return None
                await self._handler.apply(conn, inbound, out)
        except RecordRejected as exc:
            del out[staged:]
            effects.drop_since(mark)
            return exc.reason
        except Exception as exc:
            if is_retriable(exc):
                raise
            del out[staged:]
            effects.drop_since(mark)
            log.exception(
                "record failed in handler; dead-lettered",
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                },
            )
            return f"handler_error:{type(exc).__name__}"
        return None

    async def _first_claim(self, conn: Connection, record: InboundRecord) -> bool:
        """Whether ``record`` is to be applied: always, unless its topic is deduplicated and
        its event's key was claimed before."""
        if self._inbound is None or record.topic not in self._dedupe_topics:
            return True
        key = (record.envelope.source, record.envelope.id)
        return bool(await self._inbound.claim(conn, [key]))

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        if not assigned:
            return
        stored = await self._offsets.claim(self._pool, assigned, self._topics)
        for tp in assigned:
            # 0 for a partition never applied: from its start (or, past retention, the earliest
            # offset left, by the reset policy).
            self._consumer.seek(tp, stored.get(tp, 0))
            self._applied[tp] = await self._consumer.position(tp)
        log.info("partitions assigned", extra={"partitions": sorted(str(tp) for tp in assigned)})

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        # Taking the lock waits for the batch in flight to commit before the partitions move.
        async with self._batch_lock:
            await self._store_unstored()
            await self._commit_hints()
        for tp in revoked:
            self._pending_hints.pop(tp, None)
            self._applied.pop(tp, None)
            self._unstored.pop(tp, None)

    async def _commit_hints(self) -> None:
        if not self._pending_hints:
            return
        hints, self._pending_hints = self._pending_hints, {}
        try:
            await self._consumer.commit(hints)
        except KafkaError as exc:
            # Only a hint: Postgres holds the truth, so a failed commit costs nothing.
            log.info("kafka offset hint not committed", extra={"error": type(exc).__name__})

    async def _update_lag(self) -> None:
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            position = await self._consumer.position(tp)
            CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(highwater - position, 0))


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: TransactionalConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._consumer._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._consumer._on_assigned(assigned)
