"""Postgres access of the presence service (schema ``presence``): every query it runs.

Functions take an open connection; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from asyncpg import Record

from services.presence.domain.presence import UserPresence
from services.runtime.db import Connection, read_as

SCHEMA = "presence"


async def lock_user(conn: Connection, user_id: str) -> UserPresence:
    """A user's presence, row-locked until the transaction ends (unknown users start empty)."""
    while True:
        await conn.execute(
            "INSERT INTO presence.users (user_id, chosen, shown) VALUES ($1, 'online', 'offline')"
            " ON CONFLICT (user_id) DO NOTHING",
            user_id,
        )
        state = await lock_known_user(conn, user_id)
        if state is not None:
            return state
        # Another transaction (an erasure, the purge) deleted the row between the two
        # statements and committed: this user starts empty again.


async def lock_known_user(conn: Connection, user_id: str) -> UserPresence | None:
    """A user's presence, row-locked until the transaction ends; None when presence has no row
    of them (never seen, purged, or erased): nothing to change then."""
    row = await conn.fetchrow(
        "SELECT chosen, shown, last_seen, offline_pending_since,"
        " ARRAY(SELECT connection_id FROM presence.connections WHERE user_id = $1) AS connections"
        " FROM presence.users WHERE user_id = $1 FOR UPDATE",
        user_id,
    )
    if row is None:
        return None
    return UserPresence(
        user_id=user_id,
        chosen=row["chosen"],
        shown=row["shown"],
        connections=frozenset(row["connections"]),
        last_seen=row["last_seen"],
        offline_pending_since=row["offline_pending_since"],
    )


async def connection_known(conn: Connection, connection_id: str) -> bool:
    """Whether presence holds this connection (a close of one it does not hold is a repeat, or
    of a connection erased with its user)."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM presence.connections WHERE connection_id = $1)",
            connection_id,
        )
    )


async def save_user(conn: Connection, state: UserPresence) -> None:
    """Persist the user row (connections are written by their own statements)."""
    await conn.execute(
        "UPDATE presence.users SET chosen = $2, shown = $3, last_seen = $4,"
        " offline_pending_since = $5, updated_at = now() WHERE user_id = $1",
        state.user_id,
        state.chosen,
        state.shown,
        state.last_seen,
        state.offline_pending_since,
    )


async def add_connection(
    conn: Connection, *, connection_id: str, user_id: str, gateway_id: str
) -> None:
    """Record a live connection (idempotent)."""
    await conn.execute(
        "INSERT INTO presence.connections (connection_id, user_id, gateway_id)"
        " VALUES ($1, $2, $3) ON CONFLICT (connection_id) DO NOTHING",
        connection_id,
        user_id,
        gateway_id,
    )


async def remove_connection(conn: Connection, connection_id: str) -> None:
    """Forget a connection (idempotent)."""
    await conn.execute("DELETE FROM presence.connections WHERE connection_id = $1", connection_id)


async def record_heartbeat(conn: Connection, gateway_id: str, at: datetime) -> None:
    """A gateway is alive as of ``at`` (never moves backwards on a replayed record)."""
    await conn.execute(
        "INSERT INTO presence.gateways (gateway_id, last_heartbeat) VALUES ($1, $2)"
        " ON CONFLICT (gateway_id) DO UPDATE"
        " SET last_heartbeat = greatest(presence.gateways.last_heartbeat, excluded.last_heartbeat)",
        gateway_id,
        at,
    )


async def remember_members(
    conn: Connection, conversation_id: str, user_ids: Sequence[str]
) -> list[str]:
    """Learn a conversation's members from its creation fact (idempotent). A conversation
    whose versioned fact was applied already (a later change: a group's, or an erasure's of a
    direct one) ignores it: a creation fact relayed late must not bring back a member who left.

    Returns:
        The members this call added (empty when presence knew them all).
    """
    rows = await conn.fetch(
        "INSERT INTO presence.memberships (conversation_id, user_id)"
        " SELECT $1, u FROM unnest($2::text[]) AS u WHERE NOT EXISTS"
        "   (SELECT 1 FROM presence.conversations WHERE conversation_id = $1)"
        " ON CONFLICT DO NOTHING RETURNING user_id",
        conversation_id,
        list(user_ids),
    )
    return [row["user_id"] for row in rows]


async def replace_members(
    conn: Connection, conversation_id: str, *, version: int, user_ids: Sequence[str]
) -> tuple[list[str], list[str]] | None:
    """Make a conversation's members ``user_ids`` if ``version`` is newer than the one applied
    (one statement).

    Returns:
        (members added, members removed), or None when the fact is stale (nothing changed).
    """
    rows = await conn.fetch(
        "WITH v AS (INSERT INTO presence.conversations AS c (conversation_id, version)"
        "   VALUES ($1, $2) ON CONFLICT (conversation_id) DO UPDATE SET version = $2"
        "   WHERE c.version < $2 RETURNING 1),"
        " gone AS (DELETE FROM presence.memberships WHERE conversation_id = $1"
        "   AND NOT (user_id = ANY($3::text[])) AND EXISTS (SELECT 1 FROM v) RETURNING user_id),"
        " new AS (INSERT INTO presence.memberships (conversation_id, user_id)"
        "   SELECT $1, u FROM unnest($3::text[]) AS u WHERE EXISTS (SELECT 1 FROM v)"
        "   ON CONFLICT DO NOTHING RETURNING user_id)"
        " SELECT 'v' AS row, NULL AS user_id FROM v"
        " UNION ALL SELECT 'g', user_id FROM gone UNION ALL SELECT 'n', user_id FROM new",
        conversation_id,
        version,
        list(user_ids),
    )
    if not any(row["row"] == "v" for row in rows):
        return None
    added = sorted(row["user_id"] for row in rows if row["row"] == "n")
    removed = sorted(row["user_id"] for row in rows if row["row"] == "g")
    return added, removed


async def strangers(conn: Connection, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs of users among ``pairs`` who share no conversation (any more)."""
    rows = await conn.fetch(
        "SELECT a, b FROM unnest($1::text[], $2::text[]) AS p (a, b) WHERE NOT EXISTS ("
        "   SELECT 1 FROM presence.memberships x JOIN presence.memberships y"
        "   USING (conversation_id) WHERE x.user_id = p.a AND y.user_id = p.b)",
        [a for a, _ in pairs],
        [b for _, b in pairs],
    )
    return [(row["a"], row["b"]) for row in rows]


async def peek_users(conn: Connection, user_ids: Sequence[str]) -> dict[str, UserPresence]:
    """Current presence of users, unlocked (for telling new contacts); unknown users are absent."""
    rows = await conn.fetch(
        "SELECT user_id, chosen, shown, last_seen, offline_pending_since FROM presence.users"
        " WHERE user_id = ANY($1::text[])",
        list(user_ids),
    )
    return {row["user_id"]: _unlocked_presence(row) for row in rows}


def _unlocked_presence(row: Record) -> UserPresence:
    """A user row read without its connections (enough to describe it to others)."""
    return UserPresence(
        user_id=row["user_id"],
        chosen=row["chosen"],
        shown=row["shown"],
        connections=frozenset(),
        last_seen=row["last_seen"],
        offline_pending_since=row["offline_pending_since"],
    )


async def contacts(conn: Connection, user_id: str) -> list[str]:
    """Users who share at least one conversation with ``user_id`` (not the user)."""
    rows = await conn.fetch(
        "SELECT DISTINCT theirs.user_id FROM presence.memberships mine"
        " JOIN presence.memberships theirs USING (conversation_id)"
        " WHERE mine.user_id = $1 AND theirs.user_id <> $1",
        user_id,
    )
    return [row["user_id"] for row in rows]


async def members_of(
    conn: Connection, conversation_ids: Sequence[str]
) -> dict[str, frozenset[str]]:
    """Members of each conversation as presence knows them (absent: no member known)."""
    rows = await conn.fetch(
        "SELECT conversation_id, array_agg(user_id) AS users FROM presence.memberships"
        " WHERE conversation_id = ANY($1::text[]) GROUP BY conversation_id",
        list(conversation_ids),
    )
    return {row["conversation_id"]: frozenset(row["users"]) for row in rows}


async def visible_presence(
    conn: Connection, *, requester: str, user_ids: Sequence[str] | None
) -> list[UserPresence]:
    """Presence of the requester's contacts (all, or those among ``user_ids``), under RLS.

    Runs as ``presence_reader`` with ``app.user_id`` = requester: rows of users the requester
    shares no conversation with are invisible to the query whatever its WHERE clause says.
    """
    async with read_as(conn, role="presence_reader", user_id=requester):
        rows = await conn.fetch(
            "SELECT user_id, chosen, shown, last_seen, offline_pending_since FROM presence.users"
            " WHERE ($1::text[] IS NULL OR user_id = ANY($1::text[])) ORDER BY user_id",
            None if user_ids is None else list(user_ids),
        )
    return [_unlocked_presence(row) for row in rows]


async def users_due_offline(conn: Connection, *, older_than: datetime, limit: int) -> list[str]:
    """Users whose grace period started before ``older_than``."""
    rows = await conn.fetch(
        "SELECT user_id FROM presence.users WHERE offline_pending_since < $1"
        " ORDER BY offline_pending_since LIMIT $2",
        older_than,
        limit,
    )
    return [row["user_id"] for row in rows]


async def dead_gateways(conn: Connection, *, silent_since: datetime) -> list[tuple[str, datetime]]:
    """Gateways whose last heartbeat is older than ``silent_since``: (id, last heartbeat)."""
    rows = await conn.fetch(
        "SELECT gateway_id, last_heartbeat FROM presence.gateways WHERE last_heartbeat < $1",
        silent_since,
    )
    return [(row["gateway_id"], row["last_heartbeat"]) for row in rows]


async def gateway_connections(conn: Connection, gateway_id: str) -> list[tuple[str, str]]:
    """(connection id, user id) of every connection recorded on a gateway."""
    rows = await conn.fetch(
        "SELECT connection_id, user_id FROM presence.connections WHERE gateway_id = $1",
        gateway_id,
    )
    return [(row["connection_id"], row["user_id"]) for row in rows]


async def forget_gateway(conn: Connection, gateway_id: str, last_heartbeat: datetime) -> None:
    """Drop a dead gateway's row unless it heart-beat again meanwhile."""
    await conn.execute(
        "DELETE FROM presence.gateways WHERE gateway_id = $1 AND last_heartbeat = $2",
        gateway_id,
        last_heartbeat,
    )


async def purge_stale_users(conn: Connection, *, offline_before: datetime) -> int:
    """Delete users offline and unseen since before ``offline_before`` (automatic cleanup)."""
    result = await conn.execute(
        "DELETE FROM presence.users WHERE shown = 'offline' AND offline_pending_since IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM presence.connections c WHERE c.user_id = users.user_id)"
        " AND coalesce(last_seen, updated_at) < $1",
        offline_before,
    )
    return int(result.split()[-1])


async def erase_user(conn: Connection, user_id: str) -> tuple[list[str], dict[str, int]]:
    """Delete everything presence holds of a user (one statement): their presence row, live
    connections and memberships. Their contacts are read in the same statement's snapshot,
    before the memberships go.

    Returns:
        (the users who shared a conversation with them, rows deleted by table).
    """
    rows = await conn.fetch(
        "WITH contacts AS (SELECT DISTINCT theirs.user_id FROM presence.memberships mine"
        "   JOIN presence.memberships theirs USING (conversation_id)"
        "   WHERE mine.user_id = $1 AND theirs.user_id <> $1),"
        " u AS (DELETE FROM presence.users WHERE user_id = $1 RETURNING 1),"
        " c AS (DELETE FROM presence.connections WHERE user_id = $1 RETURNING 1),"
        " m AS (DELETE FROM presence.memberships WHERE user_id = $1 RETURNING 1)"
        " SELECT 'contact' AS row, user_id, NULL::bigint AS n FROM contacts"
        " UNION ALL SELECT 'users', NULL, count(*) FROM u"
        " UNION ALL SELECT 'connections', NULL, count(*) FROM c"
        " UNION ALL SELECT 'memberships', NULL, count(*) FROM m",
        user_id,
    )
    contacts = sorted(row["user_id"] for row in rows if row["row"] == "contact")
    counts = {row["row"]: int(row["n"]) for row in rows if row["row"] != "contact"}
    return contacts, counts
