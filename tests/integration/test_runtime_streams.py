"""The runtime's per-user streams on real Postgres, in a schema of their own built from the
runtime's tables: consecutive seqs under concurrency, reads confined to the requesting user by
Row Level Security, the set-based path a hot service folds into its statements, and a gateway
serving one sync from two owners (chat, and an owner of a ``notifications`` stream made of
nothing but runtime parts, as the notifier will be)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import orjson
import pytest

from deploy.local.launcher import free_port
from schemas.frames import Notification, NotificationNew
from services.runtime.db import Connection, read_as
from services.runtime.health import Readiness
from services.runtime.http import add_stream_route, internal_app
from services.runtime.lifecycle import http_server
from services.runtime.migrations import apply_migrations
from services.runtime.streams import Appends, Stream, StreamCreatedConcurrently
from tests.integration.harness import (
    Client,
    System,
    seconds,
    send_frame,
    unique,
    ws_url,
)

SCHEMA = "it_streams"


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on this run's database, with the runtime's stream tables in ``it_streams``."""
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn, schema=SCHEMA, directory=None, runtime_tables=("streams",))
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
def stream() -> Stream:
    return Stream("notifications", schema=SCHEMA)


def frame(user_id: str, seq: int) -> bytes:
    return orjson.dumps({"type": "test.frame", "stream": "notifications", "seq": seq})


async def seqs_of(pool: asyncpg.Pool, stream: Stream, user_id: str) -> list[int]:
    async with pool.acquire() as conn:
        rows = await stream.read(conn, user_id=user_id, after_seq=0, limit=1000)
    return [seq for seq, _ in rows]


async def test_concurrent_appends_hand_out_consecutive_seqs_and_never_reuse_one(
    pool: asyncpg.Pool, stream: Stream
) -> None:
    users = [unique("u") for _ in range(3)]

    async def append(rolled_back: bool) -> None:
        with contextlib.suppress(ZeroDivisionError):
            async with pool.acquire() as conn, conn.transaction():
                await stream.append_each(conn, users, frame)
                if rolled_back:
                    raise ZeroDivisionError

    # 30 transactions at once on the same users' streams; every fourth one rolls back.
    await asyncio.gather(*(append(rolled_back=i % 4 == 0) for i in range(30)))
    committed = 30 - len(range(0, 30, 4))
    for user in users:
        assert await seqs_of(pool, stream, user) == list(range(1, committed + 1))


async def test_frames_are_stored_byte_for_byte_and_read_after_a_seq(
    pool: asyncpg.Pool, stream: Stream
) -> None:
    user = unique("u")
    async with pool.acquire() as conn, conn.transaction():
        appended = await stream.append_each(conn, [user], frame)
        appended += await stream.append_each(conn, [user], frame)
    assert [(who, seq) for who, seq, _ in appended] == [(user, 1), (user, 2)]
    async with pool.acquire() as conn:
        after_one = await stream.read(conn, user_id=user, after_seq=1, limit=5)
        page = await stream.read(conn, user_id=user, after_seq=0, limit=1)
    assert after_one == [(2, appended[1][2].decode())]
    # One more than asked: tells the caller that more remain.
    assert [seq for seq, _ in page] == [1, 2]


async def test_reads_see_only_the_requesting_users_frames_whatever_the_query(
    pool: asyncpg.Pool, stream: Stream
) -> None:
    mine, theirs = unique("me"), unique("them")
    async with pool.acquire() as conn, conn.transaction():
        await stream.append_each(conn, [mine, theirs], frame)
    async with pool.acquire() as conn:
        async with read_as(conn, role=stream.reader_role, user_id=mine):
            # No filter at all: the policy alone keeps the other user's rows out.
            owners = {
                row["user_id"]
                for row in await conn.fetch(f"SELECT user_id FROM {SCHEMA}.user_events")
            }
        assert owners == {mine}
        assert await stream.read(conn, user_id=theirs, after_seq=0, limit=5) != []


async def test_set_based_path_and_append_each_share_one_numbering(
    pool: asyncpg.Pool, stream: Stream
) -> None:
    a, b = unique("a"), unique("b")
    async with pool.acquire() as conn, conn.transaction():
        await stream.append_each(conn, [a], frame)
    async with pool.acquire() as conn, conn.transaction():
        # What a hot path does: lock in its reading statement, number in Python, write in one.
        rows = await conn.fetch(
            f"WITH s AS ({stream.lock_sql('SELECT unnest($1::text[])')})"
            " SELECT user_id, last_seq FROM s",
            [b, a],
        )
        appends = Appends({row["user_id"]: row["last_seq"] for row in rows})
        for user in (a, b, a):
            seq = appends.next_seq(user)
            appends.add(user, seq, frame(user, seq))
        await conn.execute(
            f"WITH s AS ({stream.advance_sql(1)}) {stream.insert_sql(3)}",
            *appends.advance_args(),
            *appends.insert_args(),
        )
    async with pool.acquire() as conn, conn.transaction():
        await stream.append_each(conn, [a, b], frame)
    assert await seqs_of(pool, stream, a) == [1, 2, 3, 4]
    assert await seqs_of(pool, stream, b) == [1, 2]


async def append_known(conn: Connection, stream: Stream, users: list[str]) -> None:
    """The bulk path for first-time users: lock the streams that exist, create the others
    with their last seqs in the writing statement, a frame for each user."""
    rows = await conn.fetch(stream.lock_known_sql("SELECT unnest($1::text[])"), users)
    locked = {row["user_id"]: row["last_seq"] for row in rows}
    appends = Appends(locked, created=[user for user in users if user not in locked])
    for user in users:
        seq = appends.next_seq(user)
        appends.add(user, seq, frame(user, seq))
    with stream.creating():
        await conn.execute(
            f"WITH a AS ({stream.advance_sql(1)}), c AS ({stream.create_sql(3)})"
            f" {stream.insert_sql(5)}",
            *appends.advance_args(),
            *appends.create_args(),
            *appends.insert_args(),
        )


async def test_streams_created_by_the_writing_statement_continue_any_way(
    pool: asyncpg.Pool, stream: Stream
) -> None:
    known, new = unique("known"), unique("new")
    async with pool.acquire() as conn, conn.transaction():
        await stream.append_each(conn, [known], frame)
    async with pool.acquire() as conn, conn.transaction():
        await append_known(conn, stream, [new, known])
    async with pool.acquire() as conn, conn.transaction():
        await stream.append_each(conn, [new, known], frame)
    async with pool.acquire() as conn, conn.transaction():
        await append_known(conn, stream, [known, new])
    assert await seqs_of(pool, stream, known) == [1, 2, 3, 4]
    assert await seqs_of(pool, stream, new) == [1, 2, 3]


async def test_a_stream_two_transactions_create_fails_the_second_which_then_finds_it(
    pool: asyncpg.Pool, stream: Stream
) -> None:
    user = unique("raced")
    async with pool.acquire() as first, pool.acquire() as second:
        first_tx, second_tx = first.transaction(), second.transaction()
        await first_tx.start()
        await second_tx.start()
        await append_known(first, stream, [user])
        # Both found no stream; the second's insert waits for the first to end.
        racing = asyncio.create_task(append_known(second, stream, [user]))
        await asyncio.sleep(0.2)
        assert not racing.done()
        await first_tx.commit()
        with pytest.raises(StreamCreatedConcurrently):
            await racing
        await second_tx.rollback()
        # Tried again (what the consumer does with a retriable error): it locks the stream.
        async with second.transaction():
            await append_known(second, stream, [user])
    assert await seqs_of(pool, stream, user) == [1, 2]


async def test_only_the_streams_and_the_named_tables_make_a_creation_race(
    pool: asyncpg.Pool, stream: Stream
) -> None:
    user = unique("dup")
    await pool.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.counters (user_id text PRIMARY KEY)")
    await pool.execute(f"INSERT INTO {SCHEMA}.counters VALUES ($1)", user)
    duplicate = f"INSERT INTO {SCHEMA}.counters VALUES ($1)"
    with pytest.raises(StreamCreatedConcurrently):
        with stream.creating("counters"):
            await pool.execute(duplicate, user)
    with pytest.raises(asyncpg.UniqueViolationError):
        with stream.creating("inbox"):
            await pool.execute(duplicate, user)


@contextlib.asynccontextmanager
async def stream_owner(pool: asyncpg.Pool, stream: Stream) -> AsyncIterator[str]:
    """An owner of ``stream`` built from runtime parts only, serving on a free port."""
    app = internal_app(title="owner", readiness=Readiness(), internal_token=None)
    add_stream_route(app, streams=[stream], pool=pool, default_limit=200)
    port = free_port()
    server = http_server(app, host="127.0.0.1", port=port)
    task = asyncio.create_task(server.serve())
    try:
        deadline = asyncio.get_running_loop().time() + seconds(10)
        while not server.started:
            assert asyncio.get_running_loop().time() < deadline, "owner did not start"
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_sync_serves_streams_of_two_owners_and_echoes_unserved_ones(
    system: System, pool: asyncpg.Pool, stream: Stream
) -> None:
    alice, bob = unique("alice"), unique("bob")
    notification = Notification(
        id="n1",
        kind="job_alert",
        title="Cleared Systems Engineer",
        body="Acme, Reston",
        data={"job_id": "j-1"},
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        read=False,
    )
    async with pool.acquire() as conn, conn.transaction():
        ((_, _, pushed),) = await stream.append_each(
            conn,
            [bob],
            lambda _, seq: NotificationNew(
                seq=seq, notification=notification, unread_count=1
            ).to_wire(),
        )
    alice_1 = await Client.connect(system.ws_url, alice)
    sent = await alice_1.request(send_frame(to=bob, client_msg_id="s1"))
    assert sent["type"] == "ack", sent

    async with stream_owner(pool, stream) as owner_url:
        gateway = system.extra_gateway("gw-streams")
        gateway.env["NOTIFIER_URL"] = owner_url
        gateway.start()
        try:
            await gateway.wait_ready()
            bob_1 = await Client.connect(ws_url(gateway.port), bob)
            both = await bob_1.request({"type": "sync", "cursor": {}})
            assert both["type"] == "ack", both
            assert both["cursor"] == {"chat": 1, "notifications": 1}
            assert both["has_more"] is False
            assert [event["type"] for event in both["events"]] == [
                "message.new",
                "notification.new",
            ]
            assert both["events"][0]["message"] == sent["message"]
            assert both["events"][1] == orjson.loads(pushed)
            up_to_date = await bob_1.request({"type": "sync", "cursor": both["cursor"]})
            assert up_to_date["events"] == [] and up_to_date["cursor"] == both["cursor"]
            await bob_1.close()
        finally:
            gateway.stop()

    # A gateway that serves no notifications stream echoes its cursor and serves the rest.
    gateway = system.extra_gateway("gw-chat-only")
    del gateway.env["NOTIFIER_URL"]
    gateway.start()
    try:
        await gateway.wait_ready()
        bob_2 = await Client.connect(ws_url(gateway.port), bob)
        echoed = await bob_2.request({"type": "sync", "cursor": {"notifications": 7}})
        assert echoed["cursor"] == {"notifications": 7, "chat": 1}
        assert [event["type"] for event in echoed["events"]] == ["message.new"]
        await bob_2.close()
    finally:
        gateway.stop()
    await alice_1.close()
