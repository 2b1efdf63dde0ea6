"""Decisions about changes to a stored message: edit, delete, reactions, and replies to it.

Each function takes the message as stored (``None`` when no message has that id), the
conversation the command named and the acting member, and returns a :class:`MessageChange`;
a change that changes nothing (the same text again, a reaction already on, a second delete) is
answered without being announced, so resent commands are harmless. Pure: time is passed in.

Rules (protocol part 2, "Rich messages"):
- A message that is not in the named conversation is ``not_found`` (so is one that is deleted,
  for edits and reactions: there is nothing left to change).
- Only the sender edits. The sender, or an admin of a group, deletes.
- A deletion erases the text (empty body) and the reactions; the id, seq, sender, time and
  ``reply_to`` stay, so a conversation keeps its shape.
- At most :data:`~schemas.frames.MAX_REACTION_KINDS` distinct emoji per message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from schemas.frames import MAX_REACTION_KINDS, Message
from services.chat.domain.errors import Forbidden, NotFound, TooLarge
from services.chat.domain.groups import Membership

Change = Literal["edited", "deleted", "reaction"]


@dataclass(frozen=True, slots=True)
class MessageChange:
    """The message after a decision, and what changed (None: nothing, announce nothing)."""

    message: Message
    change: Change | None


def _target(message: Message | None, conversation_id: str) -> Message:
    if message is None or message.conversation_id != conversation_id:
        raise NotFound("no such message in this conversation")
    return message


def _require_member(member: Membership | None) -> Membership:
    if member is None:
        raise Forbidden("not a member of this conversation")
    return member


def _alive(message: Message) -> Message:
    if message.deleted:
        raise NotFound("the message was deleted")
    return message


def check_reply(*, reply_to_conversation: str | None, conversation_id: str) -> None:
    """A reply must name a message of the same conversation.

    Args:
        reply_to_conversation: the conversation of the message replied to (None: no such
            message).
        conversation_id: the conversation of the new message.

    Raises:
        NotFound: no such message in this conversation.
    """
    if reply_to_conversation != conversation_id:
        raise NotFound("reply_to: no such message in this conversation")


def edit(
    message: Message | None,
    *,
    conversation_id: str,
    member: Membership | None,
    body: str,
    now: datetime,
) -> MessageChange:
    """Replace a message's text.

    Raises:
        Forbidden: the actor is not a member, or not the sender.
        NotFound: no such message in the conversation, or it was deleted.
    """
    actor = _require_member(member)
    stored = _alive(_target(message, conversation_id))
    if stored.sender_id != actor.user_id:
        raise Forbidden("only the sender may edit a message")
    if stored.body == body:
        return MessageChange(stored, None)
    return MessageChange(stored.model_copy(update={"body": body, "edited_at": now}), "edited")


def delete(
    message: Message | None, *, conversation_id: str, member: Membership | None, is_group: bool
) -> MessageChange:
    """Delete a message: its text and reactions are erased.

    Raises:
        Forbidden: the actor is not a member, or neither the sender nor an admin of a group.
        NotFound: no such message in the conversation.
    """
    actor = _require_member(member)
    stored = _target(message, conversation_id)
    may = stored.sender_id == actor.user_id or (is_group and actor.role == "admin")
    if not may:
        raise Forbidden("only the sender or an admin of the group may delete a message")
    if stored.deleted:
        return MessageChange(stored, None)
    erased = stored.model_copy(update={"body": "", "deleted": True, "reactions": {}})
    return MessageChange(erased, "deleted")


def react(
    message: Message | None,
    *,
    conversation_id: str,
    member: Membership | None,
    emoji: str,
    on: bool,
) -> MessageChange:
    """Put a member's reaction on a message, or take it back.

    Reactions keep their order: emoji by first use, users in the order they reacted.

    Raises:
        Forbidden: the actor is not a member.
        NotFound: no such message in the conversation, or it was deleted.
        TooLarge: a new emoji on a message that has the most distinct ones allowed.
    """
    actor = _require_member(member).user_id
    stored = _alive(_target(message, conversation_id))
    users = stored.reactions.get(emoji, [])
    if on == (actor in users):
        return MessageChange(stored, None)
    reactions = {key: list(value) for key, value in stored.reactions.items()}
    if on:
        if emoji not in reactions and len(reactions) >= MAX_REACTION_KINDS:
            raise TooLarge(f"a message has at most {MAX_REACTION_KINDS} distinct reactions")
        reactions.setdefault(emoji, []).append(actor)
    else:
        reactions[emoji].remove(actor)
        if not reactions[emoji]:
            del reactions[emoji]
    return MessageChange(stored.model_copy(update={"reactions": reactions}), "reaction")
