"""A chat service crash (SIGKILL) mid-stream loses no acknowledged message and repeats none."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.integration.harness import Client, Frame, System, seconds, send_frame, unique

MESSAGES = 200
KILL_AFTER = 60


async def test_sigkill_of_chat_loses_and_duplicates_nothing(system: System) -> None:
    alice, bob = unique("alice"), unique("bob")
    alice_1 = await Client.connect(system.ws_url, alice)
    acked: dict[str, Frame] = {}
    resends = 0
    time_to_kill = asyncio.Event()

    async def send_all() -> None:
        nonlocal resends
        for i in range(MESSAGES):
            client_msg_id = f"r{i:03d}"
            while client_msg_id not in acked:
                try:
                    answer = await alice_1.request_within_rate(
                        send_frame(to=bob, client_msg_id=client_msg_id, body=f"n{i}"),
                        timeout_s=seconds(2),
                    )
                except AssertionError:
                    # No answer in time: exactly what a client does, resend with the same key.
                    resends += 1
                    continue
                if answer["type"] == "ack":
                    acked[client_msg_id] = answer["message"]
                    if len(acked) == KILL_AFTER:
                        time_to_kill.set()
                else:
                    assert answer["code"] == "unavailable", answer
                    resends += 1

    sender = asyncio.create_task(send_all())
    await asyncio.wait_for(time_to_kill.wait(), seconds(60))
    system.chat.kill()
    system.chat.start()
    await system.chat.wait_ready()
    await asyncio.wait_for(sender, seconds(120))

    assert len(acked) == MESSAGES
    conversation = acked["r000"]["conversation_id"]
    # Sent one after another, so conversation order is send order with no gap or repeat.
    assert [acked[f"r{i:03d}"]["seq"] for i in range(MESSAGES)] == list(range(1, MESSAGES + 1))
    assert resends > 0, "the kill should have delayed at least one ack"

    conn = await asyncpg.connect(system.database_url)
    try:
        stored = await conn.fetch(
            "SELECT client_msg_id, seq FROM chat.messages WHERE conversation_id = $1 ORDER BY seq",
            conversation,
        )
    finally:
        await conn.close()
    assert [(row["client_msg_id"], row["seq"]) for row in stored] == [
        (f"r{i:03d}", i + 1) for i in range(MESSAGES)
    ]

    bob_1 = await Client.connect(system.ws_url, bob)
    events: list[Frame] = []
    cursor: dict[str, int] = {}
    while True:
        page = await bob_1.request({"type": "sync", "cursor": cursor, "limit": 90})
        # Sync also serves the notifications stream: the messages are the chat stream's.
        events += [event for event in page["events"] if event["stream"] == "chat"]
        cursor = page["cursor"]
        if not page["has_more"]:
            break
    assert [event["seq"] for event in events] == list(range(1, MESSAGES + 1))
    assert [event["message"] for event in events] == [acked[f"r{i:03d}"] for i in range(MESSAGES)]
    await alice_1.close()
    await bob_1.close()
