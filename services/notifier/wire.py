"""The notifier's durable frames as bytes, built on the hot path with one orjson call each.

A job alert to 1,000 users is 1,000 ``notification.new`` frames: building each through the
pydantic model costs several times the rest of its way through the service, so they are
encoded here from plain values (``data`` already encoded once per batch). Unit tests hold these
to the models in schemas/frames.py (same JSON, valid ``NotificationNew``/``NotificationReadEvent``).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from services.notifier.domain.inbox import View

#: The same time format as every frame (pydantic's): UTC as ``Z``.
_OPTIONS = orjson.OPT_UTC_Z


def notification_new(seq: int, view: View, *, unread_count: int, data_json: str) -> bytes:
    """``notification.new`` at ``seq`` of the user's ``notifications`` stream."""
    return orjson.dumps(
        {
            "type": "notification.new",
            "stream": "notifications",
            "seq": seq,
            "notification": {
                "id": view.id,
                "kind": view.kind,
                "title": view.title,
                "body": view.body,
                "data": orjson.Fragment(data_json),
                "created_at": view.created_at,
                "read": False,
            },
            "unread_count": unread_count,
        },
        option=_OPTIONS,
    )


def notification_read(seq: int, ids: Sequence[str] | None, *, unread_count: int) -> bytes:
    """``notification.read`` at ``seq``: these ids were read, or all (``ids`` None)."""
    frame: dict[str, object] = {"type": "notification.read", "stream": "notifications", "seq": seq}
    if ids is None:
        frame["all"] = True
    else:
        frame["ids"] = list(ids)
    frame["unread_count"] = unread_count
    return orjson.dumps(frame, option=_OPTIONS)
