"""Postgres access of the chat service: every query it runs, nothing else.

Functions take an open connection so that the caller decides the transaction; they never
commit. Statements are written for the hot path: one round trip per step, arrays via unnest.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.frames import Message
from services.chat.domain.watermarks import Watermarks
from services.runtime.db import Connection, read_as

SCHEMA = "chat"


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
    async with read_as(conn, role="chat_reader", user_id=user_id):
        rows = await conn.fetch(
            "SELECT seq, frame FROM chat.user_events WHERE user_id = $1 AND seq > $2"
            " ORDER BY seq LIMIT $3",
            user_id,
            after_seq,
            limit + 1,
        )
    return [(row["seq"], row["frame"]) for row in rows]


# --- set-based statements for message.send commands (one record or a whole batch) -------------
# One statement per step for every command of a consumed batch, instead of one per command:
# the per-statement round trip, not the work in Postgres, is what bounds the chat service.


async def ensure_direct_many(conn: Connection, pairs: Sequence[tuple[str, str, str]]) -> None:
    """Create the direct conversations of ``pairs`` (conversation id, user a, user b) that do not
    exist yet, with their two members. Ids are sorted, so concurrent batches lock in one order."""
    if not pairs:
        return
    ordered = sorted(set(pairs))
    await conn.execute(
        "WITH p AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS p (id, a, b)),"
        " c AS (INSERT INTO chat.conversations (id, kind) SELECT id, 'direct' FROM p ORDER BY id"
        "   ON CONFLICT (id) DO NOTHING RETURNING id)"
        " INSERT INTO chat.members (conversation_id, user_id)"
        " SELECT c.id, u FROM c JOIN p ON p.id = c.id, unnest(ARRAY[p.a, p.b]) AS u",
        [pair[0] for pair in ordered],
        [pair[1] for pair in ordered],
        [pair[2] for pair in ordered],
    )


async def members_of(conn: Connection, conversation_ids: Sequence[str]) -> dict[str, list[str]]:
    """Every member of each conversation, sorted (conversations without members are absent)."""
    rows = await conn.fetch(
        "SELECT conversation_id, user_id FROM chat.members"
        " WHERE conversation_id = ANY($1::text[]) ORDER BY conversation_id, user_id",
        list(set(conversation_ids)),
    )
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["conversation_id"], []).append(row["user_id"])
    return found


async def find_messages(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Message]:
    """Messages already stored under (sender id, client_msg id) idempotency keys."""
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT m.id, m.conversation_id, m.seq, m.sender_id, m.kind, m.body, m.client_msg_id,"
        " m.created_at FROM chat.messages m"
        " JOIN unnest($1::text[], $2::text[]) AS k (sender_id, client_msg_id)"
        "   ON m.sender_id = k.sender_id AND m.client_msg_id = k.client_msg_id",
        [key[0] for key in keys],
        [key[1] for key in keys],
    )
    return {(row["sender_id"], row["client_msg_id"]): Message(**dict(row)) for row in rows}


async def allocate_conversation_seqs(conn: Connection, counts: dict[str, int]) -> dict[str, int]:
    """Reserve ``counts[c]`` consecutive message seqs in each conversation ``c``.

    Returns:
        The first reserved seq of each conversation.
    """
    ids = sorted(counts)
    rows = await conn.fetch(
        "UPDATE chat.conversations AS c SET last_seq = c.last_seq + n.k"
        " FROM unnest($1::text[], $2::bigint[]) AS n (id, k) WHERE c.id = n.id"
        " RETURNING c.id, c.last_seq",
        ids,
        [counts[i] for i in ids],
    )
    return {row["id"]: row["last_seq"] - counts[row["id"]] + 1 for row in rows}


async def insert_messages(conn: Connection, messages: Sequence[Message]) -> None:
    """Store new messages (seqs already reserved)."""
    await conn.execute(
        "INSERT INTO chat.messages"
        " (id, conversation_id, seq, sender_id, client_msg_id, kind, body, created_at)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],"
        "   $6::text[], $7::text[], $8::timestamptz[])",
        [m.id for m in messages],
        [m.conversation_id for m in messages],
        [m.seq for m in messages],
        [m.sender_id for m in messages],
        [m.client_msg_id for m in messages],
        [m.kind for m in messages],
        [m.body for m in messages],
        [m.created_at for m in messages],
    )


async def allocate_stream_seqs(conn: Connection, counts: dict[str, int]) -> dict[str, int]:
    """Reserve ``counts[u]`` consecutive chat-stream seqs for each user ``u`` (sorted: fewer
    deadlocks).

    Returns:
        The first reserved seq of each user.
    """
    users = sorted(counts)
    rows = await conn.fetch(
        "INSERT INTO chat.user_streams AS s (user_id, last_seq)"
        " SELECT * FROM unnest($1::text[], $2::bigint[]) ORDER BY 1"
        " ON CONFLICT (user_id) DO UPDATE SET last_seq = s.last_seq + excluded.last_seq"
        " RETURNING user_id, last_seq",
        users,
        [counts[u] for u in users],
    )
    return {row["user_id"]: row["last_seq"] - counts[row["user_id"]] + 1 for row in rows}
