"""Postgres access of an erasure in the chat service: every statement it runs besides those it
shares with group changes (:mod:`services.chat.storage`) and the ``chat`` stream's
(:mod:`services.runtime.streams`). The caller owns the transaction.

Lock order, the service's own (docs/conversations.md): conversations (id order), members,
messages, stored frames, streams. An erasure locks every conversation the user was ever in
before it changes anything, so the sends and changes of those conversations wait for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from schemas.frames import Message
from services.chat.storage import MESSAGE_COLUMNS, STREAM, message_from_row
from services.runtime.db import Connection
from services.runtime.streams import Appends


@dataclass(frozen=True, slots=True)
class Footprint:
    """Where a user appears, found before anything changes.

    Attributes:
        conversation_ids: every conversation they are a member of, wrote in, or have a frame
            of in their stream (conversations they left included), in id order.
        contacts: everyone who shared a conversation with them, as far as their stream tells
            (member lists of its ``conversation.updated`` frames) and current members say.
    """

    conversation_ids: list[str]
    contacts: list[str]


async def footprint(conn: Connection, user_id: str) -> Footprint:
    """Find the user's conversations and contacts (one statement, nothing locked)."""
    rows = await conn.fetch(
        "WITH frames AS (SELECT frame::jsonb AS f FROM chat.user_events WHERE user_id = $1),"
        " conversations AS ("
        "   SELECT conversation_id AS id FROM chat.members WHERE user_id = $1"
        "   UNION SELECT DISTINCT conversation_id FROM chat.messages WHERE sender_id = $1"
        "   UNION SELECT coalesce(f -> 'message' ->> 'conversation_id',"
        "     f -> 'conversation' ->> 'id', f ->> 'conversation_id') FROM frames)"
        " SELECT 'c' AS row, id AS a FROM conversations WHERE id IS NOT NULL"
        " UNION SELECT 'u', m ->> 'user_id' FROM frames,"
        "   jsonb_array_elements(CASE WHEN jsonb_typeof(f -> 'conversation' -> 'members')"
        "     = 'array' THEN f -> 'conversation' -> 'members' ELSE '[]' END) AS m"
        " UNION SELECT 'u', o.user_id FROM chat.members o"
        "   WHERE o.conversation_id IN (SELECT id FROM conversations)",
        user_id,
    )
    conversations = sorted(row["a"] for row in rows if row["row"] == "c")
    contacts = sorted({row["a"] for row in rows if row["row"] == "u"} - {user_id, None})
    return Footprint(conversation_ids=conversations, contacts=contacts)


async def lock_messages(
    conn: Connection, user_id: str, conversation_ids: Sequence[str]
) -> list[Message]:
    """The user's messages in ``conversation_ids`` (locked by the caller), locked until commit,
    by conversation and seq."""
    rows = await conn.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM chat.messages"
        " WHERE sender_id = $1 AND conversation_id = ANY($2::text[])"
        " ORDER BY conversation_id, seq FOR UPDATE",
        user_id,
        list(conversation_ids),
    )
    return [message_from_row(row) for row in rows]


async def store_erased(conn: Connection, messages: Sequence[Message]) -> None:
    """Write the erased state of ``messages`` (one statement): body, deletion, reactions,
    sender and idempotency key; the search vector follows the body (generated)."""
    if not messages:
        return
    await conn.execute(
        "UPDATE chat.messages AS m SET body = n.body, deleted = n.deleted,"
        "   reactions = n.reactions::json, sender_id = n.sender_id,"
        "   client_msg_id = n.client_msg_id"
        " FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::text[], $6::text[])"
        "   AS n (id, body, deleted, reactions, sender_id, client_msg_id)"
        " WHERE m.id = n.id",
        [m.id for m in messages],
        [m.body for m in messages],
        [m.deleted for m in messages],
        [orjson.dumps(m.reactions).decode() for m in messages],
        [m.sender_id for m in messages],
        [m.client_msg_id for m in messages],
    )


async def lock_reacted(
    conn: Connection, user_id: str, conversation_ids: Sequence[str]
) -> list[Message]:
    """Messages of ``conversation_ids`` the user reacted to, locked until commit.

    The reactions are json (their order is kept), searched for the user id as JSON writes it.
    """
    rows = await conn.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM chat.messages"
        " WHERE conversation_id = ANY($1::text[]) AND strpos(reactions::text, $2) > 0"
        " ORDER BY id FOR UPDATE",
        list(conversation_ids),
        orjson.dumps(user_id).decode(),
    )
    return [message_from_row(row) for row in rows]


async def store_reactions(conn: Connection, messages: Sequence[Message]) -> None:
    """Write the reactions of ``messages`` (one statement)."""
    if not messages:
        return
    await conn.execute(
        "UPDATE chat.messages AS m SET reactions = n.reactions::json"
        " FROM unnest($1::text[], $2::text[]) AS n (id, reactions) WHERE m.id = n.id",
        [m.id for m in messages],
        [orjson.dumps(m.reactions).decode() for m in messages],
    )


async def lock_streams(conn: Connection, users: Sequence[str]) -> dict[str, int]:
    """Create and lock the ``chat`` streams of ``users`` in user order (one statement).

    Returns:
        Each user's last seq, for :class:`Appends`.
    """
    if not users:
        return {}
    rows = await conn.fetch(STREAM.lock_sql("SELECT unnest($1::text[])"), sorted(set(users)))
    return {row["user_id"]: row["last_seq"] for row in rows}


_APPEND = f"WITH s AS ({STREAM.advance_sql(1)}) {STREAM.insert_sql(3, subjects=True)}"


async def append(conn: Connection, appends: Appends) -> None:
    """Store the frames of ``appends`` and the new last seqs (one statement); the streams
    were locked by :func:`lock_streams`."""
    await conn.execute(_APPEND, *appends.advance_args(), *appends.insert_args(subjects=True))
