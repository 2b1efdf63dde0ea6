"""Postgres access of an erasure in the notifier: every statement it runs besides the
``notifications`` stream's (:mod:`services.runtime.streams`). The caller owns the transaction.

Lock order, the notifier's own (services/notifier/storage.py): a user's stream row first (every
writer of a user's notifications holds it), then the user's rows, then push jobs.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

from schemas.ids import ERASED_USER_ID
from services.notifier.domain.erasure import erase_preview_frame, erased_title
from services.notifier.storage import STREAM
from services.runtime.db import Connection


async def erase_user(conn: Connection, user_id: str) -> dict[str, int]:
    """Delete everything the notifier holds of a user: notifications (and the latest status
    of the applications they were about), unread count, preferences, mutes, conversation
    reads, connectivity, push subscriptions and their jobs, the ``notifications`` stream.

    Returns:
        Rows (frames, for the stream) deleted, by kind.
    """
    # The stream row is created if missing and held until the commit (the row goes with the
    # rest): a batch that found no stream for this user waits at its creation of the stream
    # until the erasure is over, instead of writing rows the erasure is deleting.
    await conn.execute(STREAM.lock_sql("SELECT $1::text"), user_id)
    row = await conn.fetchrow(
        "WITH apps AS (DELETE FROM notifier.applications WHERE application_id IN ("
        "   SELECT data ->> 'application_id' FROM notifier.notifications"
        "   WHERE user_id = $1 AND kind = 'application_status') RETURNING 1),"
        " notes AS (DELETE FROM notifier.notifications WHERE user_id = $1 RETURNING 1),"
        " inbox AS (DELETE FROM notifier.inbox WHERE user_id = $1 RETURNING 1),"
        " prefs AS (DELETE FROM notifier.preferences WHERE user_id = $1 RETURNING 1),"
        " mutes AS (DELETE FROM notifier.mutes WHERE user_id = $1 RETURNING 1),"
        " reads AS (DELETE FROM notifier.conversation_reads WHERE user_id = $1 RETURNING 1),"
        " seen AS (DELETE FROM notifier.connectivity WHERE user_id = $1 RETURNING 1),"
        " jobs AS (DELETE FROM notifier.push_jobs WHERE user_id = $1 RETURNING 1)"
        " SELECT (SELECT count(*) FROM apps) AS applications,"
        "   (SELECT count(*) FROM notes) AS notifications,"
        "   (SELECT count(*) FROM inbox) AS unread_counts,"
        "   (SELECT count(*) FROM prefs) AS preferences,"
        "   (SELECT count(*) FROM mutes) AS mutes,"
        "   (SELECT count(*) FROM reads) AS conversation_reads,"
        "   (SELECT count(*) FROM seen) AS connectivity,"
        "   (SELECT count(*) FROM jobs) AS push_jobs",
        user_id,
    )
    assert row is not None  # an aggregate row always comes back
    counts = {key: int(value) for key, value in row.items()}
    # Their jobs are gone already: the cascade finds none left.
    subscriptions = await conn.fetchval(
        "WITH s AS (DELETE FROM notifier.push_subscriptions WHERE user_id = $1 RETURNING 1)"
        " SELECT count(*) FROM s",
        user_id,
    )
    counts["push_subscriptions"] = int(subscriptions)
    counts["frames_deleted"] = await STREAM.delete(conn, user_id)
    return counts


async def erase_previews(
    conn: Connection,
    *,
    user_id: str,
    conversation_id: str,
    message_ids: Sequence[str],
    member_ids: Sequence[str],
) -> dict[str, int]:
    """The erased user's messages ``message_ids`` leave the notifications that preview them:
    body emptied, title and ``data.sender_id`` naming the placeholder, in the rows and in
    every stored frame (rewritten in place, same seqs); their pushes not yet sent are dropped
    (the payload holds the preview).

    The notifications are those of the members and of whoever has a frame previewing one of
    the messages (a member since removed).

    Returns:
        Notifications and frames changed.
    """
    if not message_ids:
        return {"previews": 0, "frames_rewritten": 0}
    erased = await conn.fetchval(
        "WITH framed AS (SELECT DISTINCT user_id FROM notifier.user_events"
        "   WHERE subject = ANY($2::text[])),"
        " users AS (SELECT user_id FROM framed UNION SELECT unnest($3::text[])),"
        " erased AS (UPDATE notifier.notifications n SET body = '',"
        "   title = CASE WHEN coalesce((n.data ->> 'count')::int, 1) = 1 THEN $5"
        "     ELSE n.title END,"
        "   data = jsonb_set(n.data, '{sender_id}', to_jsonb($6::text))"
        "   WHERE n.user_id IN (SELECT user_id FROM users) AND n.kind = 'message'"
        "   AND n.conversation_id = $1 AND n.data ->> 'message_id' = ANY($2::text[])"
        "   AND n.data ->> 'sender_id' = $4"
        "   RETURNING n.user_id, n.id),"
        " unpushed AS (DELETE FROM notifier.push_jobs j USING erased"
        "   WHERE j.user_id = erased.user_id AND j.notification_id = erased.id)"
        " SELECT count(*) FROM erased",
        conversation_id,
        list(message_ids),
        list(member_ids),
        user_id,
        erased_title(1),
        ERASED_USER_ID,
    )
    rewritten = await STREAM.rewrite_where(
        conn,
        functools.partial(erase_preview_frame, user_id=user_id),
        subjects=list(message_ids),
    )
    return {"previews": int(erased), "frames_rewritten": rewritten}


async def forget_connectivity(conn: Connection, user_id: str, erased_at: datetime) -> int:
    """Forget a user's connectivity as of their erasure (presence's
    ``presence.connectivity.erased``); a fact of a later connection (a new user under the same
    id) stays.

    Returns:
        Rows deleted.
    """
    deleted = await conn.fetchval(
        "WITH d AS (DELETE FROM notifier.connectivity WHERE user_id = $1 AND changed_at <= $2"
        "   RETURNING 1) SELECT count(*) FROM d",
        user_id,
        erased_at,
    )
    return int(deleted)
