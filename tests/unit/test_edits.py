"""Message change decisions: edit by the sender, delete by the sender or a group admin,
reactions on and off, replies within the conversation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.frames import MAX_REACTION_KINDS, Message
from services.chat.domain.edits import check_reply, delete, edit, react
from services.chat.domain.errors import Forbidden, NotFound, TooLarge
from services.chat.domain.groups import Membership

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ANN = Membership("ann", "member", NOW)
BOB = Membership("bob", "member", NOW)
ADMIN = Membership("adm", "admin", NOW)


def message(**fields: object) -> Message:
    base: dict[str, object] = {
        "id": "m1",
        "conversation_id": "c1",
        "seq": 1,
        "sender_id": "ann",
        "kind": "text",
        "body": "hello",
        "client_msg_id": "k",
        "created_at": NOW,
    }
    return Message.model_validate({**base, **fields})


def test_only_the_sender_edits_and_the_same_text_changes_nothing() -> None:
    change = edit(message(), conversation_id="c1", member=ANN, body="hi", now=NOW)
    assert change.change == "edited"
    assert (change.message.body, change.message.edited_at) == ("hi", NOW)
    assert edit(message(), conversation_id="c1", member=ANN, body="hello", now=NOW).change is None
    with pytest.raises(Forbidden):
        edit(message(), conversation_id="c1", member=BOB, body="x", now=NOW)
    with pytest.raises(Forbidden):
        edit(message(), conversation_id="c1", member=None, body="x", now=NOW)


def test_a_message_of_another_conversation_or_none_is_not_found() -> None:
    with pytest.raises(NotFound):
        edit(message(), conversation_id="c2", member=ANN, body="x", now=NOW)
    with pytest.raises(NotFound):
        delete(None, conversation_id="c1", member=ANN, is_group=True)
    with pytest.raises(NotFound):
        react(message(), conversation_id="c2", member=ANN, emoji="👍", on=True)


def test_delete_by_sender_or_group_admin_erases_text_and_reactions() -> None:
    stored = message(reactions={"👍": ["bob"]}, reply_to="m0")
    erased = delete(stored, conversation_id="c1", member=ANN, is_group=False)
    assert erased.change == "deleted"
    assert (erased.message.body, erased.message.deleted, erased.message.reactions) == ("", True, {})
    assert erased.message.reply_to == "m0"
    assert delete(stored, conversation_id="c1", member=ADMIN, is_group=True).change == "deleted"
    with pytest.raises(Forbidden):
        delete(stored, conversation_id="c1", member=ADMIN, is_group=False)
    with pytest.raises(Forbidden):
        delete(stored, conversation_id="c1", member=BOB, is_group=True)
    again = delete(erased.message, conversation_id="c1", member=ANN, is_group=False)
    assert again.change is None


def test_a_deleted_message_cannot_be_edited_or_reacted_to() -> None:
    gone = message(body="", deleted=True)
    with pytest.raises(NotFound):
        edit(gone, conversation_id="c1", member=ANN, body="back", now=NOW)
    with pytest.raises(NotFound):
        react(gone, conversation_id="c1", member=BOB, emoji="👍", on=True)


def test_reactions_on_off_idempotent_and_ordered() -> None:
    first = react(message(), conversation_id="c1", member=BOB, emoji="👍", on=True)
    assert first.message.reactions == {"👍": ["bob"]}
    second = react(first.message, conversation_id="c1", member=ANN, emoji="👍", on=True)
    third = react(second.message, conversation_id="c1", member=ANN, emoji="🎉", on=True)
    assert third.message.reactions == {"👍": ["bob", "ann"], "🎉": ["ann"]}
    repeat = react(third.message, conversation_id="c1", member=ANN, emoji="🎉", on=True)
    assert repeat.change is None and repeat.message is third.message
    off = react(third.message, conversation_id="c1", member=ANN, emoji="🎉", on=False)
    assert off.change == "reaction" and off.message.reactions == {"👍": ["bob", "ann"]}
    assert react(off.message, conversation_id="c1", member=ANN, emoji="🎉", on=False).change is None
    assert first.message is not message() and message().reactions == {}


def test_distinct_reactions_are_bounded() -> None:
    full = message(reactions={f"e{i}": ["bob"] for i in range(MAX_REACTION_KINDS)})
    with pytest.raises(TooLarge):
        react(full, conversation_id="c1", member=ANN, emoji="new", on=True)
    more = react(full, conversation_id="c1", member=ANN, emoji="e0", on=True)
    assert more.message.reactions["e0"] == ["bob", "ann"]


def test_reply_must_name_a_message_of_the_same_conversation() -> None:
    check_reply(reply_to_conversation="c1", conversation_id="c1")
    with pytest.raises(NotFound):
        check_reply(reply_to_conversation="c2", conversation_id="c1")
    with pytest.raises(NotFound):
        check_reply(reply_to_conversation=None, conversation_id="c1")
