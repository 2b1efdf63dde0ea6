"""Kafka topic names (``<domain>.<kind>.v1``) and the event types carried on each."""

from __future__ import annotations

from typing import Final

#: Client commands for the chat service, keyed by conversation id (one conversation in order).
CHAT_COMMANDS: Final = "chat.commands.v1"
#: Facts the chat service established (message created, watermark moved), keyed by conversation.
CHAT_EVENTS: Final = "chat.events.v1"
#: Frames for users, keyed by recipient user id; gateways tail the partitions of their users.
DELIVERY: Final = "delivery.frames.v1"

#: chat.commands.v1: a message.send frame accepted by a gateway.
MESSAGE_SEND: Final = "chat.message.send"
#: chat.commands.v1: a receipt frame accepted by a gateway.
RECEIPT_POST: Final = "chat.receipt.post"
#: chat.events.v1: a message was stored.
MESSAGE_CREATED: Final = "chat.message.created"
#: chat.events.v1: a member's delivered/read watermark moved.
WATERMARK_MOVED: Final = "chat.watermark.moved"
#: delivery.frames.v1: one frame for one user (or one of their connections).
DELIVERY_FRAME: Final = "delivery.frame"


def dlq_topic(topic: str) -> str:
    """The dead-letter topic of ``topic``: records that could not be parsed or applied."""
    return f"{topic}.dlq"
