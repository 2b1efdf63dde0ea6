"""Applies the commands that change a group: create, add and remove members, set a role, rename.

Each command: lock the conversation (:func:`storage.lock_conversation`), decide with the pure
rules of :mod:`services.chat.domain.groups`, store the new state, then tell everyone concerned:

- a durable ``conversation.updated`` frame (the whole conversation, as each recipient sees it)
  to every member after the change and to every member it removed — their last frame of it;
- ``chat.conversation.updated`` with the whole member list and the conversation's version on
  chat.conversations.v1 (compacted: what presence and the typing relay learn memberships from)
  and on chat.events.v1 (for the notifier). Unpublished older facts of the conversation are
  withdrawn from the outbox first: the new one carries the whole state, and an older one
  published after it (the outbox relay publishes leftovers late) would otherwise become the
  compacted topic's last word.

A change that changes nothing (a resent command) is acknowledged and announces nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from schemas import topics
from schemas.envelope import Envelope
from schemas.events import (
    ConversationChanged,
    ConversationCreateCommand,
    ConversationUpdateCommand,
    MembersAddCommand,
    MembersRemoveCommand,
    RoleSetCommand,
)
from schemas.frames import Conversation, ConversationUpdated, Member, Message
from services.chat import storage
from services.chat.domain import groups
from services.chat.domain.errors import ChatError
from services.chat.domain.groups import ConversationState, GroupChange
from services.chat.emit import Emitter
from services.runtime.codec import parse_data
from services.runtime.db import Connection
from services.runtime.kafka import TopicNames
from services.runtime.outbox import OutboundRecord, Outbox

#: The command types this module applies.
COMMAND_TYPES = frozenset(
    {
        topics.CONVERSATION_CREATE,
        topics.MEMBERS_ADD,
        topics.MEMBERS_REMOVE,
        topics.ROLE_SET,
        topics.CONVERSATION_UPDATE,
    }
)

_Command = (
    ConversationCreateCommand
    | MembersAddCommand
    | MembersRemoveCommand
    | RoleSetCommand
    | ConversationUpdateCommand
)


def _parse(envelope: Envelope) -> _Command:
    """The command of an envelope whose type is in :data:`COMMAND_TYPES`.

    Raises:
        RecordRejected: the data does not fit the command.
    """
    kind = envelope.type
    if kind == topics.CONVERSATION_CREATE:
        return parse_data(envelope, ConversationCreateCommand)
    if kind == topics.MEMBERS_ADD:
        return parse_data(envelope, MembersAddCommand)
    if kind == topics.MEMBERS_REMOVE:
        return parse_data(envelope, MembersRemoveCommand)
    if kind == topics.ROLE_SET:
        return parse_data(envelope, RoleSetCommand)
    return parse_data(envelope, ConversationUpdateCommand)


def _decide(command: _Command, state: ConversationState | None, now: datetime) -> GroupChange:
    """The pure decision for ``command``.

    Raises:
        ChatError: the command is refused.
    """
    actor = command.user_id
    if isinstance(command, ConversationCreateCommand):
        return groups.create_group(
            conversation_id=command.conversation_id,
            existing=state,
            creator=actor,
            title=command.title,
            member_ids=command.member_ids,
            now=now,
            resend_safe=command.client_conversation_id is not None,
        )
    if isinstance(command, MembersAddCommand):
        return groups.add_members(state, actor=actor, user_ids=command.user_ids, now=now)
    if isinstance(command, MembersRemoveCommand):
        return groups.remove_member(state, actor=actor, member_id=command.member_id)
    if isinstance(command, RoleSetCommand):
        return groups.set_role(state, actor=actor, member_id=command.member_id, role=command.role)
    return groups.rename(state, actor=actor, title=command.title)


def conversation_for(
    state: ConversationState, *, last_message: Message | None, unread_count: int
) -> Conversation:
    """The wire conversation of ``state`` as one member sees it."""
    return Conversation(
        id=state.id,
        kind=state.kind,
        title=state.title,
        members=[Member(user_id=m.user_id, role=m.role) for m in state.members],
        created_at=state.created_at,
        last_message=last_message,
        unread_count=unread_count,
    )


class ConversationCommands:
    """Applies group commands inside the consumer's transaction.

    Args:
        emit: stages answers, frames and facts.
        topic_names: topics of this deployment.
        outbox: where superseded facts are withdrawn from.
        now: the clock.
    """

    def __init__(
        self,
        *,
        emit: Emitter,
        topic_names: TopicNames,
        outbox: Outbox,
        now: Callable[[], datetime],
    ) -> None:
        self._emit = emit
        self._topics = topic_names
        self._outbox = outbox
        self._now = now

    async def apply(self, conn: Connection, envelope: Envelope, out: list[OutboundRecord]) -> None:
        """Apply one group command.

        Raises:
            RecordRejected: the data does not fit the command (the record is dead-lettered).
        """
        command = _parse(envelope)
        origin = envelope.time
        locked = await storage.lock_conversation(conn, command.conversation_id)
        state, last_seq = locked if locked is not None else (None, 0)
        try:
            change = _decide(command, state, self._now())
        except ChatError as exc:
            self._emit.refuse(out, command.user_id, command.reply_to, origin, exc)
            return
        mine: Conversation | None = None
        if change.changed:
            await storage.store_conversation(conn, change.state, last_seq=last_seq)
            mine = await self._announce(conn, change, last_seq, command.user_id, origin, out)
        elif isinstance(command, ConversationCreateCommand):
            # A resend of a creation that was applied: answered with the group as it is now.
            mine = await self._view(conn, change.state, last_seq, command.user_id)
        # A creation's ack carries the group (protocol part 2); other changes a plain ack.
        created = mine if isinstance(command, ConversationCreateCommand) else None
        self._emit.ack(out, command.user_id, command.reply_to, origin, conversation=created)

    async def _view(
        self, conn: Connection, state: ConversationState, last_seq: int, user: str
    ) -> Conversation:
        """The conversation as ``user`` sees it, read in this transaction."""
        last, unread = await storage.conversation_view(
            conn, state.id, last_seq=last_seq, user_ids=(user,)
        )
        return conversation_for(state, last_message=last, unread_count=unread.get(user, 0))

    async def _announce(
        self,
        conn: Connection,
        change: GroupChange,
        last_seq: int,
        actor: str,
        origin: datetime,
        out: list[OutboundRecord],
    ) -> Conversation | None:
        """Store and stage a ``conversation.updated`` for every member concerned, and the fact.

        Returns:
            The conversation as the actor sees it (None when the actor is not told: never, as
            the actor is a member or has just left).
        """
        state = change.state
        audience = change.audience
        last, unread = await storage.conversation_view(
            conn, state.id, last_seq=last_seq, user_ids=audience
        )
        # A removed member is no longer counted: nothing of it is unread for them.
        views = {
            user: conversation_for(state, last_message=last, unread_count=unread.get(user, 0))
            for user in audience
        }
        await self._emit.append_and_deliver(
            conn,
            audience,
            lambda user, seq: ConversationUpdated(seq=seq, conversation=views[user]).to_wire(),
            origin,
            out,
            message_id=None if last is None else last.id,
        )
        fact = ConversationChanged(
            conversation_id=state.id,
            kind=state.kind,
            title=state.title,
            version=state.version,
            member_ids=state.member_ids,
            admin_ids=state.admin_ids,
            added_ids=list(change.added),
            removed_ids=list(change.removed),
        ).to_wire()
        await self._outbox.withdraw(conn, topic=self._topics.chat_conversations, key=state.id)
        for topic in (self._topics.chat_conversations, self._topics.chat_events):
            out.append(self._emit.fact(topic, topics.CONVERSATION_UPDATED, state.id, fact))
        return views.get(actor)
