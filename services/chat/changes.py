"""Applies the commands that change a stored message: edit, delete, reaction.

Each command: lock the conversation (membership and roles) and the message, decide with the
pure rules of :mod:`services.chat.domain.edits`, store the message's new state, and tell every
member with a durable ``message.updated`` frame (the whole message) and ``chat.message.updated``
on chat.events.v1. A deletion first rewrites every stored frame that carried the message —
its ``message.new``, earlier ``message.updated`` frames (an edit's text), ``conversation.updated``
frames that showed it as the last message — with its erased state, in place (same users, same
seqs), so no replay shows the text again; the search vector follows the emptied body.

A change that changes nothing (a resent command) is acknowledged and announces nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from schemas import topics
from schemas.envelope import Envelope
from schemas.events import (
    MessageChanged,
    MessageDeleteCommand,
    MessageEditCommand,
    ReactionSetCommand,
)
from schemas.frames import MessageUpdated
from services.chat import storage
from services.chat.domain import edits
from services.chat.domain.edits import MessageChange
from services.chat.domain.errors import ChatError, Forbidden
from services.chat.emit import Emitter
from services.runtime.codec import parse_data
from services.runtime.db import Connection
from services.runtime.kafka import TopicNames
from services.runtime.outbox import OutboundRecord

#: The command types this module applies.
COMMAND_TYPES = frozenset({topics.MESSAGE_EDIT, topics.MESSAGE_DELETE, topics.REACTION_SET})

_Command = MessageEditCommand | MessageDeleteCommand | ReactionSetCommand


def _parse(envelope: Envelope) -> _Command:
    """The command of an envelope whose type is in :data:`COMMAND_TYPES`.

    Raises:
        RecordRejected: the data does not fit the command.
    """
    if envelope.type == topics.MESSAGE_EDIT:
        return parse_data(envelope, MessageEditCommand)
    if envelope.type == topics.MESSAGE_DELETE:
        return parse_data(envelope, MessageDeleteCommand)
    return parse_data(envelope, ReactionSetCommand)


class MessageCommands:
    """Applies message changes inside the consumer's transaction.

    Args:
        emit: stages answers, frames and facts.
        topic_names: topics of this deployment.
        now: the clock.
    """

    def __init__(
        self, *, emit: Emitter, topic_names: TopicNames, now: Callable[[], datetime]
    ) -> None:
        self._emit = emit
        self._topics = topic_names
        self._now = now

    async def apply(self, conn: Connection, envelope: Envelope, out: list[OutboundRecord]) -> None:
        """Apply one message command.

        Raises:
            RecordRejected: the data does not fit the command (the record is dead-lettered).
        """
        command = _parse(envelope)
        origin = envelope.time
        try:
            change, members = await self._decide(conn, command)
        except ChatError as exc:
            self._emit.refuse(out, command.user_id, command.reply_to, origin, exc)
            return
        message = change.message
        if change.change is not None:
            await storage.store_message(conn, message)
            if change.change == "deleted":
                await storage.erase_frames(conn, message)
            await self._emit.append_and_deliver(
                conn,
                members,
                lambda _, seq: MessageUpdated(seq=seq, message=message).to_wire(),
                origin,
                out,
                message_id=message.id,
            )
            fact = MessageChanged(change=change.change, message=message, member_ids=members)
            out.append(
                self._emit.fact(
                    self._topics.chat_events,
                    topics.MESSAGE_UPDATED,
                    message.conversation_id,
                    fact.to_wire(),
                )
            )
        self._emit.ack(out, command.user_id, command.reply_to, origin, message=message)

    async def _decide(self, conn: Connection, command: _Command) -> tuple[MessageChange, list[str]]:
        """Read what the decision needs (locked until commit) and decide.

        Returns:
            The decision and every member of the conversation (id order).

        Raises:
            ChatError: the command is refused.
        """
        locked = await storage.lock_conversation(conn, command.conversation_id)
        state = None if locked is None else locked[0]
        member = None if state is None else state.member(command.user_id)
        if state is None or member is None:
            raise Forbidden("not a member of this conversation")
        message = await storage.lock_message(conn, command.conversation_id, command.message_id)
        if isinstance(command, MessageEditCommand):
            change = edits.edit(
                message,
                conversation_id=command.conversation_id,
                member=member,
                body=command.body,
                now=self._now(),
            )
        elif isinstance(command, MessageDeleteCommand):
            change = edits.delete(
                message,
                conversation_id=command.conversation_id,
                member=member,
                is_group=state.kind == "group",
            )
        else:
            change = edits.react(
                message,
                conversation_id=command.conversation_id,
                member=member,
                emoji=command.emoji,
                on=command.on,
            )
        return change, state.member_ids
