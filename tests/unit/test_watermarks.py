"""Delivered/read watermarks: monotonic, clamped, read implies delivered; who is told."""

from __future__ import annotations

import random

import pytest

from schemas.frames import ReceiptStatus
from services.chat.domain.watermarks import (
    WatermarkChange,
    Watermarks,
    apply_receipt,
    audience,
)


def test_delivered_moves_and_is_announced() -> None:
    change = apply_receipt(Watermarks(delivered=2, read=1), status="delivered", seq=5, last_seq=9)
    assert change == WatermarkChange(Watermarks(delivered=5, read=1), ("delivered", 5))


def test_read_moves_delivered_along_and_announces_only_read() -> None:
    change = apply_receipt(Watermarks(delivered=2, read=1), status="read", seq=6, last_seq=9)
    assert change.watermarks == Watermarks(delivered=6, read=6)
    assert change.announce == ("read", 6)


def test_read_below_delivered_keeps_delivered() -> None:
    change = apply_receipt(Watermarks(delivered=8, read=1), status="read", seq=4, last_seq=9)
    assert change.watermarks == Watermarks(delivered=8, read=4)
    assert change.announce == ("read", 4)


@pytest.mark.parametrize("status", ["delivered", "read"])
@pytest.mark.parametrize("seq", [0, 3, 4])
def test_lower_or_equal_receipt_changes_nothing(status: ReceiptStatus, seq: int) -> None:
    current = Watermarks(delivered=6, read=4)
    change = apply_receipt(current, status=status, seq=seq, last_seq=9)
    assert change == WatermarkChange(current, None)


def test_repeat_receipt_is_not_announced_twice() -> None:
    first = apply_receipt(Watermarks(0, 0), status="read", seq=3, last_seq=3)
    second = apply_receipt(first.watermarks, status="read", seq=3, last_seq=3)
    assert first.announce == ("read", 3)
    assert second.announce is None
    assert second.watermarks == first.watermarks


def test_receipt_is_clamped_to_last_seq() -> None:
    delivered = apply_receipt(Watermarks(0, 0), status="delivered", seq=100, last_seq=7)
    assert delivered == WatermarkChange(Watermarks(delivered=7, read=0), ("delivered", 7))
    read = apply_receipt(Watermarks(0, 0), status="read", seq=100, last_seq=7)
    assert read == WatermarkChange(Watermarks(delivered=7, read=7), ("read", 7))


def test_receipt_beyond_last_seq_when_already_at_it_changes_nothing() -> None:
    change = apply_receipt(Watermarks(7, 7), status="read", seq=50, last_seq=7)
    assert change == WatermarkChange(Watermarks(7, 7), None)


def test_delivered_after_read_below_read_changes_nothing() -> None:
    current = Watermarks(delivered=5, read=5)
    change = apply_receipt(current, status="delivered", seq=3, last_seq=9)
    assert change == WatermarkChange(current, None)


def test_delivered_above_read_does_not_move_read() -> None:
    change = apply_receipt(Watermarks(5, 5), status="delivered", seq=8, last_seq=9)
    assert change == WatermarkChange(Watermarks(delivered=8, read=5), ("delivered", 8))


@pytest.mark.parametrize("status", ["delivered", "read"])
def test_receipt_on_empty_conversation(status: ReceiptStatus) -> None:
    change = apply_receipt(Watermarks(0, 0), status=status, seq=0, last_seq=0)
    assert change == WatermarkChange(Watermarks(0, 0), None)
    clamped = apply_receipt(Watermarks(0, 0), status=status, seq=3, last_seq=0)
    assert clamped == WatermarkChange(Watermarks(0, 0), None)


def test_negative_seq_changes_nothing() -> None:
    change = apply_receipt(Watermarks(2, 1), status="read", seq=-5, last_seq=9)
    assert change == WatermarkChange(Watermarks(2, 1), None)


def test_input_is_not_mutated() -> None:
    current = Watermarks(1, 1)
    apply_receipt(current, status="read", seq=5, last_seq=9)
    assert current == Watermarks(1, 1)


@pytest.mark.parametrize("seed", range(20))
def test_random_receipt_sequences_keep_invariants(seed: int) -> None:
    """Property: read <= delivered <= last_seq, both monotonic, announce iff its mark moved."""
    rng = random.Random(seed)
    state = Watermarks(0, 0)
    last_seq = 0
    for _ in range(300):
        last_seq += rng.choice([0, 0, 1, 2, 5])  # messages keep arriving
        status: ReceiptStatus = rng.choice(["delivered", "read"])
        seq = rng.randint(-2, last_seq + 5)
        change = apply_receipt(state, status=status, seq=seq, last_seq=last_seq)
        new = change.watermarks

        assert 0 <= new.read <= new.delivered <= last_seq
        assert new.read >= state.read
        assert new.delivered >= state.delivered
        # Every receipt takes effect up to its (clamped) seq.
        target = min(seq, last_seq)
        if status == "read":
            assert new.read == max(state.read, target)
            assert new.delivered == max(state.delivered, new.read)
            expected = ("read", new.read) if new.read > state.read else None
        else:
            assert new.read == state.read
            assert new.delivered == max(state.delivered, target)
            expected = ("delivered", new.delivered) if new.delivered > state.delivered else None
        assert change.announce == expected
        state = new


def test_a_read_is_told_to_every_member_the_readers_own_devices_included() -> None:
    # The reader's other devices clear their unread badge from it.
    assert audience(["ann", "bob", "cy"], "bob", "read") == ["ann", "bob", "cy"]


def test_a_delivered_is_told_to_the_other_members_only() -> None:
    assert audience(["ann", "bob", "cy"], "bob", "delivered") == ["ann", "cy"]


def test_a_direct_conversation_left_alone_still_tells_the_reader_of_a_read() -> None:
    # An erased peer leaves a direct conversation with one member.
    assert audience(["ann"], "ann", "read") == ["ann"]
    assert audience(["ann"], "ann", "delivered") == []
