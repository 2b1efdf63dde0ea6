"""Frames that change a conversation or a message become chat commands keyed by the
conversation, sent as the token's user; a new group's id is minted by the gateway."""

from __future__ import annotations

import itertools

from schemas import topics
from schemas.events import (
    ConversationCreateCommand,
    MembersRemoveCommand,
    MessageSendCommand,
    ReactionSetCommand,
    ReplyTo,
)
from schemas.frames import (
    ConversationCreate,
    ConversationMembersRemove,
    MessageSend,
    ReactionSet,
)
from services.gateway.domain import commands
from services.gateway.domain.commands import Requester

ALICE = Requester(user_id="alice", connection_id="c1", gateway_id="gw-1")
REPLY = ReplyTo(gateway_id="gw-1", connection_id="c1", request_id="r1")


def test_a_new_group_is_keyed_by_the_id_minted_for_it() -> None:
    ids = (f"{n:032x}" for n in itertools.count(7))
    frame = ConversationCreate(
        type="conversation.create", id="r1", kind="group", title="T", members=["bob"]
    )
    command = commands.conversation_create(frame, ALICE, new_id=lambda: next(ids))
    assert (command.topic, command.event_type, command.key) == (
        topics.CHAT_COMMANDS,
        topics.CONVERSATION_CREATE,
        "grp_" + f"{7:032x}",
    )
    assert command.data == ConversationCreateCommand(
        user_id="alice",
        reply_to=REPLY,
        conversation_id=command.key,
        title="T",
        member_ids=["bob"],
    )
    again = commands.conversation_create(frame, ALICE, new_id=lambda: next(ids))
    assert again.key != command.key


def test_a_group_the_client_names_has_the_same_id_at_every_try_and_for_its_creator_only() -> None:
    frame = ConversationCreate(
        type="conversation.create",
        id="r1",
        kind="group",
        title="T",
        members=["bob"],
        client_conversation_id="k-1",
    )

    def never() -> str:
        raise AssertionError("a named group's id is not random")

    first = commands.conversation_create(frame, ALICE, new_id=never)
    resent = commands.conversation_create(
        frame.model_copy(update={"id": "r2"}), ALICE, new_id=never
    )
    assert first.key == resent.key and first.key.startswith("grp_") and len(first.key) == 36
    assert isinstance(first.data, ConversationCreateCommand)
    assert first.data.client_conversation_id == "k-1"
    bob = Requester(user_id="bob", connection_id="c2", gateway_id="gw-2")
    assert commands.conversation_create(frame, bob, new_id=never).key != first.key
    other = frame.model_copy(update={"client_conversation_id": "k-2"})
    assert commands.conversation_create(other, ALICE, new_id=never).key != first.key
    # The creator's length is hashed in: ("ab", "c...") and ("a", "bc...") differ.
    assert commands.group_id_for("ab", "c") != commands.group_id_for("a", "bc")


def test_changes_are_keyed_by_their_conversation_and_carry_the_token_user() -> None:
    remove = commands.members_remove(
        ConversationMembersRemove(
            type="conversation.members.remove", id="r1", conversation_id="g-1", user_id="bob"
        ),
        ALICE,
    )
    assert (remove.key, remove.event_type) == ("g-1", topics.MEMBERS_REMOVE)
    assert remove.data == MembersRemoveCommand(
        user_id="alice", reply_to=REPLY, conversation_id="g-1", member_id="bob"
    )
    react = commands.reaction_set(
        ReactionSet(
            type="reaction.set",
            id="r1",
            conversation_id="g-1",
            message_id="m",
            emoji="👍",
            on=False,
        ),
        ALICE,
    )
    assert react.data == ReactionSetCommand(
        user_id="alice",
        reply_to=REPLY,
        conversation_id="g-1",
        message_id="m",
        emoji="👍",
        on=False,
    )


def test_a_reply_is_carried_by_the_send_command() -> None:
    frame = MessageSend(
        type="message.send",
        conversation_id="g-1",
        client_msg_id="k",
        kind="text",
        body="x",
        reply_to="m0",
    )
    command = commands.message_send(frame, ALICE)
    assert isinstance(command.data, MessageSendCommand)
    assert command.data.reply_to_message_id == "m0"
