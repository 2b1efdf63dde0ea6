"""Decisions about a ``message.send`` command: may it be stored, is it a repeat."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.frames import Message
from schemas.ids import direct_conversation_id
from services.chat.domain.errors import BadRequest, Conflict, Forbidden


@dataclass(frozen=True, slots=True)
class Target:
    """Where a message goes once the command is checked."""

    conversation_id: str
    # For a direct message: both participants, to create the conversation on first use.
    direct_pair: tuple[str, str] | None


def resolve_target(*, sender_id: str, to: str | None, conversation_id: str) -> Target:
    """Check the command's addressing and say which conversation it concerns.

    The gateway derives a direct conversation's id from the pair; we recompute it rather than
    trust the record, so a forged id can never create a conversation with strangers in it.

    Raises:
        BadRequest: a message to oneself, or an id that does not match the pair.
    """
    if to is None:
        return Target(conversation_id=conversation_id, direct_pair=None)
    if to == sender_id:
        raise BadRequest("a direct message needs a recipient other than the sender")
    expected = direct_conversation_id(sender_id, to)
    if conversation_id != expected:
        raise BadRequest("conversation id does not match the direct pair")
    return Target(conversation_id=expected, direct_pair=(sender_id, to))


def check_send(
    *, is_member: bool, existing: Message | None, conversation_id: str
) -> Message | None:
    """Decide whether a send is new, a repeat, or refused.

    Args:
        is_member: whether the sender belongs to the conversation.
        existing: the message this sender already stored under the same client_msg_id.
        conversation_id: the conversation the command targets.

    Returns:
        The stored message when the command is a repeat (answer it, deliver nothing), or None
        when a new message must be stored.

    Raises:
        Forbidden: the sender is not a member.
        Conflict: the client_msg_id was already used for a message in another conversation.
    """
    if not is_member:
        raise Forbidden("not a member of this conversation")
    if existing is None:
        return None
    if existing.conversation_id != conversation_id:
        raise Conflict("client_msg_id already used in another conversation")
    return existing
