"""What erasing a user does to messages, conversations and stored frames (pure rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from schemas.frames import (
    Conversation,
    ConversationUpdated,
    Member,
    Message,
    MessageNew,
    MessageStatus,
    MessageUpdated,
)
from schemas.ids import ERASED_USER_ID
from services.chat.domain.erasure import erased_message, leave, scrub_frame, without_reactions_of
from services.chat.domain.groups import ConversationState, Membership

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def message(sender: str = "ulla", **fields: Any) -> Message:
    values: dict[str, Any] = {
        "id": "m1",
        "conversation_id": "g1",
        "seq": 3,
        "sender_id": sender,
        "kind": "text",
        "body": "my secret",
        "client_msg_id": "key-1",
        "created_at": T0,
        **fields,
    }
    return Message(**values)


def state(kind: str = "group", **roles: str) -> ConversationState:
    return ConversationState(
        id="g1" if kind == "group" else "dm_1",
        kind=kind,  # type: ignore[arg-type]
        title="Team" if kind == "group" else None,
        members=tuple(
            Membership(user, "admin" if role == "admin" else "member", T0 + timedelta(minutes=i))
            for i, (user, role) in enumerate(roles.items())
        ),
        version=2 if kind == "group" else 0,
        created_at=T0,
    )


def parsed(frame: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(frame)
    return loaded


def test_an_erased_message_keeps_its_place_and_loses_its_text_sender_reactions_and_key() -> None:
    original = message(edited_at=T0, reply_to="m0", reactions={"👍": ["ann"]})
    erased = erased_message(original)
    assert (erased.body, erased.deleted, erased.reactions) == ("", True, {})
    assert (erased.sender_id, erased.client_msg_id) == (ERASED_USER_ID, "m1")
    kept = ("id", "conversation_id", "seq", "kind", "created_at", "edited_at", "reply_to")
    assert all(getattr(erased, name) == getattr(original, name) for name in kept)
    assert erased_message(erased) == erased


def test_reactions_of_the_user_are_taken_back_and_an_emoji_left_to_nobody_goes() -> None:
    reacted = message("ann", reactions={"👍": ["ulla", "bob"], "❤": ["ulla"], "😀": ["cat"]})
    changed = without_reactions_of(reacted, "ulla")
    assert changed is not None and changed.reactions == {"👍": ["bob"], "😀": ["cat"]}
    assert list(changed.reactions) == ["👍", "😀"]
    assert without_reactions_of(changed, "ulla") is None


def test_leaving_a_group_as_its_last_admin_promotes_the_longest_standing_member() -> None:
    change = leave(state(ulla="admin", bob="member", ann="member"), "ulla")
    assert change.changed and change.removed == ("ulla",)
    assert change.state.member_ids == ["ann", "bob"] and change.state.admin_ids == ["bob"]
    assert change.state.version == 3


def test_a_direct_conversation_keeps_the_other_member_alone() -> None:
    change = leave(state("direct", ann="member", ulla="member"), "ulla")
    assert change.changed and change.state.member_ids == ["ann"] and change.state.version == 1
    assert change.state.kind == "direct"


def test_a_conversation_the_user_is_not_in_is_left_as_it_is() -> None:
    before = state(ann="admin", bob="member")
    assert leave(before, "ulla").changed is False
    assert leave(before, "ulla").state is before


def erased_wire() -> dict[str, dict[str, Any]]:
    return {"m1": erased_message(message()).to_dict()}


def test_a_frame_that_carried_the_users_message_shows_it_erased() -> None:
    for frame in (
        MessageNew(seq=7, message=message()).to_wire(),
        MessageUpdated(seq=8, message=message(body="edited secret", edited_at=T0)).to_wire(),
    ):
        scrubbed = scrub_frame(parsed(frame), user_id="ulla", erased=erased_wire())
        assert scrubbed["message"] == erased_wire()["m1"]
        assert "secret" not in str(scrubbed) and "ulla" not in str(scrubbed)
        assert scrubbed["seq"] == parsed(frame)["seq"]


def test_an_old_member_list_shows_the_placeholder_and_a_last_message_its_erased_state() -> None:
    conversation = Conversation(
        id="g1",
        kind="group",
        title="ulla's team",
        members=[Member(user_id="ann", role="admin"), Member(user_id="ulla", role="member")],
        created_at=T0,
        last_message=message(),
        unread_count=1,
    )
    frame = ConversationUpdated(seq=4, conversation=conversation).to_wire()
    scrubbed = scrub_frame(parsed(frame), user_id="ulla", erased=erased_wire())
    members = scrubbed["conversation"]["members"]
    assert members == [
        {"user_id": "ann", "role": "admin"},
        {"user_id": ERASED_USER_ID, "role": "member"},
    ]
    assert scrubbed["conversation"]["last_message"] == erased_wire()["m1"]
    # A title is what others wrote: left as it is.
    assert scrubbed["conversation"]["title"] == "ulla's team"


def test_whose_watermark_moved_and_reactions_on_others_messages_lose_the_user() -> None:
    status = MessageStatus(
        seq=2, conversation_id="g1", user_id="ulla", status="read", up_to_seq=3
    ).to_wire()
    assert scrub_frame(parsed(status), user_id="ulla", erased={})["user_id"] == ERASED_USER_ID
    others = MessageUpdated(
        seq=3, message=message("ann", id="m2", body="ulla", reactions={"👍": ["ulla"]})
    ).to_wire()
    scrubbed = scrub_frame(parsed(others), user_id="ulla", erased=erased_wire())
    assert "reactions" not in scrubbed["message"]
    # Ann's text is Ann's, even when it is the erased user's id.
    assert scrubbed["message"]["body"] == "ulla" and scrubbed["message"]["sender_id"] == "ann"


def test_a_frame_shape_added_later_loses_the_user_id_wherever_it_names_it() -> None:
    frame = {"type": "future.thing", "seq": 1, "who": {"ids": ["bob", "ulla"]}, "by": "ulla"}
    scrubbed = scrub_frame(frame, user_id="ulla", erased={})
    assert scrubbed == {
        "type": "future.thing",
        "seq": 1,
        "who": {"ids": ["bob", ERASED_USER_ID]},
        "by": ERASED_USER_ID,
    }


def test_a_frame_without_the_user_is_left_exactly_as_it_was() -> None:
    frame = parsed(MessageNew(seq=1, message=message("ann", id="m9", body="hi")).to_wire())
    before = orjson.dumps(frame)
    assert orjson.dumps(scrub_frame(frame, user_id="ulla", erased=erased_wire())) == before
