"""Fans typing indicators out to the other members of a conversation. Never stored.

Typing is worth nothing seconds later, so this path skips Postgres transactions and the outbox
entirely: records are read with auto-committed offsets (at most once is right here) and frames
go straight to the producer. Lapsed starts (no refresh for 6 s) end with a ``stop`` sent on the
typist's behalf.

Members are read from the memberships presence keeps (learned from chat.conversations.v1),
once per batch of records for every conversation the batch concerns, never cached: a member
removed from a group stops receiving typing, and may no longer type, as soon as presence has
applied the membership fact, on every presence instance alike (a cache, even a short-lived
one, kept a removed member in the audience for its lifetime). A typist not known as a member
waits briefly for the membership (:class:`MembershipWait`) before being refused: the fact of a
conversation created by a first message arrives a moment after that message's ack.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Literal

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.envelope import Envelope
from schemas.events import TypingCommand
from schemas.frames import Ack, Error, TypingEvent
from services.presence import storage
from services.presence.domain.typing_indicators import MembershipWait, TypingKey, TypingTracker
from services.runtime import codec
from services.runtime.consumer import is_retriable
from services.runtime.delivery import DeliveryWriter
from services.runtime.errors import RecordRejected
from services.runtime.kafka import stop_consumer
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
        wait: commands of typists whose membership presence has not learned yet.
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
        wait: MembershipWait[tuple[Envelope, TypingCommand]],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._topic = topic
        self._pool = pool
        self._delivery = delivery
        self._tracker = tracker
        self._wait = wait
        self._monotonic = monotonic

    async def start(self) -> None:
        """Join the typing group."""
        await self._consumer.start()
        self._consumer.subscribe([self._topic])

    async def run(self) -> None:
        """Relay until cancelled."""
        try:
            while True:
                batches = await self._consumer.getmany(timeout_ms=100, max_records=500)
                arriving = [
                    ((decoded[1].conversation_id, decoded[1].user_id), decoded)
                    for records in batches.values()
                    for record in records
                    if (decoded := self._decode(record.value, record.headers)) is not None
                ]
                now = self._monotonic()
                lapsed = self._tracker.lapse(now)
                if not arriving and not lapsed and not self._wait:
                    continue
                out: list[OutboundRecord] = []
                try:
                    members = await self._members_of(
                        {conversation_id for (conversation_id, _), _ in arriving}
                        | self._wait.conversations()
                        | {conversation_id for conversation_id, _ in lapsed}
                    )
                except Exception as exc:
                    if not is_retriable(exc):
                        raise
                    # Postgres restarting (found by the chaos soak: this used to stop presence).
                    # Typing is at most once: the arriving indicators are dropped, their senders
                    # told; those already waiting stay for the next round.
                    ERRORS.labels("typing_dropped_database").inc()
                    log.warning(
                        "typing dropped; database unavailable", extra={"error": type(exc).__name__}
                    )
                    for _, (_, command) in arriving:
                        self._unavailable(command, out)
                    await self._send(out)
                    continue
                for _, (envelope, command) in self._wait.sort(arriving, members, now):
                    self._relay(envelope, command, members, out)
                for key in lapsed:
                    self._announce(key, "stop", members.get(key[0], frozenset()), out)
                await self._send(out)
        finally:
            await stop_consumer(self._consumer)

    def _decode(
        self, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> tuple[Envelope, TypingCommand] | None:
        try:
            envelope = codec.decode(value, headers)
            return envelope, codec.parse_data(envelope, TypingCommand)
        except RecordRejected as exc:
            # Typing is disposable: count and log it; it is not worth a dead letter.
            ERRORS.labels("typing_record_invalid").inc()
            log.warning("typing record dropped", extra={"reason": exc.reason})
            return None

    def _relay(
        self,
        envelope: Envelope,
        command: TypingCommand,
        members: Mapping[str, frozenset[str]],
        out: list[OutboundRecord],
    ) -> None:
        key: TypingKey = (command.conversation_id, command.user_id)
        audience = members.get(command.conversation_id, frozenset())
        reply = command.reply_to
        if command.user_id not in audience:
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
            self._announce(key, "start", audience, out, origin=envelope.time)
        elif self._tracker.stop(key):
            self._announce(key, "stop", audience, out, origin=envelope.time)
        if reply.request_id is not None:
            ack = Ack(id=reply.request_id)
            out.append(
                self._delivery.frame(
                    command.user_id, ack.to_wire(), connection_id=reply.connection_id
                )
            )

    def _unavailable(self, command: TypingCommand, out: list[OutboundRecord]) -> None:
        """Answer a dropped indicator's request (when it had an id) with ``unavailable``."""
        reply = command.reply_to
        if reply.request_id is None:
            return
        error = Error(id=reply.request_id, code="unavailable", message="try again shortly")
        out.append(
            self._delivery.frame(
                command.user_id, error.to_wire(), connection_id=reply.connection_id
            )
        )

    def _announce(
        self,
        key: TypingKey,
        state: Literal["start", "stop"],
        audience: frozenset[str],
        out: list[OutboundRecord],
        *,
        origin: datetime | None = None,
    ) -> None:
        conversation_id, user_id = key
        frame = TypingEvent(conversation_id=conversation_id, user_id=user_id, state=state).to_wire()
        out.extend(
            self._delivery.frame(member, frame, origin=origin)
            for member in audience
            if member != user_id
        )

    async def _members_of(self, conversation_ids: set[str]) -> dict[str, frozenset[str]]:
        """Current members of each conversation (absent: none known), in one statement."""
        async with self._pool.acquire() as conn:
            return await storage.members_of(conn, sorted(conversation_ids))

    async def _send(self, out: list[OutboundRecord]) -> None:
        if not out:
            return
        futures = [
            await self._producer.send(record.topic, record.value, key=record.key) for record in out
        ]
        await asyncio.gather(*futures)
