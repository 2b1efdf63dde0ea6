"""Tails the delivery topic on exactly the partitions that hold this gateway's users.

No consumer group: partitions are assigned manually and read from the end (live tail).
Durable catch-up is the client's ``sync``, so a frame produced before its user connected is
not replayed from Kafka. A new partition is fully positioned before :meth:`hold` returns, so
everything produced after ``hello`` (the answers to the client's requests) reaches it.

aiokafka's ``assign()`` replaces the whole assignment and forgets positions, so each change
saves the positions of partitions kept and seeks back to them: no record is skipped or
repeated on the partitions other users are already reading.

A record carries one frame (``data.frame``) or, from a service that applied a batch, all of
one user's frames of that batch in order (``data.frames``, :mod:`services.runtime.delivery`),
or tells the gateways to close every connection of a user (``delivery.close``, when the user
is erased: docs/erasure.md). An answer (``ack``/``error`` to one connection) also tells load
shedding that its request is done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from schemas.topics import DELIVERY_CLOSE
from services.gateway.domain.registry import Registry
from services.gateway.domain.shedding import LoadShedder
from services.gateway.metrics import DELIVERY_LATENCY_BY_TYPE, HELD_PARTITIONS
from services.gateway.session import Session
from services.runtime.dlq import count_dead_letter, dead_letter
from services.runtime.metrics import CONSUMER_LAG, ERRORS

log = logging.getLogger(__name__)

#: Frame types that answer a request (and end its wait in load shedding).
_ANSWERS = frozenset({"ack", "error"})


class DeliveryTail:
    """Consumes ``delivery.frames.v1`` partitions of connected users and pushes frames.

    Args:
        shedder: requests awaiting answers (answers pass through here).
        consumer: an unstarted consumer with no group (manual assignment).
        producer: used to dead-letter malformed records.
        topic: the delivery topic.
        registry: the gateway's sessions.
        release_delay_s: a partition without users is released after this long.
    """

    def __init__(
        self,
        *,
        shedder: LoadShedder,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        topic: str,
        registry: Registry[Session],
        release_delay_s: float,
    ) -> None:
        self._shedder = shedder
        self._consumer = consumer
        self._producer = producer
        self._topic = topic
        self._registry = registry
        self._release_delay_s = release_delay_s
        self._assign_lock = asyncio.Lock()
        self._held: set[int] = set()
        self._idle_since: dict[int, float] = {}
        self._has_partitions = asyncio.Event()

    async def hold(self, partition: int) -> None:
        """Make sure ``partition`` is tailed, positioned at its current end."""
        if partition in self._held:
            self._idle_since.pop(partition, None)
            return
        async with self._assign_lock:
            if partition not in self._held:
                await self._reassign(self._held | {partition}, new={partition})
            self._idle_since.pop(partition, None)

    async def _reassign(self, partitions: set[int], *, new: set[int]) -> None:
        kept = {
            TopicPartition(self._topic, p): await self._consumer.position(
                TopicPartition(self._topic, p)
            )
            for p in self._held & partitions
        }
        self._consumer.assign([TopicPartition(self._topic, p) for p in sorted(partitions)])
        for tp, position in kept.items():
            self._consumer.seek(tp, position)
        fresh = [TopicPartition(self._topic, p) for p in new]
        if fresh:
            await self._consumer.seek_to_end(*fresh)
            for tp in fresh:
                # Resolves the end offset now, so nothing produced from here on is missed.
                await self._consumer.position(tp)
        self._held = set(partitions)
        HELD_PARTITIONS.set(len(self._held))
        if self._held:
            self._has_partitions.set()
        else:
            self._has_partitions.clear()

    async def release_idle(self, now: float) -> None:
        """Drop partitions that have had no user for ``release_delay_s``."""
        needed = self._registry.needed_partitions()
        for partition in self._held - needed:
            self._idle_since.setdefault(partition, now)
        expired = {
            p
            for p, since in self._idle_since.items()
            if p not in needed and now - since >= self._release_delay_s
        }
        if not expired:
            return
        async with self._assign_lock:
            for partition in expired:
                self._idle_since.pop(partition, None)
                CONSUMER_LAG.remove(self._topic, str(partition))
            await self._reassign(self._held - expired, new=set())

    async def run(self) -> None:
        """Push frames until cancelled."""
        next_housekeeping = time.monotonic() + 1.0
        while True:
            if not self._held:
                await self._has_partitions.wait()
            batches = await self._consumer.getmany(timeout_ms=200, max_records=1000)
            for records in batches.values():
                for record in records:
                    await self._push(record)
            now = time.monotonic()
            if now >= next_housekeeping:
                next_housekeeping = now + 1.0
                await self.release_idle(now)
                await self._update_lag()

    async def _push(self, record: ConsumerRecord) -> None:
        # Records are keyed by their user (services/runtime/delivery.py), and a partition holds
        # many users' records: one for a user not connected here is skipped unparsed (a job
        # alert's 10,000 records for a gateway holding 500 of its users; most records, once
        # gateways are many). Its user's gateway, if any, reads it (and dead-letters it if it
        # cannot).
        key = record.key
        if key is not None and not self._registry.has_user(key.decode("utf-8", "replace")):
            return
        try:
            event = orjson.loads(record.value)
            data = event["data"]
            user_id = data["user_id"]
            if event.get("type") == DELIVERY_CLOSE:
                code, reason = int(data["code"]), str(data["reason"])
                for session in self._registry.targets(user_id, None):
                    session.close(code, reason)
                return
            items = data.get("frames")
            if items is None:
                items = (data,)
            frames = [
                (item["frame"], item["frame"]["type"], item.get("connection_id"), item)
                for item in items
            ]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            await self._dead_letter(record, f"invalid_delivery:{type(exc).__name__}")
            return
        registry = self._registry
        now: datetime | None = None
        for frame, frame_type, connection_id, item in frames:
            targets = registry.targets(user_id, connection_id)
            if connection_id is not None and frame_type in _ANSWERS:
                self._answered(connection_id, frame.get("id"), targets)
            if not targets:
                continue
            encoded = orjson.dumps(frame)
            for session in targets:
                session.send(frame_type, encoded)
            origin_time = item.get("origin_time")
            if origin_time is not None:
                now = now or datetime.now(UTC)
                latency = (now - datetime.fromisoformat(origin_time)).total_seconds()
                DELIVERY_LATENCY_BY_TYPE[frame_type].observe(max(latency, 0.0))

    def _answered(
        self, connection_id: str, request_id: object, targets: tuple[Session, ...]
    ) -> None:
        if not isinstance(request_id, str):
            return
        self._shedder.answered(connection_id, request_id)
        for session in targets:
            if session.pending is not None:
                session.pending.discard(request_id)

    async def _dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        ERRORS.labels("delivery_record_invalid").inc()
        count_dead_letter(record.topic, reason)
        log.error(
            "malformed delivery record dead-lettered",
            extra={"partition": record.partition, "offset": record.offset, "reason": reason},
        )
        copy = dead_letter(record, reason)
        await self._producer.send_and_wait(
            copy.topic, copy.value, key=copy.key, headers=list(copy.headers)
        )

    async def _update_lag(self) -> None:
        for partition in self._held:
            tp = TopicPartition(self._topic, partition)
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                position = await self._consumer.position(tp)
                CONSUMER_LAG.labels(self._topic, str(partition)).set(max(highwater - position, 0))
