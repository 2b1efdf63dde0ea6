"""What erasing a user does to messages, conversations and stored frames. Pure.

Rules (docs/erasure.md):
- The user's messages stay where they were, as deleted placeholders: body empty,
  ``deleted``, no reactions, the sender :data:`~schemas.ids.ERASED_USER_ID`, the idempotency key
  replaced by the message's own id; id, conversation, seq, times and ``reply_to`` stay, so the
  others' history keeps its shape and seqs.
- The user's reactions leave every message (an emoji nobody else chose goes with them).
- The user leaves every conversation: a group as when leaving (the longest-standing member
  succeeds a last admin), a direct conversation too (the other member keeps it, alone).
- Stored frames: a frame that carried one of the user's messages shows its erased state; the
  user's id anywhere else in a frame (a member of an old member list, whose watermark moved, a
  reaction) is replaced by the placeholder, or removed from reactions. What others wrote (bodies,
  titles) is theirs and left as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from schemas.frames import Message
from schemas.ids import ERASED_USER_ID
from services.chat.domain import groups
from services.chat.domain.groups import ConversationState, GroupChange

#: Free text other people wrote: never changed by an erasure, even where it equals the user id.
_TEXT_FIELDS = frozenset({"body", "title"})


def erased_message(message: Message) -> Message:
    """A message of the erased user as it stays in others' conversations."""
    return message.model_copy(
        update={
            "body": "",
            "deleted": True,
            "reactions": {},
            "sender_id": ERASED_USER_ID,
            "client_msg_id": message.id,
        }
    )


def without_reactions_of(message: Message, user_id: str) -> Message | None:
    """``message`` with ``user_id``'s reactions taken back; None when it had none."""
    if not any(user_id in users for users in message.reactions.values()):
        return None
    reactions = {
        emoji: [user for user in users if user != user_id]
        for emoji, users in message.reactions.items()
    }
    kept = {emoji: users for emoji, users in reactions.items() if users}
    return message.model_copy(update={"reactions": kept})


def leave(state: ConversationState, user_id: str) -> GroupChange:
    """The conversation without ``user_id`` (unchanged when not a member).

    A group loses them as if they left; a direct conversation, which members may not leave,
    loses them too (version + 1, so the fact that says so supersedes the older ones).
    """
    if state.member(user_id) is None:
        return GroupChange(state=state, changed=False)
    if state.kind == "group":
        return groups.remove_member(state, actor=user_id, member_id=user_id)
    members = tuple(m for m in state.members if m.user_id != user_id)
    after = replace(state, members=members, version=state.version + 1)
    return GroupChange(state=after, changed=True, removed=(user_id,))


def scrub_frame(
    frame: dict[str, Any], *, user_id: str, erased: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """A stored frame without ``user_id`` and without the text of their messages.

    Args:
        frame: the parsed frame (changed in place and returned).
        user_id: the erased user.
        erased: the erased state (wire form) of each of their messages, by id.
    """
    message = frame.get("message")
    if isinstance(message, dict):
        frame["message"] = _scrub_message(message, user_id, erased)
    conversation = frame.get("conversation")
    if isinstance(conversation, dict):
        last = conversation.get("last_message")
        if isinstance(last, dict):
            conversation["last_message"] = _scrub_message(last, user_id, erased)
    scrubbed: dict[str, Any] = _replace_user(frame, user_id)
    return scrubbed


def _scrub_message(
    message: dict[str, Any], user_id: str, erased: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    current = erased.get(str(message.get("id")))
    if current is not None:
        return dict(current)
    reactions = message.get("reactions")
    if isinstance(reactions, dict):
        kept = {
            emoji: [user for user in users if user != user_id]
            for emoji, users in reactions.items()
            if isinstance(users, list)
        }
        kept = {emoji: users for emoji, users in kept.items() if users}
        if kept:
            message["reactions"] = kept
        else:
            # The wire leaves out reactions at their default.
            message.pop("reactions", None)
    return message


def _replace_user(value: Any, user_id: str) -> Any:
    """``value`` with every string equal to ``user_id`` replaced by the placeholder, free text
    aside (a frame shape added later is covered without being known here)."""
    if isinstance(value, str):
        return ERASED_USER_ID if value == user_id else value
    if isinstance(value, list):
        return [_replace_user(item, user_id) for item in value]
    if isinstance(value, dict):
        return {
            key: item if key in _TEXT_FIELDS else _replace_user(item, user_id)
            for key, item in value.items()
        }
    return value
