"""Decisions about ``message.send`` commands: where each goes, may it be stored, is it a repeat;
for one command or a batch of them (:func:`decide_sends`), with the same outcome."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from schemas.events import MessageSendCommand
from schemas.frames import Message
from schemas.ids import direct_conversation_id
from services.chat.domain.edits import check_reply
from services.chat.domain.errors import BadRequest, ChatError, Conflict, Forbidden


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


def check_send(*, is_member: bool, stored_in: str | None, conversation_id: str) -> bool:
    """Decide whether a send is new, a repeat, or refused.

    Args:
        is_member: whether the sender belongs to the conversation.
        stored_in: the conversation of the message this sender already stored under the same
            client_msg_id (None: no such message).
        conversation_id: the conversation the command targets.

    Returns:
        True when the command is a repeat (answer with the stored message, deliver nothing),
        False when a new message must be stored.

    Raises:
        Forbidden: the sender is not a member.
        Conflict: the client_msg_id was already used for a message in another conversation.
    """
    if not is_member:
        raise Forbidden("not a member of this conversation")
    if stored_in is None:
        return False
    if stored_in != conversation_id:
        raise Conflict("client_msg_id already used in another conversation")
    return True


def resolve_targets(commands: Sequence[MessageSendCommand]) -> list[Target | ChatError]:
    """:func:`resolve_target` of each command; a refusal in place of its target."""
    targets: list[Target | ChatError] = []
    for cmd in commands:
        try:
            targets.append(
                resolve_target(
                    sender_id=cmd.sender_id, to=cmd.to, conversation_id=cmd.conversation_id
                )
            )
        except ChatError as exc:
            targets.append(exc)
    return targets


@dataclass(frozen=True, slots=True)
class NewSend:
    """Store the command as a new message."""


@dataclass(frozen=True, slots=True)
class StoredRepeat:
    """A repeat of a message stored before the batch: answer with it, deliver nothing."""

    message: Message


@dataclass(frozen=True, slots=True)
class BatchRepeat:
    """A repeat of the new message of the batch's command at ``position``: answer with it."""

    position: int


SendDecision = NewSend | StoredRepeat | BatchRepeat | ChatError


def decide_sends(
    commands: Sequence[MessageSendCommand],
    targets: Sequence[Target | ChatError],
    *,
    members: Mapping[str, Collection[str]],
    stored: Mapping[tuple[str, str], Message],
    replied: Mapping[str, str],
) -> list[SendDecision]:
    """Decide a batch of sends in record order, each as if the ones before it were applied.

    A command repeating one earlier in the batch (same sender and client_msg_id) is decided
    against the conversation that one stores into, as it would be once stored; so a batch of
    one decides as one record, and a batch as its records one after the other.

    Args:
        commands: the batch's sends, in record order.
        targets: their :func:`resolve_targets`.
        members: the members of every conversation a target names.
        stored: messages stored before the batch, by (sender, client_msg_id).
        replied: the conversation of every message a command replies to that exists.
    """
    member_sets = {conversation: set(users) for conversation, users in members.items()}
    # (sender, client_msg_id) -> position and conversation of the batch's new message.
    new_at: dict[tuple[str, str], tuple[int, str]] = {}
    decisions: list[SendDecision] = []
    for position, (cmd, target) in enumerate(zip(commands, targets, strict=True)):
        if isinstance(target, ChatError):
            decisions.append(target)
            continue
        key = (cmd.sender_id, cmd.client_msg_id)
        conversation = target.conversation_id
        repeat_of: BatchRepeat | StoredRepeat | None = None
        stored_in: str | None = None
        if key in new_at:
            earlier, stored_in = new_at[key]
            repeat_of = BatchRepeat(earlier)
        elif key in stored:
            repeat_of = StoredRepeat(stored[key])
            stored_in = repeat_of.message.conversation_id
        try:
            repeat = check_send(
                is_member=cmd.sender_id in member_sets.get(conversation, ()),
                stored_in=stored_in,
                conversation_id=conversation,
            )
            if not repeat and cmd.reply_to_message_id is not None:
                check_reply(
                    reply_to_conversation=replied.get(cmd.reply_to_message_id),
                    conversation_id=conversation,
                )
        except ChatError as exc:
            decisions.append(exc)
            continue
        if repeat and repeat_of is not None:
            decisions.append(repeat_of)
        else:
            new_at[key] = (position, conversation)
            decisions.append(NewSend())
    return decisions
