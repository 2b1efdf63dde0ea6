"""The one CloudEvent builder every producer uses: what a record carries, and that it parses."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import orjson

from schemas.envelope import Envelope
from schemas.topics import DELIVERY_FRAME
from services.runtime import codec
from services.runtime.codec import EventBuilder
from services.runtime.delivery import DeliveryWriter

T0 = datetime(2025, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)


def builder() -> EventBuilder:
    ids = (f"e{n}" for n in itertools.count(1))
    ticks = (T0 + timedelta(seconds=n) for n in itertools.count())
    return EventBuilder(source="/svc/i-1", now=lambda: next(ticks), new_id=lambda: next(ids))


def test_record_is_keyed_and_parses_as_an_envelope() -> None:
    record = builder().record("t.v1", "svc.thing.done", key="conv-1", data={"n": 1})
    assert record.topic == "t.v1"
    assert record.key == b"conv-1"
    assert record.headers == ()
    assert Envelope.from_wire(record.value) == Envelope(
        id="e1", source="/svc/i-1", type="svc.thing.done", time=T0, subject="conv-1", data={"n": 1}
    )


def test_each_record_gets_a_fresh_id_and_the_clock_time() -> None:
    events = builder()
    first, second = (
        Envelope.from_wire(events.record("t", "x", key="k", data={}).value) for _ in range(2)
    )
    assert (first.id, second.id) == ("e1", "e2")
    assert second.time - first.time == timedelta(seconds=1)


def test_subject_and_time_can_be_given() -> None:
    at = datetime(2020, 5, 6, tzinfo=UTC)
    record = builder().record("t", "x", key="u1", data={}, subject="other", time=at)
    envelope = Envelope.from_wire(record.value)
    assert (envelope.subject, envelope.time) == ("other", at)


def test_pre_encoded_data_is_embedded_as_is() -> None:
    record = builder().record("t", "x", key="k", data=orjson.Fragment(b'{"a":[1,{"b":null}]}'))
    assert Envelope.from_wire(record.value).data == {"a": [1, {"b": None}]}
    assert codec.decode(record.value, codec.STRUCTURED_HEADERS).data == {"a": [1, {"b": None}]}


def test_delivery_record_keyed_by_user_with_frame_untouched() -> None:
    frame = b'{"type":"pong","id":"p1"}'
    record = DeliveryWriter(topic="d.v1", events=builder()).frame(
        "u9", frame, origin=T0, connection_id="c3"
    )
    assert (record.topic, record.key) == ("d.v1", b"u9")
    envelope = Envelope.from_wire(record.value)
    assert envelope.type == DELIVERY_FRAME
    assert envelope.subject == "u9"
    assert envelope.data == {
        "user_id": "u9",
        "frame": {"type": "pong", "id": "p1"},
        "origin_time": T0.isoformat(),
        "connection_id": "c3",
    }
    # The frame bytes travel unchanged inside the record.
    assert frame in record.value


def test_records_at_parse_as_the_records_one_at_a_time_would() -> None:
    at = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
    items = [("u1", b'{"n":1}'), ('u"2\u00e9', b'{"a":[1,{"b":null}]}')]
    bulk = builder().records_at("t.v1", "svc.thing.done", items, time=at)
    one_by_one = builder()
    expected = [
        one_by_one.record("t.v1", "svc.thing.done", key=key, data=orjson.Fragment(data), time=at)
        for key, data in items
    ]
    assert [(r.topic, r.key, r.headers) for r in bulk] == [
        (r.topic, r.key, r.headers) for r in expected
    ]
    assert [Envelope.from_wire(r.value) for r in bulk] == [
        Envelope.from_wire(r.value) for r in expected
    ]
    assert [Envelope.from_wire(r.value).id for r in bulk] == ["e1", "e2"]


def test_delivery_frames_at_carry_each_users_frame_untouched() -> None:
    frames = [
        ("u1", 3, b'{"type":"notification.new","seq":3}'),
        ("u2", 9, b'{"type":"notification.read","seq":9}'),
    ]
    records = DeliveryWriter(topic="d.v1", events=builder()).frames_at(frames, time=T0)
    assert [record.key for record in records] == [b"u1", b"u2"]
    # Stored in the users' streams: the outbox keeps the records without them.
    assert [record.stream_frame for record in records] == [(seq, f) for _, seq, f in frames]
    for record, (user, _, frame) in zip(records, frames, strict=True):
        envelope = Envelope.from_wire(record.value)
        assert (envelope.type, envelope.subject, envelope.time) == (DELIVERY_FRAME, user, T0)
        assert envelope.data == {"user_id": user, "frame": orjson.loads(frame)}
        assert codec.decode(record.value, codec.STRUCTURED_HEADERS) == envelope
