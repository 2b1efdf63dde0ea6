"""The chaos soak's invariants (tests/integration/test_chaos.py), checked once the faults and
the load stopped and the system settled: from the outside (``sync``, ``conversations.list``,
``notifications.list``, what the fake push service received) and from the database.

Membership is judged against a timeline: a group's changes as its admin's stream shows them,
each with the conversation's last message at that moment. A message of seq ``s`` was sent to
the members after the last change made before it (the last change whose last message is
below ``s``); a member's stream must hold exactly the messages of the intervals it was a
member for, once each, in order, and nothing of the group between its removal and a re-add.

Web Push is judged against what the notifier decided and what it knew. Every push must be a
version of a notification the user's stream holds (``notification.new``, the same content and
unread count), sent once per subscription, or again after a notifier crash (at least once:
docs/notifications.md). "No push to a user with a live connection" is held to what the docs
promise: the notifier decides from presence's connectivity fact *as it applied it*, and a
notification made between a user's connecting and the notifier applying that fact may be
pushed (the race documented in docs/notifications.md). So a push is a violation only when the
notifier had applied "connected" before the transaction that decided it began, and still held
the same fact after the push arrived. :class:`ConnectivityLog` watches the applied facts with
the database's own clock: an observation that ended before the deciding transaction started
(its ``now()``, which every stored frame records) was visible to it. The other way round, a
push is owed for a notification still unread whose last version was decided while the notifier
held its user disconnected, and held it so to the end (the offline users always; a roamer
after its last visit): nothing the docs allow then stops it (a read cancels, a newer version or
a newer status of the same application replaces, a give-up needs an hour).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import orjson

from schemas import topics
from tests.integration.chaos_client import Frame, Report
from tests.integration.chaos_faults import partition_end_offsets
from tests.integration.chaos_load import Ledger, Soak, sync_stream
from tests.integration.harness import System, seconds
from tests.integration.push_service import ReceivedPush

#: The notifier's inputs and chat's: once their consumers reached the end, nothing is in flight.
SETTLING_TOPICS = {
    "notifier": (
        topics.CHAT_EVENTS,
        topics.PRESENCE_CONNECTIVITY,
        topics.NOTIFIER_COMMANDS,
        topics.JOBS_EVENTS,
        topics.APPLICATIONS_EVENTS,
    ),
    "chat": (topics.CHAT_COMMANDS,),
}


# --- what the notifier knew: its applied connectivity facts, watched -------------------------


@dataclass(frozen=True)
class Observation:
    """The notifier's connectivity rows as one statement saw them.

    Attributes:
        started: the statement's start (database clock): before its snapshot.
        ended: a moment during its execution: after its snapshot.
        rows: user -> (connected, changed_at) as applied.
    """

    started: float
    ended: float
    rows: dict[str, tuple[bool, float]]


_CONNECTION_LOST = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


@dataclass
class ConnectivityLog:
    """Polls ``notifier.connectivity`` (read only, no lock) for the soak's users."""

    database_url: str
    users: list[str]
    observations: list[Observation] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        """Observe every 100 ms until ``stop`` (Postgres restarts are waited out)."""
        while not stop.is_set():
            try:
                conn = await asyncpg.connect(self.database_url, timeout=seconds(5))
            except (OSError, asyncpg.PostgresError, TimeoutError):
                await asyncio.sleep(0.2)
                continue
            try:
                while not stop.is_set():
                    await self.observe(conn)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.1)
            # A connection cut by a Postgres restart in mid-statement may fail its next
            # statement as an asyncpg InternalClientError: it is as lost as the others.
            except _CONNECTION_LOST:
                await asyncio.sleep(0.2)
            finally:
                with contextlib.suppress(*_CONNECTION_LOST):
                    await conn.close(timeout=seconds(2))

    async def observe_now(self) -> None:
        """One more observation, on a connection of its own."""
        conn = await asyncpg.connect(self.database_url)
        try:
            await self.observe(conn)
        finally:
            await conn.close()

    async def observe(self, conn: asyncpg.Connection) -> None:
        row = await conn.fetchrow(
            "SELECT statement_timestamp() AS started, clock_timestamp() AS ended,"
            " coalesce(json_agg(json_build_array(user_id, connected,"
            "   extract(epoch FROM changed_at))), '[]') AS rows"
            " FROM notifier.connectivity WHERE user_id = ANY($1::text[])",
            self.users,
        )
        assert row is not None
        self.observations.append(
            Observation(
                started=row["started"].timestamp(),
                ended=row["ended"].timestamp(),
                rows={
                    user: (connected, float(at))
                    for user, connected, at in orjson.loads(row["rows"])
                },
            )
        )

    def held(self, user: str, before: float, after: float) -> tuple[bool, float] | None:
        """The fact the notifier held for ``user`` at every moment from ``before`` to ``after``,
        if that is known: the same fact seen by an observation that ended before ``before`` and
        by one that started after ``after`` (facts only move forward, so it never changed in
        between). None when unknown (no observations around, or the fact changed)."""
        earlier = [o for o in self.observations if o.ended < before]
        later = [o for o in self.observations if o.started > after]
        if not earlier or not later:
            return None
        first, last = earlier[-1].rows.get(user), later[0].rows.get(user)
        return first if first is not None and first == last else None


# --- the system at rest ------------------------------------------------------------------------


async def settled(system: System, users: list[str]) -> bool:
    """Whether chat and the notifier consumed everything written to their inputs, their
    outboxes are empty and no push to ``users`` waits (other tests of the session may leave
    pushes to their push services, gone since, retried until given up)."""
    names = {schema: [system.topic(t) for t in ts] for schema, ts in SETTLING_TOPICS.items()}
    ends = await partition_end_offsets(system, [t for ts in names.values() for t in ts])
    conn = await asyncpg.connect(system.database_url)
    try:
        for schema, schema_topics in names.items():
            rows = await conn.fetch(
                f"SELECT topic, partition, max(next_offset) AS next FROM {schema}.consumer_offsets"
                " WHERE topic = ANY($1::text[]) GROUP BY topic, partition",
                schema_topics,
            )
            stored = {(row["topic"], row["partition"]): row["next"] for row in rows}
            for topic in schema_topics:
                for partition, end in ends.get(topic, {}).items():
                    if end and stored.get((topic, partition), 0) < end:
                        return False
            if await conn.fetchval(f"SELECT count(*) FROM {schema}.outbox"):
                return False
        return not await conn.fetchval(
            "SELECT count(*) FROM notifier.push_jobs WHERE user_id = ANY($1::text[])", users
        )
    finally:
        await conn.close()


async def wait_settled(system: System, users: list[str], report: Report) -> None:
    """Until :func:`settled` holds twice in a row (bounded)."""
    deadline = time.monotonic() + seconds(180)
    streak = 0
    while time.monotonic() < deadline:
        try:
            streak = streak + 1 if await settled(system, users) else 0
        except (OSError, asyncpg.PostgresError):
            streak = 0
        if streak >= 2:
            return
        await asyncio.sleep(0.5)
    report.violation("the system did not settle: consumers behind, outbox rows or pushes left")


# --- what the checks read ------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """A message as chat stores it."""

    id: str
    conversation_id: str
    seq: int
    sender: str


@dataclass
class Change:
    """A group change as the reference timeline shows it: members after it, and the
    conversation's last message seq at that moment."""

    members: frozenset[str]
    last_seq: int


@dataclass
class World:
    """What the checks compare: read from the outside and from the database."""

    chat: dict[str, list[Frame]] = field(default_factory=dict)
    bell_stream: dict[str, list[Frame]] = field(default_factory=dict)
    bell: dict[str, list[Frame]] = field(default_factory=dict)
    bell_unread: dict[str, int] = field(default_factory=dict)
    listed: dict[str, list[Frame]] = field(default_factory=dict)
    messages: dict[str, list[Stored]] = field(default_factory=dict)
    by_id: dict[str, Stored] = field(default_factory=dict)
    members: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: dict[str, list[asyncpg.Record]] = field(default_factory=dict)
    inbox: dict[str, int] = field(default_factory=dict)
    note_reads: dict[tuple[str, str], int] = field(default_factory=dict)
    # (user, seq) -> when the transaction that stored the frame began (database clock).
    frame_times: dict[tuple[str, int], float] = field(default_factory=dict)
    timelines: dict[str, list[Change]] = field(default_factory=dict)

    def members_at(self, conversation: str, seq: int) -> frozenset[str]:
        """Who a message of this seq was sent to."""
        timeline = self.timelines.get(conversation)
        if timeline is None:
            # A direct conversation: its two members, from its first message on.
            return frozenset(self.members.get(conversation, {}))
        current: frozenset[str] = frozenset()
        for change in timeline:
            if change.last_seq < seq:
                current = change.members
        return current

    def intervals(self, conversation: str, user: str) -> list[tuple[int, int | None]]:
        """The (after seq, up to seq or None) ranges of messages ``user`` was a member for."""
        timeline = self.timelines.get(conversation)
        if timeline is None:
            return [(0, None)]
        ranges: list[tuple[int, int | None]] = []
        start: int | None = None
        for change in timeline:
            if user in change.members and start is None:
                start = change.last_seq
            elif user not in change.members and start is not None:
                ranges.append((start, change.last_seq))
                start = None
        if start is not None:
            ranges.append((start, None))
        return ranges


async def read_world(soak: Soak) -> World:
    """Every user's streams and lists (through the gateways) and the rows behind them."""
    ledger, world = soak.ledger, World()
    for user in ledger.users:
        await soak.clients[user].ensure(soak.deadline)
    for user in ledger.users:
        world.chat[user] = await sync_stream(soak, user, "chat")
        world.bell_stream[user] = await sync_stream(soak, user, "notifications")
        world.bell[user], world.bell_unread[user] = await bell(soak, user)
        world.listed[user] = await conversations(soak, user)
    conn = await asyncpg.connect(soak.system.database_url)
    try:
        conversation_ids = sorted(
            {
                f["message"]["conversation_id"]
                for fs in world.chat.values()
                for f in fs
                if "message" in f
            }
            | {
                f["conversation"]["id"]
                for fs in world.chat.values()
                for f in fs
                if "conversation" in f
            }
            | {sent.conversation_id for sent in ledger.sent}
        )
        for row in await conn.fetch(
            "SELECT id, conversation_id, seq, sender_id FROM chat.messages"
            " WHERE conversation_id = ANY($1::text[]) ORDER BY conversation_id, seq",
            conversation_ids,
        ):
            stored = Stored(row["id"], row["conversation_id"], row["seq"], row["sender_id"])
            world.messages.setdefault(stored.conversation_id, []).append(stored)
            world.by_id[stored.id] = stored
        for row in await conn.fetch(
            "SELECT conversation_id, user_id, read_seq FROM chat.members"
            " WHERE conversation_id = ANY($1::text[])",
            conversation_ids,
        ):
            world.members.setdefault(row["conversation_id"], {})[row["user_id"]] = row["read_seq"]
        for row in await conn.fetch(
            "SELECT * FROM notifier.notifications WHERE user_id = ANY($1::text[])"
            " ORDER BY user_id, position",
            ledger.users,
        ):
            world.notes.setdefault(row["user_id"], []).append(row)
        for row in await conn.fetch(
            "SELECT user_id, unread FROM notifier.inbox WHERE user_id = ANY($1::text[])",
            ledger.users,
        ):
            world.inbox[row["user_id"]] = row["unread"]
        for row in await conn.fetch(
            "SELECT user_id, conversation_id, read_seq FROM notifier.conversation_reads"
            " WHERE user_id = ANY($1::text[])",
            ledger.users,
        ):
            world.note_reads[(row["user_id"], row["conversation_id"])] = row["read_seq"]
        for row in await conn.fetch(
            "SELECT user_id, seq, created_at FROM notifier.user_events"
            " WHERE user_id = ANY($1::text[])",
            ledger.users,
        ):
            world.frame_times[(row["user_id"], row["seq"])] = row["created_at"].timestamp()
    finally:
        await conn.close()
    return world


async def bell(soak: Soak, user: str) -> tuple[list[Frame], int]:
    """The user's whole bell, page by page, and the unread count its first page showed."""
    found: list[Frame] = []
    frame: Frame = {"type": "notifications.list", "limit": 100}
    unread = -1
    while True:
        page = await soak.ack(user, frame)
        unread = page["unread_count"] if unread < 0 else unread
        found += page["notifications"]
        if not page["has_more"]:
            return found, unread
        frame = {**frame, "before": page["notifications"][-1]["id"]}


async def conversations(soak: Soak, user: str) -> list[Frame]:
    """The user's whole conversation list, page by page."""
    found: list[Frame] = []
    frame: Frame = {"type": "conversations.list", "limit": 100}
    while True:
        page = await soak.ack(user, frame)
        found += page["conversations"]
        if not page["has_more"]:
            return found
        frame = {**frame, "before": page["cursor"]}


# --- the invariants ------------------------------------------------------------------------------


def conversation_of(frame: Frame) -> str | None:
    if "message" in frame:
        conversation: str = frame["message"]["conversation_id"]
        return conversation
    if "conversation" in frame:
        return str(frame["conversation"]["id"])
    return frame.get("conversation_id")


def check_timelines(world: World, ledger: Ledger, report: Report) -> None:
    """Each group's changes, from its creator's stream: one user in or out at a time, ending
    with the members the soak's acknowledged changes left (and chat's rows say)."""
    creators: dict[str, str] = {}
    for user in ledger.ring:
        for frame in world.chat[user]:
            if frame["type"] == "conversation.updated":
                conversation = frame["conversation"]
                admins = [m["user_id"] for m in conversation["members"] if m["role"] == "admin"]
                creators.setdefault(conversation["id"], admins[0])
    titles: Counter[str] = Counter()
    for conversation, creator in creators.items():
        timeline = []
        for frame in world.chat[creator]:
            if (
                frame["type"] == "conversation.updated"
                and frame["conversation"]["id"] == conversation
            ):
                last = frame["conversation"]["last_message"]
                timeline.append(
                    Change(
                        frozenset(m["user_id"] for m in frame["conversation"]["members"]),
                        0 if last is None else last["seq"],
                    )
                )
                title = frame["conversation"]["title"]
        world.timelines[conversation] = timeline
        titles[title] += 1
        report.count("group_changes", len(timeline) - 1)
        for before, after in itertools.pairwise(timeline):
            report.check(
                len(before.members ^ after.members) == 1 and before.last_seq <= after.last_seq,
                f"{conversation}: a change from {sorted(before.members)} to "
                f"{sorted(after.members)} that nobody asked for",
            )
        group = ledger.groups.get(conversation)
        stored = set(world.members.get(conversation, {}))
        if group is not None:
            report.check(
                set(timeline[-1].members) == group.members == stored,
                f"{conversation}: members {sorted(timeline[-1].members)} in the stream,"
                f" {sorted(group.members)} acked, {sorted(stored)} stored",
            )
    # Titles are unique per soak, and a resent create names its group (client_conversation_id).
    for title, made in titles.items():
        report.check(made == 1, f"group {title!r} made {made} times by a resent create")


def check_chat_streams(world: World, ledger: Ledger, report: Report) -> None:
    """Every message in every member's stream exactly once, in order, within the intervals
    the member was a member for; a group's changes as the timeline has them, the removal
    included; nothing of a group between a removal and a re-add, or after the last removal."""
    for user in ledger.users:
        stream = world.chat[user]
        seqs = [frame["seq"] for frame in stream]
        report.check(seqs == list(range(1, len(seqs) + 1)), f"{user}: chat stream seqs {seqs}")
        member_of: dict[str, bool] = {}
        after: dict[str, int] = {}
        received: dict[str, list[int]] = defaultdict(list)
        changes: dict[str, list[Change]] = defaultdict(list)
        for frame in stream:
            conversation = conversation_of(frame)
            if conversation is None:
                continue
            if frame["type"] == "conversation.updated":
                members = frozenset(m["user_id"] for m in frame["conversation"]["members"])
                last = frame["conversation"]["last_message"]
                changes[conversation].append(Change(members, 0 if last is None else last["seq"]))
                member_of[conversation] = user in members
                after[conversation] = changes[conversation][-1].last_seq
                continue
            if conversation in world.timelines:
                report.check(
                    member_of.get(conversation, False),
                    f"{user}: {frame['type']} of {conversation} while not a member",
                )
            if frame["type"] == "message.new":
                seq = frame["message"]["seq"]
                report.check(
                    seq > after.get(conversation, 0),
                    f"{user}: {conversation} message {seq} after {after.get(conversation)}",
                )
                after[conversation] = seq
                received[conversation].append(seq)
        for conversation, messages in world.messages.items():
            expected = [m.seq for m in messages if user in world.members_at(conversation, m.seq)]
            got = received.get(conversation, [])
            report.check(
                got == expected,
                f"{user}: {conversation} messages {got}, sent {expected}",
            )
        for conversation, timeline in world.timelines.items():
            seen = [
                change
                for before, change in zip([None, *timeline], timeline, strict=False)
                if user in change.members or (before is not None and user in before.members)
            ]
            report.check(
                changes.get(conversation, []) == seen,
                f"{user}: {conversation} changes {changes.get(conversation)}, made {seen}",
            )
            if seen:
                report.check(
                    member_of[conversation] == (user in world.members.get(conversation, {})),
                    f"{user}: {conversation} stream ends with member={member_of[conversation]}",
                )


def check_messages(world: World, ledger: Ledger, report: Report) -> None:
    """Each conversation holds exactly the acked messages, numbered 1..n; every sender was a
    member when it sent."""
    acked: dict[str, set[str]] = defaultdict(set)
    for sent in ledger.sent:
        acked[sent.conversation_id].add(sent.message_id)
        stored = world.by_id.get(sent.message_id)
        report.check(
            stored is not None and stored.seq == sent.seq,
            f"{sent.message_id}: acked with seq {sent.seq}, stored {stored}",
        )
    for conversation, ids in acked.items():
        rows = world.messages.get(conversation, [])
        report.check(
            {row.id for row in rows} == ids,
            f"{conversation}: stored {len(rows)} messages, acked {len(ids)}",
        )
        report.check(
            [row.seq for row in rows] == list(range(1, len(rows) + 1)),
            f"{conversation}: seqs {[row.seq for row in rows]}",
        )
        for row in rows:
            report.check(
                row.sender in world.members_at(conversation, row.seq),
                f"{conversation}: {row.sender} sent {row.seq} while not a member",
            )


def check_lists(world: World, ledger: Ledger, report: Report) -> None:
    """conversations.list: the user's conversations now, each unread count equal to the
    messages of others after the read watermark, and the watermark where the acked read
    receipts put it (and where the notifier saw it move)."""
    for user in ledger.users:
        listed = {c["id"]: c for c in world.listed[user]}
        now_in = {c for c, members in world.members.items() if user in members}
        report.check(
            set(listed) == now_in,
            f"{user}: listed {sorted(listed)}, member of {sorted(now_in)}",
        )
        for conversation, entry in listed.items():
            watermark = world.members.get(conversation, {}).get(user, 0)
            unread = sum(
                1
                for m in world.messages.get(conversation, [])
                if m.seq > watermark and m.sender != user
            )
            report.check(
                entry["unread_count"] == unread,
                f"{user}: {conversation} listed unread {entry['unread_count']}, rows say {unread}",
            )
            ranges = world.intervals(conversation, user)
            if len(ranges) != 1:
                continue
            acked = ledger.reads.get((user, conversation), 0)
            report.check(
                watermark == max(ranges[0][0], acked),
                f"{user}: {conversation} read watermark {watermark}, acked reads up to {acked}"
                f" (joined after {ranges[0][0]})",
            )
            if acked > ranges[0][0]:
                seen = world.note_reads.get((user, conversation))
                report.check(
                    seen == acked,
                    f"{user}: {conversation} read up to {acked}, the notifier saw {seen}",
                )


def replay(frames: list[Frame], user: str, report: Report) -> dict[str, tuple[Frame, bool]]:
    """A client's bell from its ``notifications`` stream: id -> (latest notification, unread);
    every frame's ``unread_count`` must equal the unread notifications after it."""
    seqs = [frame["seq"] for frame in frames]
    report.check(seqs == list(range(1, len(seqs) + 1)), f"{user}: notifications seqs {seqs}")
    state: dict[str, tuple[Frame, bool]] = {}
    for frame in frames:
        if frame["type"] == "notification.new":
            note = frame["notification"]
            state[note["id"]] = (note, True)
        elif frame.get("all"):
            state = {id_: (note, False) for id_, (note, _) in state.items()}
        else:
            for id_ in frame["ids"]:
                report.check(id_ in state, f"{user}: read {id_} before it was new")
                if id_ in state:
                    state[id_] = (state[id_][0], False)
        unread = sum(1 for _, is_unread in state.values() if is_unread)
        report.check(
            frame["unread_count"] == unread,
            f"{user}: frame {frame['seq']} says {frame['unread_count']} unread, replay {unread}",
        )
    return state


def check_bells(world: World, ledger: Ledger, report: Report) -> None:
    """Unread counts equal unread rows everywhere; the stream, the bell and the rows agree."""
    for user in ledger.users:
        state = replay(world.bell_stream[user], user, report)
        rows = {row["id"]: row for row in world.notes.get(user, [])}
        unread_rows = {id_ for id_, row in rows.items() if row["read_at"] is None}
        report.count("notifications", len(rows))
        for kind, n in Counter(row["kind"] for row in rows.values()).items():
            report.count(f"notifications_{kind}", n)
        report.check(
            set(state) == set(rows),
            f"{user}: {len(state)} notifications in the stream, {len(rows)} stored",
        )
        report.check(
            {id_ for id_, (_, unread) in state.items() if unread} == unread_rows,
            f"{user}: unread in the stream and in the rows differ",
        )
        last = world.bell_stream[user][-1]["unread_count"] if world.bell_stream[user] else 0
        counts = {
            "stored count": world.inbox.get(user, 0),
            "unread rows": len(unread_rows),
            "last frame": last,
            "bell": world.bell_unread[user],
            "bell rows": sum(1 for n in world.bell[user] if not n["read"]),
        }
        report.check(len(set(counts.values())) == 1, f"{user}: unread counts {counts}")
        report.check(
            {n["id"]: n["read"] for n in world.bell[user]}
            == {id_: row["read_at"] is not None for id_, row in rows.items()},
            f"{user}: the bell lists other notifications than the rows",
        )
        for id_, (note, _) in state.items():
            row = rows.get(id_)
            report.check(
                row is not None
                and (row["kind"], row["title"], row["body"], orjson.loads(row["data"]))
                == (note["kind"], note["title"], note["body"], note["data"]),
                f"{user}: notification {id_} stored differently from its last frame",
            )


def check_message_notifications(world: World, ledger: Ledger, report: Report) -> None:
    """Message notifications: each version previews a message of another member sent while
    the user was a member, never of a muted conversation; one unread per conversation, on
    the latest message the user has not read (a bell read by id may have read it)."""
    for user in ledger.users:
        open_: Counter[str] = Counter()
        for row in world.notes.get(user, []):
            if row["kind"] == "message" and row["read_at"] is None:
                open_[row["conversation_id"]] += 1
        report.check(all(n == 1 for n in open_.values()), f"{user}: unread notifications {open_}")
        for frame in world.bell_stream[user]:
            note = frame.get("notification")
            if note is None or note["kind"] != "message":
                continue
            data = note["data"]
            message = world.by_id.get(data["message_id"])
            report.check(
                message is not None
                and message.conversation_id == data["conversation_id"]
                and message.sender == data["sender_id"] != user
                and user in world.members_at(message.conversation_id, message.seq)
                and (user, message.conversation_id) not in ledger.mutes,
                f"{user}: notification {note['id']} previews {data} (stored: {message})",
            )
        rows = world.notes.get(user, [])
        for conversation, messages in world.messages.items():
            theirs = [
                m
                for m in messages
                if m.sender != user and user in world.members_at(conversation, m.seq)
            ]
            notes = [
                r for r in rows if r["kind"] == "message" and r["conversation_id"] == conversation
            ]
            if (user, conversation) in ledger.mutes:
                report.check(not notes, f"{user}: notified of muted {conversation}")
                continue
            read = world.note_reads.get((user, conversation), 0)
            unread = [r for r in notes if r["read_at"] is None]
            if not theirs or theirs[-1].seq <= read:
                report.check(not unread, f"{user}: {conversation} read, still notified")
                continue
            latest = theirs[-1]
            on_latest = [r for r in notes if r["last_message_seq"] == latest.seq]
            if user in ledger.bell_readers:
                report.check(
                    len(on_latest) == 1,
                    f"{user}: {conversation} message {latest.seq} notified {len(on_latest)}x",
                )
            else:
                report.check(
                    len(unread) == 1 and unread == on_latest,
                    f"{user}: {conversation} unread up to {latest.seq} (read {read}),"
                    f" unread notifications {[(r['id'], r['last_message_seq']) for r in unread]}",
                )


def check_partner_events(world: World, ledger: Ledger, report: Report) -> None:
    """Each job alert one notification per recipient, whatever the duplicates; each status
    change in time one notification, a late one none."""
    alerts: Counter[tuple[str, str]] = Counter()
    statuses: dict[tuple[str, str], list[str]] = defaultdict(list)
    for user in ledger.users:
        for row in world.notes.get(user, []):
            data = orjson.loads(row["data"])
            if row["kind"] == "job_alert":
                alerts[(user, data["job_id"])] += 1
            elif row["kind"] == "application_status":
                statuses[(user, data["application_id"])].append(data["status"])
    expected_alerts = Counter((u, e.job_id) for e in ledger.jobs for u in e.user_ids)
    report.check(
        not set(alerts) - set(expected_alerts),
        f"job alerts nobody published: {set(alerts) - set(expected_alerts)}",
    )
    for key in expected_alerts:
        report.check(alerts[key] == 1, f"job alert {key}: {alerts[key]} notifications")
    expected: dict[tuple[str, str], list[str]] = defaultdict(list)
    for event in ledger.statuses:
        wanted = expected.setdefault((event.candidate, event.application_id), [])
        if not event.late:
            wanted.append(event.status)
    report.check(
        not set(statuses) - set(expected),
        f"status notifications nobody published: {set(statuses) - set(expected)}",
    )
    for key, wanted in expected.items():
        report.check(
            statuses.get(key, []) == wanted,
            f"application {key}: notified {statuses.get(key, [])}, in time {wanted}",
        )


def _versions(stream: list[Frame], notification_id: str) -> list[tuple[int, int, str]]:
    """(seq, unread count, title) of each ``notification.new`` of one notification."""
    return [
        (frame["seq"], frame["unread_count"], frame["notification"]["title"])
        for frame in stream
        if frame["type"] == "notification.new" and frame["notification"]["id"] == notification_id
    ]


def same_notification(pushed: Frame, shown: Frame) -> bool:
    """A push payload's notification and a ``notification.new``'s are the same version."""
    keys = ("id", "kind", "title", "body", "data")
    return all(pushed[k] == shown[k] for k in keys) and datetime.fromisoformat(
        pushed["created_at"].replace("Z", "+00:00")
    ) == datetime.fromisoformat(shown["created_at"].replace("Z", "+00:00"))


def check_pushes(
    world: World,
    ledger: Ledger,
    report: Report,
    pushes: list[ReceivedPush],
    rejected: list[str],
    log: ConnectivityLog,
    checked_at: float,
) -> None:
    """Each push is a version of a notification the user's stream holds; sent once per
    subscription (again only after a notifier crash); none decided while the notifier held
    the user as connected; every notification still unread, whose last version was decided
    while the notifier held its user disconnected (and still did at the end), pushed in that
    version to every subscription (an application's latest status only: its Topic replaces
    older ones). A read one is owed nothing: the read cancels a push not sent yet."""
    report.check(not rejected, f"the push service refused pushes: {rejected[:5]}")
    report.count("pushes", len(pushes))
    sent: dict[tuple[str, int], list[ReceivedPush]] = defaultdict(list)
    for push in pushes:
        user = ledger.subscriptions[push.endpoint]
        pushed = push.payload["notification"]
        match = [
            frame
            for frame in world.bell_stream[user]
            if frame["type"] == "notification.new"
            and same_notification(pushed, frame["notification"])
            and frame["unread_count"] == push.payload["unread_count"]
        ]
        if not report.check(
            len(match) == 1,
            f"{user}: a push of {pushed['id']} (unread {push.payload['unread_count']},"
            f" {pushed['title']!r}) matches {len(match)} frames; its frames:"
            f" {_versions(world.bell_stream[user], pushed['id'])}",
        ):
            continue
        seq = match[0]["seq"]
        sent[(push.endpoint, seq)].append(push)
        decided = world.frame_times[(user, seq)]
        held = log.held(user, decided, push.arrived_at)
        report.check(
            held is None or not held[0],
            f"{user}: pushed {pushed['id']} decided at {decided:.3f} while the notifier held"
            f" it connected (fact of {held[1] if held else None})",
        )
        role = "ring" if user in ledger.ring else "roamer" if user in ledger.roamers else "offline"
        report.count(f"pushes_to_{role}_users")
        if held is None:
            report.count("pushes_decided_around_a_connectivity_change")
    for (endpoint, seq), copies in sent.items():
        copies.sort(key=lambda p: p.arrived_at)
        for first, again in itertools.pairwise(copies):
            crashed = any(first.arrived_at <= k <= again.arrived_at for k in ledger.notifier_kills)
            if report.check(
                crashed,
                f"{ledger.subscriptions[endpoint]}: frame {seq} pushed twice without a crash",
            ):
                report.count("pushes_repeated_after_a_notifier_crash")
    for user in ledger.users:
        # Each notification's last version; an application's latest status only.
        last: dict[str, Frame] = {}
        for frame in world.bell_stream[user]:
            if frame["type"] == "notification.new":
                note = frame["notification"]
                topic = note["data"].get("application_id") or note["id"]
                last[topic] = frame
        read = {row["id"] for row in world.notes.get(user, []) if row["read_at"] is not None}
        endpoints = [e for e, owner in ledger.subscriptions.items() if owner == user]
        for frame in last.values():
            note, seq = frame["notification"], frame["seq"]
            if note["id"] in read:
                # A read cancels the push if it had not left yet (docs/notifications.md).
                report.count("pushes_not_owed_read")
                continue
            held = log.held(user, world.frame_times[(user, seq)], checked_at)
            if held is None or held[0]:
                # Connected, or connected since: the push is owed only when the notifier held
                # the user disconnected from before the decision to the end.
                report.count("pushes_not_owed_connected")
                continue
            report.count("pushes_owed")
            for endpoint in endpoints:
                report.check(
                    bool(sent.get((endpoint, seq))),
                    f"{user}: {note['kind']} {note['id']} (frame {seq}) never pushed to {endpoint}",
                )
