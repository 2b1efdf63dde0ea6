"""Per-user durable streams: every durable frame of a user, numbered, replayed by ``sync``.

A stream has a name clients see (``chat``, ``notifications``) and lives in the schema of the
one service that writes it: ``<schema>.user_streams`` holds each user's last seq,
``<schema>.user_events`` every frame by (user, seq), exactly as it was pushed live. The tables,
the ``<schema>_reader`` role and its Row Level Security policy are the runtime's ``streams``
tables (services/runtime/tables/streams); one stream per schema.

Seqs are consecutive per user and never reused: before seqs are handed out, the user's row in
``user_streams`` is locked until the caller's transaction ends, and the new last seq is
written in that same transaction (a rolled-back transaction hands its seqs out again; a
committed one never). Lock order: a statement locks the stream rows of several users in user
id order, and a service locks its streams after its own rows (chat: conversations, then
streams), so concurrent transactions wait for each other instead of deadlocking.

Two ways to append, the same numbering:

- :meth:`Stream.append_each`: a frame for each of some users, two statements (a receipt, a
  notification);
- set-based, folded into a service's own statements on a hot path: :meth:`Stream.lock_sql` in
  the statement that reads what its decisions need, :class:`Appends` numbering frames in
  Python, :meth:`Stream.advance_sql` and :meth:`Stream.insert_sql` in the statement that
  writes (chat applies a batch of sends in two statements this way), or :meth:`Stream.copy`
  after it for thousands of frames (the notifier's job alerts).

Streams that do not exist yet are created one of two ways. :meth:`Stream.lock_sql` creates
them when it locks (an upsert: the row is then written twice in the transaction, created and
advanced). :meth:`Stream.lock_known_sql` locks only the streams that exist, and the writing
statement creates the others with their last seqs (:meth:`Stream.create_sql`): one write per
new stream, for a burst to thousands of first-time recipients. Its price is a race: two
transactions that both found no stream for a user both create it; the second one's insert
waits for the first to commit and then fails, and :meth:`Stream.creating` turns that failure
into :class:`StreamCreatedConcurrently`, which the consumer retries; the second try finds the
stream and locks it. Until it writes, such a transaction holds no lock on those users, so
nothing it wrote for them may depend on a row of theirs that another transaction could
create meanwhile without creating the stream too.

A frame may name its *subject* (what it carries: chat gives the id of the message in it). The
frames of a subject can later be rewritten in place (:meth:`Stream.rewrite`: same users, same
seqs), so a replay shows what the subject became — a deleted message's text is erased from
every frame that carried it. An erasure also rewrites the frames that mention a user
(:meth:`Stream.rewrite_where`) and deletes the user's own stream (:meth:`Stream.delete`).

Reads (:meth:`Stream.read`) run as the reader role with ``app.user_id`` set, so the policy
hides every other user's frames whatever the query says; :func:`services.runtime.http.
add_stream_route` serves them to gateways as ``/internal/v1/streams/{stream}/{user_id}``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import asyncpg
import orjson

from services.runtime.db import Connection, json_array, read_as, reader_role
from services.runtime.errors import InfrastructureError


class StreamCreatedConcurrently(InfrastructureError):
    """Another transaction created a stream this one meant to create (both found none when
    they locked): this transaction's work rests on a stale view of that user and is retried,
    after which it finds the stream and locks it."""


class Stream:
    """One named per-user stream in its owner's schema.

    Args:
        name: what clients call it in ``sync`` cursors and frames (``chat``).
        schema: the owning service's schema (``chat``).
    """

    __slots__ = ("_events", "_seqs", "name", "reader_role", "schema")

    def __init__(self, name: str, *, schema: str) -> None:
        self.name = name
        self.schema = schema
        self.reader_role = reader_role(schema)
        self._seqs = f'"{schema}".user_streams'
        self._events = f'"{schema}".user_events'

    async def append_each(
        self,
        conn: Connection,
        users: Sequence[str],
        frame: Callable[[str, int], bytes],
        *,
        subject: str | None = None,
    ) -> list[tuple[str, int, bytes]]:
        """Append one frame to the stream of each of ``users``, in the caller's transaction.

        Two statements: the next seq of every user (streams created, locked in user order),
        then every frame.

        Args:
            conn: a connection in the caller's transaction.
            users: distinct user ids.
            frame: builds the frame of a user from its seq (the frame carries its seq).
            subject: what every one of these frames carries, for :meth:`rewrite`.

        Returns:
            (user id, seq, frame) of each user, in the order of ``users``, to deliver live.
        """
        if not users:
            return []
        ordered = sorted(users)
        rows = await conn.fetch(
            f"INSERT INTO {self._seqs} AS s (user_id, last_seq)"
            " SELECT u, 1 FROM unnest($1::text[]) AS u ORDER BY 1"
            " ON CONFLICT (user_id) DO UPDATE SET last_seq = s.last_seq + 1"
            " RETURNING user_id, last_seq",
            ordered,
        )
        seqs: dict[str, int] = {row["user_id"]: row["last_seq"] for row in rows}
        appended = [(user, seqs[user], frame(user, seqs[user])) for user in users]
        await conn.execute(
            self.insert_sql(1, subjects=True),
            [user for user, _, _ in appended],
            [seq for _, seq, _ in appended],
            [data.decode() for _, _, data in appended],
            [subject] * len(appended),
        )
        return appended

    async def rewrite(
        self,
        conn: Connection,
        subject: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> int:
        """Rewrite in place every stored frame of ``subject``, in the caller's transaction.

        Each frame is parsed, given to ``change`` and written back with orjson, which keeps its
        key order and compact form: a rewritten frame is what the service would push today.
        The rows are locked in (user, seq) order.

        Returns:
            How many frames were rewritten.
        """
        return await self.rewrite_where(conn, change, subjects=[subject])

    async def rewrite_where(
        self,
        conn: Connection,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        subjects: Sequence[str] = (),
        mentioning: str | None = None,
        of_users: Sequence[str] = (),
        mentioning_subjects: Sequence[str] = (),
        except_user: str | None = None,
    ) -> int:
        """Rewrite in place the stored frames that some subject or text singles out, in the
        caller's transaction; a frame ``change`` leaves as it was is not written.

        Selected: the frames of ``subjects``; and, when ``mentioning`` is given, the frames
        containing that text among the frames of ``of_users`` and of ``mentioning_subjects``
        (an erasure looks for a user id, as it is written in JSON, in the streams of the
        people who shared conversations with the user, and in the frames of messages the
        user reacted to). The text is a filter only: ``change`` sees the parsed frame and
        decides. Rows are locked in (user, seq) order.

        Args:
            conn: a connection in the caller's transaction.
            change: the frame's new content (given a parsed copy it may change).
            subjects: every frame of these subjects.
            mentioning: the text the other frames must contain.
            of_users: streams searched for ``mentioning``.
            mentioning_subjects: subjects whose frames are searched for ``mentioning``.
            except_user: a stream left out (one about to be deleted).

        Returns:
            How many frames were rewritten.
        """
        # One index-driven branch per way of selecting (by subject, by stream), then the rows
        # locked: an OR across them would leave the planner a scan of the whole table.
        rows = await conn.fetch(
            f"SELECT user_id, seq, frame FROM {self._events} WHERE (user_id, seq) IN ("
            f"   SELECT user_id, seq FROM {self._events} WHERE subject = ANY($1::text[])"
            f"   UNION SELECT user_id, seq FROM {self._events}"
            "     WHERE user_id = ANY($3::text[]) AND strpos(frame, $2) > 0"
            f"   UNION SELECT user_id, seq FROM {self._events}"
            "     WHERE subject = ANY($4::text[]) AND strpos(frame, $2) > 0)"
            " AND user_id IS DISTINCT FROM $5"
            " ORDER BY user_id, seq FOR UPDATE",
            list(subjects),
            mentioning,
            list(of_users) if mentioning is not None else [],
            list(mentioning_subjects) if mentioning is not None else [],
            except_user,
        )
        changed: list[tuple[str, int, str]] = []
        for row in rows:
            rewritten = orjson.dumps(change(orjson.loads(row["frame"]))).decode()
            if rewritten != row["frame"]:
                changed.append((row["user_id"], row["seq"], rewritten))
        if not changed:
            return 0
        await conn.execute(
            f"UPDATE {self._events} AS e SET frame = n.frame"
            " FROM unnest($1::text[], $2::bigint[], $3::text[]) AS n (user_id, seq, frame)"
            " WHERE e.user_id = n.user_id AND e.seq = n.seq",
            [user for user, _, _ in changed],
            [seq for _, seq, _ in changed],
            [frame for _, _, frame in changed],
        )
        return len(changed)

    async def delete(self, conn: Connection, user_id: str) -> int:
        """Delete a user's whole stream (frames and last seq), in the caller's transaction,
        the user's stream row locked first like every writer of the stream.

        A frame appended later starts the stream again from seq 1: for a client it is a new
        stream (an erased user who comes back is a new, empty user).

        Returns:
            How many frames were deleted.
        """
        await conn.execute(f"SELECT 1 FROM {self._seqs} WHERE user_id = $1 FOR UPDATE", user_id)
        deleted = await conn.fetchval(
            f"WITH f AS (DELETE FROM {self._events} WHERE user_id = $1 RETURNING 1),"
            f" s AS (DELETE FROM {self._seqs} WHERE user_id = $1)"
            " SELECT count(*) FROM f",
            user_id,
        )
        return int(deleted)

    async def read(
        self, conn: Connection, *, user_id: str, after_seq: int, limit: int
    ) -> list[tuple[int, str]]:
        """A user's frames after a seq, oldest first, read under Row Level Security.

        Returns:
            Up to ``limit`` + 1 (seq, frame) pairs: the extra one tells the caller more remain.
        """
        async with read_as(conn, role=self.reader_role, user_id=user_id):
            rows = await conn.fetch(
                f"SELECT seq, frame FROM {self._events} WHERE user_id = $1 AND seq > $2"
                " ORDER BY seq LIMIT $3",
                user_id,
                after_seq,
                limit + 1,
            )
        return [(row["seq"], row["frame"]) for row in rows]

    async def copy(self, conn: Connection, appends: Appends) -> None:
        """Store the frames of ``appends`` (with their subjects) in one ``COPY``, in the
        caller's transaction: the bulk way of :meth:`insert_sql`, for thousands of frames (a
        job alert), where encoding them as array parameters costs the client more than the
        server's work. The new last seqs are the caller's to write (:meth:`advance_sql`)."""
        rows = appends.rows()
        if rows:
            await conn.copy_records_to_table(
                "user_events",
                schema_name=self.schema,
                columns=("user_id", "seq", "frame", "subject"),
                records=rows,
            )

    def lock_sql(self, users: str) -> str:
        """A statement for a ``WITH`` of the caller's: create the missing streams of ``users``
        (a query of one text column) and lock all of them in user order, returning
        ``(user_id, last_seq)`` for :class:`Appends`.

        A no-op upsert rather than ``SELECT … FOR UPDATE``, which would miss a row another
        instance committed after the statement's snapshot.
        """
        return (
            f"INSERT INTO {self._seqs} AS s (user_id, last_seq)"
            f" SELECT DISTINCT u, 0 FROM ({users}) AS users (u) ORDER BY 1"
            " ON CONFLICT (user_id) DO UPDATE SET last_seq = s.last_seq"
            " RETURNING user_id, last_seq"
        )

    def lock_known_sql(self, users: str) -> str:
        """A statement locking the streams of ``users`` (a query of one text column) that
        exist, in user order, returning their ``(user_id, last_seq)``; a user without a
        stream gets no row, and the writing statement creates it (:meth:`create_sql`)."""
        return (
            f"SELECT user_id, last_seq FROM {self._seqs} WHERE user_id IN ({users})"
            " ORDER BY user_id FOR UPDATE"
        )

    def create_sql(self, first: int) -> str:
        """A statement for a ``WITH`` of the caller's: create the streams that
        :class:`Appends` numbered from nothing, with their last seqs, taking
        :meth:`Appends.create_args` as parameters ``$first`` and ``$first+1``. Run it under
        :meth:`creating`: a plain insert, which fails when another transaction created one
        of these streams since the lock."""
        return (
            f"INSERT INTO {self._seqs} (user_id, last_seq)"
            f" SELECT n.user_id, n.last_seq::bigint FROM {_last_seqs(first)} ORDER BY 1"
        )

    @contextmanager
    def creating(self, *along: str) -> Iterator[None]:
        """Around a statement that creates streams (:meth:`create_sql`): a unique violation
        on the streams' tables (a frame stored in the same statement may meet the other
        transaction's first), or on a table of ``along`` (the owner's rows first written with
        a user's stream, such as a per-user counter), is the creation race, raised as
        :class:`StreamCreatedConcurrently`.

        Args:
            along: names of tables in the stream's schema.
        """
        try:
            yield
        except asyncpg.UniqueViolationError as exc:
            table = getattr(exc, "table_name", None)
            if getattr(exc, "schema_name", None) == self.schema and (
                table in ("user_streams", "user_events") or table in along
            ):
                raise StreamCreatedConcurrently(f"{self.schema}.{table}") from exc
            raise

    def advance_sql(self, first: int) -> str:
        """A statement for a ``WITH`` of the caller's: write new last seqs, taking
        :meth:`Appends.advance_args` as parameters ``$first`` and ``$first+1`` (JSON arrays:
        see :func:`services.runtime.db.json_array`)."""
        return (
            f"UPDATE {self._seqs} AS s SET last_seq = n.last_seq::bigint"
            f" FROM {_last_seqs(first)} WHERE s.user_id = n.user_id"
        )

    def insert_sql(self, first: int, *, subjects: bool = False) -> str:
        """A statement storing frames, taking :meth:`Appends.insert_args` as parameters
        ``$first`` to ``$first+2`` (to ``$first+3`` with ``subjects``: their subjects too)."""
        if not subjects:
            return (
                f"INSERT INTO {self._events} (user_id, seq, frame)"
                f" SELECT * FROM unnest(${first}::text[], ${first + 1}::bigint[],"
                f" ${first + 2}::text[])"
            )
        return (
            f"INSERT INTO {self._events} (user_id, seq, frame, subject)"
            f" SELECT * FROM unnest(${first}::text[], ${first + 1}::bigint[],"
            f" ${first + 2}::text[], ${first + 3}::text[])"
        )


def _last_seqs(first: int) -> str:
    """Rows ``n (user_id, last_seq)`` from the two JSON arrays of :meth:`Appends.advance_args`
    or :meth:`Appends.create_args`, parameters ``$first`` and ``$first+1``."""
    return (
        f"ROWS FROM (json_array_elements_text(${first}::json),"
        f" json_array_elements_text(${first + 1}::json)) AS n (user_id, last_seq)"
    )


class Appends:
    """Frames appended during one transaction, numbered from seqs locked by
    :meth:`Stream.lock_sql` (or :meth:`Stream.lock_known_sql`). Pure: the statements that
    lock and write are the caller's.

    Args:
        locked: each user's last seq as locked.
        created: users whose streams did not exist when locked (none of ``locked``), numbered
            from seq 1; the writing statement creates those that get a frame.
    """

    __slots__ = ("_created", "_frames", "_last", "_locked", "_seqs", "_subjects", "_users")

    def __init__(self, locked: Mapping[str, int], *, created: Collection[str] = ()) -> None:
        self._locked = locked
        self._created = frozenset(created)
        self._last: dict[str, int] = {}
        self._users: list[str] = []
        self._seqs: list[int] = []
        self._frames: list[str] = []
        self._subjects: list[str | None] = []

    def next_seq(self, user_id: str) -> int:
        """Hand out the user's next seq (the one after the last handed out, or locked).

        Raises:
            KeyError: the user's stream was neither locked nor to be created: numbering it
                would risk a reused seq.
        """
        last = self._last.get(user_id)
        if last is None:
            last = 0 if user_id in self._created else self._locked[user_id]
        self._last[user_id] = last + 1
        return last + 1

    def add(self, user_id: str, seq: int, frame: bytes, subject: str | None = None) -> None:
        """Record the frame that carries ``seq`` (from :meth:`next_seq`) for storage, and what
        it carries (for :meth:`Stream.rewrite`)."""
        self._users.append(user_id)
        self._seqs.append(seq)
        self._frames.append(frame.decode())
        self._subjects.append(subject)

    def advance_args(self) -> list[object]:
        """Parameters of :meth:`Stream.advance_sql`: users whose streams were locked, and
        their new last seqs."""
        if not self._created:
            return [json_array(self._last), json_array(self._last.values())]
        return self._last_seqs(lambda user: user not in self._created)

    def create_args(self) -> list[object]:
        """Parameters of :meth:`Stream.create_sql`: users whose streams start now, and their
        last seqs."""
        return self._last_seqs(self._created.__contains__)

    def _last_seqs(self, which: Callable[[str], bool]) -> list[object]:
        chosen = {user: seq for user, seq in self._last.items() if which(user)}
        return [json_array(chosen), json_array(chosen.values())]

    def rows(self) -> list[tuple[str, int, str, str | None]]:
        """The frames as rows (user, seq, frame, subject), as added: for :meth:`Stream.copy`."""
        return list(zip(self._users, self._seqs, self._frames, self._subjects, strict=True))

    def insert_args(self, *, subjects: bool = False) -> list[object]:
        """Parameters of :meth:`Stream.insert_sql`: users, seqs and frames, as added (and their
        subjects, for the statement with ``subjects``)."""
        args: list[object] = [self._users, self._seqs, self._frames]
        if subjects:
            args.append(self._subjects)
        return args
