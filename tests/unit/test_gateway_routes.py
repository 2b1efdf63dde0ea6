"""The gateway's one table from client frame type to handler, and the pure translation of
frames into commands for the services that apply them."""

from __future__ import annotations

from schemas import topics
from schemas.events import (
    ConnectionEnded,
    ConnectionOpened,
    GatewayHeartbeat,
    MessageSendCommand,
    NotificationReadCommand,
    ReceiptCommand,
    ReplyTo,
    StatusSet,
    TypingCommand,
)
from schemas.frames import (
    CLIENT_FRAME_TYPES,
    ConversationMute,
    MessageSend,
    NotificationPrefsSet,
    NotificationReadRequest,
    PresenceSet,
    PushSubscribe,
    PushUnsubscribe,
    Receipt,
    Typing,
)
from schemas.ids import direct_conversation_id
from services.gateway.domain import commands
from services.gateway.domain.commands import Command, Requester
from services.gateway.routes import ROUTES, Publish, served_frame_types

ALICE = Requester(user_id="alice", connection_id="c1", gateway_id="gw-1")


def test_every_client_frame_type_has_exactly_one_route() -> None:
    assert set(ROUTES) == CLIENT_FRAME_TYPES


def test_hello_features_name_every_routed_frame_type() -> None:
    features = served_frame_types()
    assert features == sorted(CLIENT_FRAME_TYPES)
    assert {"conversations.list", "history", "search", "notifications.list"} <= set(features)


def test_commands_go_to_the_services_that_answer_them() -> None:
    published = {frame_type for frame_type, route in ROUTES.items() if isinstance(route, Publish)}
    assert published == {
        "message.send",
        "receipt",
        "presence.set",
        "typing",
        "conversation.create",
        "conversation.members.add",
        "conversation.members.remove",
        "conversation.role.set",
        "conversation.update",
        "message.edit",
        "message.delete",
        "reaction.set",
        # notification.read was answered `unavailable` here until the notifier existed.
        "notification.read",
        "notification.prefs.set",
        "conversation.mute",
        "push.subscribe",
        "push.unsubscribe",
    }
    # Reads the gateway answers itself, from their owners over internal HTTP.
    assert set(ROUTES) - published == {
        "sync",
        "ping",
        "conversations.list",
        "history",
        "search",
        "notifications.list",
        "notification.prefs.get",
    }


def test_notifier_commands_are_keyed_by_user_so_one_users_changes_apply_in_order() -> None:
    read = commands.notification_read(
        NotificationReadRequest(type="notification.read", id="r1", ids=["n1", "n2"]), ALICE
    )
    assert (read.topic, read.event_type, read.key) == (
        topics.NOTIFIER_COMMANDS,
        topics.NOTIFICATION_READ,
        "alice",
    )
    assert read.data == NotificationReadCommand(
        user_id="alice",
        reply_to=ReplyTo(gateway_id="gw-1", connection_id="c1", request_id="r1"),
        ids=["n1", "n2"],
    )
    every = commands.notification_read(
        NotificationReadRequest(type="notification.read", all_=True), ALICE
    )
    assert every.data.to_dict()["all"] is True
    prefs = commands.prefs_set(
        NotificationPrefsSet(type="notification.prefs.set", kind="job_alert", push=False), ALICE
    )
    assert (prefs.event_type, prefs.key) == (topics.PREFS_SET, "alice")
    assert prefs.data.to_dict() == {
        "user_id": "alice",
        "reply_to": {"gateway_id": "gw-1", "connection_id": "c1"},
        "kind": "job_alert",
        "push": False,
    }
    mute = commands.conversation_mute(
        ConversationMute(type="conversation.mute", conversation_id="g-7", muted=True), ALICE
    )
    assert (mute.event_type, mute.key) == (topics.CONVERSATION_MUTE, "alice")
    subscription = {
        "endpoint": "https://fcm.googleapis.com/fcm/send/x",
        "expirationTime": None,
        "keys": {"p256dh": "BP", "auth": "au"},
    }
    subscribe = commands.push_subscribe(
        PushSubscribe.model_validate({"type": "push.subscribe", "subscription": subscription}),
        ALICE,
    )
    assert (subscribe.event_type, subscribe.key) == (topics.PUSH_SUBSCRIBE, "alice")
    assert subscribe.data.to_dict()["subscription"] == subscription
    unsubscribe = commands.push_unsubscribe(
        PushUnsubscribe(type="push.unsubscribe", endpoint="https://fcm.googleapis.com/x"), ALICE
    )
    assert (unsubscribe.event_type, unsubscribe.key) == (topics.PUSH_UNSUBSCRIBE, "alice")


def test_direct_message_is_keyed_by_the_pairs_conversation_and_sent_as_the_token_user() -> None:
    frame = MessageSend(
        type="message.send", id="r1", to="bob", client_msg_id="k1", kind="text", body="hi"
    )
    conversation = direct_conversation_id("alice", "bob")
    assert commands.message_send(frame, ALICE) == Command(
        topics.CHAT_COMMANDS,
        topics.MESSAGE_SEND,
        conversation,
        MessageSendCommand(
            sender_id="alice",
            reply_to=ReplyTo(gateway_id="gw-1", connection_id="c1", request_id="r1"),
            to="bob",
            conversation_id=conversation,
            client_msg_id="k1",
            kind="text",
            body="hi",
        ),
    )


def test_message_to_a_conversation_is_keyed_by_it() -> None:
    frame = MessageSend(
        type="message.send", conversation_id="g-7", client_msg_id="k", kind="text", body="x"
    )
    command = commands.message_send(frame, ALICE)
    assert (command.topic, command.key) == (topics.CHAT_COMMANDS, "g-7")
    assert isinstance(command.data, MessageSendCommand)
    assert command.data.reply_to.request_id is None


def test_receipt_status_and_typing() -> None:
    receipt = commands.receipt(
        Receipt(type="receipt", conversation_id="g-7", seq=4, status="read"), ALICE
    )
    assert (receipt.topic, receipt.event_type, receipt.key) == (
        topics.CHAT_COMMANDS,
        topics.RECEIPT_POST,
        "g-7",
    )
    assert receipt.data == ReceiptCommand(
        user_id="alice",
        reply_to=ReplyTo(gateway_id="gw-1", connection_id="c1"),
        conversation_id="g-7",
        seq=4,
        status="read",
    )
    status = commands.status_set(PresenceSet(type="presence.set", id="p", status="away"), ALICE)
    assert (status.topic, status.event_type, status.key) == (
        topics.PRESENCE_COMMANDS,
        topics.STATUS_SET,
        "alice",
    )
    assert isinstance(status.data, StatusSet) and status.data.status == "away"
    typing = commands.typing(Typing(type="typing", conversation_id="g-7", state="start"), ALICE)
    assert (typing.topic, typing.event_type, typing.key) == (
        topics.PRESENCE_TYPING,
        topics.TYPING,
        "g-7",
    )
    assert isinstance(typing.data, TypingCommand) and typing.data.user_id == "alice"


def test_the_gateways_own_events_for_presence() -> None:
    opened = commands.connection_opened(ALICE)
    assert (opened.topic, opened.event_type, opened.key) == (
        topics.PRESENCE_COMMANDS,
        topics.CONNECTION_OPENED,
        "alice",
    )
    assert opened.data == ConnectionOpened(user_id="alice", connection_id="c1", gateway_id="gw-1")
    closed = commands.connection_closed(ALICE)
    assert (closed.event_type, closed.key) == (topics.CONNECTION_CLOSED, "alice")
    assert closed.data == ConnectionEnded(user_id="alice", connection_id="c1", gateway_id="gw-1")
    beat = commands.heartbeat("gw-1", connections=3)
    assert (beat.topic, beat.event_type, beat.key) == (
        topics.PRESENCE_COMMANDS,
        topics.GATEWAY_HEARTBEAT,
        "gw-1",
    )
    assert beat.data == GatewayHeartbeat(gateway_id="gw-1", connections=3)
