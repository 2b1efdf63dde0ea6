"""parse_client_frame: raw text in, a typed frame or a FrameError (code, request_id) out.

Pins the gateway's part on top of the schema: the configured body limit (too_large), recovering
the request id for the error answer, and error messages that never echo what the client sent.
"""

from __future__ import annotations

from typing import Any

import orjson
import pydantic
import pytest

from schemas.frames import (
    MessageSend,
    NotificationReadRequest,
    Ping,
    PresenceSet,
    Receipt,
    Sync,
    Typing,
)
from services.gateway.domain.errors import FrameError
from services.gateway.domain.frames import parse_client_frame

MAX_BODY = 10
SECRET = "SECRET-VALUE-7f3a"


def _parse(frame: Any) -> object:
    text = frame if isinstance(frame, str) else orjson.dumps(frame).decode()
    return parse_client_frame(text, max_body_chars=MAX_BODY)


def _error(frame: Any) -> FrameError:
    with pytest.raises(FrameError) as info:
        _parse(frame)
    return info.value


def _send(**fields: Any) -> dict[str, Any]:
    return {"type": "message.send", "to": "u2", "client_msg_id": "c1", "kind": "text", **fields}


# --- valid frames -----------------------------------------------------------------------------


VALID: list[tuple[dict[str, Any], type[pydantic.BaseModel]]] = [
    (_send(body="hi"), MessageSend),
    (
        {
            "type": "message.send",
            "conversation_id": "g1",
            "client_msg_id": "c1",
            "kind": "text",
            "body": "hi",
        },
        MessageSend,
    ),
    ({"type": "receipt", "conversation_id": "g1", "seq": 3, "status": "read"}, Receipt),
    ({"type": "typing", "conversation_id": "g1", "state": "start"}, Typing),
    ({"type": "presence.set", "status": "away"}, PresenceSet),
    ({"type": "sync", "cursor": {"chat": 4}, "limit": 10}, Sync),
    ({"type": "sync"}, Sync),
    ({"type": "notification.read", "ids": ["n1", "n2"]}, NotificationReadRequest),
    ({"type": "notification.read", "all": True}, NotificationReadRequest),
    ({"type": "ping"}, Ping),
]


@pytest.mark.parametrize(
    ("frame", "cls"), VALID, ids=[f"{f['type']}-{i}" for i, (f, _) in enumerate(VALID)]
)
def test_valid_frame_parses_to_its_class(
    frame: dict[str, Any], cls: type[pydantic.BaseModel]
) -> None:
    parsed = _parse(frame)
    assert type(parsed) is cls
    assert parsed == cls.model_validate(frame)


def test_valid_frame_keeps_its_fields_and_id() -> None:
    parsed = _parse(_send(body="hello", id="r1"))
    assert isinstance(parsed, MessageSend)
    assert (parsed.id, parsed.to, parsed.conversation_id) == ("r1", "u2", None)
    assert (parsed.client_msg_id, parsed.kind, parsed.body) == ("c1", "text", "hello")


def test_sync_fields() -> None:
    parsed = _parse({"type": "sync", "cursor": {"chat": 4, "notifications": 0}, "limit": 7})
    assert isinstance(parsed, Sync)
    assert parsed.cursor == {"chat": 4, "notifications": 0}
    assert parsed.limit == 7


def test_unknown_fields_are_ignored() -> None:
    parsed = _parse({"type": "ping", "id": "p", "future_field": {"x": 1}})
    assert parsed == Ping(type="ping", id="p")


def test_body_at_the_configured_limit_is_accepted() -> None:
    parsed = _parse(_send(body="x" * MAX_BODY))
    assert isinstance(parsed, MessageSend)
    assert parsed.body == "x" * MAX_BODY


def test_body_limit_counts_characters_not_bytes() -> None:
    parsed = _parse(_send(body="漢" * MAX_BODY))
    assert isinstance(parsed, MessageSend)


# --- malformed frames -------------------------------------------------------------------------


MALFORMED: dict[str, Any] = {
    "not json": "{not json",
    "empty text": "",
    "truncated": '{"type": "ping"',
    "array": [{"type": "ping"}],
    "string": '"ping"',
    "number": "42",
    "null": "null",
    "no type": {"id": "r1"},
    "type null": {"type": None},
    "type int": {"type": 3},
    "unknown type": {"type": "message.delete"},
    "server frame type": {"type": "hello"},
    "seq as string": {"type": "receipt", "conversation_id": "g1", "seq": "3", "status": "read"},
    "seq negative": {"type": "receipt", "conversation_id": "g1", "seq": -1, "status": "read"},
    "seq bool": {"type": "receipt", "conversation_id": "g1", "seq": True, "status": "read"},
    "unknown status": {"type": "receipt", "conversation_id": "g1", "seq": 1, "status": "seen"},
    "typing state": {"type": "typing", "conversation_id": "g1", "state": "typing"},
    "presence status": {"type": "presence.set", "status": "invisible"},
    "body int": _send(body=5),
    "body empty": _send(body=""),
    "kind html": _send(kind="html", body="hi"),
    "no target": {"type": "message.send", "client_msg_id": "c", "kind": "text", "body": "hi"},
    "both targets": _send(conversation_id="g1", body="hi"),
    "client_msg_id too long": _send(client_msg_id="c" * 65, body="hi"),
    "cursor seq string": {"type": "sync", "cursor": {"chat": "4"}},
    "limit zero": {"type": "sync", "limit": 0},
    "ids and all": {"type": "notification.read", "ids": ["n1"], "all": True},
    "neither ids nor all": {"type": "notification.read"},
    "id int": {"type": "ping", "id": 5},
    "id too long": {"type": "ping", "id": "r" * 65},
}


@pytest.mark.parametrize("frame", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_frame_is_bad_request(frame: Any) -> None:
    error = _error(frame)
    assert error.code == "bad_request"
    assert error.message


@pytest.mark.parametrize(
    "frame",
    [
        "{not json",
        [{"type": "ping", "id": "r1"}],
        {"type": "ping", "id": 5},
        {"type": "ping", "id": ""},
        {"type": "ping", "id": "r" * 65},
        {"type": "ping", "id": ["r1"]},
        {"type": 7, "id": None},
    ],
)
def test_request_id_is_absent_when_unreadable(frame: Any) -> None:
    assert _error(frame).request_id is None


@pytest.mark.parametrize(
    "frame",
    [
        {"id": "REQ"},
        {"type": None, "id": "REQ"},
        {"type": "nope", "id": "REQ"},
        {"type": "receipt", "id": "REQ", "conversation_id": "g1", "seq": "x", "status": "read"},
        _send(id="REQ", body=7),
        _send(id="REQ", body="x" * (MAX_BODY + 1)),
        {"type": "presence.set", "id": "REQ", "status": "nope"},
    ],
)
def test_request_id_is_recovered_when_readable(frame: Any) -> None:
    assert _error(frame).request_id == "REQ"


def test_request_id_of_64_chars_is_recovered() -> None:
    rid = "r" * 64
    assert _error({"type": "nope", "id": rid}).request_id == rid


# --- body limit -------------------------------------------------------------------------------


def test_body_over_the_configured_limit_is_too_large_although_the_schema_allows_it() -> None:
    error = _error(_send(body="x" * (MAX_BODY + 1), id="r9"))
    assert error.code == "too_large"
    assert error.request_id == "r9"


def test_body_limit_is_the_configured_one() -> None:
    text = orjson.dumps(_send(body="x" * 50)).decode()
    assert isinstance(parse_client_frame(text, max_body_chars=50), MessageSend)
    with pytest.raises(FrameError) as info:
        parse_client_frame(text, max_body_chars=49)
    assert info.value.code == "too_large"


def test_body_over_the_schema_limit_is_too_large() -> None:
    assert _error(_send(body="x" * 4001)).code == "too_large"


def test_too_large_wins_over_other_field_errors() -> None:
    # The body is measured before the schema runs: a long body is too_large whatever else is off.
    assert _error(_send(kind="html", body="x" * (MAX_BODY + 1))).code == "too_large"


def test_a_body_field_on_another_frame_type_is_ignored() -> None:
    parsed = _parse({"type": "ping", "body": "x" * (MAX_BODY + 100)})
    assert isinstance(parsed, Ping)


# --- messages never echo what was sent --------------------------------------------------------


ECHO_CASES: dict[str, Any] = {
    "body too large": _send(body=SECRET),
    "body with bad kind": _send(kind="html", body=SECRET),
    "body without target": {
        "type": "message.send",
        "client_msg_id": "c",
        "kind": "text",
        "body": SECRET,
    },
    "body with both targets": _send(conversation_id="g1", body=SECRET[:MAX_BODY]),
    "body int with secret id": _send(client_msg_id=SECRET * 5, body=1),
    "secret type": {"type": SECRET},
    "secret status": {"type": "presence.set", "status": SECRET},
    "secret state": {"type": "typing", "conversation_id": "g1", "state": SECRET},
    "secret seq": {"type": "receipt", "conversation_id": "g1", "seq": SECRET, "status": "read"},
    "secret cursor value": {"type": "sync", "cursor": {"chat": SECRET}},
    "secret limit": {"type": "sync", "limit": SECRET},
    "secret ids item": {"type": "notification.read", "ids": [SECRET * 5]},
    "secret conversation id": {"type": "typing", "conversation_id": SECRET * 10, "state": "x"},
    "secret id": {"type": "ping", "id": SECRET * 5},
    "not json with secret": '{"type": "message.send", "body": "' + SECRET,
}


@pytest.mark.parametrize("frame", ECHO_CASES.values(), ids=ECHO_CASES.keys())
def test_error_message_never_echoes_values_sent(frame: Any) -> None:
    error = _error(frame)
    assert SECRET not in error.message
    assert SECRET not in str(error)


CURSOR_SECRET = "SECRET-VALUE-7f3a"


def test_invalid_cursor_key_is_not_echoed() -> None:
    text = orjson.dumps({"type": "sync", "cursor": {CURSOR_SECRET * 5: 1}}).decode()
    with pytest.raises(FrameError) as info:
        parse_client_frame(text, max_body_chars=10)
    assert info.value.code == "bad_request"
    assert CURSOR_SECRET not in info.value.message


def test_long_cursor_key_gives_a_bounded_error_message() -> None:
    text = orjson.dumps({"type": "sync", "cursor": {"k" * 60_000: 1}}).decode()
    with pytest.raises(FrameError) as info:
        parse_client_frame(text, max_body_chars=10)
    assert len(info.value.message) < 500
