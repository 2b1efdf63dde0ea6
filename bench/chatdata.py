"""Stored conversations at scale, written with ``COPY`` straight into the chat schema.

The read scenarios (list, history, search) need what a year of use leaves behind — a million
messages, a user in a thousand conversations — which the WebSocket path would take hours to
build. This writes it with ``COPY`` (asyncpg's binary ``copy_records_to_table``), rows shaped
exactly as the chat service stores them: conversations with their last seq and activity,
members with roles, join times and read watermarks, messages numbered per conversation. The
search index is built once after the load (cheaper than maintaining it row by row). Streams
(``chat.user_events``) are not written: no read scenario touches them.

Text: sentences drawn from a few hundred common English words with Zipf-like weights, site
vocabulary (jobs, interviews, clearances) and people's names, so that the search index has the
long tail and the very common terms real text gives it.

``python -m bench.chatdata --messages 20000`` fills the database of ``DATABASE_URL`` (after
``python -m services.chat migrate``) for ad-hoc EXPLAIN runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

COMMON = (
    "the be to of and a in that have i it for not on with he as you do at this but his by from"
    " they we say her she or an will my one all would there their what so up out if about who"
    " get which go me when make can like time no just him know take people into year your good"
    " some could them see other than then now look only come its over think also back after use"
    " two how our work first well way even new want because any these give day most us is are"
    " was were been has had did said going thanks thank please sure yes okay ok great sounds"
    " tomorrow today tonight morning afternoon evening week next last soon later still already"
    " let send call email check talk meet meeting meetings call calls update updates question"
    " questions answer answers help need needs really very much more less again maybe probably"
    " sorry hello hi hey bye cheers best regards late early free busy available schedule"
    " scheduled office remote home travel flight hotel lunch coffee dinner weekend monday"
    " tuesday wednesday thursday friday saturday sunday january march june september december"
)
SITE = (
    "job jobs role roles position positions interview interviews interviewing interviewed"
    " offer offers salary benefits clearance cleared secret polygraph resume resumes cv"
    " application applications applied apply recruiter recruiters hiring manager candidate"
    " candidates engineer engineering systems software analyst cyber security network cloud"
    " contract contractor onsite hybrid relocation start date deadline reference references"
    " background investigation sponsor sponsorship shortlist shortlisted portfolio skills"
    " experience requirements team lead senior junior python java kubernetes linux devops"
)
NAMES = (
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara"
    " Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy"
    " Matthew Betty Anthony Margaret Mark Sandra Donald Ashley Steven Kimberly Paul Emily"
    " Andrew Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Dorothy George Melissa"
    " Wells Rivers Banks Fields Hope Joy Grace Stone Woods Hunter Parker Cooper Fisher Miles"
    " Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez"
    " Gonzalez Wilson Anderson Taylor Moore Jackson Martin Lee Perez Thompson White Harris"
    " Reston Arlington Chantilly Herndon Fairfax Leesburg Ashburn Bethesda Columbia Annapolis"
)


def _weights(words: list[str], exponent: float = 1.0) -> list[float]:
    return [1.0 / (rank + 1) ** exponent for rank in range(len(words))]


@dataclass(frozen=True)
class DataSizes:
    """How much to write (defaults: the issue's sizes)."""

    messages: int = 1_000_000
    users: int = 20_000
    # The user the list scenario reads as, member of this many conversations.
    heavy_conversations: int = 1_000
    # Share of the heavy user's conversations that are groups (the rest are direct).
    heavy_group_share: float = 0.1
    # Conversations among other users (the heavy user's come on top).
    other_conversations: int = 20_000
    seed: int = 9


@dataclass
class Dataset:
    """What the scenarios need to know about the written data."""

    heavy_user: str
    # (conversation id, a member, its last seq) of conversations with many messages.
    busy: list[tuple[str, str, int]] = field(default_factory=list)
    # Users and the conversations they are in (search runs as them).
    searchers: list[str] = field(default_factory=list)
    # Queries drawn from the vocabulary: rare words, common words, names, phrases.
    queries: list[str] = field(default_factory=list)
    messages: int = 0
    conversations: int = 0


class _Text:
    """Sentences of 4..24 words: mostly common words, some site words, a name now and then."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._common = COMMON.split()
        self._site = SITE.split()
        self._names = NAMES.split()
        self._common_w = _weights(self._common)
        self._site_w = _weights(self._site, 0.8)
        self._names_w = _weights(self._names, 0.6)

    def sentence(self) -> str:
        rng = self._rng
        length = rng.randint(4, 24)
        words = rng.choices(self._common, self._common_w, k=length)
        for _ in range(rng.randint(0, 3)):
            words[rng.randrange(length)] = rng.choices(self._site, self._site_w)[0]
        if rng.random() < 0.35:
            words[rng.randrange(length)] = rng.choices(self._names, self._names_w)[0]
        words[0] = words[0].capitalize()
        return " ".join(words) + rng.choice((".", ".", "?", "!"))


def short_texts(count: int, *, max_bytes: int, seed: int) -> list[str]:
    """``count`` messages of at most ``max_bytes`` UTF-8 bytes: the sentences above cut at a word
    boundary, for loads whose bodies must be small yet index like real text."""
    rng = random.Random(seed)
    text = _Text(rng)
    texts: list[str] = []
    while len(texts) < count:
        kept = ""
        for word in text.sentence().split():
            longer = f"{kept} {word}" if kept else word
            if len(longer.encode()) > max_bytes:
                break
            kept = longer
        if kept:
            texts.append(kept)
    return texts


def _conversations(sizes: DataSizes, rng: random.Random) -> Iterator[tuple[str, str, list[str]]]:
    """(id, kind, members) of every conversation, the heavy user's first."""
    users = [f"u{n:06d}" for n in range(sizes.users)]
    heavy_groups = int(sizes.heavy_conversations * sizes.heavy_group_share)
    for n in range(sizes.heavy_conversations):
        if n < heavy_groups:
            others = rng.sample(users, rng.randint(3, 60))
            yield f"grp_heavy{n:05d}", "group", ["heavy", *others]
        else:
            yield f"dm_heavy{n:05d}", "direct", ["heavy", users[n % len(users)]]
    for n in range(sizes.other_conversations):
        if rng.random() < 0.25:
            size = min(int(rng.paretovariate(1.2)) + 2, 256)
            yield f"grp_{n:06d}", "group", rng.sample(users, size)
        else:
            a, b = rng.sample(users, 2)
            yield f"dm_{n:06d}", "direct", [a, b]


@dataclass(frozen=True)
class _Plan:
    """One conversation's shape; its messages are generated from it twice (their times first,
    for the conversation's row, then the rows themselves while COPY streams them)."""

    conversation_id: str
    kind: str
    members: list[str]
    count: int
    created: datetime
    step_s: float
    seed: int

    def moments(self) -> Iterator[datetime]:
        rng = random.Random(self.seed)
        moment = self.created
        for _ in range(self.count):
            moment += timedelta(seconds=rng.uniform(0.2, 1.8) * self.step_s)
            yield moment


def _messages(plans: list[_Plan], text: _Text, rng: random.Random) -> Iterator[tuple[object, ...]]:
    for plan in plans:
        for seq, moment in enumerate(plan.moments(), start=1):
            yield (
                rng.randbytes(16).hex(),
                plan.conversation_id,
                seq,
                rng.choice(plan.members),
                f"k{plan.conversation_id}-{seq}",
                "text",
                text.sentence(),
                moment,
            )


async def generate(conn: asyncpg.Connection, sizes: DataSizes) -> Dataset:
    """Write the data set into the (migrated, empty) chat schema of ``conn``'s database."""
    rng = random.Random(sizes.seed)
    text = _Text(rng)
    conversations = list(_conversations(sizes, rng))
    # Messages per conversation: heavy-tailed, like real use (most are quiet, a few are busy).
    raw = [rng.paretovariate(1.1) for _ in conversations]
    scale = sizes.messages / sum(raw)
    counts = [max(1, int(r * scale)) for r in raw]
    counts[0] += sizes.messages - sum(counts)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=365)
    plans = []
    conversation_rows = []
    member_rows = []
    dataset = Dataset(heavy_user="heavy")
    for (conversation_id, kind, members), count in zip(conversations, counts, strict=True):
        created = start + timedelta(days=rng.uniform(0, 73))
        plan = _Plan(
            conversation_id,
            kind,
            members,
            count,
            created,
            (end - created).total_seconds() / (count + 1),
            rng.randrange(2**32),
        )
        plans.append(plan)
        last = max(plan.moments(), default=created)
        title = f"Team {conversation_id}" if kind == "group" else None
        version = 1 if kind == "group" else 0
        conversation_rows.append((conversation_id, kind, title, count, created, last, version))
        for position, user in enumerate(members):
            read = rng.randint(max(0, count - 40), count)
            role = "admin" if kind == "group" and position == 0 else "member"
            member_rows.append((conversation_id, user, read, read, created, role))
        if count >= 200 and len(dataset.busy) < 50:
            dataset.busy.append((conversation_id, members[0], count))
        if kind == "group" and len(dataset.searchers) < 50:
            dataset.searchers.append(members[-1])
    await conn.execute("DROP INDEX IF EXISTS chat.messages_search")
    await conn.copy_records_to_table(
        "conversations",
        schema_name="chat",
        columns=["id", "kind", "title", "last_seq", "created_at", "last_activity_at", "version"],
        records=conversation_rows,
    )
    await conn.copy_records_to_table(
        "members",
        schema_name="chat",
        columns=["conversation_id", "user_id", "delivered_seq", "read_seq", "joined_at", "role"],
        records=member_rows,
    )
    await conn.copy_records_to_table(
        "messages",
        schema_name="chat",
        columns=[
            "id",
            "conversation_id",
            "seq",
            "sender_id",
            "client_msg_id",
            "kind",
            "body",
            "created_at",
        ],
        records=_messages(plans, text, rng),
    )
    await conn.execute("SET maintenance_work_mem = '256MB'")
    await conn.execute("CREATE INDEX messages_search ON chat.messages USING gin (search)")
    await conn.execute("ANALYZE chat.conversations, chat.members, chat.messages")
    dataset.messages = sum(counts)
    dataset.conversations = len(conversation_rows)
    common, site, names = COMMON.split(), SITE.split(), NAMES.split()
    dataset.queries = [
        *site[::7],
        *names[::9],
        *common[40::25],
        '"sounds great"',
        "interview tomorrow",
        "Wells",
        "meetings -lunch",
        "clearance or polygraph",
    ]
    return dataset


def main() -> None:
    """Fill ``DATABASE_URL``'s chat schema (for EXPLAIN runs by hand)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=DataSizes.messages)
    parser.add_argument("--users", type=int, default=DataSizes.users)
    parser.add_argument("--other-conversations", type=int, default=DataSizes.other_conversations)
    args = parser.parse_args()
    sizes = DataSizes(
        messages=args.messages,
        users=args.users,
        other_conversations=args.other_conversations,
    )

    async def run() -> None:
        conn = await asyncpg.connect(os.environ["DATABASE_URL"])
        try:
            dataset = await generate(conn, sizes)
        finally:
            await conn.close()
        print(f"{dataset.messages} messages in {dataset.conversations} conversations")  # noqa: T201

    asyncio.run(run())


if __name__ == "__main__":
    main()
