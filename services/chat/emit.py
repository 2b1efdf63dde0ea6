"""What a chat command leaves behind besides state, staged for the outbox: the answer to the
requesting connection, frames for members (stored in their streams and delivered live), and
facts for other services. Every command handler of the service stages through one of these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import orjson

from schemas.events import ReplyTo
from schemas.frames import Ack, Conversation, Error, Message
from services.chat import storage
from services.chat.domain.errors import ChatError
from services.runtime.codec import EventBuilder
from services.runtime.commit_effects import after_commit
from services.runtime.db import Connection
from services.runtime.delivery import DeliveryBatch, DeliveryWriter
from services.runtime.metrics import ERRORS
from services.runtime.outbox import OutboundRecord


class Emitter:
    """Stages the outbound records of the chat service.

    Args:
        events: builds the service's events (source ``/chat/<instance>``).
        delivery: builds frames for users.
    """

    def __init__(self, *, events: EventBuilder, delivery: DeliveryWriter) -> None:
        self._events = events
        self.delivery = delivery

    def ack(
        self,
        out: list[OutboundRecord],
        user_id: str,
        reply_to: ReplyTo,
        origin: datetime,
        *,
        message: Message | None = None,
        conversation: Conversation | None = None,
        into: DeliveryBatch | None = None,
    ) -> None:
        """Acknowledge a request that carried an id; a request without one gets no answer.
        ``into``: gathered with the user's other frames of the batch instead of a record of
        its own."""
        if reply_to.request_id is not None:
            ack = Ack(id=reply_to.request_id, message=message, conversation=conversation)
            self.reply(out, user_id, reply_to, origin, ack.to_wire(), into=into)

    def refuse(
        self,
        out: list[OutboundRecord],
        user_id: str,
        reply_to: ReplyTo,
        origin: datetime,
        exc: ChatError,
        *,
        into: DeliveryBatch | None = None,
    ) -> None:
        """Answer a refused command with an ``error`` frame to the requesting connection
        (whether or not the request had an id: a client must learn it was refused)."""
        after_commit(ERRORS.labels(exc.code).inc)
        error = Error(id=reply_to.request_id, code=exc.code, message=exc.message)
        self.reply(out, user_id, reply_to, origin, error.to_wire(), into=into)

    def reply(
        self,
        out: list[OutboundRecord],
        user_id: str,
        reply_to: ReplyTo,
        origin: datetime,
        frame: bytes,
        *,
        into: DeliveryBatch | None = None,
    ) -> None:
        """Stage a frame for the one connection that made the request (in ``into`` when
        given)."""
        if into is not None:
            into.add(user_id, frame, origin=origin, connection_id=reply_to.connection_id)
            return
        out.append(
            self.delivery.frame(user_id, frame, origin=origin, connection_id=reply_to.connection_id)
        )

    async def append_and_deliver(
        self,
        conn: Connection,
        users: Sequence[str],
        frame: Callable[[str, int], bytes],
        origin: datetime,
        out: list[OutboundRecord],
        *,
        message_id: str | None = None,
    ) -> None:
        """Append a frame (built from each user's seq) to the ``chat`` stream of each of
        ``users`` and stage its live delivery; ``message_id`` names the message the frames
        carry (their subject: a deletion finds and rewrites them)."""
        appended = await storage.STREAM.append_each(conn, users, frame, subject=message_id)
        out.extend(self.delivery.frame(user, data, origin=origin) for user, _, data in appended)

    def fact(
        self, topic: str, event_type: str, conversation_id: str, data: bytes
    ) -> OutboundRecord:
        """A fact about a conversation (keyed by its id), ``data`` already encoded."""
        return self._events.record(
            topic, event_type, key=conversation_id, data=orjson.Fragment(data)
        )
