"""Groups end to end: creation, every device of every member, admins, adding and removing
members, leaving, admin succession; a removed member is cut off from chat, typing and presence
at once."""

from __future__ import annotations

from tests.integration.conversations import (
    create_group,
    member_ids,
    ok,
    refused,
    roles,
    say,
    stored_members,
    sync_all,
    updated,
    wait_presence_members,
)
from tests.integration.harness import Client, System, of_type, seconds, send_frame, unique


async def test_group_of_four_from_creation_to_succession(system: System) -> None:
    ann, bob, cat, dan, eve = (unique(name) for name in ("ann", "bob", "cat", "dan", "eve"))
    a_1, a_2 = await Client.connect(system.ws_url, ann), await Client.connect(system.ws_url, ann)
    b_1, b_2 = await Client.connect(system.ws_url, bob), await Client.connect(system.ws_url, bob)
    c = await Client.connect(system.ws_url, cat)
    d = await Client.connect(system.ws_url, dan)
    e = await Client.connect(system.ws_url, eve)
    everyone = (a_1, a_2, b_1, b_2, c, d)
    limits = a_1.hello["limits"]
    assert (limits["max_group_members"], limits["max_title_chars"], limits["max_emoji_chars"]) == (
        256,
        200,
        16,
    )

    # Created: the creator is admin; every device of every member (the creator's included)
    # gets the durable conversation.updated.
    group = await create_group(a_1, "  Launch team ", [bob, cat, dan, ann])
    gid = group["id"]
    assert gid.startswith("grp_") and group["kind"] == "group" and group["title"] == "Launch team"
    assert roles(group) == {ann: "admin", bob: "member", cat: "member", dan: "member"}
    assert group["last_message"] is None and group["unread_count"] == 0
    for device in everyone:
        frame = await device.take(updated(gid))
        assert frame["stream"] == "chat" and roles(frame["conversation"]) == roles(group)

    # A message reaches every device of every member, the sender's own included.
    sent = (await ok(b_1, say(gid, "b1", "hello team")))["message"]
    for device in everyone:
        new = await device.take(of_type("message.new", message_id=sent["id"]))
        assert new["message"] == sent

    # Only admins change a group; a direct conversation never changes.
    for frame in (
        {"type": "conversation.members.add", "conversation_id": gid, "user_ids": [eve]},
        {"type": "conversation.members.remove", "conversation_id": gid, "user_id": cat},
        {"type": "conversation.role.set", "conversation_id": gid, "user_id": bob, "role": "admin"},
        {"type": "conversation.update", "conversation_id": gid, "title": "Mine now"},
    ):
        assert await refused(b_1, frame) == "forbidden", frame
    direct = await ok(a_1, send_frame(to=bob, client_msg_id="dm", body="psst"))
    dm = direct["message"]["conversation_id"]
    assert (
        await refused(a_1, {"type": "conversation.update", "conversation_id": dm, "title": "x"})
        == "forbidden"
    )

    # Added: the new member gets the group, later messages, and the whole history.
    await ok(a_2, {"type": "conversation.members.add", "conversation_id": gid, "user_ids": [eve]})
    joined = (await e.take(updated(gid)))["conversation"]
    assert member_ids(joined) == {ann, bob, cat, dan, eve} and roles(joined)[eve] == "member"
    for device in everyone:
        assert member_ids((await device.take(updated(gid)))["conversation"]) == member_ids(joined)
    assert joined["unread_count"] == 0 and joined["last_message"]["id"] == sent["id"]
    later = (await ok(c, say(gid, "c1", "welcome eve")))["message"]
    await e.take(of_type("message.new", message_id=later["id"]))
    history = await ok(e, {"type": "history", "conversation_id": gid})
    assert [m["id"] for m in history["messages"]] == [later["id"], sent["id"]]

    # Typing reaches dan while he is a member (this also fills any cache the relay keeps).
    await ok(b_1, {"type": "typing", "conversation_id": gid, "state": "start"})
    for device in (c, d):
        await device.take(of_type("typing", user_id=bob, state="start"))

    # Removed: dan's last frame of the group is the update without him; then he is cut off.
    await ok(a_1, {"type": "conversation.members.remove", "conversation_id": gid, "user_id": dan})
    last = (await d.take(updated(gid)))["conversation"]
    assert member_ids(last) == {ann, bob, cat, eve}
    for device in (a_1, a_2, b_1, b_2, c, e):
        assert member_ids((await device.take(updated(gid)))["conversation"]) == member_ids(last)
    assert await stored_members(system, gid) == {
        ann: "admin",
        bob: "member",
        cat: "member",
        eve: "member",
    }
    # Dan shared nothing else with them: each side sees the other go (offline, no last_seen).
    for other in (ann, bob, cat, eve):
        gone = await d.take(of_type("presence", user_id=other, status="offline"))
        assert gone["last_seen"] is None
    await a_1.take(of_type("presence", user_id=dan, status="offline", last_seen=None))
    await wait_presence_members(system, gid, {ann, bob, cat, eve})
    d.frames.clear()

    assert await refused(d, say(gid, "d1", "still here?")) == "forbidden"
    assert await refused(d, {"type": "history", "conversation_id": gid}) == "forbidden"
    assert (
        await refused(d, {"type": "receipt", "conversation_id": gid, "seq": 1, "status": "read"})
        == "forbidden"
    )
    assert (
        await refused(d, {"type": "typing", "conversation_id": gid, "state": "start"})
        == "forbidden"
    )
    assert (
        await refused(d, {"type": "search", "query": "hello", "conversation_id": gid})
        == "forbidden"
    )
    assert (await ok(d, {"type": "search", "query": "hello team"}))["messages"] == []
    after = (await ok(b_1, say(gid, "b2", "dan has left")))["message"]
    await ok(b_1, {"type": "typing", "conversation_id": gid, "state": "start"})
    await ok(a_1, {"type": "presence.set", "status": "busy"})
    await c.take(of_type("message.new", message_id=after["id"]))
    await c.take(of_type("typing", user_id=bob, state="start"))
    await c.take(of_type("presence", user_id=ann, status="busy"))
    await d.settle(seconds(1))
    # The notifier batches what it consumes for up to 100 ms, so dan's bell may still show a
    # message from before his removal now; nothing from after it may reach him.
    heard = [
        frame
        for frame in d.frames
        if frame["type"] != "notification.new"
        or frame["notification"]["data"].get("message_id") not in {sent["id"], later["id"]}
    ]
    assert heard == [], "a removed member still hears the group"

    # The last admin leaves: the longest-standing member becomes admin (bob and cat joined at
    # creation, before eve; the tie is broken by user id).
    await ok(a_1, {"type": "conversation.members.remove", "conversation_id": gid, "user_id": ann})
    succeeded = (await b_1.take(updated(gid)))["conversation"]
    assert roles(succeeded) == {bob: "admin", cat: "member", eve: "member"}
    assert (await a_2.take(updated(gid)))["conversation"] == {**succeeded, "unread_count": 0}
    await ok(b_2, {"type": "conversation.update", "conversation_id": gid, "title": "Bob's team"})
    assert roles((await c.take(updated(gid)))["conversation"]) == roles(succeeded)
    assert (await c.take(updated(gid)))["conversation"]["title"] == "Bob's team"
    for client in (*everyone, e):
        await client.close()


async def test_a_creation_resent_with_its_client_id_makes_one_group(system: System) -> None:
    """The client names the group (`client_conversation_id`): a resend after a lost answer,
    from another device, is answered with the group made the first time, with the first try's
    title and members, and nobody's stream holds a second group."""
    ann, bob, cat = (unique(name) for name in ("ann", "bob", "cat"))
    a_1, a_2 = await Client.connect(system.ws_url, ann), await Client.connect(system.ws_url, ann)
    b = await Client.connect(system.ws_url, bob)
    create = {
        "type": "conversation.create",
        "kind": "group",
        "title": "Hiring panel",
        "members": [bob],
        "client_conversation_id": "panel-7f3a",
    }
    first = (await ok(a_1, create))["conversation"]
    sent = (await ok(b, say(first["id"], "b1", "hello panel")))["message"]

    again = (await ok(a_2, {**create, "title": "Renamed?", "members": [bob, cat]}))["conversation"]
    assert again["id"] == first["id"] and again["title"] == "Hiring panel"
    assert member_ids(again) == {ann, bob} and roles(again)[ann] == "admin"
    assert again["last_message"] == sent and again["unread_count"] == 1

    # The same client id from another user is another group.
    theirs = (await ok(b, {**create, "members": [ann]}))["conversation"]
    assert theirs["id"] != first["id"]

    # Ann's and Bob's streams each hold one creation of her group, and Cat was never added.
    for client in (a_1, b):
        created = [
            event
            for event in await sync_all(client)
            if event["type"] == "conversation.updated"
            and event["conversation"]["id"] == first["id"]
        ]
        assert len(created) == 1, created
    assert await stored_members(system, first["id"]) == {ann: "admin", bob: "member"}

    # Having left, she is refused a resend rather than handed a group she is no longer in.
    await ok(
        a_1, {"type": "conversation.members.remove", "conversation_id": first["id"], "user_id": ann}
    )
    assert await refused(a_2, create) == "forbidden"
    for client in (a_1, a_2, b):
        await client.close()
