"""``data`` of each event type (see :mod:`schemas.topics` for which topic carries which)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from schemas.base import ConversationId, RequestId, UserId, WireModel
from schemas.frames import (
    MAX_GROUP_MEMBERS,
    ClientMsgId,
    ConversationKind,
    Emoji,
    Message,
    MessageId,
    PresenceStatus,
    ReceiptStatus,
    Role,
    Title,
)


class ReplyTo(WireModel):
    """Where the answer to a client request goes: one connection of the requesting user."""

    # Gateway instance that holds the connection (for logs; routing is by user partition).
    gateway_id: str
    # Connection that sent the frame.
    connection_id: str
    # The frame's id; absent when the client asked for no answer.
    request_id: RequestId | None = None


class MessageSendCommand(WireModel):
    """data of ``chat.message.send``."""

    # Authenticated sender (token sub).
    sender_id: UserId
    # Where the ack or error goes.
    reply_to: ReplyTo
    # Direct message recipient, when the client addressed a user.
    to: UserId | None = None
    # Target conversation; for a direct message, the id the gateway derived from the pair.
    conversation_id: ConversationId
    # Sender's idempotency key.
    client_msg_id: ClientMsgId
    # Message kind.
    kind: Literal["text"]
    # Message text.
    body: str
    # The message of the same conversation this one answers (the frame's ``reply_to``).
    reply_to_message_id: MessageId | None = None


class ReceiptCommand(WireModel):
    """data of ``chat.receipt.post``."""

    # Authenticated user whose watermark moves.
    user_id: UserId
    # Where the ack or error goes.
    reply_to: ReplyTo
    # Conversation concerned.
    conversation_id: ConversationId
    # Watermark target (conversation seq).
    seq: int
    # delivered or read.
    status: ReceiptStatus


class ConversationCreateCommand(WireModel):
    """data of ``chat.conversation.create``."""

    # The creator (token sub), the group's first admin.
    user_id: UserId
    # Where the ack or error goes.
    reply_to: ReplyTo
    # The new group's id, minted by the gateway (so the command can be keyed by it).
    conversation_id: ConversationId
    # The group's name.
    title: Title
    # The other members.
    member_ids: Annotated[list[UserId], Field(min_length=1, max_length=MAX_GROUP_MEMBERS - 1)]


class MembersAddCommand(WireModel):
    """data of ``chat.members.add``."""

    # Who adds (token sub).
    user_id: UserId
    # Where the ack or error goes.
    reply_to: ReplyTo
    # The group.
    conversation_id: ConversationId
    # Users to add.
    user_ids: Annotated[list[UserId], Field(min_length=1, max_length=MAX_GROUP_MEMBERS - 1)]


class MembersRemoveCommand(WireModel):
    """data of ``chat.members.remove``."""

    # Who removes (token sub); the same as member_id to leave.
    user_id: UserId
    # Where the ack or error goes.
    reply_to: ReplyTo
    # The group.
    conversation_id: ConversationId
    # Who leaves the group.
    member_id: UserId


class RoleSetCommand(WireModel):
    """data of ``chat.role.set``."""

    # Who changes the role (token sub).
    user_id: UserId
    # Where the ack or error goes.
    reply_to: ReplyTo
    # The group.
    conversation_id: ConversationId
    # Whose role changes.
    member_id: UserId
    # The new role.
    role: Role


class ConversationUpdateCommand(WireModel):
    """data of ``chat.conversation.update``."""

    # Who renames (token sub).
    user_id: UserId
    # Where the ack or error goes.
    reply_to: ReplyTo
    # The group.
    conversation_id: ConversationId
    # The new name.
    title: Title


class MessageEditCommand(WireModel):
    """data of ``chat.message.edit``."""

    # Who edits (token sub).
    user_id: UserId
    # Where the ack or error goes.
    reply_to: ReplyTo
    # The message's conversation.
    conversation_id: ConversationId
    # The message.
    message_id: MessageId
    # The new text.
    body: str


class MessageDeleteCommand(WireModel):
    """data of ``chat.message.delete``."""

    # Who deletes (token sub).
    user_id: UserId
    # Where the ack or error goes.
    reply_to: ReplyTo
    # The message's conversation.
    conversation_id: ConversationId
    # The message.
    message_id: MessageId


class ReactionSetCommand(WireModel):
    """data of ``chat.reaction.set``."""

    # Who reacts (token sub).
    user_id: UserId
    # Where the ack or error goes.
    reply_to: ReplyTo
    # The message's conversation.
    conversation_id: ConversationId
    # The message.
    message_id: MessageId
    # The reaction.
    emoji: Emoji
    # Put on (true) or taken back (false).
    on: bool


class MessageCreated(WireModel):
    """data of ``chat.message.created``."""

    # The stored message.
    message: Message
    # Every member of the conversation, the sender included.
    member_ids: list[UserId]


class ConversationCreated(WireModel):
    """data of ``chat.conversation.created``."""

    # The new conversation.
    conversation_id: ConversationId
    # direct (two members; group conversations come later).
    kind: Literal["direct"]
    # Every member, in id order.
    member_ids: list[UserId]


class ConversationChanged(WireModel):
    """data of ``chat.conversation.updated``: a group's state after a change (its creation
    included), on chat.conversations.v1 (compacted: the latest fact of each conversation is its
    truth) and on chat.events.v1."""

    # The group.
    conversation_id: ConversationId
    # Always group today: direct conversations cannot change.
    kind: ConversationKind
    # The group's name.
    title: str | None = None
    # Counts the conversation's changes from 1 (creation): a fact with a version at or below one
    # already applied is stale (the outbox relay may publish an older fact after a newer one).
    version: int
    # Every member now, in id order (empty when the last member left).
    member_ids: list[UserId]
    # The admins among them, in id order.
    admin_ids: list[UserId]
    # Members this change added (every member, for a creation).
    added_ids: list[UserId] = Field(default_factory=list)
    # Members this change removed (they left or were removed).
    removed_ids: list[UserId] = Field(default_factory=list)


class MessageChanged(WireModel):
    """data of ``chat.message.updated`` on chat.events.v1."""

    # What happened.
    change: Literal["edited", "deleted", "reaction"]
    # The message after the change (a deleted one has an empty body).
    message: Message
    # Every member of the conversation now.
    member_ids: list[UserId]


class WatermarkMoved(WireModel):
    """data of ``chat.watermark.moved``."""

    # Conversation concerned.
    conversation_id: ConversationId
    # Whose watermark moved.
    user_id: UserId
    # Which watermark (read implies delivered).
    status: ReceiptStatus
    # New watermark.
    up_to_seq: int


class DeliveryFrame(WireModel):
    """data of ``delivery.frame``: a frame for the devices of one user."""

    # Recipient user; also the record key.
    user_id: UserId
    # Only this connection gets it (answers to requests); all of the user's when absent.
    connection_id: str | None = None
    # The server frame, as sent to the client.
    frame: dict[str, Any]
    # When the originating command entered the system, for end-to-end latency.
    origin_time: datetime | None = None


class ConnectionOpened(WireModel):
    """data of ``presence.connection.opened``."""

    # Who connected.
    user_id: UserId
    # The new connection.
    connection_id: str
    # The gateway holding it (its heartbeats keep the connection alive).
    gateway_id: str


# Not named after its event type: ``ConnectionClosed`` is websockets' exception, which the
# gateway catches beside publishing this.
class ConnectionEnded(WireModel):
    """data of ``presence.connection.closed``: a connection closed, or expired with its gateway."""

    # Who disconnected.
    user_id: UserId
    # The closed connection.
    connection_id: str
    # The gateway that held it.
    gateway_id: str
    # True when the gateway stopped heart-beating: no grace period, it is long gone already.
    expired: bool = False
    # For an expired connection: when its gateway was last heard from.
    last_seen: datetime | None = None


class GatewayHeartbeat(WireModel):
    """data of ``presence.gateway.heartbeat`` (keyed by gateway id)."""

    # The live gateway.
    gateway_id: str
    # Connections it holds now.
    connections: int


class StatusSet(WireModel):
    """data of ``presence.status.set``."""

    # Whose status.
    user_id: UserId
    # The chosen status (offline = appear offline).
    status: PresenceStatus
    # Where the ack goes.
    reply_to: ReplyTo


class OfflineDue(WireModel):
    """data of ``presence.offline.due``."""

    # The user whose grace period may have ended.
    user_id: UserId


class TypingCommand(WireModel):
    """data of ``presence.typing`` (keyed by conversation id)."""

    # Who types.
    user_id: UserId
    # Where.
    conversation_id: ConversationId
    # start or stop.
    state: Literal["start", "stop"]
    # Where the ack or error goes.
    reply_to: ReplyTo
