"""An erased user's trace in others' notifications: the preview and the id go (pure)."""

from __future__ import annotations

from typing import Any

from schemas.ids import ERASED_USER_ID
from services.notifier.domain import texts
from services.notifier.domain.erasure import erase_preview, erase_preview_frame, erased_title


def notification(sender: str, count: int) -> dict[str, Any]:
    title, body = texts.message_texts(sender_id=sender, body="my secret", count=count)
    return {
        "id": "n1",
        "kind": "message",
        "title": title,
        "body": body,
        "data": texts.message_data(
            conversation_id="dm_1", sender_id=sender, message_id="m1", count=count
        ),
        "created_at": "2026-01-01T00:00:00Z",
    }


def test_one_message_the_title_names_the_placeholder_and_the_preview_goes() -> None:
    erased = erase_preview(notification("ulla", 1), user_id="ulla")
    assert erased["title"] == f"New message from {ERASED_USER_ID}" == erased_title(1)
    assert erased["body"] == "" and erased["data"]["sender_id"] == ERASED_USER_ID
    assert "ulla" not in str(erased) and "secret" not in str(erased)


def test_several_messages_the_count_stays_and_the_sender_prefix_goes_with_the_body() -> None:
    erased = erase_preview(notification("ulla", 3), user_id="ulla")
    assert (erased["title"], erased["body"]) == ("3 new messages", "")
    assert erased["data"] == {
        "conversation_id": "dm_1",
        "sender_id": ERASED_USER_ID,
        "message_id": "m1",
        "count": 3,
    }


def test_a_stored_frame_is_rewritten_the_same_way() -> None:
    frame = {
        "type": "notification.new",
        "stream": "notifications",
        "seq": 4,
        "notification": notification("ulla", 1),
        "unread_count": 2,
    }
    erased = erase_preview_frame(frame, user_id="ulla")
    assert erased["seq"] == 4 and erased["unread_count"] == 2
    assert "ulla" not in str(erased) and "secret" not in str(erased)
