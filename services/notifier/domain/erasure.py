"""What an erased user leaves in other people's notifications. Pure.

A ``message`` notification previews its latest message: title ``New message from <sender>``
(one message) or ``<n> new messages``, body the preview (prefixed ``<sender>: `` from two
messages on), ``data.sender_id`` the sender. When that message was the erased user's, the
preview goes (as for a deleted message) and the user's id with it: the title and
``data.sender_id`` name the placeholder instead (docs/erasure.md).
"""

from __future__ import annotations

from typing import Any

from schemas.ids import ERASED_USER_ID
from services.notifier.domain import texts


def erased_title(count: int) -> str:
    """The title of a message notification whose latest message's sender was erased."""
    title, _ = texts.message_texts(sender_id=ERASED_USER_ID, body="", count=count)
    return title


def erase_preview(notification: dict[str, Any], *, user_id: str) -> dict[str, Any]:
    """A notification (wire form, changed in place and returned) without the preview of the
    erased user's message, nor their id."""
    notification["body"] = ""
    data = notification.get("data")
    if isinstance(data, dict) and data.get("sender_id") == user_id:
        data["sender_id"] = ERASED_USER_ID
        count = data.get("count", 1)
        notification["title"] = erased_title(count if isinstance(count, int) else 1)
    return notification


def erase_preview_frame(frame: dict[str, Any], *, user_id: str) -> dict[str, Any]:
    """A stored ``notification.new`` frame without the erased user's preview or id."""
    notification = frame.get("notification")
    if isinstance(notification, dict):
        frame["notification"] = erase_preview(notification, user_id=user_id)
    return frame
