"""Postgres access of the chat service: every query it runs, nothing else.

Functions take an open connection so that the caller decides the transaction; they never
commit. Statements are written for the hot path: one round trip per step, arrays via unnest.
The users' ``chat`` stream is the runtime's (:mod:`services.runtime.streams`): its statements
come from :data:`STREAM`, folded into the send statements below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from asyncpg import Record

from schemas.frames import Message
from services.chat.domain.groups import ConversationState, Membership
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
_INSERT_FRAMES = STREAM.insert_sql(13, subjects=True)


@dataclass(frozen=True, slots=True)
class SendState:
    """What the decisions about a batch of sends need, read and locked in one statement.

    Attributes:
        members: every member of each target conversation, sorted (absent: no such
            conversation).
        last_seq: the conversations' highest message seq (locked until commit).
        stream_seq: every member's chat-stream last seq (locked until commit; 0 for a user
            whose stream starts now), to number frames with :class:`Appends`.
        existing: messages already stored under the batch's (sender id, client_msg_id) keys,
            in their current state.
        created: the direct conversations this statement created, in id order.
        replied: the conversation of each message the batch replies to (absent: no such
            message).
    """

    members: dict[str, list[str]]
    last_seq: dict[str, int]
    stream_seq: dict[str, int]
    existing: dict[tuple[str, str], Message]
    created: list[str]
    replied: dict[str, str]


#: Columns of a stored message, in the order :func:`message_from_row` reads them.
MESSAGE_COLUMNS = (
    "id, conversation_id, seq, sender_id, kind, body, client_msg_id, created_at, edited_at,"
    " deleted, reply_to, reactions::text AS reactions"
)


def message_from_row(row: Record) -> Message:
    """A message from a row selected with :data:`MESSAGE_COLUMNS` (any table alias)."""
    return Message(
        id=row["id"],
        conversation_id=row["conversation_id"],
        seq=row["seq"],
        sender_id=row["sender_id"],
        kind=row["kind"],
        body=row["body"],
        client_msg_id=row["client_msg_id"],
        created_at=row["created_at"],
        edited_at=row["edited_at"],
        deleted=row["deleted"],
        reply_to=row["reply_to"],
        reactions=orjson.loads(row["reactions"]),
    )


async def load_send_state(
    conn: Connection,
    *,
    direct: Sequence[tuple[str, str, str]],
    conversation_ids: Sequence[str],
    keys: Sequence[tuple[str, str]],
    reply_to: Sequence[str] = (),
) -> SendState:
    """Create missing direct conversations, then read and lock what sends to ``conversation_ids``
    need: their members and seqs, their members' stream seqs, messages stored under ``keys``,
    and the conversation of each message in ``reply_to``.

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
        "   NULL AS kind, NULL AS body, NULL AS client_msg_id, NULL::timestamptz AS at,"
        "   NULL::timestamptz AS edited_at, NULL::boolean AS deleted, NULL AS reply_to,"
        "   NULL AS reactions"
        "   FROM old_c"
        " UNION ALL SELECT 'n', id, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"
        "   FROM new_c"
        " UNION ALL SELECT 'm', conversation_id, user_id, NULL, NULL, NULL, NULL, NULL, NULL,"
        "   NULL, NULL, NULL, NULL FROM mem"
        " UNION ALL SELECT 's', user_id, NULL, last_seq, NULL, NULL, NULL, NULL, NULL, NULL,"
        "   NULL, NULL, NULL FROM streams"
        " UNION ALL SELECT 'x', m.id, m.conversation_id, m.seq, m.sender_id, m.kind, m.body,"
        "   m.client_msg_id, m.created_at, m.edited_at, m.deleted, m.reply_to, m.reactions::text"
        "   FROM chat.messages m"
        "   JOIN unnest($5::text[], $6::text[]) AS k (sender_id, client_msg_id)"
        "     ON m.sender_id = k.sender_id AND m.client_msg_id = k.client_msg_id"
        " UNION ALL SELECT 'r', id, conversation_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
        "   NULL, NULL, NULL FROM chat.messages WHERE id = ANY($7::text[])",
        [pair[0] for pair in ordered],
        [pair[1] for pair in ordered],
        [pair[2] for pair in ordered],
        sorted(set(conversation_ids)),
        [key[0] for key in keys],
        [key[1] for key in keys],
        sorted(set(reply_to)),
    )
    members: dict[str, list[str]] = {}
    last_seq: dict[str, int] = {}
    stream_seq: dict[str, int] = {}
    existing: dict[tuple[str, str], Message] = {}
    created: list[str] = []
    replied: dict[str, str] = {}
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
        elif kind == "r":
            replied[row["a"]] = row["b"]
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
                edited_at=row["edited_at"],
                deleted=row["deleted"],
                reply_to=row["reply_to"],
                reactions=orjson.loads(row["reactions"]),
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
        replied=replied,
    )


async def store_sends(
    conn: Connection,
    *,
    messages: Sequence[Message],
    last_seq: dict[str, int],
    appends: Appends,
) -> None:
    """Write a batch's new messages, the seqs they used, each conversation's latest activity and
    their users' durable frames (each naming its message, for a later deletion) in one
    statement. The rows were locked by :func:`load_send_state` in this transaction."""
    latest = {message.conversation_id: message.created_at for message in messages}
    await conn.execute(
        "WITH c AS (UPDATE chat.conversations AS c"
        "   SET last_seq = n.last_seq, last_activity_at = greatest(c.last_activity_at, n.at)"
        "   FROM unnest($1::text[], $2::bigint[], $17::timestamptz[]) AS n (id, last_seq, at)"
        "   WHERE c.id = n.id),"
        f" s AS ({_ADVANCE_STREAMS}),"
        " m AS (INSERT INTO chat.messages"
        "   (id, conversation_id, seq, sender_id, client_msg_id, kind, body, created_at, reply_to)"
        "   SELECT * FROM unnest($5::text[], $6::text[], $7::bigint[], $8::text[], $9::text[],"
        "     $10::text[], $11::text[], $12::timestamptz[], $18::text[]))"
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
        *appends.insert_args(subjects=True),
        [latest[conversation] for conversation in last_seq],
        [m.reply_to for m in messages],
    )


# --- groups and message changes: rare next to sends, one or two statements each ---------------


async def lock_conversation(
    conn: Connection, conversation_id: str
) -> tuple[ConversationState, int] | None:
    """Read a conversation with its members, locking it until commit (sends lock it too, so a
    membership change and a send to the same conversation never interleave).

    Returns:
        (the state, the conversation's last message seq), or None when it does not exist.
    """
    row = await conn.fetchrow(
        "SELECT kind, title, version, created_at, last_seq,"
        " ARRAY(SELECT user_id FROM chat.members WHERE conversation_id = $1"
        "   ORDER BY joined_at, user_id) AS users,"
        " ARRAY(SELECT role FROM chat.members WHERE conversation_id = $1"
        "   ORDER BY joined_at, user_id) AS roles,"
        " ARRAY(SELECT joined_at FROM chat.members WHERE conversation_id = $1"
        "   ORDER BY joined_at, user_id) AS joined"
        " FROM chat.conversations WHERE id = $1 FOR UPDATE",
        conversation_id,
    )
    if row is None:
        return None
    members = tuple(
        Membership(user_id=user, role=role, joined_at=joined)
        for user, role, joined in zip(row["users"], row["roles"], row["joined"], strict=True)
    )
    state = ConversationState(
        id=conversation_id,
        kind=row["kind"],
        title=row["title"],
        members=members,
        version=row["version"],
        created_at=row["created_at"],
    )
    return state, row["last_seq"]


async def store_conversation(conn: Connection, state: ConversationState, *, last_seq: int) -> None:
    """Make the stored group match ``state`` in one statement: create or update the row, drop
    members no longer in it, add new ones (their watermarks at ``last_seq``: a member joining
    later starts with nothing unread, though history shows everything), and update roles."""
    await conn.execute(
        "WITH c AS (INSERT INTO chat.conversations"
        "   (id, kind, title, version, created_at, last_activity_at)"
        "   VALUES ($1, $2, $3, $4, $5, $5)"
        "   ON CONFLICT (id) DO UPDATE SET title = excluded.title, version = excluded.version),"
        " gone AS (DELETE FROM chat.members WHERE conversation_id = $1"
        "   AND NOT (user_id = ANY($6::text[])))"
        " INSERT INTO chat.members AS m"
        "   (conversation_id, user_id, role, joined_at, delivered_seq, read_seq)"
        " SELECT $1, u, r, j, $9, $9 FROM unnest($6::text[], $7::text[], $8::timestamptz[])"
        "   AS n (u, r, j)"
        " ON CONFLICT (conversation_id, user_id) DO UPDATE SET role = excluded.role"
        "   WHERE m.role <> excluded.role",
        state.id,
        state.kind,
        state.title,
        state.version,
        state.created_at,
        [m.user_id for m in state.members],
        [m.role for m in state.members],
        [m.joined_at for m in state.members],
        last_seq,
    )


async def conversation_view(
    conn: Connection, conversation_id: str, *, last_seq: int, user_ids: Sequence[str]
) -> tuple[Message | None, dict[str, int]]:
    """What a ``conversation.updated`` frame shows besides the state: the last message (current
    state) and each listed member's unread count (users who are not members are left out).

    One statement: the unread counts walk each member's unread range of the
    (conversation_id, seq) index, deleted messages and the member's own excluded.
    """
    rows = await conn.fetch(
        "SELECT 'u' AS row, m.user_id AS a, (SELECT count(*) FROM chat.messages x"
        "   WHERE x.conversation_id = $1 AND x.seq > m.read_seq AND x.sender_id <> m.user_id"
        "   AND NOT x.deleted) AS n, NULL AS message"
        " FROM chat.members m WHERE m.conversation_id = $1 AND m.user_id = ANY($3::text[])"
        " UNION ALL SELECT 'm', NULL, NULL, row_to_json(x)::text FROM ("
        f"   SELECT {MESSAGE_COLUMNS} FROM chat.messages"
        "   WHERE conversation_id = $1 AND seq = $2) x",
        conversation_id,
        last_seq,
        list(user_ids),
    )
    last: Message | None = None
    unread: dict[str, int] = {}
    for row in rows:
        if row["row"] == "u":
            unread[row["a"]] = row["n"]
        else:
            last = message_from_json(row["message"])
    return last, unread


def message_from_json(text: str) -> Message:
    """A message from ``row_to_json`` of a row selected with :data:`MESSAGE_COLUMNS`."""
    data = orjson.loads(text)
    data["reactions"] = orjson.loads(data["reactions"])
    return Message.model_validate(data)


async def lock_message(conn: Connection, conversation_id: str, message_id: str) -> Message | None:
    """A message in its current state, locked until commit; None when the conversation has no
    message with that id."""
    row = await conn.fetchrow(
        f"SELECT {MESSAGE_COLUMNS} FROM chat.messages"
        " WHERE id = $1 AND conversation_id = $2 FOR UPDATE",
        message_id,
        conversation_id,
    )
    return None if row is None else message_from_row(row)


async def store_message(conn: Connection, message: Message) -> None:
    """Write a message's changeable fields (text, edit time, deletion, reactions)."""
    await conn.execute(
        "UPDATE chat.messages SET body = $2, edited_at = $3, deleted = $4, reactions = $5::json"
        " WHERE id = $1",
        message.id,
        message.body,
        message.edited_at,
        message.deleted,
        orjson.dumps(message.reactions).decode(),
    )


async def erase_frames(conn: Connection, message: Message) -> int:
    """Put ``message`` (its erased state) into every stored frame that carries it — as the
    frame's ``message`` or as a conversation's ``last_message`` — in place: the same users and
    seqs, so a replay shows the deletion where the message used to be.

    Returns:
        How many frames were rewritten.
    """
    current = message.to_dict()

    def erase(frame: dict[str, Any]) -> dict[str, Any]:
        carried = frame.get("message")
        if isinstance(carried, dict) and carried.get("id") == message.id:
            frame["message"] = current
        conversation = frame.get("conversation")
        if isinstance(conversation, dict):
            last = conversation.get("last_message")
            if isinstance(last, dict) and last.get("id") == message.id:
                conversation["last_message"] = current
        return frame

    return await STREAM.rewrite(conn, message.id, erase)
