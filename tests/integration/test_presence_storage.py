"""Presence storage against the real schema: automatic cleanup and row-level visibility."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from services.presence import storage
from tests.integration.harness import System, unique


async def test_purge_removes_only_long_offline_users(system: System) -> None:
    now = datetime.now(UTC)
    stale, recent, connected, pending = (
        unique(name) for name in ("stale", "recent", "conn", "pend")
    )
    conn = await asyncpg.connect(system.database_url)
    try:
        await conn.executemany(
            "INSERT INTO presence.users (user_id, chosen, shown, last_seen, offline_pending_since)"
            " VALUES ($1, 'online', $2, $3, $4)",
            [
                (stale, "offline", now - timedelta(days=40), None),
                (recent, "offline", now - timedelta(days=2), None),
                (connected, "online", now - timedelta(days=40), None),
                (pending, "online", now - timedelta(days=40), now - timedelta(days=40)),
            ],
        )
        await storage.add_connection(
            conn, connection_id=unique("c"), user_id=connected, gateway_id="gw-test"
        )

        purged = await storage.purge_stale_users(conn, offline_before=now - timedelta(days=30))

        left = {
            row["user_id"]
            for row in await conn.fetch(
                "SELECT user_id FROM presence.users WHERE user_id = ANY($1::text[])",
                [stale, recent, connected, pending],
            )
        }
    finally:
        await conn.close()
    assert purged >= 1
    assert left == {recent, connected, pending}


async def test_reads_as_a_user_see_only_contacts_even_without_a_filter(system: System) -> None:
    alice, bob, eve = unique("alice"), unique("bob"), unique("eve")
    conn = await asyncpg.connect(system.database_url)
    try:
        for user in (alice, bob, eve):
            await storage.lock_user(conn, user)
        await storage.remember_members(conn, unique("conv"), [alice, bob])

        # No id filter at all: Row Level Security alone decides what each requester sees.
        as_alice = await storage.visible_presence(conn, requester=alice, user_ids=None)
        as_eve = await storage.visible_presence(conn, requester=eve, user_ids=None)
    finally:
        await conn.close()
    assert [state.user_id for state in as_alice] == [bob]
    assert as_eve == []
