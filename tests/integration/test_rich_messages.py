"""Edits, deletions, reactions and replies, each a durable message.updated to every member; a
deleted text is erased from everywhere it was stored; search sees only the caller's
conversations, now; a fresh device rebuilds every conversation from its stream."""

from __future__ import annotations

import uuid

import asyncpg
import orjson

from tests.integration.conversations import (
    create_group,
    ok,
    refused,
    replay,
    say,
    sync_all,
    updated,
)
from tests.integration.harness import Client, System, of_type, seconds, send_frame, unique
from tests.integration.test_consumer_skips import read_topic


def word() -> str:
    """A word no other message contains (letters only, so every parser keeps it whole)."""
    return "zq" + "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:12])


async def test_edit_delete_react_reply_and_the_erased_text(system: System) -> None:
    ann, bob, cat, dan = (unique(name) for name in ("ann", "bob", "cat", "dan"))
    a = await Client.connect(system.ws_url, ann)
    b = await Client.connect(system.ws_url, bob)
    c = await Client.connect(system.ws_url, cat)
    d = await Client.connect(system.ws_url, dan)
    gid = (await create_group(a, "Ops", [bob, cat]))["id"]
    secret, edited_secret = word(), word()

    original = (await ok(b, say(gid, "m1", f"the code is {secret}")))["message"]
    mid = original["id"]
    for client in (a, b, c):
        await client.take(of_type("message.new", message_id=mid))

    # Edit: the sender only. Every member gets the whole message again.
    edit = {"type": "message.edit", "conversation_id": gid, "message_id": mid}
    assert await refused(c, {**edit, "body": "not mine"}) == "forbidden"
    edited = (await ok(b, {**edit, "body": f"the code is {edited_secret}"}))["message"]
    assert edited["edited_at"] is not None and edited["body"].endswith(edited_secret)
    assert {k: v for k, v in edited.items() if k not in ("body", "edited_at")} == {
        k: v for k, v in original.items() if k != "body"
    }
    for client in (a, b, c):
        assert (await client.take(of_type("message.updated")))["message"] == edited
    # Dan joins while the edited message is the last one: his conversation.updated shows it.
    await ok(a, {"type": "conversation.members.add", "conversation_id": gid, "user_ids": [dan]})
    assert (await d.take(updated(gid)))["conversation"]["last_message"] == edited

    # Reactions: on, on again (nothing new), someone else, off, off again.
    react = {"type": "reaction.set", "conversation_id": gid, "message_id": mid, "emoji": "👍"}
    await ok(a, {**react, "on": True})
    assert (await c.take(of_type("message.updated")))["message"]["reactions"] == {"👍": [ann]}
    assert (await ok(a, {**react, "on": True}))["message"]["reactions"] == {"👍": [ann]}
    await ok(c, {**react, "on": True})
    await ok(a, {**react, "on": False})
    await ok(a, {**react, "on": False})
    current = (await ok(d, {"type": "history", "conversation_id": gid}))["messages"][0]
    assert current["reactions"] == {"👍": [cat]}
    assert await refused(a, {**react, "emoji": "x" * 17, "on": True}) == "bad_request"

    # Replies: within the conversation only.
    dm = (await ok(a, send_frame(to=bob, client_msg_id="dm1", body="hi bob")))["message"]
    assert await refused(b, {**send_frame(to=ann, client_msg_id="r1"), "reply_to": mid}) == (
        "not_found"
    )
    assert await refused(c, say(gid, "r2", "to nothing", reply_to="0" * 32)) == "not_found"
    reply = (await ok(c, say(gid, "r3", "noted", reply_to=mid)))["message"]
    assert reply["reply_to"] == mid

    # Delete: the sender or an admin of a group; in a direct conversation, the sender only.
    delete = {"type": "message.delete", "conversation_id": gid, "message_id": mid}
    assert await refused(c, delete) == "forbidden"
    assert await refused(b, {**delete, "conversation_id": dm["conversation_id"]}) == "not_found"
    assert (
        await refused(
            b, {**delete, "conversation_id": dm["conversation_id"], "message_id": dm["id"]}
        )
        == "forbidden"
    )
    gone = (await ok(a, delete))["message"]
    assert (gone["deleted"], gone["body"], gone.get("reactions", {})) == (True, "", {})
    assert (await ok(a, delete))["message"] == gone
    assert await refused(b, {**edit, "body": "back"}) == "not_found"
    assert await refused(a, {**react, "on": True}) == "not_found"

    # Erased everywhere it was stored: message row and search vector, every stored stream
    # frame (message.new, the edit's message.updated, dan's conversation.updated), search, sync.
    conn = await asyncpg.connect(system.database_url)
    try:
        for text in (secret, edited_secret):
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM chat.messages WHERE body LIKE '%' || $1 || '%'"
                    " OR search @@ to_tsquery('simple', $1)",
                    text,
                )
                == 0
            )
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM chat.user_events WHERE frame LIKE '%' || $1 || '%'", text
                )
                == 0
            )
        rewritten = await conn.fetchval(
            "SELECT count(*) FROM chat.user_events WHERE subject = $1", mid
        )
    finally:
        await conn.close()
    # message.new (3), the edit's message.updated (3), dan's joining (4 conversation.updated),
    # three reaction changes (4 each) and the deletion's own message.updated (4).
    assert rewritten == 3 + 3 + 4 + 12 + 4
    for text in (secret, edited_secret):
        assert (await ok(b, {"type": "search", "query": text}))["messages"] == []
    for user, changes in ((ann, 5), (bob, 5), (cat, 5), (dan, 4)):
        fresh = await Client.connect(system.ws_url, user)
        events = await sync_all(fresh)
        assert secret not in str(events) and edited_secret not in str(events)
        _, messages = replay(events)
        assert messages[mid] == gone
        # The edit, three reaction changes (the repeats announced nothing), the deletion.
        announced = [e for e in events if e["type"] == "message.updated"]
        assert sum(e["message"]["id"] == mid for e in announced) == changes
        await fresh.close()
    # Facts for other services (the notifier) on chat.events.v1, in order.
    records, _ = await read_topic(system, system.topic("chat.events.v1"))
    facts = [orjson.loads(r.value) for r in records if r.key == gid.encode()]
    changed = [f["data"] for f in facts if f["type"] == "chat.message.updated"]
    assert [f["change"] for f in changed if f["message"]["id"] == mid] == [
        "edited",
        "reaction",
        "reaction",
        "reaction",
        "deleted",
    ]
    assert changed[-1]["message"] == gone and set(changed[-1]["member_ids"]) == {ann, bob, cat, dan}
    joined = [f["data"] for f in facts if f["type"] == "chat.conversation.updated"][-1]
    assert joined["added_ids"] == [dan] and joined["removed_ids"] == []
    for client in (a, b, c, d):
        await client.close()


async def test_search_sees_the_callers_conversations_now(system: System) -> None:
    ann, bob, cat, eve = (unique(name) for name in ("ann", "bob", "cat", "eve"))
    a = await Client.connect(system.ws_url, ann)
    c = await Client.connect(system.ws_url, cat)
    e = await Client.connect(system.ws_url, eve)
    gid = (await create_group(a, "Search", [bob, cat]))["id"]
    term, other = word(), word()
    in_group = (await ok(a, say(gid, "s1", f"{term} once")))["message"]
    best = (await ok(c, say(gid, "s2", f"{term} {other} {term} {other}")))["message"]
    in_direct = (await ok(a, send_frame(to=bob, client_msg_id="s3", body=f"{term}!")))["message"]
    await ok(e, send_frame(to=unique("frank"), client_msg_id="s4", body=f"{term} elsewhere"))

    found = (await ok(a, {"type": "search", "query": f"{term} or {other}"}))["messages"]
    assert [m["id"] for m in found][:1] == [best["id"]]
    assert {m["id"] for m in found} == {in_group["id"], best["id"], in_direct["id"]}
    only = await ok(a, {"type": "search", "query": term, "conversation_id": gid, "limit": 1})
    assert len(only["messages"]) == 1 and only["messages"][0]["conversation_id"] == gid
    assert {m["id"] for m in (await ok(c, {"type": "search", "query": term}))["messages"]} == {
        in_group["id"],
        best["id"],
    }

    # Membership now, not when the message was sent.
    await ok(a, {"type": "conversation.members.remove", "conversation_id": gid, "user_id": cat})
    assert (await ok(c, {"type": "search", "query": term}))["messages"] == []

    # Row Level Security alone, without the service's checks: as the reader role, a user who
    # is not a member sees nothing of the group; a member sees it.
    conn = await asyncpg.connect(system.database_url)
    try:
        for user, expected in ((cat, 0), (eve, 0), (ann, 1)):
            async with conn.transaction():
                await conn.execute("SET LOCAL ROLE chat_reader")
                await conn.execute("SELECT set_config('app.user_id', $1, true)", user)
                counts = [
                    await conn.fetchval(
                        f"SELECT count(*) FROM chat.{table} WHERE {column} = $1", gid
                    )
                    for table, column in (
                        ("conversations", "id"),
                        ("members", "conversation_id"),
                        ("messages", "conversation_id"),
                    )
                ]
                hits = await conn.fetchval(
                    "SELECT count(*) FROM chat.search_hits(to_tsquery('simple', $1), $2, 50)",
                    term,
                    gid,
                )
            assert [min(n, 1) for n in counts] == [expected] * 3, (user, counts)
            assert (hits > 0) == (user == ann)
    finally:
        await conn.close()
    for client in (a, c, e):
        await client.close()


async def test_a_fresh_device_rebuilds_every_conversation_from_its_stream(system: System) -> None:
    ann, bob, cat = (unique(name) for name in ("ann", "bob", "cat"))
    a = await Client.connect(system.ws_url, ann)
    b = await Client.connect(system.ws_url, bob)
    gid = (await create_group(a, "Rebuild", [bob]))["id"]
    m1 = (await ok(b, say(gid, "f1", "first")))["message"]
    m2 = (await ok(a, say(gid, "f2", "second", reply_to=m1["id"])))["message"]
    await ok(
        b,
        {
            "type": "message.edit",
            "conversation_id": gid,
            "message_id": m1["id"],
            "body": "first, edited",
        },
    )
    await ok(
        a,
        {
            "type": "reaction.set",
            "conversation_id": gid,
            "message_id": m2["id"],
            "emoji": "🎉",
            "on": True,
        },
    )
    await ok(a, {"type": "conversation.members.add", "conversation_id": gid, "user_ids": [cat]})
    await ok(
        a,
        {"type": "conversation.role.set", "conversation_id": gid, "user_id": bob, "role": "admin"},
    )
    await ok(b, {"type": "conversation.update", "conversation_id": gid, "title": "Rebuilt"})
    await ok(b, {"type": "message.delete", "conversation_id": gid, "message_id": m2["id"]})
    await ok(a, send_frame(to=bob, client_msg_id="f3", body="direct"))

    for user in (ann, bob, cat):
        fresh = await Client.connect(system.ws_url, user)
        conversations, messages = replay(await sync_all(fresh, limit=3))
        listed = {
            c["id"]: c for c in (await ok(fresh, {"type": "conversations.list"}))["conversations"]
        }
        group = conversations[gid]
        assert {k: group[k] for k in ("title", "members")} == {
            k: listed[gid][k] for k in ("title", "members")
        }
        history = (await ok(fresh, {"type": "history", "conversation_id": gid}))["messages"]
        # Everything the stream holds of the group is the current state; a member added later
        # has the later frames in its stream and the rest through history.
        for message in history:
            if message["id"] in messages:
                assert messages[message["id"]] == message
        if user != cat:
            assert {m["id"] for m in history} <= set(messages)
        await fresh.settle(seconds(0.2))
        await fresh.close()
    for client in (a, b):
        await client.close()
