"""The conversations.list cursor round-trips and refuses anything it did not make."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.chat.domain.cursors import ListCursor, decode_cursor, encode_cursor
from services.chat.domain.errors import BadRequest


def test_round_trip_keeps_microseconds() -> None:
    cursor = ListCursor(
        as_of=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        activity=datetime(2025, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
        conversation_id="grp_ab/+=é",
    )
    text = encode_cursor(cursor)
    assert text.isascii() and "=" not in text and "/" not in text
    assert decode_cursor(text) == cursor


@pytest.mark.parametrize("text", ["", "!!!", "bm90IGpzb24", "WzEsMl0", "WyJhIiwxLCJ4Il0"])
def test_anything_else_is_bad_request(text: str) -> None:
    with pytest.raises(BadRequest):
        decode_cursor(text)
