"""The notifier's part of a user's erasure (docs/erasure.md).

Three ways in, each applied in the transaction of the record that brings it:

    users.erasure.v1 (its own consumer, :mod:`services.runtime.erasure`) --NotifierEraser-->
        everything of the user: notifications, unread count, preferences, mutes, reads,
        connectivity, push subscriptions and jobs, the notifications stream
    chat.events.v1 chat.messages.erased (the main consumer, in order with the conversation's
        chat.message.created facts) --apply_erased_messages--> others' notifications that
        preview the user's messages lose the preview and the user's id (rows and frames,
        pushes dropped); the user's own data again (a notification made for them from a fact
        still in flight when their erasure ran); one report per fact (the follow-up steps
        ``erase-user`` waits for)
    presence.connectivity.v1 presence.connectivity.erased --forget_connectivity--> the user's
        connectivity, as of the erasure (a connectivity fact in flight when the erasure ran
        is applied before it: same key, same partition)
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.events import MessagesErased
from services.notifier import erasure_storage
from services.runtime.db import Connection
from services.runtime.erasure import Erased, ErasureReports, ErasureRequest
from services.runtime.outbox import OutboundRecord


class NotifierEraser:
    """The notifier's :class:`~services.runtime.erasure.Eraser` (``users.erasure.v1``)."""

    async def erase(
        self, conn: Connection, request: ErasureRequest, out: list[OutboundRecord]
    ) -> Erased:
        """Delete everything the notifier holds of the user."""
        return Erased(changes=await erasure_storage.erase_user(conn, request.user_id))


def step_name(fact: MessagesErased) -> str:
    """The follow-up step a ``chat.messages.erased`` fact is, in the notifier's reports."""
    return f"messages:{fact.conversation_id}:{fact.part}"


async def apply_erased_messages(
    conn: Connection,
    facts: Sequence[MessagesErased],
    *,
    reports: ErasureReports,
    out: list[OutboundRecord],
) -> None:
    """Apply chat's ``chat.messages.erased`` facts of a batch, in order, and report each."""
    erased_users: set[str] = set()
    for fact in facts:
        changes = await erasure_storage.erase_previews(
            conn,
            user_id=fact.user_id,
            conversation_id=fact.conversation_id,
            message_ids=fact.message_ids,
            member_ids=fact.member_ids,
        )
        if fact.user_id not in erased_users:
            erased_users.add(fact.user_id)
            changes |= await erasure_storage.erase_user(conn, fact.user_id)
        out.append(
            reports.report(fact.user_id, fact.request, step=step_name(fact), changes=changes)
        )
