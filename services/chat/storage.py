"""Postgres access of the chat service: every query it runs, nothing else.

Functions take an open connection so that the caller decides the transaction; they never
commit. Statements are written for the hot path: one round trip per step, arrays via unnest.
The users' ``chat`` stream is the runtime's (:mod:`services.runtime.streams`): its statements
come from :data:`STREAM`, folded into the send statements below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from schemas.frames import Message
from services.chat.domain.watermarks import Watermarks
from services.runtime.db import Connection
from services.runtime.streams import Appends, Stream

SCHEMA = "chat"
#: Every user's ``chat`` stream: what sync replays.
STREAM = Stream("chat", schema=SCHEMA)


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


# --- message.send commands, one record or a whole batch: two statements ------------------------
# Every round trip costs both processes a wake-up and a socket write (about 60 us of client CPU
# here, more than the work in Postgres), so a batch of sends reads and locks everything it needs
# in one statement, decides in Python, and writes everything in one more.

_LOCK_MEMBER_STREAMS = STREAM.lock_sql("SELECT user_id FROM mem")
_ADVANCE_STREAMS = STREAM.advance_sql(3)
_INSERT_FRAMES = STREAM.insert_sql(13)


@dataclass(frozen=True, slots=True)
class SendState:
    """What the decisions about a batch of sends need, read and locked in one statement.

    Attributes:
        members: every member of each target conversation, sorted (absent: no such
            conversation).
        last_seq: the conversations' highest message seq (locked until commit).
        stream_seq: every member's chat-stream last seq (locked until commit; 0 for a user
            whose stream starts now), to number frames with :class:`Appends`.
        existing: messages already stored under the batch's (sender id, client_msg_id) keys.
        created: the direct conversations this statement created, in id order.
    """

    members: dict[str, list[str]]
    last_seq: dict[str, int]
    stream_seq: dict[str, int]
    existing: dict[tuple[str, str], Message]
    created: list[str]


async def load_send_state(
    conn: Connection,
    *,
    direct: Sequence[tuple[str, str, str]],
    conversation_ids: Sequence[str],
    keys: Sequence[tuple[str, str]],
) -> SendState:
    """Create missing direct conversations, then read and lock what sends to ``conversation_ids``
    need: their members and seqs, their members' stream seqs, and messages stored under ``keys``.

    ``direct`` holds (conversation id, user a, user b). Locks are taken in id order, so
    concurrent batches cannot deadlock. A conversation created here is invisible to the rest of
    this statement's snapshot: its seq (0) and members come from what the inserts returned.
    Then the members' streams are created if new and locked, in user order
    (:meth:`Stream.lock_sql`).
    """
    ordered = sorted(set(direct))
    rows = await conn.fetch(
        "WITH p AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS p (id, a, b)),"
        " new_c AS (INSERT INTO chat.conversations (id, kind)"
        "   SELECT id, 'direct' FROM p ORDER BY id ON CONFLICT (id) DO NOTHING RETURNING id),"
        " new_m AS (INSERT INTO chat.members (conversation_id, user_id)"
        "   SELECT new_c.id, u FROM new_c JOIN p ON p.id = new_c.id, unnest(ARRAY[p.a, p.b]) AS u"
        "   RETURNING conversation_id, user_id),"
        " old_c AS (SELECT id, last_seq FROM chat.conversations WHERE id = ANY($4::text[])"
        "   ORDER BY id FOR UPDATE),"
        " mem AS (SELECT conversation_id, user_id FROM chat.members"
        "   WHERE conversation_id IN (SELECT id FROM old_c)"
        "   UNION ALL SELECT conversation_id, user_id FROM new_m),"
        f" streams AS ({_LOCK_MEMBER_STREAMS})"
        " SELECT 'c' AS row, id AS a, NULL AS b, last_seq AS n, NULL AS sender_id,"
        "   NULL AS kind, NULL AS body, NULL AS client_msg_id, NULL::timestamptz AS at"
        "   FROM old_c"
        " UNION ALL SELECT 'n', id, NULL, 0, NULL, NULL, NULL, NULL, NULL FROM new_c"
        " UNION ALL SELECT 'm', conversation_id, user_id, NULL, NULL, NULL, NULL, NULL, NULL"
        "   FROM mem"
        " UNION ALL SELECT 's', user_id, NULL, last_seq, NULL, NULL, NULL, NULL, NULL"
        "   FROM streams"
        " UNION ALL SELECT 'x', m.id, m.conversation_id, m.seq, m.sender_id, m.kind, m.body,"
        "   m.client_msg_id, m.created_at FROM chat.messages m"
        "   JOIN unnest($5::text[], $6::text[]) AS k (sender_id, client_msg_id)"
        "     ON m.sender_id = k.sender_id AND m.client_msg_id = k.client_msg_id",
        [pair[0] for pair in ordered],
        [pair[1] for pair in ordered],
        [pair[2] for pair in ordered],
        sorted(set(conversation_ids)),
        [key[0] for key in keys],
        [key[1] for key in keys],
    )
    members: dict[str, list[str]] = {}
    last_seq: dict[str, int] = {}
    stream_seq: dict[str, int] = {}
    existing: dict[tuple[str, str], Message] = {}
    created: list[str] = []
    for row in rows:
        kind = row["row"]
        if kind == "m":
            members.setdefault(row["a"], []).append(row["b"])
        elif kind == "c":
            last_seq[row["a"]] = row["n"]
        elif kind == "n":
            last_seq[row["a"]] = 0
            created.append(row["a"])
        elif kind == "s":
            stream_seq[row["a"]] = row["n"]
        else:
            existing[(row["sender_id"], row["client_msg_id"])] = Message(
                id=row["a"],
                conversation_id=row["b"],
                seq=row["n"],
                sender_id=row["sender_id"],
                kind=row["kind"],
                body=row["body"],
                client_msg_id=row["client_msg_id"],
                created_at=row["at"],
            )
    for users in members.values():
        users.sort()
    created.sort()
    return SendState(
        members=members,
        last_seq=last_seq,
        stream_seq=stream_seq,
        existing=existing,
        created=created,
    )


async def store_sends(
    conn: Connection,
    *,
    messages: Sequence[Message],
    last_seq: dict[str, int],
    appends: Appends,
) -> None:
    """Write a batch's new messages, the seqs they used and their users' durable frames in one
    statement. The rows were locked by :func:`load_send_state` in this transaction."""
    await conn.execute(
        "WITH c AS (UPDATE chat.conversations AS c SET last_seq = n.last_seq"
        "   FROM unnest($1::text[], $2::bigint[]) AS n (id, last_seq) WHERE c.id = n.id),"
        f" s AS ({_ADVANCE_STREAMS}),"
        " m AS (INSERT INTO chat.messages"
        "   (id, conversation_id, seq, sender_id, client_msg_id, kind, body, created_at)"
        "   SELECT * FROM unnest($5::text[], $6::text[], $7::bigint[], $8::text[], $9::text[],"
        "     $10::text[], $11::text[], $12::timestamptz[]))"
        f" {_INSERT_FRAMES}",
        list(last_seq),
        list(last_seq.values()),
        *appends.advance_args(),
        [m.id for m in messages],
        [m.conversation_id for m in messages],
        [m.seq for m in messages],
        [m.sender_id for m in messages],
        [m.client_msg_id for m in messages],
        [m.kind for m in messages],
        [m.body for m in messages],
        [m.created_at for m in messages],
        *appends.insert_args(),
    )
