"""What the gateway hands on to other services: each client frame that is a command, and the
gateway's own connection events, as a topic, a key and data. Pure (ids are injected).

Every change to a conversation goes to chat.commands.v1 keyed by its id, so one
conversation's messages, membership changes and message changes apply in the order they were
accepted. A new group has no id yet: the gateway mints one (``grp_`` + a random id) so that its
creation is keyed like every later change of the group.

The routing table (:mod:`services.gateway.routes`) says which frame type is built by which
function here; :class:`services.gateway.publisher.CommandPublisher` publishes the result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from schemas import topics
from schemas.base import WireModel
from schemas.events import (
    ConnectionEnded,
    ConnectionOpened,
    ConversationCreateCommand,
    ConversationMuteCommand,
    ConversationUpdateCommand,
    GatewayHeartbeat,
    MembersAddCommand,
    MembersRemoveCommand,
    MessageDeleteCommand,
    MessageEditCommand,
    MessageSendCommand,
    NotificationPrefsSetCommand,
    NotificationReadCommand,
    PushSubscribeCommand,
    PushUnsubscribeCommand,
    ReactionSetCommand,
    ReceiptCommand,
    ReplyTo,
    RoleSetCommand,
    StatusSet,
    TypingCommand,
)
from schemas.frames import (
    ConversationCreate,
    ConversationMembersAdd,
    ConversationMembersRemove,
    ConversationMute,
    ConversationRoleSet,
    ConversationUpdate,
    MessageDelete,
    MessageEdit,
    MessageSend,
    NotificationPrefsSet,
    NotificationReadRequest,
    PresenceSet,
    PushSubscribe,
    PushUnsubscribe,
    ReactionSet,
    Receipt,
    Typing,
)
from schemas.ids import direct_conversation_id

#: Prefix of group ids (direct conversations have ``dm_``).
GROUP_PREFIX = "grp_"


def group_id_for(creator: str, client_conversation_id: str) -> str:
    """32 hex digits naming the group ``creator`` creates under its own id for it: the same
    pair always gives the same group, two creators never share one (the creator is hashed in,
    prefixed by its length so that no two pairs hash the same text)."""
    digest = hashlib.sha256(f"{len(creator)}:{creator}{client_conversation_id}".encode())
    return digest.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Requester:
    """Who sent a frame: the authenticated user, on which connection of which gateway."""

    user_id: str
    connection_id: str
    gateway_id: str

    def reply_to(self, request_id: str | None) -> ReplyTo:
        """Where the answer to the frame goes (none is sent when it had no id)."""
        return ReplyTo(
            gateway_id=self.gateway_id, connection_id=self.connection_id, request_id=request_id
        )


@dataclass(frozen=True, slots=True)
class Command:
    """A record for the service that applies it.

    Attributes:
        topic: the topic's name without the deployment's prefix (:mod:`schemas.topics`).
        event_type: the CloudEvents type.
        key: the record key: what must be applied in order (a conversation, a user).
        data: the event's data.
    """

    topic: str
    event_type: str
    key: str
    data: WireModel


def message_send(frame: MessageSend, sender: Requester) -> Command:
    """``chat.message.send``, keyed by conversation: a direct message's id is derived from the
    pair here (and checked again by chat)."""
    conversation_id = (
        direct_conversation_id(sender.user_id, frame.to)
        if frame.to is not None
        else frame.conversation_id
    )
    assert conversation_id is not None  # MessageSend guarantees one of the two
    command = MessageSendCommand(
        sender_id=sender.user_id,
        reply_to=sender.reply_to(frame.id),
        to=frame.to,
        conversation_id=conversation_id,
        client_msg_id=frame.client_msg_id,
        kind=frame.kind,
        body=frame.body,
        reply_to_message_id=frame.reply_to,
    )
    return Command(topics.CHAT_COMMANDS, topics.MESSAGE_SEND, conversation_id, command)


def conversation_create(
    frame: ConversationCreate, sender: Requester, *, new_id: Callable[[], str]
) -> Command:
    """``chat.conversation.create``, keyed by the id minted here for the new group: derived from
    the creator and the client's ``client_conversation_id`` when it gave one (so that a resend,
    through any gateway, names the same group), random otherwise."""
    conversation_id = GROUP_PREFIX + (
        new_id()
        if frame.client_conversation_id is None
        else group_id_for(sender.user_id, frame.client_conversation_id)
    )
    command = ConversationCreateCommand(
        user_id=sender.user_id,
        reply_to=sender.reply_to(frame.id),
        conversation_id=conversation_id,
        title=frame.title,
        member_ids=frame.members,
        client_conversation_id=frame.client_conversation_id,
    )
    return Command(topics.CHAT_COMMANDS, topics.CONVERSATION_CREATE, conversation_id, command)


def members_add(frame: ConversationMembersAdd, sender: Requester) -> Command:
    """``chat.members.add``, keyed by conversation."""
    command = MembersAddCommand(
        user_id=sender.user_id,
        reply_to=sender.reply_to(frame.id),
        conversation_id=frame.conversation_id,
        user_ids=frame.user_ids,
    )
    return Command(topics.CHAT_COMMANDS, topics.MEMBERS_ADD, frame.conversation_id, command)


def members_remove(frame: ConversationMembersRemove, sender: Requester) -> Command:
    """``chat.members.remove`` (or leave), keyed by conversation."""
    command = MembersRemoveCommand(
        user_id=sender.user_id,
        reply_to=sender.reply_to(frame.id),
        conversation_id=frame.conversation_id,
        member_id=frame.user_id,
    )
    return Command(topics.CHAT_COMMANDS, topics.MEMBERS_REMOVE, frame.conversation_id, command)


def role_set(frame: ConversationRoleSet, sender: Requester) -> Command:
    """``chat.role.set``, keyed by conversation."""
    command = RoleSetCommand(
        user_id=sender.user_id,
        reply_to=sender.reply_to(frame.id),
        conversation_id=frame.conversation_id,
        member_id=frame.user_id,
        role=frame.role,
    )
    return Command(topics.CHAT_COMMANDS, topics.ROLE_SET, frame.conversation_id, command)


def conversation_update(frame: ConversationUpdate, sender: Requester) -> Command:
    """``chat.conversation.update`` (rename), keyed by conversation."""
    command = ConversationUpdateCommand(
        user_id=sender.user_id,
        reply_to=sender.reply_to(frame.id),
        conversation_id=frame.conversation_id,
        title=frame.title,
    )
    return Command(topics.CHAT_COMMANDS, topics.CONVERSATION_UPDATE, frame.conversation_id, command)


def message_edit(frame: MessageEdit, sender: Requester) -> Command:
    """``chat.message.edit``, keyed by conversation."""
    command = MessageEditCommand(
        user_id=sender.user_id,
        reply_to=sender.reply_to(frame.id),
        conversation_id=frame.conversation_id,
        message_id=frame.message_id,
        body=frame.body,
    )
    return Command(topics.CHAT_COMMANDS, topics.MESSAGE_EDIT, frame.conversation_id, command)


def message_delete(frame: MessageDelete, sender: Requester) -> Command:
    """``chat.message.delete``, keyed by conversation."""
    command = MessageDeleteCommand(
        user_id=sender.user_id,
        reply_to=sender.reply_to(frame.id),
        conversation_id=frame.conversation_id,
        message_id=frame.message_id,
    )
    return Command(topics.CHAT_COMMANDS, topics.MESSAGE_DELETE, frame.conversation_id, command)


def reaction_set(frame: ReactionSet, sender: Requester) -> Command:
    """``chat.reaction.set``, keyed by conversation."""
    command = ReactionSetCommand(
        user_id=sender.user_id,
        reply_to=sender.reply_to(frame.id),
        conversation_id=frame.conversation_id,
        message_id=frame.message_id,
        emoji=frame.emoji,
        on=frame.on,
    )
    return Command(topics.CHAT_COMMANDS, topics.REACTION_SET, frame.conversation_id, command)


def receipt(frame: Receipt, sender: Requester) -> Command:
    """``chat.receipt.post``, keyed by conversation."""
    command = ReceiptCommand(
        user_id=sender.user_id,
        reply_to=sender.reply_to(frame.id),
        conversation_id=frame.conversation_id,
        seq=frame.seq,
        status=frame.status,
    )
    return Command(topics.CHAT_COMMANDS, topics.RECEIPT_POST, frame.conversation_id, command)


def status_set(frame: PresenceSet, sender: Requester) -> Command:
    """``presence.status.set``, keyed by user (answered by the presence service)."""
    command = StatusSet(
        user_id=sender.user_id, status=frame.status, reply_to=sender.reply_to(frame.id)
    )
    return Command(topics.PRESENCE_COMMANDS, topics.STATUS_SET, sender.user_id, command)


def typing(frame: Typing, sender: Requester) -> Command:
    """``presence.typing``, keyed by conversation (answered, when it has an id, by presence)."""
    command = TypingCommand(
        user_id=sender.user_id,
        conversation_id=frame.conversation_id,
        state=frame.state,
        reply_to=sender.reply_to(frame.id),
    )
    return Command(topics.PRESENCE_TYPING, topics.TYPING, frame.conversation_id, command)


def notification_read(frame: NotificationReadRequest, sender: Requester) -> Command:
    """``notifier.notification.read``, keyed by user (every change of a user's notifications
    from a client is applied in order; answered by the notifier)."""
    command = NotificationReadCommand(
        user_id=sender.user_id, reply_to=sender.reply_to(frame.id), ids=frame.ids, all_=frame.all_
    )
    return Command(topics.NOTIFIER_COMMANDS, topics.NOTIFICATION_READ, sender.user_id, command)


def prefs_set(frame: NotificationPrefsSet, sender: Requester) -> Command:
    """``notifier.prefs.set``, keyed by user."""
    command = NotificationPrefsSetCommand(
        user_id=sender.user_id,
        reply_to=sender.reply_to(frame.id),
        kind=frame.kind,
        in_app=frame.in_app,
        push=frame.push,
    )
    return Command(topics.NOTIFIER_COMMANDS, topics.PREFS_SET, sender.user_id, command)


def conversation_mute(frame: ConversationMute, sender: Requester) -> Command:
    """``notifier.conversation.mute``, keyed by user."""
    command = ConversationMuteCommand(
        user_id=sender.user_id,
        reply_to=sender.reply_to(frame.id),
        conversation_id=frame.conversation_id,
        muted=frame.muted,
    )
    return Command(topics.NOTIFIER_COMMANDS, topics.CONVERSATION_MUTE, sender.user_id, command)


def push_subscribe(frame: PushSubscribe, sender: Requester) -> Command:
    """``notifier.push.subscribe``, keyed by user (the notifier checks the keys and the
    endpoint's host, and answers)."""
    command = PushSubscribeCommand(
        user_id=sender.user_id,
        reply_to=sender.reply_to(frame.id),
        subscription=frame.subscription.model_dump(mode="json"),
    )
    return Command(topics.NOTIFIER_COMMANDS, topics.PUSH_SUBSCRIBE, sender.user_id, command)


def push_unsubscribe(frame: PushUnsubscribe, sender: Requester) -> Command:
    """``notifier.push.unsubscribe``, keyed by user."""
    command = PushUnsubscribeCommand(
        user_id=sender.user_id, reply_to=sender.reply_to(frame.id), endpoint=frame.endpoint
    )
    return Command(topics.NOTIFIER_COMMANDS, topics.PUSH_UNSUBSCRIBE, sender.user_id, command)


def connection_opened(connection: Requester) -> Command:
    """A device connected to this gateway (for presence), keyed by user."""
    return _connection_event(ConnectionOpened, topics.CONNECTION_OPENED, connection)


def connection_closed(connection: Requester) -> Command:
    """A device disconnected from this gateway (for presence), keyed by user."""
    return _connection_event(ConnectionEnded, topics.CONNECTION_CLOSED, connection)


def _connection_event(
    model: type[ConnectionOpened | ConnectionEnded], event_type: str, connection: Requester
) -> Command:
    event = model(
        user_id=connection.user_id,
        connection_id=connection.connection_id,
        gateway_id=connection.gateway_id,
    )
    return Command(topics.PRESENCE_COMMANDS, event_type, connection.user_id, event)


def heartbeat(gateway_id: str, *, connections: int) -> Command:
    """This gateway is alive and holds ``connections``, keyed by gateway."""
    event = GatewayHeartbeat(gateway_id=gateway_id, connections=connections)
    return Command(topics.PRESENCE_COMMANDS, topics.GATEWAY_HEARTBEAT, gateway_id, event)
