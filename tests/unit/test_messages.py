"""message.send decisions: addressing (resolve_target), idempotency (check_send) and a batch of
sends (decide_sends) deciding as its records one after another."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings, strategies as st

from schemas.events import MessageSendCommand, ReplyTo
from schemas.frames import ErrorCode, Message
from schemas.ids import direct_conversation_id
from services.chat.domain.errors import BadRequest, ChatError, Conflict, Forbidden, NotFound
from services.chat.domain.messages import (
    BatchRepeat,
    NewSend,
    SendDecision,
    StoredRepeat,
    Target,
    check_send,
    decide_sends,
    resolve_target,
    resolve_targets,
)


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
        check_send(is_member=False, stored_in=None, conversation_id="g1")
    assert info.value.code == "forbidden"


def test_not_member_is_forbidden_even_for_a_repeat() -> None:
    with pytest.raises(Forbidden):
        check_send(is_member=False, stored_in="g1", conversation_id="g1")


def test_new_message_is_not_a_repeat() -> None:
    assert check_send(is_member=True, stored_in=None, conversation_id="g1") is False


def test_same_key_in_same_conversation_is_a_repeat() -> None:
    assert check_send(is_member=True, stored_in="g1", conversation_id="g1") is True


def test_repeat_in_other_conversation_is_conflict() -> None:
    with pytest.raises(Conflict) as info:
        check_send(is_member=True, stored_in="g1", conversation_id="g2")
    assert info.value.code == "conflict"


# --- decide_sends -----------------------------------------------------------------------------

GROUPS = {"g1": ["u1", "u2"], "g2": ["u2", "u3"]}
USERS = ("u1", "u2", "u3")


def send(
    sender: str,
    client_msg_id: str,
    *,
    to: str | None = None,
    group: str = "g1",
    reply_to: str | None = None,
) -> MessageSendCommand:
    return MessageSendCommand(
        sender_id=sender,
        reply_to=ReplyTo(gateway_id="gw", connection_id="c", request_id="r"),
        to=to,
        conversation_id=direct_conversation_id(sender, to) if to is not None else group,
        client_msg_id=client_msg_id,
        kind="text",
        body="hi",
        reply_to_message_id=reply_to,
    )


def members_of(commands: list[MessageSendCommand]) -> dict[str, list[str]]:
    members: dict[str, list[str]] = {key: list(users) for key, users in GROUPS.items()}
    for cmd in commands:
        if cmd.to is not None and cmd.to != cmd.sender_id:
            members[cmd.conversation_id] = sorted({cmd.sender_id, cmd.to})
    return members


def decide(
    commands: list[MessageSendCommand],
    stored: dict[tuple[str, str], Message] | None = None,
    replied: dict[str, str] | None = None,
) -> list[SendDecision]:
    return decide_sends(
        commands,
        resolve_targets(commands),
        members=members_of(commands),
        stored=stored or {},
        replied=replied or {},
    )


def test_a_batch_decides_new_repeats_and_refusals_in_record_order() -> None:
    before = stored("g1")
    decisions = decide(
        [
            send("u1", "c1"),  # stored before the batch
            send("u1", "c2"),
            send("u1", "c2"),  # repeats the batch's own new message
            send("u1", "c2", group="g2"),  # same key, another conversation
            send("u3", "c3"),  # not a member of g1
            send("u1", "c4", to="u1"),  # to oneself
            send("u2", "c5", reply_to="m-elsewhere"),
            send("u2", "c6", reply_to="m-here"),
        ],
        stored={("u1", "c1"): before},
        replied={"m-elsewhere": "g2", "m-here": "g1"},
    )
    assert decisions[0] == StoredRepeat(before)
    assert decisions[1] == NewSend()
    assert decisions[2] == BatchRepeat(1)
    assert [type(d) for d in decisions[3:7]] == [Forbidden, Forbidden, BadRequest, NotFound]
    assert decisions[7] == NewSend()


def test_a_repeat_of_a_refused_send_is_decided_afresh() -> None:
    decisions = decide([send("u1", "c1", reply_to="gone"), send("u1", "c1")])
    assert isinstance(decisions[0], NotFound)
    assert decisions[1] == NewSend()


def test_a_repeat_in_another_conversation_of_the_batch_s_message_is_a_conflict() -> None:
    decisions = decide([send("u2", "c1"), send("u2", "c1", group="g2")])
    assert decisions[0] == NewSend()
    assert isinstance(decisions[1], Conflict)


commands_strategy = st.lists(
    st.builds(
        send,
        st.sampled_from(USERS),
        st.sampled_from(("c1", "c2")),
        to=st.one_of(st.none(), st.sampled_from(USERS)),
        group=st.sampled_from(("g1", "g2")),
        reply_to=st.sampled_from((None, "m-g1", "m-g2", "m-gone")),
    ),
    max_size=8,
)


# No deadline: a timed check would fail on a busy machine, not on a wrong decision.
@settings(deadline=None)
@given(commands=commands_strategy, stored_first=st.booleans())
def test_a_batch_decides_as_its_records_one_after_another(
    commands: list[MessageSendCommand], stored_first: bool
) -> None:
    replied = {"m-g1": "g1", "m-g2": "g2"}
    before = {("u1", "c1"): stored("g1")} if stored_first else {}
    batch = decide(commands, stored=dict(before), replied=replied)
    # Record by record: each decided alone, its new message stored before the next one.
    store = dict(before)
    made: dict[int, Message] = {}
    for position, cmd in enumerate(commands):
        (alone,) = decide_sends(
            [cmd],
            resolve_targets([cmd]),
            members=members_of(commands),
            stored=store,
            replied=replied,
        )
        expected = batch[position]
        if isinstance(expected, BatchRepeat):
            assert alone == StoredRepeat(made[expected.position])
        elif isinstance(expected, ChatError):
            assert type(alone) is type(expected)
        else:
            assert alone == expected
        if alone == NewSend():
            made[position] = stored(cmd.conversation_id).model_copy(
                update={"id": f"m{position}", "client_msg_id": cmd.client_msg_id}
            )
            store[(cmd.sender_id, cmd.client_msg_id)] = made[position]


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
