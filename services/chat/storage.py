"""Postgres access of the chat service: every query it runs, nothing else.

Functions take an open connection so that the caller decides the transaction; they never
commit. Statements are written for the hot path: one round trip per step, arrays via unnest.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from schemas.frames import Message
from services.chat.domain.watermarks import Watermarks
from services.runtime.db import Connection

SCHEMA = "chat"


async def ensure_direct(conn: Connection, conversation_id: str, pair: tuple[str, str]) -> None:
    """Create a direct conversation and its two members if this is its first message."""
    await conn.execute(
        "WITH c AS (INSERT INTO chat.conversations (id, kind) VALUES ($1, 'direct')"
        " ON CONFLICT (id) DO NOTHING RETURNING id)"
        " INSERT INTO chat.members (conversation_id, user_id)"
        " SELECT c.id, u FROM c, unnest($2::text[]) AS u",
        conversation_id,
        list(pair),
    )


async def is_member(conn: Connection, conversation_id: str, user_id: str) -> bool:
    """Whether the user belongs to the conversation."""
    found = await conn.fetchval(
        "SELECT 1 FROM chat.members WHERE conversation_id = $1 AND user_id = $2",
        conversation_id,
        user_id,
    )
    return found is not None


async def find_message(conn: Connection, sender_id: str, client_msg_id: str) -> Message | None:
    """The message a sender stored under an idempotency key, if any."""
    row = await conn.fetchrow(
        "SELECT id, conversation_id, seq, sender_id, kind, body, client_msg_id, created_at"
        " FROM chat.messages WHERE sender_id = $1 AND client_msg_id = $2",
        sender_id,
        client_msg_id,
    )
    return None if row is None else Message(**dict(row))


async def insert_message(
    conn: Connection,
    *,
    message_id: str,
    conversation_id: str,
    sender_id: str,
    client_msg_id: str,
    kind: str,
    body: str,
    created_at: datetime,
) -> tuple[Message, list[str]]:
    """Allocate the next conversation seq, store the message, and list the members.

    Returns:
        The stored message and every member id (sorted), the sender included.
    """
    row = await conn.fetchrow(
        "WITH c AS (UPDATE chat.conversations SET last_seq = last_seq + 1 WHERE id = $2"
        "   RETURNING last_seq),"
        " m AS (INSERT INTO chat.messages"
        "   (id, conversation_id, seq, sender_id, client_msg_id, kind, body, created_at)"
        "   SELECT $1, $2, c.last_seq, $3, $4, $5, $6, $7 FROM c RETURNING seq)"
        " SELECT m.seq, ARRAY(SELECT user_id FROM chat.members WHERE conversation_id = $2"
        "   ORDER BY user_id) AS members FROM m",
        message_id,
        conversation_id,
        sender_id,
        client_msg_id,
        kind,
        body,
        created_at,
    )
    if row is None:
        # The caller checked membership in this transaction, so the conversation exists.
        raise LookupError(f"conversation {conversation_id} vanished inside its transaction")
    message = Message(
        id=message_id,
        conversation_id=conversation_id,
        seq=row["seq"],
        sender_id=sender_id,
        kind="text",
        body=body,
        client_msg_id=client_msg_id,
        created_at=created_at,
    )
    return message, list(row["members"])


async def lock_member(
    conn: Connection, conversation_id: str, user_id: str
) -> tuple[Watermarks, int, list[str]] | None:
    """Lock a member's watermarks for update.

    Returns:
        (watermarks, conversation last_seq, every member id) or None when not a member.
    """
    row = await conn.fetchrow(
        "SELECT m.delivered_seq, m.read_seq, c.last_seq,"
        " ARRAY(SELECT user_id FROM chat.members WHERE conversation_id = $1 ORDER BY user_id)"
        "   AS members"
        " FROM chat.members m JOIN chat.conversations c ON c.id = m.conversation_id"
        " WHERE m.conversation_id = $1 AND m.user_id = $2 FOR UPDATE OF m",
        conversation_id,
        user_id,
    )
    if row is None:
        return None
    return (
        Watermarks(delivered=row["delivered_seq"], read=row["read_seq"]),
        row["last_seq"],
        list(row["members"]),
    )


async def store_watermarks(
    conn: Connection, conversation_id: str, user_id: str, watermarks: Watermarks
) -> None:
    """Persist a member's watermarks (the caller already made them monotonic)."""
    await conn.execute(
        "UPDATE chat.members SET delivered_seq = $3, read_seq = $4"
        " WHERE conversation_id = $1 AND user_id = $2",
        conversation_id,
        user_id,
        watermarks.delivered,
        watermarks.read,
    )


async def next_stream_seqs(conn: Connection, user_ids: Sequence[str]) -> dict[str, int]:
    """Allocate the next chat-stream seq of each user (users in sorted order: fewer deadlocks)."""
    rows = await conn.fetch(
        "INSERT INTO chat.user_streams AS s (user_id, last_seq)"
        " SELECT u, 1 FROM unnest($1::text[]) AS u ORDER BY u"
        " ON CONFLICT (user_id) DO UPDATE SET last_seq = s.last_seq + 1"
        " RETURNING user_id, last_seq",
        sorted(user_ids),
    )
    return {row["user_id"]: row["last_seq"] for row in rows}


async def append_events(conn: Connection, events: Sequence[tuple[str, int, str]]) -> None:
    """Store durable frames: (user_id, seq, frame JSON text)."""
    await conn.execute(
        "INSERT INTO chat.user_events (user_id, seq, frame)"
        " SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[])",
        [user_id for user_id, _, _ in events],
        [seq for _, seq, _ in events],
        [frame for _, _, frame in events],
    )


async def read_stream(
    conn: Connection, *, user_id: str, after_seq: int, limit: int
) -> list[tuple[int, str]]:
    """A user's durable frames after a seq, oldest first, read under Row Level Security.

    Returns:
        Up to ``limit`` + 1 (seq, frame) pairs: the extra one tells the caller more remain.
    """
    async with conn.transaction(readonly=True):
        await conn.execute("SET LOCAL ROLE chat_reader")
        await conn.execute("SELECT set_config('app.user_id', $1, true)", user_id)
        rows = await conn.fetch(
            "SELECT seq, frame FROM chat.user_events WHERE user_id = $1 AND seq > $2"
            " ORDER BY seq LIMIT $3",
            user_id,
            after_seq,
            limit + 1,
        )
    return [(row["seq"], row["frame"]) for row in rows]
