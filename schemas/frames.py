"""Frames of client protocol v1 (shared/protocol.md): what browsers send and receive.

Client frames are parsed strictly (a string where an integer belongs is an error, never coerced)
but unknown *fields* are ignored, so a newer client talking to an older gateway still works;
unknown frame *types* are errors. Server frames are built by services and forbid extras.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    TypeAdapter,
    model_serializer,
    model_validator,
)

from schemas.base import ConversationId, RequestId, UserId, WireModel

#: Upper bound of ``body`` the schema accepts; the gateway may configure a lower one.
MAX_BODY_CHARS = 4000
#: Upper bound of the ``limit`` of one ``sync`` answer.
MAX_SYNC_LIMIT = 1000
#: Members of one group at most, the creator included.
MAX_GROUP_MEMBERS = 256
#: Longest group title, in characters.
MAX_TITLE_CHARS = 200
#: Longest reaction emoji, in characters (code points: a flag or a skin tone takes several).
MAX_EMOJI_CHARS = 16
#: Distinct emoji on one message at most.
MAX_REACTION_KINDS = 32
#: Longest search query, in characters.
MAX_QUERY_CHARS = 200
#: Page sizes: (default, maximum) of conversations.list, history and search.
CONVERSATIONS_PAGE = (30, 100)
HISTORY_PAGE = (50, 200)
SEARCH_PAGE = (20, 50)
#: Most notification ids one ``notification.read`` may name.
MAX_READ_IDS = 500
#: Upper bound and default of the ``limit`` of one ``notifications.list`` answer.
MAX_NOTIFICATIONS_LIMIT = 100
DEFAULT_NOTIFICATIONS_LIMIT = 50
#: Longest push endpoint accepted (browsers' are a few hundred characters).
MAX_ENDPOINT_CHARS = 2048

ClientMsgId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
#: Message ids are server-made (32 hex digits); clients only send back ids they were given.
MessageId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TITLE_CHARS)]
Emoji = Annotated[str, StringConstraints(min_length=1, max_length=MAX_EMOJI_CHARS)]
Body = Annotated[str, StringConstraints(min_length=1, max_length=MAX_BODY_CHARS)]
Role = Literal["admin", "member"]
ConversationKind = Literal["direct", "group"]
StreamName = Annotated[str, StringConstraints(min_length=1, max_length=32)]
NotificationId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
#: The kinds of notification a user can set preferences for (more may be added).
NotificationKind = Literal["message", "job_alert", "application_status"]
NOTIFICATION_KINDS: tuple[NotificationKind, ...] = ("message", "job_alert", "application_status")
PushEndpoint = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ENDPOINT_CHARS)]
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
    body: Body
    # A message of the same conversation this one answers.
    reply_to: MessageId | None = None

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
    # Notification ids to mark read (1..500); ids that are not the user's are ignored.
    ids: Annotated[list[NotificationId], Field(min_length=1, max_length=MAX_READ_IDS)] | None = None
    # True marks every notification read.
    all_: bool | None = Field(default=None, alias="all")

    @model_validator(mode="after")
    def _ids_or_all(self) -> NotificationReadRequest:
        if (self.ids is None) == (self.all_ is None):
            raise ValueError("exactly one of 'ids' and 'all' is required")
        return self


class ConversationCreate(ClientFrame):
    """Create a group; the creator is its first admin."""

    type: Literal["conversation.create"]
    # Only groups are created explicitly (a direct conversation starts with its first message).
    kind: Literal["group"]
    # The group's name.
    title: Title
    # The other members (the creator is added anyway).
    members: Annotated[list[UserId], Field(min_length=1, max_length=MAX_GROUP_MEMBERS - 1)]
    # The client's own id for this group (a fresh UUID per group), as client_msg_id is for a
    # message: a resend with the same one creates nothing more and is answered with the group
    # created the first time. Without it, every create makes a new group.
    client_conversation_id: ClientMsgId | None = None


class ConversationMembersAdd(ClientFrame):
    """Add members to a group (admins only)."""

    type: Literal["conversation.members.add"]
    # The group.
    conversation_id: ConversationId
    # Users to add; those already members are left as they are.
    user_ids: Annotated[list[UserId], Field(min_length=1, max_length=MAX_GROUP_MEMBERS - 1)]


class ConversationMembersRemove(ClientFrame):
    """Remove a member from a group (admins), or leave it (anyone, naming themself)."""

    type: Literal["conversation.members.remove"]
    # The group.
    conversation_id: ConversationId
    # Who leaves.
    user_id: UserId


class ConversationRoleSet(ClientFrame):
    """Make a member an admin, or an admin a plain member (admins only)."""

    type: Literal["conversation.role.set"]
    # The group.
    conversation_id: ConversationId
    # Whose role changes.
    user_id: UserId
    # The new role.
    role: Role


class ConversationUpdate(ClientFrame):
    """Rename a group (admins only)."""

    type: Literal["conversation.update"]
    # The group.
    conversation_id: ConversationId
    # The new name.
    title: Title


class ConversationsList(ClientFrame):
    """A page of the user's conversations, latest activity first."""

    type: Literal["conversations.list"]
    # Opaque cursor from the previous answer; absent for the first page.
    before: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None
    # Conversations per page; the server's default (30) when absent.
    limit: Annotated[int, Field(ge=1, le=CONVERSATIONS_PAGE[1])] | None = None


class History(ClientFrame):
    """A page of a conversation's messages, newest first, in their current state."""

    type: Literal["history"]
    # The conversation.
    conversation_id: ConversationId
    # Only messages with a lower seq (exclusive); the newest when absent.
    before_seq: Annotated[int, Field(ge=1)] | None = None
    # Messages per page; the server's default (50) when absent.
    limit: Annotated[int, Field(ge=1, le=HISTORY_PAGE[1])] | None = None


class MessageEdit(ClientFrame):
    """Replace the text of one's own message."""

    type: Literal["message.edit"]
    # The message's conversation.
    conversation_id: ConversationId
    # The message.
    message_id: MessageId
    # The new text; the gateway also enforces its configured max_body_chars.
    body: Body


class MessageDelete(ClientFrame):
    """Delete a message (its sender, or an admin of the group): the text is erased."""

    type: Literal["message.delete"]
    # The message's conversation.
    conversation_id: ConversationId
    # The message.
    message_id: MessageId


class ReactionSet(ClientFrame):
    """Put a reaction on a message, or take it back."""

    type: Literal["reaction.set"]
    # The message's conversation.
    conversation_id: ConversationId
    # The message.
    message_id: MessageId
    # The reaction.
    emoji: Emoji
    # True puts it on, false takes it back; either is a no-op when already so.
    on: bool


class Search(ClientFrame):
    """Full-text search over the messages of the user's conversations, best match first."""

    type: Literal["search"]
    # Words, "quoted phrases", -excluded words, or (web search syntax).
    query: Annotated[str, StringConstraints(min_length=1, max_length=MAX_QUERY_CHARS)]
    # Only this conversation; all of the user's when absent.
    conversation_id: ConversationId | None = None
    # Messages per answer; the server's default (20) when absent.
    limit: Annotated[int, Field(ge=1, le=SEARCH_PAGE[1])] | None = None


class NotificationsList(ClientFrame):
    """The bell: the user's notifications, newest first, a page at a time."""

    type: Literal["notifications.list"]
    # Only notifications older than this one (the last of the previous page).
    before: NotificationId | None = None
    # Most notifications in the answer (default 50).
    limit: Annotated[int, Field(ge=1, le=MAX_NOTIFICATIONS_LIMIT)] | None = None
    # Only unread notifications.
    unread_only: bool | None = None


class NotificationPrefsGet(ClientFrame):
    """Read the user's notification preferences."""

    type: Literal["notification.prefs.get"]


class NotificationPrefsSet(ClientFrame):
    """Turn in-app notifications and Web Push of one kind on or off."""

    type: Literal["notification.prefs.set"]
    # The kind of notification concerned.
    kind: NotificationKind
    # False: no notification of this kind is stored or pushed.
    in_app: bool | None = None
    # False: notifications of this kind are not pushed.
    push: bool | None = None


class ConversationMute(ClientFrame):
    """Mute or unmute a conversation: a muted one makes no notification and no push."""

    type: Literal["conversation.mute"]
    # The conversation.
    conversation_id: ConversationId
    # True mutes, false unmutes.
    muted: bool


class PushSubscriptionKeys(BaseModel):
    """``keys`` of a browser's PushSubscription."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    # The browser's ECDH public key (base64url, 65-byte uncompressed P-256 point).
    p256dh: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    # The 16-byte authentication secret (base64url).
    auth: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class PushSubscriptionJson(BaseModel):
    """A browser's ``PushSubscription.toJSON()``."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    # The push resource URL (must be on the notifier's allow-list of push services).
    endpoint: PushEndpoint
    # When the subscription ends (milliseconds since the epoch), or null; the browser's name.
    expirationTime: Annotated[float, Field(ge=0)] | None = None
    # The subscription's keys.
    keys: PushSubscriptionKeys


class PushSubscribe(ClientFrame):
    """Store a Web Push subscription for this user (the same endpoint again updates it)."""

    type: Literal["push.subscribe"]
    # The browser's subscription.
    subscription: PushSubscriptionJson


class PushUnsubscribe(ClientFrame):
    """Forget one of the user's Web Push subscriptions."""

    type: Literal["push.unsubscribe"]
    # The subscription's endpoint.
    endpoint: PushEndpoint


class Ping(ClientFrame):
    """Application-level ping; answered with pong."""

    type: Literal["ping"]


AnyClientFrame = Annotated[
    MessageSend
    | Receipt
    | Typing
    | PresenceSet
    | Sync
    | NotificationReadRequest
    | Ping
    | ConversationCreate
    | ConversationMembersAdd
    | ConversationMembersRemove
    | ConversationRoleSet
    | ConversationUpdate
    | ConversationsList
    | History
    | MessageEdit
    | MessageDelete
    | ReactionSet
    | Search
    | NotificationsList
    | NotificationPrefsGet
    | NotificationPrefsSet
    | ConversationMute
    | PushSubscribe
    | PushUnsubscribe,
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
    NotificationsList,
    NotificationPrefsGet,
    NotificationPrefsSet,
    ConversationMute,
    PushSubscribe,
    PushUnsubscribe,
    Ping,
    ConversationCreate,
    ConversationMembersAdd,
    ConversationMembersRemove,
    ConversationRoleSet,
    ConversationUpdate,
    ConversationsList,
    History,
    MessageEdit,
    MessageDelete,
    ReactionSet,
    Search,
)
CLIENT_FRAME_TYPES: frozenset[str] = frozenset(
    get_args(model.model_fields["type"].annotation)[0] for model in CLIENT_FRAME_MODELS
)
#: Objects nested in client frames (their field names may appear in error messages).
CLIENT_FRAME_PARTS: tuple[type[BaseModel], ...] = (PushSubscriptionJson, PushSubscriptionKeys)


class Limits(WireModel):
    """Limits a client must respect, announced in ``hello``."""

    # Largest text frame accepted, in bytes; larger frames close the connection with 1009.
    max_frame_bytes: int
    # Largest message body, in characters.
    max_body_chars: int
    # Sustained frames per second allowed per connection.
    rate_per_s: int
    # Members of a group at most, the creator included.
    max_group_members: int | None = None
    # Longest group title, in characters.
    max_title_chars: int | None = None
    # Longest reaction emoji, in characters (Unicode code points).
    max_emoji_chars: int | None = None
    # Distinct emoji on one message at most.
    max_reaction_kinds: int | None = None
    # Longest search query, in characters.
    max_query_chars: int | None = None
    # Largest ``limit`` of conversations.list, history and search.
    max_conversations_page: int | None = None
    max_history_page: int | None = None
    max_search_page: int | None = None


class HelloPush(WireModel):
    """How a client subscribes to Web Push on this deployment."""

    # The application server key for ``pushManager.subscribe`` (base64url, uncompressed P-256).
    vapid_public_key: str


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
    # Client frame types this server answers, sorted: a client uses a feature when its type is
    # listed instead of probing it (an unknown type is answered bad_request).
    features: list[str] | None = None
    # Limits in force.
    limits: Limits
    # Present when Web Push is configured.
    push: HelloPush | None = None


class Message(WireModel):
    """A stored message as clients see it, in its current state.

    The fields of rich messages (``edited_at``, ``deleted``, ``reply_to``, ``reactions``) are
    left out of the wire while they hold their default (null, false, null, empty): a client
    reads an absent one as its default, which is also how it reads frames stored before they
    existed, and a plain message keeps exactly the shape it always had.
    """

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
    # When the text was last edited; null when never.
    edited_at: datetime | None = None
    # True once deleted: the body is then empty, erased from storage.
    deleted: bool = False
    # The message of the same conversation this one answers.
    reply_to: str | None = None
    # Emoji -> users who reacted with it, in the order they did.
    reactions: dict[str, list[UserId]] = Field(default_factory=dict)

    @model_serializer(mode="wrap")
    def _leave_out_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not data.get("deleted", True):
            del data["deleted"]
        if not data.get("reactions", True):
            del data["reactions"]
        return data


class Member(WireModel):
    """A member of a conversation."""

    # The member.
    user_id: UserId
    # admin (may change a group) or member; every member of a direct conversation is a member.
    role: Role


class Conversation(WireModel):
    """A conversation as one member sees it.

    ``last_message`` is always on the wire (null when there is none); ``title`` only for groups.
    """

    # Conversation id (``dm_…`` for direct ones).
    id: ConversationId
    # direct (two users, unchangeable) or group.
    kind: ConversationKind
    # A group's name; absent for a direct conversation.
    title: str | None = None
    # Every member, longest-standing first.
    members: list[Member]
    # When it was created.
    created_at: datetime
    # The latest message in its current state; null when there is none.
    last_message: Message | None = None
    # Messages of others after this member's read watermark, deleted ones excluded.
    unread_count: int

    @model_serializer(mode="wrap")
    def _keep_null_last_message(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        data.setdefault("last_message", None)
        return data


class Notification(WireModel):
    """A stored notification."""

    # Notification id.
    id: str
    # message, job_alert, application_status (more may be added).
    kind: str
    # Short title.
    title: str
    # Text shown under the title.
    body: str
    # Kind-specific fields (conversation_id, job_id, ...).
    data: dict[str, Any]
    # When it was created (an update in place keeps it).
    created_at: datetime
    # Whether it was read (always false in notification.new).
    read: bool = False


class KindPrefs(WireModel):
    """A user's preferences for one kind of notification."""

    # False: no notification of the kind is stored or pushed.
    in_app: bool = True
    # False: notifications of the kind are not pushed.
    push: bool = True


class NotificationPrefs(WireModel):
    """Every notification preference of a user (defaults: everything on, nothing muted)."""

    message: KindPrefs = KindPrefs()
    job_alert: KindPrefs = KindPrefs()
    application_status: KindPrefs = KindPrefs()
    # Conversations that make no notification, in id order.
    muted_conversations: list[ConversationId] = Field(default_factory=list)


class Ack(WireModel):
    """Successful answer to a client frame that carried an id."""

    type: Literal["ack"] = "ack"
    # The request's id.
    id: RequestId
    # message.send, message.edit: the stored message.
    message: Message | None = None
    # sync: frames oldest first.
    events: list[dict[str, Any]] | None = None
    # sync: stream -> last seq included (or the request's cursor when nothing new);
    # conversations.list: the opaque cursor of the next page (``before``).
    cursor: dict[str, int] | str | None = None
    # sync, conversations.list, history: more wait beyond this answer.
    has_more: bool | None = None
    # conversation.create: the new group.
    conversation: Conversation | None = None
    # conversations.list: latest activity first.
    conversations: list[Conversation] | None = None
    # history: newest first; search: best match first.
    messages: list[Message] | None = None
    # notification.read, notifications.list: unread notifications (after the read).
    unread_count: int | None = None
    # notifications.list: the page, newest first, each with its read flag.
    notifications: list[Notification] | None = None
    # notification.prefs.get / notification.prefs.set: every preference of the user.
    prefs: NotificationPrefs | None = None


class Error(WireModel):
    """Failed answer to a client frame, or a report about a malformed one."""

    type: Literal["error"] = "error"
    # The request's id when it had one and it could be read.
    id: str | None = None
    # Machine-readable code.
    code: ErrorCode
    # Human-readable reason; never echoes a message body.
    message: str
    # With ``unavailable``: how long to wait before sending the frame again (milliseconds),
    # e.g. from a gateway that refuses commands while the system is behind.
    retry_after_ms: int | None = Field(default=None, ge=0)


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


class MessageUpdated(WireModel):
    """A message was edited, deleted or reacted to: its whole current state, to every member.

    It supersedes the message's ``message.new`` (and any earlier ``message.updated``), which
    keep their seqs; a deletion also rewrites those stored frames (``deleted``, empty body).
    """

    type: Literal["message.updated"] = "message.updated"
    # Durable stream name.
    stream: Literal["chat"] = "chat"
    # Per-user position in the chat stream.
    seq: int
    # The message, changes applied.
    message: Message


class ConversationUpdated(WireModel):
    """A group was created or changed (members, roles, title): the whole conversation, to every
    member and to a member just removed (whose last frame of the conversation it is)."""

    type: Literal["conversation.updated"] = "conversation.updated"
    # Durable stream name.
    stream: Literal["chat"] = "chat"
    # Per-user position in the chat stream.
    seq: int
    # The conversation after the change, as the recipient sees it.
    conversation: Conversation


class MessageStatus(WireModel):
    """A member's delivered/read watermark moved: sent to the other members, and a ``read``
    also to the reader's own devices (``user_id`` is then the recipient itself)."""

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
    MessageUpdated,
    ConversationUpdated,
)
