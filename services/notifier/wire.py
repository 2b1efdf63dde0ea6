"""The notifier's durable frames as bytes, built on the hot path with one orjson call each.

A job alert to 1,000 users is 1,000 ``notification.new`` frames: building each through the
pydantic model costs several times the rest of its way through the service, so they are
encoded here from plain values (``data`` already encoded once per batch, and what the
recipients of one notification share once per batch). Unit tests hold these
to the models in schemas/frames.py (same JSON, valid ``NotificationNew``/``NotificationReadEvent``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson

from services.notifier.domain.inbox import View

#: The same time format as every frame (pydantic's): UTC as ``Z``.
_OPTIONS = orjson.OPT_UTC_Z


class NotificationNewEncoder:
    """``notification.new`` frames of one batch.

    A job alert shows one notification content (kind, title, body, data, time) to thousands
    of recipients: what they share is encoded once and each frame spliced from bytes around
    its seq, id and unread count (one orjson call per frame over the whole dict cost about
    three times as much). The bytes are exactly the model's (unit tests).
    """

    __slots__ = ("_shared",)

    def __init__(self) -> None:
        # (kind, title, body, data_json, created_at) -> the notification's members after its id.
        self._shared: dict[tuple[str, str, str, str, datetime], bytes] = {}

    def __call__(self, seq: int, view: View, *, unread_count: int, data_json: str) -> bytes:
        """``notification.new`` at ``seq`` of the user's ``notifications`` stream."""
        key = (view.kind, view.title, view.body, data_json, view.created_at)
        shared = self._shared.get(key)
        if shared is None:
            shared = self._shared[key] = _shared_members(view, data_json)
        return b"".join(
            (
                _NEW_HEAD,
                str(seq).encode(),
                b',"notification":{"id":',
                orjson.dumps(view.id),
                shared,
                b',"unread_count":',
                str(unread_count).encode(),
                b"}",
            )
        )


_NEW_HEAD = b'{"type":"notification.new","stream":"notifications","seq":'


def _shared_members(view: View, data_json: str) -> bytes:
    """The members of a notification after its id, and the object's end."""
    whole = orjson.dumps(
        {
            "kind": view.kind,
            "title": view.title,
            "body": view.body,
            "data": orjson.Fragment(data_json),
            "created_at": view.created_at,
            "read": False,
        },
        option=_OPTIONS,
    )
    return b"," + whole[1:]


def notification_read(seq: int, ids: Sequence[str] | None, *, unread_count: int) -> bytes:
    """``notification.read`` at ``seq``: these ids were read, or all (``ids`` None)."""
    frame: dict[str, object] = {"type": "notification.read", "stream": "notifications", "seq": seq}
    if ids is None:
        frame["all"] = True
    else:
        frame["ids"] = list(ids)
    frame["unread_count"] = unread_count
    return orjson.dumps(frame, option=_OPTIONS)
