"""Fans typing indicators out to the other members of a conversation. Never stored.

Typing is worth nothing seconds later, so this path skips Postgres transactions and the outbox
entirely: records are read with auto-committed offsets (at most once is right here), members
come from a short-lived cache of the memberships presence learned, and frames go straight to
the producer. Lapsed starts (no refresh for 6 s) end with a ``stop`` sent on the typist's behalf.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Literal

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.events import TypingCommand
from schemas.frames import Ack, Error, TypingEvent
from services.presence import storage
from services.presence.domain.typing_indicators import TypingKey, TypingTracker
from services.runtime import codec
from services.runtime.delivery import DeliveryWriter
from services.runtime.errors import RecordRejected
from services.runtime.metrics import ERRORS
from services.runtime.outbox import OutboundRecord

log = logging.getLogger(__name__)


class TypingRelay:
    """Consumes ``presence.typing.v1`` and produces ``typing`` frames.

    Args:
        consumer: an unstarted consumer in the typing group, subscribed by :meth:`start`.
        producer: started producer for delivery records.
        topic: the typing topic.
        pool: Postgres pool (membership reads only).
        delivery: builds delivery records.
        tracker: live starts and their lapse.
        members_ttl_s: how long a conversation's members are cached.
        monotonic: clock for lapses, injected.
    """

    def __init__(
        self,
        *,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        topic: str,
        pool: asyncpg.Pool,
        delivery: DeliveryWriter,
        tracker: TypingTracker,
        members_ttl_s: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._topic = topic
        self._pool = pool
        self._delivery = delivery
        self._tracker = tracker
        self._members_ttl_s = members_ttl_s
        self._monotonic = monotonic
        self._members: dict[str, tuple[float, frozenset[str]]] = {}

    async def start(self) -> None:
        """Join the typing group."""
        await self._consumer.start()
        self._consumer.subscribe([self._topic])

    async def run(self) -> None:
        """Relay until cancelled."""
        try:
            while True:
                batches = await self._consumer.getmany(timeout_ms=100, max_records=500)
                out: list[OutboundRecord] = []
                for records in batches.values():
                    for record in records:
                        await self._relay(record.value, record.headers, out)
                for key in self._tracker.lapse(self._monotonic()):
                    await self._announce(key, "stop", out)
                await self._send(out)
        finally:
            await self._consumer.stop()

    async def _relay(
        self, value: bytes | None, headers: list[tuple[str, bytes]], out: list[OutboundRecord]
    ) -> None:
        try:
            envelope = codec.decode(value, headers)
            command = codec.parse_data(envelope, TypingCommand)
        except RecordRejected as exc:
            # Typing is disposable: count and log it; it is not worth a dead letter.
            ERRORS.labels("typing_record_invalid").inc()
            log.warning("typing record dropped", extra={"reason": exc.reason})
            return
        key: TypingKey = (command.conversation_id, command.user_id)
        members = await self._members_of(command.conversation_id)
        reply = command.reply_to
        if command.user_id not in members:
            error = Error(
                id=reply.request_id, code="forbidden", message="not a member of this conversation"
            )
            out.append(
                self._delivery.frame(
                    command.user_id, error.to_wire(), connection_id=reply.connection_id
                )
            )
            return
        if command.state == "start":
            self._tracker.start(key, self._monotonic())
            await self._announce(key, "start", out, origin=envelope.time, members=members)
        elif self._tracker.stop(key):
            await self._announce(key, "stop", out, origin=envelope.time, members=members)
        if reply.request_id is not None:
            ack = Ack(id=reply.request_id)
            out.append(
                self._delivery.frame(
                    command.user_id, ack.to_wire(), connection_id=reply.connection_id
                )
            )

    async def _announce(
        self,
        key: TypingKey,
        state: Literal["start", "stop"],
        out: list[OutboundRecord],
        *,
        origin: datetime | None = None,
        members: frozenset[str] | None = None,
    ) -> None:
        conversation_id, user_id = key
        audience = members if members is not None else await self._members_of(conversation_id)
        frame = TypingEvent(conversation_id=conversation_id, user_id=user_id, state=state).to_wire()
        out.extend(
            self._delivery.frame(member, frame, origin=origin)
            for member in audience
            if member != user_id
        )

    async def _members_of(self, conversation_id: str) -> frozenset[str]:
        now = self._monotonic()
        cached = self._members.get(conversation_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._pool.acquire() as conn:
            members = frozenset(await storage.members(conn, conversation_id))
        if members:
            self._members[conversation_id] = (now + self._members_ttl_s, members)
        return members

    async def _send(self, out: list[OutboundRecord]) -> None:
        if not out:
            return
        futures = [
            await self._producer.send(record.topic, record.value, key=record.key) for record in out
        ]
        await asyncio.gather(*futures)
