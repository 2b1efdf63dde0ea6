"""Frames of client protocol v1 (shared/protocol.md): what browsers send and receive.

Client frames are parsed strictly (a string where an integer belongs is an error, never coerced)
but unknown *fields* are ignored, so a newer client talking to an older gateway still works;
unknown frame *types* are errors. Server frames are built by services and forbid extras.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, model_validator

from schemas.base import ConversationId, RequestId, UserId, WireModel

#: Upper bound of ``body`` the schema accepts; the gateway may configure a lower one.
MAX_BODY_CHARS = 4000
#: Upper bound of the ``limit`` of one ``sync`` answer.
MAX_SYNC_LIMIT = 1000

ClientMsgId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
StreamName = Annotated[str, StringConstraints(min_length=1, max_length=32)]
ReceiptStatus = Literal["delivered", "read"]
PresenceStatus = Literal["online", "away", "busy", "offline"]
ErrorCode = Literal[
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "too_large",
    "rate_limited",
    "unavailable",
    "internal",
]


class ClientFrame(BaseModel):
    """Base of client -> server frames."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    # Request id: when present, the frame gets exactly one ack or error carrying it.
    id: RequestId | None = None


class MessageSend(ClientFrame):
    """Send a message to a user (direct) or to a conversation the sender belongs to."""

    type: Literal["message.send"]
    # Recipient of a direct message; exclusive with conversation_id.
    to: UserId | None = None
    # Target conversation; exclusive with to.
    conversation_id: ConversationId | None = None
    # The client's idempotency key: a resend returns the stored message.
    client_msg_id: ClientMsgId
    # Only text exists in v1.
    kind: Literal["text"]
    # Message text; the gateway also enforces its configured max_body_chars.
    body: Annotated[str, StringConstraints(min_length=1, max_length=MAX_BODY_CHARS)]

    @model_validator(mode="after")
    def _one_target(self) -> MessageSend:
        if (self.to is None) == (self.conversation_id is None):
            raise ValueError("exactly one of 'to' and 'conversation_id' is required")
        return self


class Receipt(ClientFrame):
    """Move this user's delivered or read watermark in a conversation."""

    type: Literal["receipt"]
    # Conversation whose watermark moves.
    conversation_id: ConversationId
    # Every message of the conversation up to this seq is delivered/read.
    seq: Annotated[int, Field(ge=0)]
    # Which watermark; read implies delivered.
    status: ReceiptStatus


class Typing(ClientFrame):
    """Typing indicator; never stored."""

    type: Literal["typing"]
    # Conversation typed in.
    conversation_id: ConversationId
    # start, refreshed while typing; stop when done.
    state: Literal["start", "stop"]


class PresenceSet(ClientFrame):
    """Set the user's status on every device (offline = appear offline)."""

    type: Literal["presence.set"]
    # The chosen status.
    status: PresenceStatus


class Sync(ClientFrame):
    """Fetch every durable frame after the given cursor."""

    type: Literal["sync"]
    # Stream name -> last seq the client holds; empty means from the beginning.
    cursor: dict[StreamName, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    # Most frames in one answer; the server's default applies when absent.
    limit: Annotated[int, Field(ge=1, le=MAX_SYNC_LIMIT)] | None = None


class NotificationReadRequest(ClientFrame):
    """Mark notifications read: some by id, or all of them."""

    model_config = ConfigDict(populate_by_name=True)

    type: Literal["notification.read"]
    # Notification ids to mark read.
    ids: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] | None = None
    # True marks every notification read.
    all_: bool | None = Field(default=None, alias="all")

    @model_validator(mode="after")
    def _ids_or_all(self) -> NotificationReadRequest:
        if (self.ids is None) == (self.all_ is None):
            raise ValueError("exactly one of 'ids' and 'all' is required")
        return self


class Ping(ClientFrame):
    """Application-level ping; answered with pong."""

    type: Literal["ping"]


AnyClientFrame = Annotated[
    MessageSend | Receipt | Typing | PresenceSet | Sync | NotificationReadRequest | Ping,
    Field(discriminator="type"),
]
#: Validates one client frame from raw JSON text.
CLIENT_FRAME = TypeAdapter[AnyClientFrame](AnyClientFrame)
CLIENT_FRAME_MODELS: tuple[type[ClientFrame], ...] = (
    MessageSend,
    Receipt,
    Typing,
    PresenceSet,
    Sync,
    NotificationReadRequest,
    Ping,
)
CLIENT_FRAME_TYPES = frozenset(
    ["message.send", "receipt", "typing", "presence.set", "sync", "notification.read", "ping"]
)


class Limits(WireModel):
    """Limits a client must respect, announced in ``hello``."""

    # Largest text frame accepted, in bytes; larger frames close the connection with 1009.
    max_frame_bytes: int
    # Largest message body, in characters.
    max_body_chars: int
    # Sustained frames per second allowed per connection.
    rate_per_s: int


class Hello(WireModel):
    """First frame of every connection."""

    type: Literal["hello"] = "hello"
    # The authenticated user (the token's sub).
    user_id: UserId
    # This connection's id, unique across gateways.
    connection_id: str
    # Interval at which the client should ping, in seconds.
    heartbeat_s: int
    # Server clock, ISO 8601 UTC.
    server_time: datetime
    # Limits in force.
    limits: Limits


class Message(WireModel):
    """A stored message as clients see it."""

    # Server-assigned message id.
    id: str
    # Conversation the message belongs to.
    conversation_id: ConversationId
    # Position of the message in its conversation, from 1.
    seq: int
    # Author.
    sender_id: UserId
    # Message kind.
    kind: Literal["text"]
    # Message text.
    body: str
    # The sender's idempotency key.
    client_msg_id: str
    # When the chat service stored it.
    created_at: datetime


class Ack(WireModel):
    """Successful answer to a client frame that carried an id."""

    type: Literal["ack"] = "ack"
    # The request's id.
    id: RequestId
    # message.send: the stored message.
    message: Message | None = None
    # sync: frames oldest first.
    events: list[dict[str, Any]] | None = None
    # sync: stream -> last seq included (or the request's cursor when nothing new).
    cursor: dict[str, int] | None = None
    # sync: more frames wait beyond this answer.
    has_more: bool | None = None
    # notification.read: unread notifications left.
    unread_count: int | None = None


class Error(WireModel):
    """Failed answer to a client frame, or a report about a malformed one."""

    type: Literal["error"] = "error"
    # The request's id when it had one and it could be read.
    id: str | None = None
    # Machine-readable code.
    code: ErrorCode
    # Human-readable reason; never echoes a message body.
    message: str


class Pong(WireModel):
    """Answer to ping."""

    type: Literal["pong"] = "pong"
    # The ping's id, if it had one.
    id: str | None = None


class MessageNew(WireModel):
    """A new message, to every device of every member (the sender's included)."""

    type: Literal["message.new"] = "message.new"
    # Durable stream name.
    stream: Literal["chat"] = "chat"
    # Per-user position in the chat stream.
    seq: int
    # The message.
    message: Message


class MessageStatus(WireModel):
    """A member's delivered/read watermark moved."""

    type: Literal["message.status"] = "message.status"
    # Durable stream name.
    stream: Literal["chat"] = "chat"
    # Per-user position in the chat stream.
    seq: int
    # Conversation concerned.
    conversation_id: ConversationId
    # Whose watermark moved.
    user_id: UserId
    # Which watermark.
    status: ReceiptStatus
    # Every message up to this conversation seq has that status.
    up_to_seq: int


class TypingEvent(WireModel):
    """Someone types (or stopped) in a shared conversation."""

    type: Literal["typing"] = "typing"
    # Conversation typed in.
    conversation_id: ConversationId
    # Who types.
    user_id: UserId
    # start or stop.
    state: Literal["start", "stop"]


class Presence(WireModel):
    """A user's aggregated status."""

    type: Literal["presence"] = "presence"
    # Whose status.
    user_id: UserId
    # Aggregated status.
    status: PresenceStatus
    # Last time seen online; null when never.
    last_seen: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """As :meth:`WireModel.to_dict`, but ``last_seen`` stays, as null, when unknown."""
        return {**super().to_dict(), "last_seen": self.model_dump(mode="json")["last_seen"]}


class Notification(WireModel):
    """A stored notification."""

    # Notification id.
    id: str
    # new_message, job_alert, application_status, ...
    kind: str
    # Short title.
    title: str
    # Text shown under the title.
    body: str
    # Kind-specific fields (conversation_id, job_id, ...).
    data: dict[str, Any]
    # When it was created.
    created_at: datetime
    # Always false when new.
    read: bool = False


class NotificationNew(WireModel):
    """A new notification."""

    type: Literal["notification.new"] = "notification.new"
    # Durable stream name.
    stream: Literal["notifications"] = "notifications"
    # Per-user position in the notifications stream.
    seq: int
    # The notification.
    notification: Notification
    # Unread notifications after this one.
    unread_count: int


class NotificationReadEvent(WireModel):
    """Notifications were marked read (on any device)."""

    type: Literal["notification.read"] = "notification.read"
    # Durable stream name.
    stream: Literal["notifications"] = "notifications"
    # Per-user position in the notifications stream.
    seq: int
    # Ids marked read (absent when all).
    ids: list[str] | None = None
    # True when everything was marked read.
    all_: bool | None = Field(default=None, alias="all")
    # Unread notifications left.
    unread_count: int


SERVER_FRAMES: tuple[type[WireModel], ...] = (
    Hello,
    Ack,
    Error,
    Pong,
    MessageNew,
    MessageStatus,
    TypingEvent,
    Presence,
    NotificationNew,
    NotificationReadEvent,
)
