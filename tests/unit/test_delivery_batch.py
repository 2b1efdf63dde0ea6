"""Delivery records: one frame per record, or a batch's frames for one user in one record,
each user's frames in the order they were added (the sender's message.new before its ack)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from pydantic import ValidationError

from schemas.envelope import Envelope
from schemas.events import DeliveryFrame
from services.runtime.codec import EventBuilder
from services.runtime.delivery import DeliveryWriter

TIME = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def writer() -> DeliveryWriter:
    counter = iter(range(1000))
    events = EventBuilder(source="/chat/t", now=lambda: TIME, new_id=lambda: f"e{next(counter)}")
    return DeliveryWriter(topic="delivery.frames.v1", events=events)


def data_of(value: bytes) -> DeliveryFrame:
    return DeliveryFrame.model_validate(Envelope.from_wire(value).data)


def test_a_batch_makes_one_record_per_user_with_that_users_frames_in_order() -> None:
    batch = writer().batch()
    batch.add("alice", b'{"type":"message.new","seq":1}', origin=TIME)
    batch.add("bob", b'{"type":"message.new","seq":7}', origin=TIME)
    batch.add("alice", b'{"type":"ack","id":"r1"}', origin=TIME, connection_id="c-a")
    batch.add("alice", b'{"type":"message.new","seq":2}')
    records = batch.records()
    assert [record.key for record in records] == [b"alice", b"bob"]
    alice = data_of(records[0].value)
    assert alice.user_id == "alice" and alice.frame is None and alice.frames is not None
    assert [(f.frame["type"], f.connection_id) for f in alice.frames] == [
        ("message.new", None),
        ("ack", "c-a"),
        ("message.new", None),
    ]
    assert alice.frames[0].origin_time == TIME and alice.frames[2].origin_time is None
    # A user with one frame gets the one-frame shape, as DeliveryWriter.frame writes it.
    bob = data_of(records[1].value)
    assert bob.frame == {"type": "message.new", "seq": 7} and bob.frames is None
    assert batch.records() == []


def test_the_one_frame_record_is_unchanged() -> None:
    record = writer().frame("u1", b'{"type":"pong"}', connection_id="c1")
    assert orjson.loads(record.value)["data"] == {
        "frame": {"type": "pong"},
        "connection_id": "c1",
        "user_id": "u1",
    }


def test_a_record_has_exactly_one_shape() -> None:
    with pytest.raises(ValidationError):
        DeliveryFrame.model_validate({"user_id": "u1"})
    with pytest.raises(ValidationError):
        DeliveryFrame.model_validate(
            {"user_id": "u1", "frame": {"type": "pong"}, "frames": [{"frame": {}}, {"frame": {}}]}
        )
