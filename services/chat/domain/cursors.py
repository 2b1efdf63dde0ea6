"""The opaque cursor of ``conversations.list``: where the next page starts, and as of when.

A page is ordered by last activity as it was at the moment the first page was read (``as_of``),
so conversations that receive messages while a client pages through its list neither come
twice nor drop out of the pages still to come: they keep their place in this listing, and
their new messages reach the client live. The cursor carries ``as_of`` and the (activity, id)
of the page's last conversation. Pure: base64url of a small JSON array.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from services.chat.domain.errors import BadRequest

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ListCursor:
    """Resume a listing after (activity, conversation id), as of a moment."""

    as_of: datetime
    activity: datetime
    conversation_id: str


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _moment(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def encode_cursor(cursor: ListCursor) -> str:
    """The cursor as an opaque URL-safe string (microsecond precision, as Postgres keeps)."""
    raw = orjson.dumps([_micros(cursor.as_of), _micros(cursor.activity), cursor.conversation_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> ListCursor:
    """Read a cursor made by :func:`encode_cursor`.

    Raises:
        BadRequest: anything else.
    """
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        as_of, activity, conversation_id = orjson.loads(raw)
        if not (isinstance(as_of, int) and isinstance(activity, int)):
            raise TypeError
        if not isinstance(conversation_id, str):
            raise TypeError
        return ListCursor(_moment(as_of), _moment(activity), conversation_id)
    except (binascii.Error, orjson.JSONDecodeError, TypeError, ValueError, OverflowError):
        raise BadRequest("before: not a cursor from conversations.list") from None
