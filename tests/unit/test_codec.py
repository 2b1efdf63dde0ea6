"""Kafka record <-> Envelope: structured mode (ours), binary mode (others), rejections."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from schemas.envelope import STRUCTURED_CONTENT_TYPE, Envelope
from schemas.events import WatermarkMoved
from services.runtime import codec
from services.runtime.errors import RecordRejected
from services.runtime.outbox import (
    OutboundRecord,
    _old_row_records,
    pack_records,
    unpack_records,
)

TIME = datetime(2024, 3, 4, 5, 6, 7, 123000, tzinfo=UTC)
SECRET = "top-secret-body-text"


def envelope(**fields: Any) -> Envelope:
    values: dict[str, Any] = {
        "id": "e1",
        "source": "/chat/c-1",
        "type": "chat.watermark.moved",
        "time": TIME,
        "subject": "dm_x",
        "data": {"conversation_id": "dm_x", "user_id": "u1", "status": "read", "up_to_seq": 3},
    }
    values.update(fields)
    return Envelope(**values)


def binary_headers(**overrides: bytes | None) -> list[tuple[str, bytes]]:
    headers: dict[str, bytes | None] = {
        "ce_specversion": b"1.0",
        "ce_id": b"b-1",
        "ce_source": b"/billing/worker-2",
        "ce_type": b"billing.invoice.paid",
        "ce_time": b"2024-03-04T05:06:07Z",
        "content-type": b"application/json",
    }
    headers.update(overrides)
    return [(name, value) for name, value in headers.items() if value is not None]


def rejection(
    value: bytes | None, headers: list[tuple[str, bytes]], *, timestamp_ms: int | None = None
) -> str:
    with pytest.raises(RecordRejected) as info:
        codec.decode(value, headers, timestamp_ms=timestamp_ms)
    assert info.value.retriable is False
    assert str(info.value) == info.value.reason
    return info.value.reason


# --- encode -----------------------------------------------------------------------------------


def test_encode_event_parses_as_envelope_with_fragment_data() -> None:
    frame = orjson.Fragment(b'{"type":"pong","id":"p1"}')
    raw = codec.encode_event(
        event_id="e9",
        source="/chat/c-1",
        event_type="delivery.frame",
        subject="u1",
        time=TIME,
        data={"user_id": "u1", "frame": frame, "n": [1, 2]},
    )
    parsed = Envelope.from_wire(raw)
    assert parsed == Envelope(
        id="e9",
        source="/chat/c-1",
        type="delivery.frame",
        time=TIME,
        subject="u1",
        data={"user_id": "u1", "frame": {"type": "pong", "id": "p1"}, "n": [1, 2]},
    )
    assert parsed.specversion == "1.0"
    assert parsed.datacontenttype == "application/json"
    # It also goes through the consumer's decode unchanged.
    assert codec.decode(raw, codec.STRUCTURED_HEADERS) == parsed


def test_encode_event_accepts_whole_data_as_fragment() -> None:
    raw = codec.encode_event(
        event_id="e1",
        source="/s",
        event_type="t",
        subject="s",
        time=TIME,
        data=orjson.Fragment(b'{"a":{"b":true}}'),
    )
    assert Envelope.from_wire(raw).data == {"a": {"b": True}}


def test_encode_round_trips() -> None:
    original = envelope()
    assert codec.decode(codec.encode(original), codec.STRUCTURED_HEADERS) == original


def test_structured_headers() -> None:
    assert codec.STRUCTURED_HEADERS == [("content-type", b"application/cloudevents+json")]
    assert STRUCTURED_CONTENT_TYPE == "application/cloudevents+json"


# --- decode: structured -----------------------------------------------------------------------


def test_decode_structured_bytes() -> None:
    raw = orjson.dumps(
        {
            "specversion": "1.0",
            "id": "e1",
            "source": "/gateway/gw-1",
            "type": "chat.message.send",
            "time": "2024-03-04T05:06:07.123Z",
            "data": {"k": "v"},
        }
    )
    decoded = codec.decode(raw, [])
    assert decoded.id == "e1"
    assert decoded.source == "/gateway/gw-1"
    assert decoded.type == "chat.message.send"
    assert decoded.time == TIME
    assert decoded.subject is None
    assert decoded.data == {"k": "v"}


@pytest.mark.parametrize(
    "value",
    [
        SECRET.encode(),
        b"",
        b"[]",
        b"\xff\xfe\x00",
        orjson.dumps({"specversion": "1.0", "id": "e", "source": "/s", "type": "t"}),
        orjson.dumps(
            {
                "specversion": "0.3",
                "id": "e",
                "source": "/s",
                "type": "t",
                "time": "2024-01-01T00:00:00Z",
                "data": {},
            }
        ),
        orjson.dumps(
            {"id": "e", "source": "/s", "type": "t", "time": "2024-01-01T00:00:00Z", "data": [1]}
        ),
        orjson.dumps({"id": "", "source": "/s", "type": "t", "time": "2024-01-01T00:00:00Z"}),
    ],
)
def test_decode_structured_garbage_is_rejected(value: bytes) -> None:
    reason = rejection(value, list(codec.STRUCTURED_HEADERS))
    assert reason.startswith("invalid_envelope:")


def test_decode_none_is_rejected() -> None:
    assert rejection(None, list(codec.STRUCTURED_HEADERS)) == "empty_value"
    assert rejection(None, binary_headers()) == "empty_value"


def test_structured_rejection_reason_names_location_not_value() -> None:
    raw = orjson.dumps(
        {"id": "e", "source": "/s", "type": "t", "time": SECRET, "data": {"body": SECRET}}
    )
    reason = rejection(raw, [])
    assert reason == "invalid_envelope:time:datetime_from_date_parsing"
    assert SECRET not in reason


def test_not_json_rejection_does_not_echo_input() -> None:
    reason = rejection(f'{{"body": "{SECRET}"'.encode(), [])
    assert SECRET not in reason
    assert reason == "invalid_envelope:record:json_invalid"


@pytest.mark.parametrize(
    "content_type",
    [
        b"application/cloudevents+json",
        b"application/cloudevents+json; charset=utf-8",
        b"Application/CloudEvents+JSON;charset=UTF-8",
        b'application/cloudevents+json; charset="utf-8"',
    ],
)
def test_structured_content_type_may_carry_a_utf8_charset(content_type: bytes) -> None:
    raw = codec.encode(envelope())
    assert codec.decode(raw, [("content-type", content_type)]) == envelope()


@pytest.mark.parametrize(
    "content_type",
    [b"application/json", b"text/plain", b"application/cloudevents+json; charset=latin-1", b"\xff"],
)
def test_structured_record_with_another_content_type_is_rejected(content_type: bytes) -> None:
    raw = codec.encode(envelope())
    assert rejection(raw, [("content-type", content_type)]) == "invalid_envelope:content_type"


def test_structured_event_without_time_takes_the_records_timestamp() -> None:
    raw = orjson.dumps({"specversion": "1.0", "id": "e", "source": "/s", "type": "t", "data": {}})
    decoded = codec.decode(raw, [], timestamp_ms=int(TIME.timestamp() * 1000))
    assert decoded.time == TIME
    assert (decoded.id, decoded.data) == ("e", {})


def test_structured_event_without_time_and_with_other_errors_is_still_rejected() -> None:
    raw = orjson.dumps({"specversion": "1.0", "id": "e", "source": "/s", "type": "t"})
    assert rejection(raw, [], timestamp_ms=1).startswith("invalid_envelope:")


# --- decode: binary ---------------------------------------------------------------------------


def test_decode_binary_mode() -> None:
    value = orjson.dumps({"invoice": "i-1", "amount": 12, "tags": ["é"]})
    decoded = codec.decode(value, binary_headers(ce_subject=b"u7"))
    assert decoded == Envelope(
        id="b-1",
        source="/billing/worker-2",
        type="billing.invoice.paid",
        time=datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC),
        subject="u7",
        data={"invoice": "i-1", "amount": 12, "tags": ["é"]},
    )


@pytest.mark.parametrize(
    "content_type",
    [b"application/json; charset=utf-8", b"Application/JSON", None],
)
def test_binary_content_type_is_json_with_an_optional_utf8_charset(
    content_type: bytes | None,
) -> None:
    decoded = codec.decode(b'{"a":1}', binary_headers(**{"content-type": content_type}))
    assert decoded.data == {"a": 1}


@pytest.mark.parametrize(
    "content_type", [b"text/plain", b"application/xml", b"application/json; charset=iso-8859-1"]
)
def test_binary_data_of_another_content_type_is_rejected(content_type: bytes) -> None:
    reason = rejection(b'{"a":1}', binary_headers(**{"content-type": content_type}))
    assert reason == "invalid_binary_event:content_type"


def test_binary_event_without_time_takes_the_records_timestamp() -> None:
    decoded = codec.decode(
        b'{"a":1}', binary_headers(ce_time=None), timestamp_ms=int(TIME.timestamp() * 1000)
    )
    assert decoded.time == TIME


def test_decode_binary_mode_header_names_are_case_insensitive() -> None:
    headers = [(name.upper(), value) for name, value in binary_headers()]
    decoded = codec.decode(b'{"a":1}', headers)
    assert (decoded.id, decoded.type, decoded.data) == ("b-1", "billing.invoice.paid", {"a": 1})


def test_binary_mode_is_chosen_by_ce_specversion_header() -> None:
    # A binary record's value is only data; parsed as structured it would be rejected.
    value = orjson.dumps({"id": "not-the-event-id"})
    assert codec.decode(value, binary_headers()).id == "b-1"


@pytest.mark.parametrize(
    "value",
    [SECRET.encode(), b"", b"[1, 2]", b'"a string"', b"\xff\xfe", b"42"],
)
def test_binary_mode_data_must_be_a_json_object(value: bytes) -> None:
    reason = rejection(value, binary_headers())
    assert reason.startswith("invalid_binary_event:")
    assert SECRET not in reason


def test_binary_mode_bad_time_is_rejected_without_echo() -> None:
    reason = rejection(b"{}", binary_headers(ce_time=SECRET.encode()))
    assert reason.startswith("invalid_binary_event:")
    assert SECRET not in reason


def test_binary_mode_undecodable_header_is_rejected() -> None:
    reason = rejection(b"{}", binary_headers(ce_source=b"\xff\xfe"))
    assert reason.startswith("invalid_binary_event:")


# --- parse_data -------------------------------------------------------------------------------


def test_parse_data_returns_model() -> None:
    parsed = codec.parse_data(envelope(), WatermarkMoved)
    assert parsed == WatermarkMoved(
        conversation_id="dm_x", user_id="u1", status="read", up_to_seq=3
    )


def test_parse_data_rejection_names_location_not_value() -> None:
    bad = envelope(
        data={"conversation_id": "dm_x", "user_id": "u1", "status": SECRET, "up_to_seq": 3}
    )
    with pytest.raises(RecordRejected) as info:
        codec.parse_data(bad, WatermarkMoved)
    assert info.value.reason == "invalid_data:status:literal_error"
    assert SECRET not in info.value.reason
    assert SECRET not in str(info.value)


def test_parse_data_missing_and_extra_fields() -> None:
    missing = envelope(data={"conversation_id": "dm_x", "user_id": "u1", "status": "read"})
    with pytest.raises(RecordRejected) as info:
        codec.parse_data(missing, WatermarkMoved)
    assert info.value.reason == "invalid_data:up_to_seq:missing"

    extra = envelope(
        data={
            "conversation_id": "dm_x",
            "user_id": "u1",
            "status": "read",
            "up_to_seq": 3,
            SECRET: 1,
        }
    )
    with pytest.raises(RecordRejected) as info:
        codec.parse_data(extra, WatermarkMoved)
    # The location of an unexpected key is the key itself: that is a field name, not a value.
    assert info.value.reason.startswith("invalid_data:")
    assert info.value.reason.endswith(":extra_forbidden")


# --- outbox rows -------------------------------------------------------------------------------


def test_outbox_records_pack_and_unpack_in_order() -> None:
    records = [
        OutboundRecord("delivery.frames.v1", b"u-1", b'{"a":1}'),
        OutboundRecord("chat.events.v1", None, b"", tuple(codec.STRUCTURED_HEADERS)),
        OutboundRecord("delivery.frames.v1", b"", b"x" * 70_000, (("traceparent", b"00-ab"),)),
        OutboundRecord("chat.events.v1", "k\u00e9".encode(), b"\x00\xff", (("n\u00e9", b"\xff"),)),
    ]
    topics, packed = pack_records(records)
    assert topics == ["delivery.frames.v1", "chat.events.v1"]
    unpacked = unpack_records(topics, packed)
    assert unpacked.records == records
    assert unpacked.gaps == {}


def test_outbox_rows_keep_records_without_their_stream_frames() -> None:
    frame = b'{"type":"notification.new","seq":7}'
    value = b'{"id":"e1","data":{"frame":' + frame + b',"user_id":"u-1"}}'
    records = [
        OutboundRecord("d.v1", b"u-1", value, (), (7, frame)),
        OutboundRecord("d.v1", b"u-2", b"whole"),
        # A frame the value does not carry is not cut: the value is kept whole.
        OutboundRecord("d.v1", b"u-3", b"other", (), (1, b"absent")),
    ]
    topics, packed = pack_records(records)
    assert frame not in packed
    unpacked = unpack_records(topics, packed)
    assert unpacked.gaps == {0: (b"u-1", 7, value.index(frame))}
    assert unpacked.records[0].value == value.replace(frame, b"")
    # Put back from the stream as it is then: rewritten in place, or gone with its user.
    rewritten = b'{"type":"notification.new","seq":7,"body":""}'
    assert unpacked.filled({("u-1", 7): rewritten}) == [
        OutboundRecord("d.v1", b"u-1", value.replace(frame, rewritten), (), (7, rewritten)),
        records[1],
        OutboundRecord("d.v1", b"u-3", b"other"),
    ]
    assert unpacked.filled({}) == [records[1], OutboundRecord("d.v1", b"u-3", b"other")]


def test_outbox_no_records_pack_to_no_topics() -> None:
    topics, packed = pack_records([])
    assert topics == []
    assert unpack_records(topics, packed).records == []


def test_outbox_unknown_row_format_is_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        unpack_records(["t"], b"\x03")


def test_outbox_rows_packed_before_frames_were_cut_still_read() -> None:
    # Version 1: per record topic index, key length, value length, header count.
    packed = b"\x01" + struct.pack(">HiIH", 0, 1, 2, 0) + b"k" + b"v1"
    assert unpack_records(["t"], packed).records == [OutboundRecord("t", b"k", b"v1")]


def test_outbox_rows_staged_before_packing_still_read() -> None:
    # A row staged by a version before outbox/0004, relayed after an upgrade.
    row = {
        "topics": ["t1", "t2"],
        "records": None,
        "keys": [b"k", None],
        "payloads": [b"v1", b"v2"],
        "headers": ['[["content-type","application/cloudevents+json"]]', None],
    }
    assert _old_row_records(row) == [  # type: ignore[arg-type]
        OutboundRecord("t1", b"k", b"v1", (("content-type", b"application/cloudevents+json"),)),
        OutboundRecord("t2", None, b"v2"),
    ]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"ce_source": None}, "invalid_binary_event:"),
        ({"ce_type": None}, "invalid_binary_event:"),
        ({"ce_id": None}, "invalid_binary_event:id"),
        ({"ce_specversion": b"0.3"}, "invalid_binary_event:specversion"),
        ({"ce_specversion": b"9.9"}, "invalid_binary_event:specversion"),
    ],
)
def test_binary_mode_incomplete_attributes_are_rejected_not_raised(
    overrides: dict[str, bytes | None], reason: str
) -> None:
    # An SDK validation error must become a DLQ reason, never stop the consumer; a missing id
    # must not be invented (dedupe is by id).
    assert rejection(b'{"a":1}', binary_headers(**overrides)).startswith(reason)
