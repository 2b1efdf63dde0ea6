"""Client frame parsing (strict, unknown fields ignored) and server frame wire output."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import orjson
import pytest
from pydantic import ValidationError

from schemas.base import WireModel
from schemas.frames import (
    CLIENT_FRAME,
    MAX_BODY_CHARS,
    Ack,
    Error,
    Hello,
    Limits,
    Message,
    MessageNew,
    MessageSend,
    MessageStatus,
    Notification,
    NotificationNew,
    NotificationReadEvent,
    NotificationReadRequest,
    Ping,
    Pong,
    Presence,
    PresenceSet,
    Receipt,
    Sync,
    Typing,
    TypingEvent,
)

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "json"
NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def parse(frame: dict[str, Any]) -> object:
    return CLIENT_FRAME.validate_json(orjson.dumps(frame))


def rejected(frame: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse(frame)


def send(**fields: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "message.send",
        "to": "u2",
        "client_msg_id": "c1",
        "kind": "text",
        "body": "hi",
    }
    frame.update(fields)
    return {key: value for key, value in frame.items() if value is not ...}


# --- client frames: each type ---------------------------------------------------------------


def test_message_send_to_user() -> None:
    frame = parse(send(id="r1"))
    assert isinstance(frame, MessageSend)
    assert (frame.id, frame.to, frame.conversation_id) == ("r1", "u2", None)
    assert (frame.client_msg_id, frame.kind, frame.body) == ("c1", "text", "hi")


def test_message_send_to_conversation() -> None:
    frame = parse(send(to=..., conversation_id="g1"))
    assert isinstance(frame, MessageSend)
    assert (frame.to, frame.conversation_id) == (None, "g1")


def test_receipt() -> None:
    frame = parse({"type": "receipt", "conversation_id": "c", "seq": 5, "status": "read"})
    assert isinstance(frame, Receipt)
    assert (frame.conversation_id, frame.seq, frame.status, frame.id) == ("c", 5, "read", None)


def test_typing() -> None:
    frame = parse({"type": "typing", "conversation_id": "c", "state": "start"})
    assert isinstance(frame, Typing)
    assert frame.state == "start"


@pytest.mark.parametrize("status", ["online", "away", "busy", "offline"])
def test_presence_set(status: str) -> None:
    frame = parse({"type": "presence.set", "status": status, "id": "p"})
    assert isinstance(frame, PresenceSet)
    assert frame.status == status


def test_sync_with_cursor_and_limit() -> None:
    frame = parse({"type": "sync", "cursor": {"chat": 3, "notifications": 0}, "limit": 10})
    assert isinstance(frame, Sync)
    assert frame.cursor == {"chat": 3, "notifications": 0}
    assert frame.limit == 10


def test_sync_cursor_defaults_to_empty() -> None:
    frame = parse({"type": "sync"})
    assert isinstance(frame, Sync)
    assert frame.cursor == {}
    assert frame.limit is None


def test_notification_read_ids() -> None:
    frame = parse({"type": "notification.read", "ids": ["n1", "n2"]})
    assert isinstance(frame, NotificationReadRequest)
    assert frame.ids == ["n1", "n2"]
    assert frame.all_ is None


def test_notification_read_all_alias() -> None:
    frame = parse({"type": "notification.read", "all": True})
    assert isinstance(frame, NotificationReadRequest)
    assert frame.all_ is True
    assert frame.ids is None


def test_ping() -> None:
    frame = parse({"type": "ping", "id": "x"})
    assert isinstance(frame, Ping)
    assert frame.id == "x"


def test_ping_without_id() -> None:
    frame = parse({"type": "ping"})
    assert isinstance(frame, Ping)
    assert frame.id is None


# --- client frames: strictness ----------------------------------------------------------------


@pytest.mark.parametrize("seq", ["5", 5.0, True, None, -1])
def test_receipt_seq_must_be_a_non_negative_integer(seq: object) -> None:
    rejected({"type": "receipt", "conversation_id": "c", "seq": seq, "status": "read"})


def test_receipt_status_must_be_known() -> None:
    rejected({"type": "receipt", "conversation_id": "c", "seq": 1, "status": "seen"})


def test_body_at_the_limit_is_accepted() -> None:
    frame = parse(send(body="x" * MAX_BODY_CHARS))
    assert isinstance(frame, MessageSend)
    assert len(frame.body) == 4000


def test_body_limit_counts_characters_not_bytes() -> None:
    frame = parse(send(body="漢" * MAX_BODY_CHARS))
    assert isinstance(frame, MessageSend)


def test_body_over_the_limit_is_rejected() -> None:
    rejected(send(body="x" * 4001))


def test_empty_body_is_rejected() -> None:
    rejected(send(body=""))


def test_client_msg_id_bounds() -> None:
    assert isinstance(parse(send(client_msg_id="k" * 64)), MessageSend)
    rejected(send(client_msg_id="k" * 65))
    rejected(send(client_msg_id=""))


def test_request_id_bounds() -> None:
    assert isinstance(parse({"type": "ping", "id": "i" * 64}), Ping)
    rejected({"type": "ping", "id": "i" * 65})
    rejected({"type": "ping", "id": ""})
    rejected({"type": "ping", "id": 5})


def test_kind_must_be_text() -> None:
    rejected(send(kind="image"))


def test_message_send_needs_a_target() -> None:
    rejected(send(to=...))


def test_message_send_rejects_both_targets() -> None:
    rejected(send(conversation_id="g1"))


def test_message_send_explicit_nulls_count_as_absent() -> None:
    rejected(send(to=None))
    frame = parse(send(conversation_id=None))
    assert isinstance(frame, MessageSend)
    assert frame.to == "u2"


def test_unknown_type_is_rejected() -> None:
    rejected({"type": "message.delete", "id": "r"})


def test_missing_type_is_rejected() -> None:
    rejected({"id": "r", "conversation_id": "c", "seq": 1, "status": "read"})


def test_non_object_is_rejected() -> None:
    for raw in [b"[]", b'"ping"', b"null", b"{", b""]:
        with pytest.raises(ValidationError):
            CLIENT_FRAME.validate_json(raw)


def test_unknown_fields_are_ignored() -> None:
    frame = parse({"type": "typing", "conversation_id": "c", "state": "stop", "extra": [1, 2]})
    assert isinstance(frame, Typing)
    assert not hasattr(frame, "extra")
    assert "extra" not in frame.model_dump()


def test_sync_negative_cursor_rejected() -> None:
    rejected({"type": "sync", "cursor": {"chat": -1}})


def test_sync_cursor_seq_must_be_integer() -> None:
    rejected({"type": "sync", "cursor": {"chat": "3"}})


@pytest.mark.parametrize("limit", [0, 1001, "10"])
def test_sync_limit_bounds(limit: object) -> None:
    rejected({"type": "sync", "limit": limit})


def test_client_frames_are_frozen() -> None:
    frame = parse({"type": "ping", "id": "x"})
    assert isinstance(frame, Ping)
    with pytest.raises(ValidationError):
        frame.id = "y"  # type: ignore[misc]


# --- server frames ----------------------------------------------------------------------------


def message() -> Message:
    return Message(
        id="m1",
        conversation_id="dm_abc",
        seq=3,
        sender_id="u1",
        kind="text",
        body="héllo",
        client_msg_id="c1",
        created_at=NOW,
    )


def wire(frame: WireModel) -> dict[str, Any]:
    raw = frame.to_wire()
    assert isinstance(raw, bytes)
    # Compact: exactly what orjson writes without options, no spaces or indentation.
    parsed: dict[str, Any] = orjson.loads(raw)
    assert raw == orjson.dumps(parsed)
    assert b"null" not in raw
    return parsed


def test_hello_wire() -> None:
    hello = Hello(
        user_id="u1",
        connection_id="conn-1",
        heartbeat_s=25,
        server_time=NOW,
        limits=Limits(max_frame_bytes=65536, max_body_chars=4000, rate_per_s=20),
    )
    assert wire(hello) == {
        "type": "hello",
        "user_id": "u1",
        "connection_id": "conn-1",
        "heartbeat_s": 25,
        "server_time": "2024-05-06T07:08:09Z",
        "limits": {"max_frame_bytes": 65536, "max_body_chars": 4000, "rate_per_s": 20},
    }


def test_hello_features_are_listed_when_given() -> None:
    hello = Hello(
        user_id="u1",
        connection_id="conn-1",
        heartbeat_s=25,
        server_time=NOW,
        features=["history", "ping"],
        limits=Limits(max_frame_bytes=65536, max_body_chars=4000, rate_per_s=20),
    )
    assert wire(hello)["features"] == ["history", "ping"]


def test_ack_minimal_has_no_null_fields() -> None:
    assert Ack(id="r1").to_wire() == b'{"type":"ack","id":"r1"}'


def test_ack_with_message() -> None:
    assert wire(Ack(id="r1", message=message())) == {
        "type": "ack",
        "id": "r1",
        "message": {
            "id": "m1",
            "conversation_id": "dm_abc",
            "seq": 3,
            "sender_id": "u1",
            "kind": "text",
            "body": "héllo",
            "client_msg_id": "c1",
            "created_at": "2024-05-06T07:08:09Z",
        },
    }


def test_ack_sync_keeps_empty_and_false_values() -> None:
    # Empty list, empty cursor and has_more=false are answers, not absences.
    assert wire(Ack(id="s", events=[], cursor={}, has_more=False)) == {
        "type": "ack",
        "id": "s",
        "events": [],
        "cursor": {},
        "has_more": False,
    }


def test_ack_unread_count_zero_is_kept() -> None:
    assert wire(Ack(id="n", unread_count=0)) == {"type": "ack", "id": "n", "unread_count": 0}


def test_error_wire() -> None:
    assert Error(id="r1", code="forbidden", message="no").to_wire() == (
        b'{"type":"error","id":"r1","code":"forbidden","message":"no"}'
    )
    assert Error(code="bad_request", message="bad frame").to_wire() == (
        b'{"type":"error","code":"bad_request","message":"bad frame"}'
    )


def test_error_code_must_be_a_protocol_code() -> None:
    with pytest.raises(ValidationError):
        Error(code="oops", message="x")


def test_pong_wire() -> None:
    assert Pong().to_wire() == b'{"type":"pong"}'
    assert Pong(id="p").to_wire() == b'{"type":"pong","id":"p"}'


def test_message_new_wire() -> None:
    body = wire(MessageNew(seq=9, message=message()))
    assert body["type"] == "message.new"
    assert body["stream"] == "chat"
    assert body["seq"] == 9
    assert body["message"]["seq"] == 3
    assert list(body) == ["type", "stream", "seq", "message"]


def test_message_status_wire() -> None:
    frame = MessageStatus(seq=4, conversation_id="c", user_id="u2", status="read", up_to_seq=7)
    assert frame.to_wire() == (
        b'{"type":"message.status","stream":"chat","seq":4,"conversation_id":"c",'
        b'"user_id":"u2","status":"read","up_to_seq":7}'
    )


def test_notification_read_event_all_alias() -> None:
    frame = NotificationReadEvent(seq=2, all_=True, unread_count=0)
    assert frame.to_wire() == (
        b'{"type":"notification.read","stream":"notifications","seq":2,"all":true,"unread_count":0}'
    )
    assert b"all_" not in frame.to_wire()


def test_notification_read_event_ids() -> None:
    frame = NotificationReadEvent(seq=2, ids=["n1"], unread_count=3)
    assert wire(frame) == {
        "type": "notification.read",
        "stream": "notifications",
        "seq": 2,
        "ids": ["n1"],
        "unread_count": 3,
    }


def test_server_frames_forbid_extra_fields() -> None:
    with pytest.raises(ValidationError):
        Pong.model_validate({"type": "pong", "surprise": 1})


def test_server_frames_round_trip() -> None:
    frame = MessageNew(seq=9, message=message())
    assert MessageNew.from_wire(frame.to_wire()) == frame
    read = NotificationReadEvent(seq=2, all_=True, unread_count=0)
    assert NotificationReadEvent.from_wire(read.to_wire()) == read


# --- server frames against their generated JSON Schema ----------------------------------------


def examples() -> list[tuple[str, WireModel]]:
    return [
        (
            "server-hello.json",
            Hello(
                user_id="u1",
                connection_id="c",
                heartbeat_s=25,
                server_time=NOW,
                limits=Limits(max_frame_bytes=65536, max_body_chars=4000, rate_per_s=20),
            ),
        ),
        ("server-ack.json", Ack(id="r1")),
        ("server-ack.json", Ack(id="r1", message=message())),
        ("server-ack.json", Ack(id="s", events=[{"type": "pong"}], cursor={"chat": 1})),
        ("server-error.json", Error(code="internal", message="x")),
        ("server-pong.json", Pong()),
        ("server-message.new.json", MessageNew(seq=1, message=message())),
        (
            "server-message.status.json",
            MessageStatus(seq=1, conversation_id="c", user_id="u", status="delivered", up_to_seq=1),
        ),
        (
            "server-typing.json",
            TypingEvent(conversation_id="c", user_id="u", state="start"),
        ),
        (
            "server-notification.new.json",
            NotificationNew(
                seq=1,
                notification=Notification(
                    id="n1",
                    kind="job_alert",
                    title="t",
                    body="b",
                    data={"job_id": 1},
                    created_at=NOW,
                ),
                unread_count=1,
            ),
        ),
        ("server-notification.read.json", NotificationReadEvent(seq=1, all_=True, unread_count=0)),
        ("server-notification.read.json", NotificationReadEvent(seq=1, ids=["a"], unread_count=0)),
    ]


@pytest.mark.parametrize(("schema_file", "frame"), examples())
def test_server_frame_matches_generated_schema(schema_file: str, frame: WireModel) -> None:
    schema = json.loads((SCHEMA_DIR / schema_file).read_text())
    jsonschema.Draft202012Validator(schema).validate(orjson.loads(frame.to_wire()))


def test_notification_new_has_read_false() -> None:
    frame = NotificationNew(
        seq=1,
        notification=Notification(id="n1", kind="k", title="t", body="b", data={}, created_at=NOW),
        unread_count=1,
    )
    assert wire(frame)["notification"]["read"] is False


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "message.send", "to": "u2", "client_msg_id": "c", "kind": "text", "body": "b"},
        {"type": "receipt", "conversation_id": "c", "seq": 0, "status": "delivered"},
        {"type": "sync", "cursor": {"chat": 1}},
        {"type": "notification.read", "all": True},
        {"type": "ping", "id": "1"},
    ],
)
def test_valid_client_frames_match_generated_schema(frame: dict[str, Any]) -> None:
    schema = json.loads((SCHEMA_DIR / "client-frame.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(frame)


def test_presence_keeps_null_last_seen_on_the_wire() -> None:
    frame = Presence(user_id="u1", status="offline", last_seen=None)
    assert orjson.loads(frame.to_wire()) == {
        "type": "presence",
        "user_id": "u1",
        "status": "offline",
        "last_seen": None,
    }


@pytest.mark.parametrize("extra", ['"ids":["n1"],"all":true', ""])
def test_notification_read_needs_exactly_one_of_ids_and_all(extra: str) -> None:
    raw = '{"type":"notification.read"' + ("," + extra if extra else "") + "}"
    with pytest.raises(ValidationError):
        CLIENT_FRAME.validate_json(raw)
