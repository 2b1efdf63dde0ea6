"""User data erasure through the whole system (docs/erasure.md): ``erase-user`` against real
Kafka, Postgres, services and WebSocket clients; then every column of every table is searched
for the user and their words, others' history and streams are checked, the erasure is run again
by another publisher (no change), and a chat killed mid-erasure finishes it after a restart."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx

from deploy.local.launcher import free_port
from schemas import topics
from schemas.ids import ERASED_USER_ID
from tests.integration.conversations import create_group, ok, say, updated
from tests.integration.erasure import erase_user, reports, traces, until_no_traces
from tests.integration.harness import Client, Frame, System, of_type, seconds, send_frame, token
from tests.integration.notifications import (
    fetch,
    job_alert,
    publish_binary,
    until,
    wait_connected,
)
from tests.integration.push_service import BrowserSubscription

HR_SOURCE = "//hr.example.org/admin"


def word() -> str:
    """A word nobody else writes (letters only, so every text search parser keeps it whole)."""
    return "zq" + "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:12])


def person(name: str) -> str:
    """A user id no other test uses."""
    return f"{name}-{uuid.uuid4().hex[:10]}"


async def everything(client: Client) -> list[Frame]:
    """Every frame of both of the client user's streams, replayed by sync from ``{}``."""
    frames: list[Frame] = []
    cursor: dict[str, int] = {}
    while True:
        page = await client.request_within_rate({"type": "sync", "cursor": cursor})
        assert page["type"] == "ack", page
        frames += page["events"]
        cursor = page["cursor"]
        if not page["has_more"]:
            return frames


async def history(client: Client, conversation_id: str) -> list[dict[str, Any]]:
    """The whole history of a conversation, oldest first."""
    answer = await ok(client, {"type": "history", "conversation_id": conversation_id})
    assert not answer["has_more"]
    return list(reversed(answer["messages"]))


async def snapshot(system: System, users: list[str], conversations: list[str]) -> list[Any]:
    """What chat and the notifier hold of these users and conversations, row by row."""
    queries = [
        ("SELECT * FROM chat.conversations WHERE id = ANY($1::text[]) ORDER BY id", conversations),
        (
            "SELECT * FROM chat.members WHERE conversation_id = ANY($1::text[]) ORDER BY 1, 2",
            conversations,
        ),
        (
            "SELECT id, seq, sender_id, body, client_msg_id, deleted, reactions::text"
            " FROM chat.messages WHERE conversation_id = ANY($1::text[]) ORDER BY id",
            conversations,
        ),
        ("SELECT * FROM chat.user_events WHERE user_id = ANY($1::text[]) ORDER BY 1, 2", users),
        (
            "SELECT * FROM notifier.notifications WHERE user_id = ANY($1::text[]) ORDER BY 1, 2",
            users,
        ),
        ("SELECT * FROM notifier.user_events WHERE user_id = ANY($1::text[]) ORDER BY 1, 2", users),
        (
            "SELECT * FROM presence.memberships WHERE conversation_id = ANY($1::text[])"
            " ORDER BY 1, 2",
            conversations,
        ),
    ]
    return [[tuple(row.values()) for row in await fetch(system, q, args)] for q, args in queries]


async def test_erase_user_leaves_no_trace_and_others_keep_their_history(system: System) -> None:
    ulla, ann, bob, cat = (person(name) for name in ("ulla", "ann", "bob", "cat"))
    said, edited, in_group, in_left = word(), word(), word(), word()
    keys = [f"key-{word()}" for _ in range(3)]
    endpoint = f"http://127.0.0.1:{free_port()}/push/{word()}"
    u = await Client.connect(system.ws_url, ulla)
    a = await Client.connect(system.ws_url, ann)
    b = await Client.connect(system.ws_url, bob)

    # A direct conversation: Ulla writes, edits, reacts to Ann's answer; Ann reacts to hers.
    mine = (await ok(u, send_frame(to=ann, client_msg_id=keys[0], body=f"hi {said}")))["message"]
    direct = mine["conversation_id"]
    theirs = (await ok(a, send_frame(to=ulla, client_msg_id="a1", body="hello Ulla")))["message"]
    edit = {"type": "message.edit", "conversation_id": direct, "message_id": mine["id"]}
    await ok(u, {**edit, "body": f"hi again {edited}"})
    react = {"type": "reaction.set", "conversation_id": direct, "emoji": "👍", "on": True}
    await ok(a, {**react, "message_id": mine["id"]})
    await ok(u, {**react, "message_id": theirs["id"], "emoji": "❤"})
    # A group Ann made: Ulla writes, reacts to Bob, reads (her watermark reaches the others).
    group = (await create_group(a, "Hiring", [ulla, bob, cat]))["id"]
    await ok(u, say(group, keys[1], f"I can start {in_group}"))
    bobs = (await ok(b, say(group, "b1", "welcome")))["message"]
    await ok(
        u,
        {
            "type": "reaction.set",
            "conversation_id": group,
            "message_id": bobs["id"],
            "emoji": "😀",
            "on": True,
        },
    )
    await ok(u, {"type": "receipt", "conversation_id": group, "seq": 2, "status": "read"})
    # A group Ulla made and left: her message stays there, her old membership in its frames.
    left = (await create_group(u, "Old team", [ann, bob]))["id"]
    await ok(u, say(left, keys[2], f"see you {in_left}"))
    await ok(u, {"type": "conversation.members.remove", "conversation_id": left, "user_id": ulla})
    await a.take(lambda f: updated(left)(f) and ulla not in str(f["conversation"]["members"]))
    # Her notification settings, a push subscription, a status.
    await ok(
        u, {"type": "notification.prefs.set", "kind": "job_alert", "push": True, "in_app": True}
    )
    await ok(u, {"type": "notification.prefs.set", "kind": "application_status", "push": False})
    await ok(u, {"type": "conversation.mute", "conversation_id": left, "muted": True})
    browser = BrowserSubscription.create(endpoint)
    await ok(u, {"type": "push.subscribe", "subscription": browser.to_json()})
    await ok(u, {"type": "presence.set", "status": "busy"})
    # Offline, she gets a job alert: stored, and a push staged (to a push service that is not
    # there, so it waits for a retry). Then she is back on another device.
    await u.close()
    await wait_connected(system, ulla, False)
    await publish_binary(
        system, topics.JOBS_EVENTS, topics.JOB_ALERT_MATCHED, key="j-e", data=job_alert([ulla, ann])
    )

    async def staged() -> bool:
        rows = await fetch(system, "SELECT 1 FROM notifier.push_jobs WHERE user_id = $1", ulla)
        return bool(rows)

    await until(staged, what="a push staged for ulla")
    u = await Client.connect(system.ws_url, ulla)
    # Presence (and the notifier after it) applied the connection: it is hers when erased.
    await wait_connected(system, ulla, True)

    # Ann's notification previews Ulla's first text (before the edit).
    async def previewed() -> bool:
        rows = await fetch(
            system,
            "SELECT body FROM notifier.notifications WHERE user_id = $1 AND conversation_id = $2",
            ann,
            direct,
        )
        return bool(rows) and said in rows[0]["body"]

    await until(previewed, what="ann's notification previews ulla's message")
    needles = [ulla, said, edited, in_group, in_left, *keys, endpoint]
    conn = await asyncpg.connect(system.database_url)
    try:
        before = await traces(conn, needles)
    finally:
        await conn.close()
    found = {table for table, _, _ in before}
    assert {
        '"chat"."messages"',
        '"chat"."members"',
        '"chat"."user_events"',
        '"presence"."users"',
        '"presence"."connections"',
        '"presence"."memberships"',
        '"notifier"."notifications"',
        '"notifier"."push_subscriptions"',
        '"notifier"."push_jobs"',
        '"notifier"."preferences"',
        '"notifier"."mutes"',
        '"notifier"."user_events"',
    } <= found, found
    ann_before = {cid: await history(a, cid) for cid in (direct, group, left)}

    code, lines = await erase_user(system, ulla)
    assert code == 0, lines
    assert lines[-1]["done"] is True
    changes = lines[-1]["changes"]
    assert changes["chat"]["messages"] == 3 and changes["chat"]["reactions"] == 2
    assert changes["chat"]["memberships"] == 2
    assert changes["presence"]["users"] == 1 and changes["presence"]["connections"] == 1
    assert changes["notifier"]["push_subscriptions"] == 1 and changes["notifier"]["previews"] >= 1

    # Her device is closed for good; the others see her go, and the conversation change.
    await until(lambda: _closed(u), what="ulla's device closed")
    assert u.ws.close_code == 4003, u.ws.close_code
    await a.take(
        lambda f: (
            f.get("type") == "presence"
            and f["user_id"] == ulla
            and f["status"] == "offline"
            and f["last_seen"] is None
        )
    )
    gone = await a.take(
        lambda f: (
            updated(group)(f) and ulla not in {m["user_id"] for m in f["conversation"]["members"]}
        )
    )
    assert {m["user_id"] for m in gone["conversation"]["members"]} == {ann, bob, cat}
    assert ulla not in str(gone) and gone["conversation"]["last_message"]["id"] == bobs["id"]
    # Nothing of her, or of what she wrote, is left in any column of any table.
    await until_no_traces(system, needles)

    # Ann pages through the same history: same ids and seqs, Ulla's messages as placeholders.
    for cid, old in ann_before.items():
        new = await history(a, cid)
        assert [(m["id"], m["seq"]) for m in new] == [(m["id"], m["seq"]) for m in old]
        for message in new:
            if message["id"] in {m["id"] for m in old if m["sender_id"] == ulla}:
                assert message["sender_id"] == ERASED_USER_ID and message["deleted"] is True
                assert message["body"] == "" and message.get("reactions", {}) == {}
            assert ulla not in str(message)
    assert (await history(a, direct))[1]["body"] == "hello Ulla"
    assert (await history(a, group))[-1]["body"] == "welcome"
    # Others' streams, replayed from the start by fresh devices, hold nothing of her.
    for user in (ann, bob, cat):
        fresh = await Client.connect(system.ws_url, user)
        replayed = str(await everything(fresh))
        assert not [needle for needle in needles if needle in replayed], user
        await fresh.close()
    for text in (said, edited, in_group, in_left):
        assert (await ok(a, {"type": "search", "query": text}))["messages"] == []
    async with httpx.AsyncClient() as http:
        answer = await http.get(
            f"http://127.0.0.1:{system.gateway.port}/v1/presence?ids={ulla},{bob}",
            headers={"Authorization": f"Bearer {token(ann)}"},
        )
    assert [p["user_id"] for p in answer.json()["presence"]] == [bob]

    # Again, by the site's own HR service (kcat, binary mode): applied, nothing changes.
    kept = await snapshot(system, [ann, bob, cat], [direct, group, left])
    request_id = await publish_binary(
        system,
        topics.USERS_ERASURE,
        topics.USER_ERASURE_REQUESTED,
        key=ulla,
        data={"user_id": ulla},
        source=HR_SOURCE,
    )
    again = await reports(system, ulla, request_id, count=3)
    assert {r["service"] for r in again} == {"chat", "presence", "notifier"}
    assert all(set(r["changes"].values()) <= {0} for r in again), again
    assert all(r["follow_ups"].get("notifier", 0) == 0 for r in again), again
    assert await snapshot(system, [ann, bob, cat], [direct, group, left]) == kept
    await until_no_traces(system, needles)

    # Her old token still works at the gateway (the site must revoke it): she is a new, empty
    # user, in no conversation.
    back = await Client.connect(system.ws_url, ulla)
    assert await everything(back) == []
    assert (await ok(back, {"type": "conversations.list"}))["conversations"] == []
    assert (await back.request(say(group, "k9", "back"))).get("code") == "forbidden"
    for client in (a, b, back):
        await client.close()


async def _closed(client: Client) -> bool:
    return client.closed


async def test_a_chat_killed_mid_erasure_finishes_it_after_a_restart(system: System) -> None:
    vera, walt = person("vera"), person("walt")
    text, key = word(), f"key-{word()}"
    v = await Client.connect(system.ws_url, vera)
    w = await Client.connect(system.ws_url, walt)
    sent = (await ok(v, send_frame(to=walt, client_msg_id=key, body=f"secret {text}")))["message"]
    await w.take(of_type("message.new", message_id=sent["id"]))
    # Hold walt's stored copy of the message: the erasure, after erasing the message row and
    # the membership, waits here to rewrite it.
    holder = await asyncpg.connect(system.database_url)
    try:
        hold = holder.transaction()
        await hold.start()
        await holder.execute(
            "SELECT 1 FROM chat.user_events WHERE user_id = $1 AND subject = $2 FOR UPDATE",
            walt,
            sent["id"],
        )
        holder_pid = await holder.fetchval("SELECT pg_backend_pid()")
        erasing = asyncio.create_task(erase_user(system, vera, timeout_s=seconds(180)))

        async def blocked() -> bool:
            return bool(
                await holder.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                    holder_pid,
                )
            )

        await until(blocked, timeout_s=seconds(60), what="the erasure waits on the held row")
        erased_meanwhile = await holder.fetchval(
            "SELECT count(*) FROM chat.messages WHERE id = $1 AND body = ''", sent["id"]
        )
        assert erased_meanwhile == 0, "nothing of an unfinished erasure is visible"
        system.chat.kill()
        await hold.rollback()
    finally:
        await holder.close()
    system.chat.start()
    await system.chat.wait_ready()
    code, lines = await erasing
    assert code == 0, lines
    assert lines[-1]["changes"]["chat"]["messages"] == 1
    await until_no_traces(system, [vera, text, key])
    replayed = str(await everything(w))
    assert vera not in replayed and text not in replayed
    for client in (v, w):
        await client.close()


async def test_erase_user_says_which_service_has_not_finished(system: System) -> None:
    # "ledger" takes no part in erasures: it never reports, and the command says so.
    code, lines = await erase_user(
        system, person("nobody"), timeout_s=seconds(5), services="chat,presence,notifier,ledger"
    )
    assert code == 1
    assert lines[0]["published"]["source"].startswith("/erase-user/")
    assert lines[-1]["done"] is False and lines[-1]["waiting_for"]["ledger"] == "the request"
