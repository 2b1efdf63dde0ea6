"""EXPLAIN (ANALYZE, BUFFERS) of the reads that serve a user, exactly as the chat service runs
them: the statements of :mod:`services.chat.reads`, as ``chat_reader`` with ``app.user_id`` set.

``python -m bench.explain`` prints the plans for the database of ``DATABASE_URL`` (filled by
``python -m bench.chatdata``); docs/conversations.md shows them on the bench's data set.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime

import asyncpg

from services.chat import reads
from services.runtime.db import Connection

#: The statement chat.search_hits (migrations/0002_groups.sql) runs for a caller whose
#: conversations hold more than 5,000 messages; EXPLAIN of the function call shows one opaque
#: Function Scan.
_SEARCH_HITS_BODY = (
    "SELECT m.id, ts_rank(m.search, q) FROM chat.messages m,"
    " (SELECT websearch_to_tsquery('english'::regconfig, $1)"
    "   || websearch_to_tsquery('simple'::regconfig, $1) AS q) AS query"
    " WHERE m.conversation_id = ANY (ARRAY(SELECT chat.my_conversations()))"
    "   AND ($2::text IS NULL OR m.conversation_id = $2) AND m.search @@ q"
    " ORDER BY 2 DESC, m.created_at DESC, m.id LIMIT $3"
)


#: The statement chat.search_hits runs for a caller whose conversations hold at most 5,000.
_SEARCH_SMALL_BODY = (
    "WITH candidates AS MATERIALIZED (SELECT m.id, m.search, m.created_at FROM chat.messages m"
    "   WHERE m.conversation_id = ANY (ARRAY(SELECT chat.my_conversations())))"
    " SELECT x.id, ts_rank(x.search, q) FROM candidates x,"
    " (SELECT websearch_to_tsquery('english'::regconfig, $1)"
    "   || websearch_to_tsquery('simple'::regconfig, $1) AS q) AS query"
    " WHERE x.search @@ q ORDER BY 2 DESC, x.created_at DESC, x.id LIMIT $2"
)


async def explain(
    conn: Connection,
    *,
    user_id: str,
    statement: str,
    args: tuple[object, ...],
    owner: bool = False,
) -> str:
    """The plan of ``statement`` run as ``user_id`` under Row Level Security, or as the tables'
    owner with ``app.user_id`` set (``owner``: what a SECURITY DEFINER function runs). Run
    twice: the second, warm run is the one returned."""
    text = ""
    for _ in range(2):
        async with conn.transaction(readonly=True):
            if not owner:
                await conn.execute('SET LOCAL ROLE "chat_reader"')
            await conn.execute("SELECT set_config('app.user_id', $1, true)", user_id)
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {statement}", *args)
        text = "\n".join(row[0] for row in rows)
    return text


async def plans(
    conn: Connection, *, query: str = "interview", rare: str = "polygraph"
) -> dict[str, str]:
    """Plans of every read for typical users of the generated data set."""
    heavy = "heavy"
    busy = await conn.fetchrow(
        "SELECT c.id, c.last_seq, m.user_id FROM chat.conversations c"
        " JOIN chat.members m ON m.conversation_id = c.id"
        " ORDER BY c.last_seq DESC LIMIT 1"
    )
    assert busy is not None, "no data: run python -m bench.chatdata first"
    # A typical user: the median number of conversations among users in more than one.
    searcher = await conn.fetchval(
        "SELECT user_id FROM (SELECT user_id, count(*) AS n FROM chat.members"
        " WHERE user_id <> 'heavy' GROUP BY user_id HAVING count(*) > 1) u"
        " ORDER BY n, user_id OFFSET (SELECT count(DISTINCT user_id) / 4 FROM chat.members)"
        " LIMIT 1"
    )
    now = datetime.now(UTC)
    return {
        "conversations.list (first page, 30, user in 1,000 conversations)": await explain(
            conn, user_id=heavy, statement=reads.LIST_SQL, args=(heavy, now, None, None, 31)
        ),
        "history (membership)": await explain(
            conn,
            user_id=busy["user_id"],
            statement=reads.MEMBER_SQL,
            args=(busy["id"], busy["user_id"]),
        ),
        "history (page of 50 from the middle)": await explain(
            conn,
            user_id=busy["user_id"],
            statement=reads.HISTORY_SQL,
            args=(busy["id"], busy["last_seq"] // 2, 51),
        ),
        f"search ({query!r}, a typical user)": await explain(
            conn, user_id=searcher, statement=reads.SEARCH_SQL, args=(query, None, 20)
        ),
        f"search candidates ({query!r}, typical user, chat.search_hits' small branch)": (
            await explain(
                conn,
                user_id=searcher,
                statement=_SEARCH_SMALL_BODY,
                args=(query, 20),
                owner=True,
            )
        ),
        f"search ({rare!r}, the heavy user)": await explain(
            conn, user_id=heavy, statement=reads.SEARCH_SQL, args=(rare, None, 20)
        ),
        f"search ({query!r}, the heavy user)": await explain(
            conn, user_id=heavy, statement=reads.SEARCH_SQL, args=(query, None, 20)
        ),
        f"search candidates ({query!r}, heavy user, chat.search_hits' large branch)": await explain(
            conn, user_id=heavy, statement=_SEARCH_HITS_BODY, args=(query, None, 20), owner=True
        ),
    }


def main() -> None:
    """Print the plans."""

    async def run() -> None:
        conn = await asyncpg.connect(os.environ["DATABASE_URL"])
        try:
            for title, plan in (await plans(conn)).items():
                print(f"-- {title}\n{plan}\n")  # noqa: T201
        finally:
            await conn.close()

    asyncio.run(run())


if __name__ == "__main__":
    main()
