"""The hand-encoded frames and fact of a new message are byte for byte the models' wire."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from schemas.events import MessageCreated
from schemas.frames import Ack, Message, MessageNew
from services.chat import wire

PLAIN = Message(
    id="m1",
    conversation_id="dm_a_b",
    seq=3,
    sender_id="a",
    kind="text",
    body='say "hi" \u00e9\u2603',
    client_msg_id="k1",
    created_at=datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC),
)
REPLY = PLAIN.model_copy(update={"reply_to": "m0"})


@pytest.mark.parametrize("message", [PLAIN, REPLY])
def test_frames_and_fact_match_the_models(message: Message) -> None:
    encoded = orjson.Fragment(message.to_wire())
    assert wire.message_new(9, encoded) == MessageNew(seq=9, message=message).to_wire()
    assert wire.ack_with_message("r1", encoded) == Ack(id="r1", message=message).to_wire()
    members = ["a", "b"]
    assert (
        wire.message_created(encoded, members)
        == MessageCreated(message=message, member_ids=members).to_wire()
    )
