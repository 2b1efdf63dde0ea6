"""Frames of conversations and rich messages: parsing, limits, and a wire that keeps plain
messages exactly as they were."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from schemas.frames import (
    CLIENT_FRAME,
    MAX_GROUP_MEMBERS,
    Conversation,
    ConversationCreate,
    ConversationUpdated,
    History,
    Member,
    Message,
    MessageEdit,
    MessageSend,
    MessageUpdated,
    ReactionSet,
    Search,
)
from services.gateway.domain.errors import FrameError
from services.gateway.domain.frames import parse_client_frame

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def parse(frame: dict[str, Any]) -> object:
    return CLIENT_FRAME.validate_json(orjson.dumps(frame))


def plain() -> Message:
    return Message(
        id="m1",
        conversation_id="grp_1",
        seq=1,
        sender_id="u1",
        kind="text",
        body="hi",
        client_msg_id="c1",
        created_at=NOW,
    )


def test_each_new_client_frame_parses() -> None:
    create = parse({"type": "conversation.create", "kind": "group", "title": "T", "members": ["b"]})
    assert isinstance(create, ConversationCreate) and create.members == ["b"]
    send = parse(
        {
            "type": "message.send",
            "conversation_id": "g",
            "client_msg_id": "c",
            "kind": "text",
            "body": "x",
            "reply_to": "m0",
        }
    )
    assert isinstance(send, MessageSend) and send.reply_to == "m0"
    assert isinstance(
        parse({"type": "message.edit", "conversation_id": "g", "message_id": "m", "body": "y"}),
        MessageEdit,
    )
    react = parse(
        {
            "type": "reaction.set",
            "conversation_id": "g",
            "message_id": "m",
            "emoji": "👍🏽",
            "on": True,
        }
    )
    assert isinstance(react, ReactionSet) and react.emoji == "👍🏽"
    history = parse({"type": "history", "conversation_id": "g", "before_seq": 5, "limit": 200})
    assert isinstance(history, History) and (history.before_seq, history.limit) == (5, 200)
    assert isinstance(parse({"type": "search", "query": "a b"}), Search)


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "conversation.create", "kind": "direct", "title": "T", "members": ["b"]},
        {"type": "conversation.create", "kind": "group", "title": "", "members": ["b"]},
        {"type": "conversation.create", "kind": "group", "title": "x" * 201, "members": ["b"]},
        {"type": "conversation.create", "kind": "group", "title": "T", "members": []},
        {
            "type": "conversation.create",
            "kind": "group",
            "title": "T",
            "members": [f"u{i}" for i in range(MAX_GROUP_MEMBERS)],
        },
        {"type": "conversation.role.set", "conversation_id": "g", "user_id": "u", "role": "owner"},
        {
            "type": "reaction.set",
            "conversation_id": "g",
            "message_id": "m",
            "emoji": "x" * 17,
            "on": True,
        },
        {"type": "reaction.set", "conversation_id": "g", "message_id": "m", "emoji": "x", "on": 1},
        {"type": "history", "conversation_id": "g", "limit": 201},
        {"type": "history", "conversation_id": "g", "before_seq": 0},
        {"type": "conversations.list", "limit": 0},
        {"type": "search", "query": ""},
        {"type": "search", "query": "q" * 201},
        {"type": "search", "query": "q", "limit": 51},
    ],
)
def test_out_of_bounds_frames_are_refused(frame: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse(frame)


def test_an_edited_body_over_the_configured_limit_is_too_large() -> None:
    text = orjson.dumps(
        {
            "type": "message.edit",
            "id": "e",
            "conversation_id": "g",
            "message_id": "m",
            "body": "x" * 11,
        }
    ).decode()
    with pytest.raises(FrameError) as info:
        parse_client_frame(text, max_body_chars=10)
    assert (info.value.code, info.value.request_id) == ("too_large", "e")


def test_a_plain_message_keeps_its_old_wire_and_defaults_are_left_out() -> None:
    assert set(orjson.loads(plain().to_wire())) == {
        "id",
        "conversation_id",
        "seq",
        "sender_id",
        "kind",
        "body",
        "client_msg_id",
        "created_at",
    }
    rich = plain().model_copy(
        update={"edited_at": NOW, "deleted": True, "reply_to": "m0", "reactions": {"👍": ["u2"]}}
    )
    wire = orjson.loads(MessageUpdated(seq=4, message=rich).to_wire())
    assert wire["message"] == {
        **orjson.loads(plain().to_wire()),
        "edited_at": "2026-01-02T03:04:05Z",
        "deleted": True,
        "reply_to": "m0",
        "reactions": {"👍": ["u2"]},
    }
    assert Message.model_validate(wire["message"]) == rich


def test_a_conversation_always_carries_last_message_and_a_group_its_title() -> None:
    direct = Conversation(
        id="dm_1",
        kind="direct",
        members=[Member(user_id="a", role="member"), Member(user_id="b", role="member")],
        created_at=NOW,
        unread_count=0,
    )
    frame = orjson.loads(ConversationUpdated(seq=1, conversation=direct).to_wire())
    assert frame["conversation"]["last_message"] is None
    assert "title" not in frame["conversation"]
    assert frame["stream"] == "chat" and frame["type"] == "conversation.updated"
