"""Postgres access of the notifier's notifications (schema ``notifier``): every query, nothing else.

Functions take an open connection and leave the transaction to the caller. A batch of any size
costs the same few round trips, whatever it holds (1,000 job alert recipients are not 1,000
round trips):

    lock_streams   the users' ``notifications`` streams that exist, locked in user order
                   (services/runtime/streams.py); the others are created by ``write``
    load           everything the decisions need, read after the locks (a fresh snapshot):
                   unread counts, preferences, mutes, open message notifications, notifications
                   named by reads, connectivity, subscriptions, applications' latest status
    write          every row the decisions changed, the counts, the streams' last seqs (one
                   statement); then the new notifications (a COPY)
    store_frames   the frames (a COPY), made while Postgres ran the write

Why two statements before deciding: a statement's snapshot is taken when it starts, before it
waits for a lock, so rows another transaction committed while this one waited are invisible to
the statement that waited. The lock comes first; the reads come in the next statement.

Lock order (no deadlocks between notifier instances): a user's stream row, always first and in
user order, then that user's rows (counts, notifications, preferences), then push jobs. Every
writer of a user's notifications holds the user's stream row lock, so the unread count moved in
the same statement as the rows can never drift from them.

A user without a stream (a first-time recipient, most of a job alert's) has no row to lock:
``write`` creates the stream with its last seq and the unread count with its first value, each
row written once (creating the stream at the lock and advancing it after cost the lock
statement ~45 ms of Postgres per 10,000 new users). Two transactions that both found no stream
race to create it; the loser's insert into ``user_streams`` or ``inbox`` fails, and the batch
is retried (``Stream.creating``), then finding the stream. A user's notifications and counts
are only ever written with a frame on the user's stream, so the loser always meets one of them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from schemas.frames import KindPrefs, NotificationPrefs
from services.notifier.domain.inbox import Decisions, Needs, Note, NoteKey, Snapshot
from services.runtime.db import Connection, json_array, read_as
from services.runtime.streams import Appends, Stream

SCHEMA = "notifier"
#: Every user's ``notifications`` stream: what sync replays.
STREAM = Stream("notifications", schema=SCHEMA)


_LOCK = STREAM.lock_known_sql("SELECT json_array_elements_text($1::json)")


async def lock_streams(conn: Connection, users: Collection[str]) -> Appends:
    """Lock the streams of ``users`` that exist, in user order.

    Returns:
        Appends numbering each user's frames after the last seq locked, or from 1 for a user
        without a stream, whose stream :func:`write` creates.
    """
    if not users:
        return Appends({})
    rows = await conn.fetch(_LOCK, json_array(users))
    locked = {row["user_id"]: row["last_seq"] for row in rows}
    return Appends(locked, created=[user for user in users if user not in locked])


# --- load: one statement, rows of several shapes ------------------------------------------------

_LOAD = """
WITH users AS (SELECT json_array_elements_text($1::json) AS user_id),
 pairs AS (SELECT * FROM unnest($2::text[], $3::text[]) AS p (user_id, conversation_id)),
 named AS (SELECT * FROM unnest($4::text[], $5::text[]) AS n (user_id, id)),
 watched AS (SELECT json_array_elements_text($6::json) AS user_id),
 notes AS (
   SELECT n.* FROM notifier.notifications n JOIN pairs p USING (user_id, conversation_id)
   WHERE n.kind = 'message' AND n.read_at IS NULL
   UNION
   SELECT n.* FROM notifier.notifications n JOIN named USING (user_id, id))
SELECT 'note' AS row, user_id AS u, id AS a, kind AS b, title AS c, body AS d, data::text AS e,
       conversation_id AS f, created_at AS t, read_at IS NOT NULL AS flag, NULL::boolean AS flag2,
       last_message_seq AS n
  FROM notes
UNION ALL
SELECT 'unread', i.user_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, i.unread
  FROM notifier.inbox i JOIN users USING (user_id)
UNION ALL
SELECT 'covered', p.user_id, p.conversation_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       greatest(
         (SELECT max(n.last_message_seq) FROM notifier.notifications n
           WHERE n.user_id = p.user_id AND n.conversation_id = p.conversation_id),
         (SELECT r.read_seq FROM notifier.conversation_reads r
           WHERE r.user_id = p.user_id AND r.conversation_id = p.conversation_id))
  FROM pairs p
UNION ALL
SELECT 'muted', m.user_id, m.conversation_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
  FROM notifier.mutes m JOIN pairs USING (user_id, conversation_id)
UNION ALL
SELECT 'mute_list', m.user_id, m.conversation_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL
  FROM notifier.mutes m WHERE m.user_id = ANY($7::text[])
UNION ALL
SELECT 'pref', p.user_id, p.kind, NULL, NULL, NULL, NULL, NULL, NULL, p.in_app, p.push, NULL
  FROM notifier.preferences p JOIN watched USING (user_id)
UNION ALL
SELECT 'connectivity', c.user_id, NULL, NULL, NULL, NULL, NULL, NULL, c.changed_at, c.connected,
       NULL, NULL
  FROM notifier.connectivity c JOIN watched USING (user_id)
UNION ALL
SELECT DISTINCT 'subscribed', s.user_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL::timestamptz,
       NULL::boolean, NULL::boolean, NULL::bigint
  FROM notifier.push_subscriptions s JOIN users USING (user_id)
UNION ALL
SELECT 'application', a.application_id, NULL, NULL, NULL, NULL, NULL, NULL, a.changed_at, NULL,
       NULL, NULL
  FROM notifier.applications a WHERE a.application_id = ANY($8::text[])
"""


async def load(conn: Connection, need: Needs) -> Snapshot:
    """Read what deciding a batch needs; run it after :func:`lock_streams` of ``need.users``."""
    pairs = sorted(need.pairs)
    named = sorted(need.named)
    rows = await conn.fetch(
        _LOAD,
        json_array(need.users),
        [user for user, _ in pairs],
        [conversation for _, conversation in pairs],
        [user for user, _ in named],
        [id_ for _, id_ in named],
        json_array(need.watched),
        sorted(need.pref_users),
        sorted(need.applications),
    )
    snapshot = Snapshot()
    for row in rows:
        kind = row["row"]
        user = row["u"]
        if kind == "note":
            data = orjson.loads(row["e"])
            note = Note(
                user_id=user,
                id=row["a"],
                kind=row["b"],
                title=row["c"],
                body=row["d"],
                data=data,
                created_at=row["t"],
                read=row["flag"],
                conversation_id=row["f"],
                last_message_seq=row["n"],
                count=_count(data),
            )
            if (user, note.id) in need.named:
                snapshot.named[note.key] = note
            if note.kind == "message" and not note.read and note.conversation_id is not None:
                snapshot.open_messages[(user, note.conversation_id)] = note
        elif kind == "unread":
            snapshot.unread[user] = row["n"]
        elif kind == "covered":
            if row["n"] is not None:
                snapshot.covered[(user, row["a"])] = row["n"]
        elif kind == "muted":
            snapshot.muted.add((user, row["a"]))
        elif kind == "mute_list":
            snapshot.mute_lists.setdefault(user, []).append(row["a"])
        elif kind == "pref":
            snapshot.prefs.setdefault(user, {})[row["a"]] = KindPrefs(
                in_app=row["flag"], push=row["flag2"]
            )
        elif kind == "connectivity":
            snapshot.connectivity[user] = (row["flag"], row["t"])
        elif kind == "subscribed":
            snapshot.subscribed.add(user)
        else:
            snapshot.applications[user] = row["t"]
    return snapshot


def _count(data: Mapping[str, Any]) -> int:
    count = data.get("count", 1)
    return count if isinstance(count, int) else 1


# --- write: one statement, then the new rows copied ------------------------------------------

_WRITE = f"""
WITH upd AS (
   UPDATE notifier.notifications n SET
     title = coalesce(x.t, n.title), body = coalesce(x.b, n.body),
     data = coalesce(x.d::jsonb, n.data), position = coalesce(x.p, n.position),
     read_at = coalesce(n.read_at, x.r), last_message_seq = coalesce(x.s, n.last_message_seq)
   FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
     $7::timestamptz[], $8::bigint[]) AS x (u, i, t, b, d, p, r, s)
   WHERE n.user_id = x.u AND n.id = x.i),
 read_all AS (
   UPDATE notifier.notifications n SET read_at = $10
   FROM unnest($9::text[]) AS x (u)
   WHERE n.user_id = x.u AND n.read_at IS NULL
     AND (n.user_id, n.id) NOT IN (SELECT * FROM unnest($1::text[], $2::text[]))),
 counts AS (
   UPDATE notifier.inbox i SET unread = c.n::int
   FROM ROWS FROM (json_array_elements_text($11::json), json_array_elements_text($12::json))
     AS c (u, n)
   WHERE i.user_id = c.u),
 first_counts AS (
   INSERT INTO notifier.inbox (user_id, unread)
   SELECT u, n::int FROM ROWS FROM (json_array_elements_text($13::json),
     json_array_elements_text($14::json)) AS c (u, n)),
 prefs AS (
   INSERT INTO notifier.preferences AS p (user_id, kind, in_app, push)
   SELECT * FROM unnest($15::text[], $16::text[], $17::boolean[], $18::boolean[])
   ON CONFLICT (user_id, kind) DO UPDATE SET in_app = excluded.in_app, push = excluded.push),
 muted AS (
   INSERT INTO notifier.mutes (user_id, conversation_id)
   SELECT * FROM unnest($19::text[], $20::text[]) ON CONFLICT DO NOTHING),
 unmuted AS (
   DELETE FROM notifier.mutes m USING unnest($21::text[], $22::text[]) AS x (u, c)
   WHERE m.user_id = x.u AND m.conversation_id = x.c),
 marks AS (
   INSERT INTO notifier.conversation_reads AS r (user_id, conversation_id, read_seq)
   SELECT * FROM unnest($23::text[], $24::text[], $25::bigint[])
   ON CONFLICT (user_id, conversation_id)
   DO UPDATE SET read_seq = greatest(r.read_seq, excluded.read_seq)),
 apps AS (
   INSERT INTO notifier.applications AS a (application_id, changed_at, status)
   SELECT * FROM unnest($26::text[], $27::timestamptz[], $28::text[])
   ON CONFLICT (application_id) DO UPDATE SET changed_at = excluded.changed_at,
     status = excluded.status WHERE a.changed_at < excluded.changed_at),
 connectivity AS (
   INSERT INTO notifier.connectivity AS c (user_id, connected, changed_at)
   SELECT * FROM unnest($29::text[], $30::boolean[], $31::timestamptz[])
   ON CONFLICT (user_id) DO UPDATE SET connected = excluded.connected,
     changed_at = excluded.changed_at WHERE c.changed_at <= excluded.changed_at),
 created AS ({STREAM.create_sql(34)})
{STREAM.advance_sql(32)}
"""

#: The columns of a new notification, in the order :func:`write` copies them.
_NEW_COLUMNS = (
    "user_id",
    "id",
    "kind",
    "title",
    "body",
    "data",
    "created_at",
    "position",
    "read_at",
    "conversation_id",
    "last_message_seq",
)


@dataclass(slots=True)
class _Columns:
    """Arrays of one row set, column by column."""

    columns: list[list[Any]]

    @classmethod
    def of(cls, width: int) -> _Columns:
        return cls([[] for _ in range(width)])

    def add(self, *values: Any) -> None:
        for column, value in zip(self.columns, values, strict=True):
            column.append(value)


class DataJson:
    """``data`` encoded once per object (one batch): the recipients of a job alert share it."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        # Keyed by identity; the object is kept with its text, so an id is never reused.
        self._cache: dict[int, tuple[Mapping[str, Any], str]] = {}

    def __call__(self, data: Mapping[str, Any]) -> str:
        cached = self._cache.get(id(data))
        if cached is None or cached[0] is not data:
            cached = (data, orjson.dumps(data).decode())
            self._cache[id(data)] = cached
        return cached[1]


async def write(
    conn: Connection,
    decisions: Decisions,
    *,
    positions: Mapping[NoteKey, int],
    appends: Appends,
    data_json: DataJson,
    counted: Collection[str],
    now: datetime,
) -> None:
    """Write what a batch decided: one statement for every change to existing rows, the
    counts and the streams' last seqs, then the new notifications copied in (``COPY``: for a
    job alert's thousands of rows, a third of the client's encoding work of array parameters
    and less of the server's than inserting from arrays). The frames are not needed until
    :func:`store_frames`.

    The new notifications go in after the statement, so that its ``all`` reads (which mark
    the user's unread rows not otherwise named) never touch a notification this batch made
    after the read: those carry their own read state.

    Args:
        conn: a connection in the transaction that locked and loaded.
        decisions: the batch's decisions.
        positions: the stream seq of each notification's latest ``notification.new``.
        appends: the seqs handed out, numbered from the locked ones.
        data_json: encodes ``data``.
        counted: users whose unread count is stored (their ``inbox`` row is updated; the
            others' is inserted: plainly, since only a holder of the user's stream lock writes
            it, half the server's work of an upsert).
        now: when notifications read by ``all`` were read.
    """
    created: list[tuple[object, ...]] = []
    old = _Columns.of(8)
    for key, note in decisions.notes.items():
        position = positions.get(key)
        read_at = now if note.read else None
        if not note.existed:
            assert position is not None  # a new notification is always shown
            created.append(
                (
                    note.user_id,
                    note.id,
                    note.kind,
                    note.title,
                    note.body,
                    data_json(note.data),
                    note.created_at,
                    position,
                    read_at,
                    note.conversation_id,
                    note.last_message_seq,
                )
            )
        elif position is None:
            # Only read: its content stays as stored.
            old.add(note.user_id, note.id, None, None, None, None, read_at, None)
        else:
            old.add(
                note.user_id,
                note.id,
                note.title,
                note.body,
                data_json(note.data),
                position,
                read_at,
                note.last_message_seq,
            )
    prefs = _Columns.of(4)
    for (user, kind), chosen in decisions.prefs.items():
        prefs.add(user, kind, chosen.in_app, chosen.push)
    muted, unmuted = _Columns.of(2), _Columns.of(2)
    for (user, conversation), on in decisions.mutes.items():
        (muted if on else unmuted).add(user, conversation)
    marks = _Columns.of(3)
    for (user, conversation), seq in decisions.read_marks.items():
        marks.add(user, conversation, seq)
    apps = _Columns.of(3)
    for application, (changed_at, status) in decisions.applications.items():
        apps.add(application, changed_at, status)
    connectivity = _Columns.of(3)
    for user, (connected, changed_at) in decisions.connectivity.items():
        connectivity.add(user, connected, changed_at)
    counts, first_counts = _Columns.of(2), _Columns.of(2)
    for user, unread in decisions.unread.items():
        (counts if user in counted else first_counts).add(user, unread)
    with STREAM.creating("inbox"):
        await conn.execute(
            _WRITE,
            *old.columns,
            sorted(decisions.read_all),
            now,
            *map(json_array, counts.columns),
            *map(json_array, first_counts.columns),
            *prefs.columns,
            *muted.columns,
            *unmuted.columns,
            *marks.columns,
            *apps.columns,
            *connectivity.columns,
            *appends.advance_args(),
            *appends.create_args(),
        )
    if created:
        await conn.copy_records_to_table(
            "notifications", schema_name=SCHEMA, columns=_NEW_COLUMNS, records=created
        )


async def store_frames(conn: Connection, appends: Appends) -> None:
    """Store the batch's frames (one ``COPY``), after :func:`write`, every frame added to
    ``appends`` (a message notification's frame names the message it previews as its
    subject: see :func:`erase_message`)."""
    await STREAM.copy(conn, appends)


# --- reads that serve a user (the gateway asks, for notifications.list and prefs.get) ---------


class UnknownNotification(LookupError):
    """``before`` names no notification of the user (or one of another user: the same)."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the bell: notifications as JSON objects, newest first."""

    notifications: list[dict[str, Any]]
    unread_count: int
    has_more: bool


async def list_notifications(
    conn: Connection, *, user_id: str, before: str | None, limit: int, unread_only: bool
) -> Page:
    """The user's notifications, newest first (by their latest ``notification.new``), under RLS.

    Raises:
        UnknownNotification: ``before`` is not one of the user's notifications.
    """
    async with read_as(conn, role=STREAM.reader_role, user_id=user_id):
        bound = None
        if before is not None:
            bound = await conn.fetchval(
                "SELECT position FROM notifier.notifications WHERE user_id = $1 AND id = $2",
                user_id,
                before,
            )
            if bound is None:
                raise UnknownNotification(before)
        rows = await conn.fetch(
            "SELECT id, kind, title, body, data::text AS data, created_at,"
            " read_at IS NOT NULL AS read FROM notifier.notifications"
            " WHERE user_id = $1 AND ($2::bigint IS NULL OR position < $2)"
            " AND (NOT $3 OR read_at IS NULL) ORDER BY position DESC LIMIT $4",
            user_id,
            bound,
            unread_only,
            limit + 1,
        )
        unread = await conn.fetchval(
            "SELECT unread FROM notifier.inbox WHERE user_id = $1", user_id
        )
    return Page(
        notifications=[
            {
                "id": row["id"],
                "kind": row["kind"],
                "title": row["title"],
                "body": row["body"],
                "data": orjson.Fragment(row["data"]),
                "created_at": row["created_at"],
                "read": row["read"],
            }
            for row in rows[:limit]
        ],
        unread_count=unread or 0,
        has_more=len(rows) > limit,
    )


async def read_prefs(conn: Connection, *, user_id: str) -> NotificationPrefs:
    """Every preference of the user (defaults where none is stored) and their mutes, under RLS."""
    async with read_as(conn, role=STREAM.reader_role, user_id=user_id):
        stored = await conn.fetch(
            "SELECT kind, in_app, push FROM notifier.preferences WHERE user_id = $1", user_id
        )
        muted = await conn.fetch(
            "SELECT conversation_id FROM notifier.mutes WHERE user_id = $1"
            " ORDER BY conversation_id",
            user_id,
        )
    kinds = {row["kind"]: KindPrefs(in_app=row["in_app"], push=row["push"]) for row in stored}
    default = KindPrefs()
    return NotificationPrefs(
        message=kinds.get("message", default),
        job_alert=kinds.get("job_alert", default),
        application_status=kinds.get("application_status", default),
        muted_conversations=[row["conversation_id"] for row in muted],
    )


async def erase_message(
    conn: Connection, *, conversation_id: str, message_id: str, member_ids: Sequence[str]
) -> int:
    """A message was deleted: erase its preview from the notifications that show it, from
    every stored frame that carried it (rewritten in place, same seqs), and drop their pushes
    not yet sent (the payload holds the preview).

    Returns:
        How many notifications showed it.
    """
    rows = await conn.fetch(
        "WITH erased AS ("
        "   UPDATE notifier.notifications SET body = '' WHERE user_id = ANY($3::text[])"
        "   AND kind = 'message' AND conversation_id = $1 AND data->>'message_id' = $2"
        "   RETURNING user_id, id"
        " ), unpushed AS ("
        "   DELETE FROM notifier.push_jobs j USING erased"
        "   WHERE j.user_id = erased.user_id AND j.notification_id = erased.id"
        " ) SELECT user_id, id FROM erased",
        conversation_id,
        message_id,
        list(member_ids),
    )
    await STREAM.rewrite(conn, message_id, erase_preview)
    return len(rows)


def erase_preview(frame: dict[str, Any]) -> dict[str, Any]:
    """A ``notification.new`` frame without the text of the message it previewed."""
    notification = frame.get("notification")
    if isinstance(notification, dict):
        notification["body"] = ""
    return frame


async def cancel_read_pushes(
    conn: Connection, *, notes: Sequence[NoteKey], users: Sequence[str]
) -> None:
    """Drop staged pushes of notifications read now, and every staged push of ``users``
    (``all``), in one statement (the batch version of ``push_storage.cancel_pushes``)."""
    if not notes and not users:
        return
    await conn.execute(
        "DELETE FROM notifier.push_jobs j WHERE j.user_id = ANY($3::text[])"
        " OR (j.user_id, j.notification_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [user for user, _ in notes],
        [id_ for _, id_ in notes],
        list(users),
    )
