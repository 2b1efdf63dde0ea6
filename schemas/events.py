"""``data`` of each event type (see :mod:`schemas.topics` for which topic carries which)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from schemas.base import ConversationId, RequestId, UserId, WireModel
from schemas.frames import (
    MAX_GROUP_MEMBERS,
    MAX_READ_IDS,
    ClientMsgId,
    ConversationKind,
    Emoji,
    Message,
    MessageId,
    NotificationId,
    NotificationKind,
    PresenceStatus,
    PushEndpoint,
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
    # The new group's id, minted by the gateway (so the command can be keyed by it): derived
    # from the creator and client_conversation_id when the client gave one, else random.
    conversation_id: ConversationId
    # The group's name.
    title: Title
    # The other members.
    member_ids: Annotated[list[UserId], Field(min_length=1, max_length=MAX_GROUP_MEMBERS - 1)]
    # The client's id for the group: set, an existing group of this id is this creator's resend
    # (answered with the group), not a conflict.
    client_conversation_id: ClientMsgId | None = None


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


#: Message ids in one ``chat.messages.erased`` fact at most: a user with more messages in one
#: conversation makes several facts (parts), each well under Kafka's record size limit.
MAX_ERASED_PER_FACT = 500


class ErasureRef(WireModel):
    """Which erasure request something was done for: the request's CloudEvent identity."""

    # The request's ``source``.
    source: str
    # The request's ``id``.
    id: str


class MessagesErased(WireModel):
    """data of ``chat.messages.erased`` on chat.events.v1 (key: the conversation): a user was
    erased and these of their messages in this conversation were erased (body gone, sender the
    placeholder). The notifier erases what it kept of them (previews) and of the user."""

    # The conversation.
    conversation_id: ConversationId
    # The erased user.
    user_id: UserId
    # Their messages erased in this conversation (this part of them; possibly none when the
    # user was only a member).
    message_ids: Annotated[list[MessageId], Field(max_length=MAX_ERASED_PER_FACT)]
    # Every member of the conversation now (the erased user no longer among them).
    member_ids: list[UserId]
    # The erasure request this is part of.
    request: ErasureRef
    # Which part of this conversation's facts of that request, from 0.
    part: int


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


class DeliveredFrame(WireModel):
    """One of several frames of a ``delivery.frame`` record."""

    # Only this connection gets it (answers to requests); all of the user's when absent.
    connection_id: str | None = None
    # The server frame, as sent to the client.
    frame: dict[str, Any]
    # When the originating command entered the system, for end-to-end latency.
    origin_time: datetime | None = None


class DeliveryFrame(WireModel):
    """data of ``delivery.frame``: a frame for the devices of one user, or (``frames``) every
    frame a batch had for that user, in order. Exactly one of ``frame`` and ``frames``."""

    # Recipient user; also the record key.
    user_id: UserId
    # Only this connection gets it (answers to requests); all of the user's when absent.
    connection_id: str | None = None
    # The server frame, as sent to the client.
    frame: dict[str, Any] | None = None
    # When the originating command entered the system, for end-to-end latency.
    origin_time: datetime | None = None
    # Several frames for the user, in the order the gateway pushes them.
    frames: list[DeliveredFrame] | None = Field(default=None, min_length=2)

    @model_validator(mode="after")
    def _one_shape(self) -> DeliveryFrame:
        if (self.frame is None) == (self.frames is None):
            raise ValueError("exactly one of frame and frames")
        return self


class DeliveryClose(WireModel):
    """data of ``delivery.close``: close every connection of one user (keyed by the user)."""

    # Whose connections.
    user_id: UserId
    # The WebSocket close code (docs/protocol-notes.md).
    code: int
    # The close reason sent with it (never user data).
    reason: str


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

    # The live gateway process (a restart under the same instance name is another id: the
    # silence of the old one is what makes presence expire its connections).
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


class ConnectivityChanged(WireModel):
    """data of ``presence.connectivity.changed`` (keyed by user, on a compacted topic): a user's
    first device connected, or their last one went away. The notifier pushes to users without
    a live connection."""

    # Whose devices.
    user_id: UserId
    # True: at least one live connection now; false: none.
    connected: bool
    # When presence applied the change; a fact older than one already applied is stale (the
    # outbox relay may publish an older fact after a newer one).
    changed_at: datetime


class ConnectivityErased(WireModel):
    """data of ``presence.connectivity.erased`` (keyed by user, on the compacted
    presence.connectivity.v1): the user was erased; every earlier fact of theirs is void, and
    this one stays as the key's last word."""

    # The erased user.
    user_id: UserId
    # When presence erased them.
    erased_at: datetime


# --- notifier.commands.v1 (keyed by user): client frames the notifier answers ------------------


class NotificationReadCommand(WireModel):
    """data of ``notifier.notification.read``."""

    # Whose notifications (token sub).
    user_id: UserId
    # Where the ack goes.
    reply_to: ReplyTo
    # Notification ids to mark read; the user's own only count.
    ids: Annotated[list[NotificationId], Field(min_length=1, max_length=MAX_READ_IDS)] | None = None
    # True marks every notification of the user read.
    all_: bool | None = Field(default=None, alias="all")


class NotificationPrefsSetCommand(WireModel):
    """data of ``notifier.prefs.set``."""

    # Whose preferences (token sub).
    user_id: UserId
    # Where the ack goes.
    reply_to: ReplyTo
    # The kind concerned.
    kind: NotificationKind
    # New in-app setting, when given.
    in_app: bool | None = None
    # New push setting, when given.
    push: bool | None = None


class ConversationMuteCommand(WireModel):
    """data of ``notifier.conversation.mute``."""

    # Who mutes (token sub).
    user_id: UserId
    # Where the ack goes.
    reply_to: ReplyTo
    # The conversation.
    conversation_id: ConversationId
    # True mutes, false unmutes.
    muted: bool


class PushSubscribeCommand(WireModel):
    """data of ``notifier.push.subscribe``."""

    # Whose subscription (token sub).
    user_id: UserId
    # Where the ack or error goes.
    reply_to: ReplyTo
    # The browser's PushSubscription.toJSON(), shape-checked by the gateway; keys and the
    # endpoint's host are checked by the notifier.
    subscription: dict[str, Any]


class PushUnsubscribeCommand(WireModel):
    """data of ``notifier.push.unsubscribe``."""

    # Whose subscription (token sub).
    user_id: UserId
    # Where the ack goes.
    reply_to: ReplyTo
    # The subscription's endpoint.
    endpoint: PushEndpoint


# --- published by other teams' services (../shared/events.md) ------------------------------------


class PartnerEvent(WireModel):
    """Base of the data other teams publish: frozen, strict about types; fields this version
    does not know are ignored, so a publisher adding one does not dead-letter its events."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


#: Ids other teams' services make (jobs, applications): bounded, never empty.
PartnerId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
#: Text shown to users: bounded, never empty.
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=300)]
ApplicationStatus = Literal[
    "submitted",
    "viewed",
    "shortlisted",
    "interview",
    "offer",
    "hired",
    "rejected",
    "withdrawn",
]
#: Most recipients of one job alert event (events.md).
MAX_ALERT_RECIPIENTS = 1000


class JobAlertMatched(PartnerEvent):
    """data of ``job.alert.matched`` on ``jobs.events.v1`` (key: the job id): a new job matched
    the saved alerts of some users. One ``job_alert`` notification per recipient."""

    # The job.
    job_id: PartnerId
    # The job's title.
    title: ShortText
    # The hiring company.
    company: ShortText | None = None
    # Where the job is.
    location: ShortText | None = None
    # The job's page.
    url: Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=r"^https?://")]
    # Recipients, 1..1000 (a repeated id counts once).
    user_ids: Annotated[list[UserId], Field(min_length=1, max_length=MAX_ALERT_RECIPIENTS)]

    @field_validator("user_ids")
    @classmethod
    def _once_each(cls, user_ids: list[str]) -> list[str]:
        return list(dict.fromkeys(user_ids))


class ApplicationStatusChanged(PartnerEvent):
    """data of ``application.status.changed`` on ``applications.events.v1`` (key: the
    application id). One ``application_status`` notification to the candidate, unless an event
    of the same application with a later (or the same) ``changed_at`` was applied already."""

    # The application.
    application_id: PartnerId
    # The job applied for.
    job_id: PartnerId
    # The job's title.
    job_title: ShortText
    # The candidate (a user id).
    candidate_id: UserId
    # The new status.
    status: ApplicationStatus
    # The status before, when there was one.
    previous_status: ApplicationStatus | None = None
    # When the status changed (with a time zone): orders the events of one application.
    changed_at: AwareDatetime
    # A note for the candidate.
    note: Annotated[str, StringConstraints(max_length=1000)] | None = None


# --- user data erasure (docs/erasure.md) ------------------------------------------------------


class UserErasureRequested(PartnerEvent):
    """data of ``user.erasure.requested`` on ``users.erasure.v1`` (key: the user id): erase
    everything the system holds of the user. Published by ``python -m services.runtime.erasure
    erase-user`` or by the site's own services (either CloudEvents binding, like partner
    events); applying it again changes nothing."""

    # The user to erase (the ``sub`` of their tokens).
    user_id: UserId


class UserErased(WireModel):
    """data of ``user.erased`` on ``users.erased.v1`` (key: the user id): a service applied an
    erasure request, or one step of it, in a committed transaction."""

    # The erased user.
    user_id: UserId
    # The service that reports (``chat``, ``presence``, ``notifier``).
    service: str
    # ``request`` for the request itself; a follow-up step's name otherwise (the notifier's
    # ``messages:<conversation id>:<part>`` for each chat.messages.erased fact).
    step: str
    # The erasure request.
    request: ErasureRef
    # What the step changed, by kind of row or frame (all 0 when there was nothing left).
    changes: dict[str, int]
    # Steps other services report for this request because of this one, by service (chat:
    # the notifier's follow-ups, one per chat.messages.erased fact it published).
    follow_ups: dict[str, int] = Field(default_factory=dict)
