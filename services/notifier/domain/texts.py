"""What a notification of each kind says: its title, body and ``data``. Pure.

The title and body are what a bell or a push shows; ``data`` is what a UI needs to link to the
source (protocol.md, part 2): for ``message`` ``{conversation_id, sender_id, message_id,
count}``, for ``job_alert`` ``{job_id, url, title, company, location}``, for
``application_status`` ``{application_id, job_id, status, previous_status}``.

Users are named by their ids: the notifier learns no display names (the site's UI, which has
them, can render its own text from ``data``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Longest message preview in a ``message`` notification's body, in characters.
PREVIEW_CHARS = 160
ELLIPSIS = "\u2026"

#: What the candidate reads for each application status (events.md's list).
STATUS_TEXT: Mapping[str, str] = {
    "submitted": "Your application was submitted.",
    "viewed": "Your application was viewed.",
    "shortlisted": "You were shortlisted.",
    "interview": "You are invited to an interview.",
    "offer": "You received an offer.",
    "hired": "You were hired. Congratulations!",
    "rejected": "Your application was not selected.",
    "withdrawn": "Your application was withdrawn.",
}


def preview(body: str, limit: int = PREVIEW_CHARS) -> str:
    """A message body as one line (runs of whitespace become one space), cut at ``limit``
    characters with an ellipsis."""
    line = " ".join(body.split())
    if len(line) <= limit:
        return line
    return line[: limit - 1] + ELLIPSIS


def message_texts(*, sender_id: str, body: str, count: int) -> tuple[str, str]:
    """Title and body of a conversation's unread ``message`` notification covering ``count``
    messages, the latest from ``sender_id`` saying ``body``."""
    if count == 1:
        return f"New message from {sender_id}", preview(body)
    return f"{count} new messages", f"{sender_id}: {preview(body)}"


def message_data(
    *, conversation_id: str, sender_id: str, message_id: str, count: int
) -> dict[str, Any]:
    """``data`` of a ``message`` notification (its latest message)."""
    return {
        "conversation_id": conversation_id,
        "sender_id": sender_id,
        "message_id": message_id,
        "count": count,
    }


def job_alert_texts(*, title: str, company: str | None, location: str | None) -> tuple[str, str]:
    """Title and body of a ``job_alert`` notification."""
    where = " \u00b7 ".join(part for part in (company, location) if part)
    return f"New job: {title}", where or "A new job matches your saved alert."


def job_alert_data(
    *, job_id: str, url: str, title: str, company: str | None, location: str | None
) -> dict[str, Any]:
    """``data`` of a ``job_alert`` notification."""
    return {"job_id": job_id, "url": url, "title": title, "company": company, "location": location}


def application_texts(*, job_title: str, status: str, note: str | None) -> tuple[str, str]:
    """Title and body of an ``application_status`` notification."""
    body = STATUS_TEXT.get(status, f"Your application is now {status}.")
    if note:
        body = f"{body} {note}"
    return f"Application update: {job_title}", body


def application_data(
    *, application_id: str, job_id: str, status: str, previous_status: str | None
) -> dict[str, Any]:
    """``data`` of an ``application_status`` notification."""
    return {
        "application_id": application_id,
        "job_id": job_id,
        "status": status,
        "previous_status": previous_status,
    }
