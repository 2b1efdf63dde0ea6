"""Nothing a service could not store passes the gateway: U+0000 in any string and integers
beyond 64 bits are ``bad_request`` with the frame's id (the fuzzer found both going unanswered:
the services failed on them after the gateway had handed the command on)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.gateway.domain.errors import FrameError
from services.gateway.domain.frames import parse_client_frame

SEND = {"type": "message.send", "to": "b", "client_msg_id": "m", "kind": "text", "body": "hi"}
RECEIPT = {"type": "receipt", "conversation_id": "c", "seq": 1, "status": "read"}


def parse(frame: dict[str, Any]) -> object:
    return parse_client_frame(json.dumps(frame), max_body_chars=4000)


@pytest.mark.parametrize(
    "frame",
    [
        {**SEND, "body": "a\x00b"},
        {**SEND, "to": "\x00"},
        {**SEND, "client_msg_id": "m\x00"},
        {**RECEIPT, "conversation_id": "c\x00"},
        {"type": "typing", "conversation_id": "\x00", "state": "start"},
        {"type": "sync", "cursor": {"chat\x00": 1}},
        # Unknown fields are ignored, but not stored either: still refused, being harmless
        # to refuse and simpler to state.
        {**SEND, "extra\x00": 1},
        {**SEND, "extra": ["\x00"]},
    ],
)
def test_a_string_with_nul_is_a_bad_request_answered_with_its_id(frame: dict[str, Any]) -> None:
    with pytest.raises(FrameError) as info:
        parse({**frame, "id": "r1"})
    assert (info.value.code, info.value.request_id) == ("bad_request", "r1")
    assert "U+0000" in info.value.message


@pytest.mark.parametrize(
    "frame",
    [
        {**RECEIPT, "seq": 2**63},
        {"type": "sync", "cursor": {"chat": 2**64 - 1}},
        # Past 64 bits JSON parsing yields a float, which strict typing refuses.
        {**RECEIPT, "seq": 2**64 + 5},
    ],
)
def test_an_integer_beyond_64_bits_is_a_bad_request(frame: dict[str, Any]) -> None:
    with pytest.raises(FrameError) as info:
        parse({**frame, "id": "r2"})
    assert (info.value.code, info.value.request_id) == ("bad_request", "r2")


def test_the_edges_of_what_is_storable_pass() -> None:
    assert parse({**RECEIPT, "seq": 2**63 - 1})
    assert parse({"type": "sync", "cursor": {"chat": 1234567890123456789}})
    # The six characters backslash-u-0-0-0-0 are text like any other.
    assert parse({**SEND, "body": "a literal \\u0000 is fine"})
    assert parse({**SEND, "body": "digits 12345678901234567890 in a body are text"})
