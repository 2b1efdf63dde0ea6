"""Postgres reads that serve one user: ``conversations.list``, ``history`` and ``search``.

Each runs in a read-only transaction as ``chat_reader`` with ``app.user_id`` set
(:func:`services.runtime.db.read_as`): Row Level Security shows only the conversations the user
is a member of now, their members and their messages, whatever the statement's own filters say.
Each page costs one or two statements whatever its size (no query per row); the plans and the
indexes they use are in docs/conversations.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson

from schemas.frames import Conversation, Member, Message
from services.chat.domain.cursors import ListCursor
from services.chat.domain.errors import Forbidden
from services.chat.storage import MESSAGE_COLUMNS, SCHEMA, message_from_json, message_from_row
from services.runtime.db import Connection, read_as, reader_role

_READER = reader_role(SCHEMA)

#: conversations.list: $1 user, $2 as of, $3/$4 cursor (activity, id) or nulls, $5 limit + 1.
#: The user's conversations are probed one by one through the primary key (the LATERAL with
#: OFFSET 0 keeps the planner from turning it into a hash join): the cost follows the user's
#: memberships, not the number of conversations on the site (docs/conversations.md).
LIST_SQL = (
    "WITH mine AS ("
    "   SELECT c.id, c.kind, c.title, c.created_at, c.last_seq, m.read_seq,"
    "     CASE WHEN c.last_activity_at <= $2 THEN c.last_activity_at"
    "     ELSE coalesce((SELECT x.created_at FROM chat.messages x"
    "       WHERE x.conversation_id = c.id AND x.created_at <= $2"
    "       ORDER BY x.seq DESC LIMIT 1), c.created_at) END AS activity"
    "   FROM chat.members m CROSS JOIN LATERAL (SELECT * FROM chat.conversations c0"
    "     WHERE c0.id = m.conversation_id OFFSET 0) c"
    "   WHERE m.user_id = $1 AND c.created_at <= $2),"
    " page AS (SELECT * FROM mine"
    "   WHERE $3::timestamptz IS NULL OR (activity, id) < ($3, $4)"
    "   ORDER BY activity DESC, id DESC LIMIT $5)"
    " SELECT p.id, p.kind, p.title, p.created_at, p.activity,"
    "   (SELECT coalesce(json_agg(json_build_object('user_id', mm.user_id, 'role', mm.role)"
    "     ORDER BY mm.joined_at, mm.user_id), '[]') FROM chat.members mm"
    "     WHERE mm.conversation_id = p.id)::text AS members,"
    "   (SELECT row_to_json(x)::text FROM ("
    f"     SELECT {MESSAGE_COLUMNS} FROM chat.messages"
    "     WHERE conversation_id = p.id AND seq = p.last_seq) x) AS last_message,"
    "   (SELECT count(*) FROM chat.messages u WHERE u.conversation_id = p.id"
    "     AND u.seq > p.read_seq AND u.sender_id <> $1 AND NOT u.deleted) AS unread"
    " FROM page p ORDER BY p.activity DESC, p.id DESC"
)
#: Is $2 a member of conversation $1 (under RLS: only the user's own memberships are visible).
MEMBER_SQL = (
    "SELECT EXISTS (SELECT 1 FROM chat.members WHERE conversation_id = $1 AND user_id = $2)"
)
#: history: $1 conversation, $2 before seq (exclusive), $3 limit + 1.
HISTORY_SQL = (
    f"SELECT {MESSAGE_COLUMNS} FROM chat.messages"
    " WHERE conversation_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
)
#: search: $1 query text, $2 conversation or null, $3 limit. The query matches English stems OR
#: words as written (the ``search`` column of migrations/0002_groups.sql), in web search syntax
#: ("quoted phrases", -not, or); candidates come from chat.search_hits (why: the migration).
SEARCH_SQL = (
    f"SELECT {MESSAGE_COLUMNS} FROM chat.search_hits("
    "   websearch_to_tsquery('english'::regconfig, $1)"
    "   || websearch_to_tsquery('simple'::regconfig, $1), $2, $3) AS h"
    " JOIN chat.messages m ON m.id = h.message_id"
    " ORDER BY h.rank DESC, m.created_at DESC, m.id"
)


@dataclass(frozen=True, slots=True)
class ConversationPage:
    """A page of conversations and where the next one starts (None when the page is empty)."""

    conversations: list[Conversation]
    next_cursor: ListCursor | None
    has_more: bool


async def list_conversations(
    conn: Connection, *, user_id: str, cursor: ListCursor | None, limit: int, now: datetime
) -> ConversationPage:
    """The user's conversations by last activity, newest first, one statement per page.

    Activity is the latest message's time (or the creation's) *as of* the moment the first page
    was read (``cursor.as_of``, or ``now`` for a first page), so that pages stay consistent
    while messages arrive: a conversation's stored ``last_activity_at`` is used as it is unless
    it moved since then, and only for those few is the latest earlier message looked up.
    Conversations created after that moment belong to a later listing.

    Args:
        cursor: where the previous page ended; None for the first page.
        limit: conversations per page.
        now: the clock's reading, for a first page.
    """
    as_of = now if cursor is None else cursor.as_of
    async with read_as(conn, role=_READER, user_id=user_id):
        rows = await conn.fetch(
            LIST_SQL,
            user_id,
            as_of,
            None if cursor is None else cursor.activity,
            None if cursor is None else cursor.conversation_id,
            limit + 1,
        )
    page = rows[:limit]
    conversations = [
        Conversation(
            id=row["id"],
            kind=row["kind"],
            title=row["title"],
            members=[Member.model_validate(member) for member in orjson.loads(row["members"])],
            created_at=row["created_at"],
            last_message=(
                None if row["last_message"] is None else message_from_json(row["last_message"])
            ),
            unread_count=row["unread"],
        )
        for row in page
    ]
    last = page[-1] if page else None
    return ConversationPage(
        conversations=conversations,
        next_cursor=(None if last is None else ListCursor(as_of, last["activity"], last["id"])),
        has_more=len(rows) > limit,
    )


async def history(
    conn: Connection, *, user_id: str, conversation_id: str, before_seq: int | None, limit: int
) -> tuple[list[Message], bool]:
    """A page of a conversation's messages, newest first, in their current state: two
    statements (is the user a member; the page, a backward walk of the (conversation, seq)
    index).

    Returns:
        (messages, whether older ones remain).

    Raises:
        Forbidden: the user is not a member (or there is no such conversation).
    """
    async with read_as(conn, role=_READER, user_id=user_id):
        member = await conn.fetchval(
            MEMBER_SQL,
            conversation_id,
            user_id,
        )
        if not member:
            raise Forbidden("not a member of this conversation")
        rows = await conn.fetch(
            HISTORY_SQL,
            conversation_id,
            before_seq if before_seq is not None else 2**62,
            limit + 1,
        )
    return [message_from_row(row) for row in rows[:limit]], len(rows) > limit


async def search(
    conn: Connection, *, user_id: str, query: str, conversation_id: str | None, limit: int
) -> list[Message]:
    """Messages of the user's conversations (now) matching ``query``, best match first; one
    statement, two when a conversation is named (membership is checked first).

    Deleted messages never match: their text, and so their search vector, is empty.

    Raises:
        Forbidden: a conversation is named and the user is not a member of it.
    """
    async with read_as(conn, role=_READER, user_id=user_id):
        if conversation_id is not None:
            member = await conn.fetchval(
                MEMBER_SQL,
                conversation_id,
                user_id,
            )
            if not member:
                raise Forbidden("not a member of this conversation")
        rows = await conn.fetch(
            SEARCH_SQL,
            query,
            conversation_id,
            limit,
        )
    return [message_from_row(row) for row in rows]
