"""Publishes accepted client commands to ``chat.commands.v1``, keyed by conversation id."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiokafka import AIOKafkaProducer

from schemas import topics
from schemas.events import MessageSendCommand, ReceiptCommand, ReplyTo
from schemas.frames import MessageSend, Receipt
from schemas.ids import direct_conversation_id
from services.runtime.codec import encode_event


class CommandPublisher:
    """Turns frames into command events; returns once Kafka acknowledged them (acks=all).

    Args:
        producer: a started idempotent producer.
        topic: the chat commands topic.
        gateway_id: this gateway's instance id (CloudEvents source, reply routing).
        now: clock, injected.
        new_id: event id factory, injected.
    """

    def __init__(
        self,
        *,
        producer: AIOKafkaProducer,
        topic: str,
        gateway_id: str,
        now: Callable[[], datetime],
        new_id: Callable[[], str],
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._gateway_id = gateway_id
        self._source = f"/gateway/{gateway_id}"
        self._now = now
        self._new_id = new_id

    def _reply_to(self, connection_id: str, request_id: str | None) -> ReplyTo:
        return ReplyTo(
            gateway_id=self._gateway_id, connection_id=connection_id, request_id=request_id
        )

    async def message_send(self, frame: MessageSend, *, user_id: str, connection_id: str) -> None:
        """Publish a ``chat.message.send`` command.

        Raises:
            aiokafka.errors.KafkaError: Kafka did not take the record.
        """
        conversation_id = (
            direct_conversation_id(user_id, frame.to)
            if frame.to is not None
            else frame.conversation_id
        )
        assert conversation_id is not None  # MessageSend guarantees one of the two
        command = MessageSendCommand(
            sender_id=user_id,
            reply_to=self._reply_to(connection_id, frame.id),
            to=frame.to,
            conversation_id=conversation_id,
            client_msg_id=frame.client_msg_id,
            kind=frame.kind,
            body=frame.body,
        )
        await self._publish(topics.MESSAGE_SEND, conversation_id, command.to_dict())

    async def receipt(self, frame: Receipt, *, user_id: str, connection_id: str) -> None:
        """Publish a ``chat.receipt.post`` command.

        Raises:
            aiokafka.errors.KafkaError: Kafka did not take the record.
        """
        command = ReceiptCommand(
            user_id=user_id,
            reply_to=self._reply_to(connection_id, frame.id),
            conversation_id=frame.conversation_id,
            seq=frame.seq,
            status=frame.status,
        )
        await self._publish(topics.RECEIPT_POST, frame.conversation_id, command.to_dict())

    async def _publish(self, event_type: str, key: str, data: dict[str, object]) -> None:
        value = encode_event(
            event_id=self._new_id(),
            source=self._source,
            event_type=event_type,
            subject=key,
            time=self._now(),
            data=data,
        )
        await self._producer.send_and_wait(self._topic, value, key=key.encode())
