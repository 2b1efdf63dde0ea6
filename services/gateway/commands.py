"""Publishes what clients do to Kafka: chat commands (keyed by conversation), presence
commands (keyed by user; heartbeats keyed by gateway) and typing (keyed by conversation)."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from schemas import topics
from schemas.events import (
    ConnectionEnded,
    ConnectionOpened,
    GatewayHeartbeat,
    MessageSendCommand,
    ReceiptCommand,
    ReplyTo,
    StatusSet,
    TypingCommand,
)
from schemas.frames import MessageSend, PresenceSet, Receipt, Typing
from schemas.ids import direct_conversation_id
from services.runtime.codec import EventBuilder
from services.runtime.kafka import TopicNames


class CommandPublisher:
    """Turns frames into command events; returns once Kafka acknowledged them (acks=all).

    Args:
        producer: a started idempotent producer.
        topic_names: topics of this deployment.
        gateway_id: this gateway's instance id (reply routing).
        events: builds the commands (source ``/gateway/<gateway id>``).
    """

    def __init__(
        self,
        *,
        producer: AIOKafkaProducer,
        topic_names: TopicNames,
        gateway_id: str,
        events: EventBuilder,
    ) -> None:
        self._producer = producer
        self._topics = topic_names
        self._gateway_id = gateway_id
        self._events = events

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
        await self._publish(
            self._topics.chat_commands, topics.MESSAGE_SEND, conversation_id, command.to_dict()
        )

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
        await self._publish(
            self._topics.chat_commands,
            topics.RECEIPT_POST,
            frame.conversation_id,
            command.to_dict(),
        )

    async def status_set(self, frame: PresenceSet, *, user_id: str, connection_id: str) -> None:
        """Publish a ``presence.status.set`` command (answered by the presence service)."""
        command = StatusSet(
            user_id=user_id, status=frame.status, reply_to=self._reply_to(connection_id, frame.id)
        )
        await self._publish(
            self._topics.presence_commands, topics.STATUS_SET, user_id, command.to_dict()
        )

    async def typing(self, frame: Typing, *, user_id: str, connection_id: str) -> None:
        """Publish a typing indicator (answered, when it has an id, by the presence service)."""
        command = TypingCommand(
            user_id=user_id,
            conversation_id=frame.conversation_id,
            state=frame.state,
            reply_to=self._reply_to(connection_id, frame.id),
        )
        await self._publish(
            self._topics.presence_typing, topics.TYPING, frame.conversation_id, command.to_dict()
        )

    async def connection_opened(self, *, user_id: str, connection_id: str) -> None:
        """Tell presence a device connected here."""
        event = ConnectionOpened(
            user_id=user_id, connection_id=connection_id, gateway_id=self._gateway_id
        )
        await self._publish(
            self._topics.presence_commands, topics.CONNECTION_OPENED, user_id, event.to_dict()
        )

    async def connection_closed(self, *, user_id: str, connection_id: str) -> None:
        """Tell presence a device disconnected from here."""
        event = ConnectionEnded(
            user_id=user_id, connection_id=connection_id, gateway_id=self._gateway_id
        )
        await self._publish(
            self._topics.presence_commands, topics.CONNECTION_CLOSED, user_id, event.to_dict()
        )

    async def heartbeat(self, *, connections: int) -> None:
        """Tell presence this gateway is alive (keyed by gateway id)."""
        event = GatewayHeartbeat(gateway_id=self._gateway_id, connections=connections)
        await self._publish(
            self._topics.presence_commands,
            topics.GATEWAY_HEARTBEAT,
            self._gateway_id,
            event.to_dict(),
        )

    async def _publish(
        self, topic: str, event_type: str, key: str, data: dict[str, object]
    ) -> None:
        record = self._events.record(topic, event_type, key=key, data=data)
        await self._producer.send_and_wait(record.topic, record.value, key=record.key)
