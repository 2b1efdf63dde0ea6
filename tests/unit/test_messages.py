"""message.send decisions: addressing (resolve_target) and idempotency (check_send)."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import pytest

from schemas.frames import ErrorCode, Message
from schemas.ids import direct_conversation_id
from services.chat.domain.errors import BadRequest, ChatError, Conflict, Forbidden
from services.chat.domain.messages import Target, check_send, resolve_target


def stored(conversation_id: str = "g1") -> Message:
    return Message(
        id="m1",
        conversation_id=conversation_id,
        seq=1,
        sender_id="u1",
        kind="text",
        body="hi",
        client_msg_id="c1",
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


# --- resolve_target ---------------------------------------------------------------------------


def test_direct_pair_resolves_to_derived_id() -> None:
    expected = direct_conversation_id("u1", "u2")
    target = resolve_target(sender_id="u1", to="u2", conversation_id=expected)
    assert target == Target(conversation_id=expected, direct_pair=("u1", "u2"))


def test_direct_pair_same_id_whoever_sends() -> None:
    conversation_id = direct_conversation_id("u1", "u2")
    one = resolve_target(sender_id="u1", to="u2", conversation_id=conversation_id)
    other = resolve_target(sender_id="u2", to="u1", conversation_id=conversation_id)
    assert one.conversation_id == other.conversation_id == conversation_id
    assert other.direct_pair == ("u2", "u1")


def test_message_to_self_is_bad_request() -> None:
    with pytest.raises(BadRequest) as info:
        resolve_target(sender_id="u1", to="u1", conversation_id=direct_conversation_id("u1", "u1"))
    assert info.value.code == "bad_request"


@pytest.mark.parametrize(
    "forged",
    [
        direct_conversation_id("u1", "u3"),  # a real id of another pair
        direct_conversation_id("u2", "u3"),  # a conversation the sender is not in
        "g1",
        "",
        direct_conversation_id("u1", "u2").upper(),
    ],
)
def test_forged_direct_id_is_bad_request(forged: str) -> None:
    with pytest.raises(BadRequest):
        resolve_target(sender_id="u1", to="u2", conversation_id=forged)


def test_conversation_id_passes_through() -> None:
    target = resolve_target(sender_id="u1", to=None, conversation_id="group-42")
    assert target == Target(conversation_id="group-42", direct_pair=None)


# --- check_send -------------------------------------------------------------------------------


def test_not_member_is_forbidden() -> None:
    with pytest.raises(Forbidden) as info:
        check_send(is_member=False, existing=None, conversation_id="g1")
    assert info.value.code == "forbidden"


def test_not_member_is_forbidden_even_for_a_repeat() -> None:
    with pytest.raises(Forbidden):
        check_send(is_member=False, existing=stored("g1"), conversation_id="g1")


def test_new_message_returns_none() -> None:
    assert check_send(is_member=True, existing=None, conversation_id="g1") is None


def test_repeat_in_same_conversation_returns_stored_message() -> None:
    message = stored("g1")
    assert check_send(is_member=True, existing=message, conversation_id="g1") is message


def test_repeat_in_other_conversation_is_conflict() -> None:
    with pytest.raises(Conflict) as info:
        check_send(is_member=True, existing=stored("g1"), conversation_id="g2")
    assert info.value.code == "conflict"


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [(Forbidden, "forbidden"), (Conflict, "conflict"), (BadRequest, "bad_request")],
)
def test_error_codes_are_protocol_codes(error: type[ChatError], code: str) -> None:
    assert issubclass(error, ChatError)
    assert error.code == code
    assert error.code in typing.get_args(ErrorCode)
    instance = error("why")
    assert instance.message == "why"
    assert str(instance) == "why"


def test_base_error_code_is_internal() -> None:
    assert ChatError("x").code == "internal"
