"""A chat crash (SIGKILL) in the middle of membership changes and messages: afterwards every
member's stream, every conversations.list and the compacted membership topic agree with the
stored membership, and nothing is there twice."""

from __future__ import annotations

import asyncio

import orjson

from tests.integration.conversations import (
    create_group,
    list_all,
    replay,
    say,
    stored_members,
    sync_all,
    wait_presence_members,
)
from tests.integration.harness import Client, Frame, System, seconds, unique
from tests.integration.test_consumer_skips import read_topic

JOINERS = 8
MESSAGES = 60
KILL_AFTER = 20


async def until_acked(client: Client, frame: Frame, resends: list[int]) -> Frame:
    """What a client does: resend the same frame until it is acknowledged (a change is
    idempotent, a message has its client_msg_id); counts the resends."""
    while True:
        try:
            answer = await client.request_within_rate(frame, timeout_s=seconds(2))
        except AssertionError:
            resends.append(1)
            continue
        if answer["type"] == "ack":
            return answer
        assert answer["code"] == "unavailable", answer
        resends.append(1)


async def test_sigkill_of_chat_during_membership_changes_and_messages(system: System) -> None:
    admin, talker, quiet = unique("ann"), unique("bob"), unique("cat")
    joiners = [unique(f"j{n}") for n in range(JOINERS)]
    a = await Client.connect(system.ws_url, admin)
    b = await Client.connect(system.ws_url, talker)
    gid = (await create_group(a, "Crash", [talker, quiet]))["id"]
    acks = 0
    time_to_kill = asyncio.Event()
    acked: dict[str, Frame] = {}
    resends: list[int] = []

    def counted() -> None:
        nonlocal acks
        acks += 1
        if acks == KILL_AFTER:
            time_to_kill.set()

    async def change_members() -> None:
        # Add each joiner, then remove the one before: 2 * JOINERS - 1 changes.
        for n, joiner in enumerate(joiners):
            add = {"type": "conversation.members.add", "conversation_id": gid, "user_ids": [joiner]}
            await until_acked(a, add, resends)
            counted()
            if n > 0:
                remove = {
                    "type": "conversation.members.remove",
                    "conversation_id": gid,
                    "user_id": joiners[n - 1],
                }
                await until_acked(a, remove, resends)
                counted()

    async def talk() -> None:
        for n in range(MESSAGES):
            answer = await until_acked(b, say(gid, f"k{n:03d}", f"message {n}"), resends)
            acked[f"k{n:03d}"] = answer["message"]
            counted()

    work = asyncio.gather(change_members(), talk())
    await asyncio.wait_for(time_to_kill.wait(), seconds(60))
    system.chat.kill()
    system.chat.start()
    await system.chat.wait_ready()
    await asyncio.wait_for(work, seconds(120))

    assert resends, "the kill should have delayed at least one answer"
    members = await stored_members(system, gid)
    assert members == {admin: "admin", talker: "member", quiet: "member", joiners[-1]: "member"}
    assert [acked[f"k{n:03d}"]["seq"] for n in range(MESSAGES)] == list(range(1, MESSAGES + 1))

    for user in (admin, talker, quiet, *joiners):
        device = await Client.connect(system.ws_url, user)
        events = await sync_all(device)
        conversations, messages = replay(events)
        updates = [e for e in events if e["type"] == "conversation.updated"]
        # The user's last frame of the group says whether it is a member now, and a member's
        # shows the stored membership.
        shown = {m["user_id"]: m["role"] for m in conversations[gid]["members"]}
        assert (user in shown) == (user in members)
        if user in members:
            assert shown == members
        if user in (admin, talker, quiet):
            # Created, then every change exactly once.
            assert len(updates) == 1 + 2 * JOINERS - 1
            assert sorted(
                m["client_msg_id"] for m in messages.values() if m["conversation_id"] == gid
            ) == sorted(acked)
        listed = [c["id"] for c in await list_all(device)]
        assert len(listed) == len(set(listed))
        assert (gid in listed) == (user in members)
        await device.close()

    # The compacted topic's last fact of the group is the stored membership, and presence,
    # which applies those facts, agrees.
    records, _ = await read_topic(system, system.topic("chat.conversations.v1"))
    last_fact = [orjson.loads(r.value) for r in records if r.key == gid.encode()][-1]
    assert last_fact["type"] == "chat.conversation.updated"
    assert set(last_fact["data"]["member_ids"]) == set(members)
    assert last_fact["data"]["version"] == 1 + 2 * JOINERS - 1
    await wait_presence_members(system, gid, set(members))
    await a.close()
    await b.close()
