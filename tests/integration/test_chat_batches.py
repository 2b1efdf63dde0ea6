"""Bursts of commands, which the chat service applies as whole batches (set-based statements):
the outcome must be the one of applying them one by one."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.integration.harness import (
    Client,
    System,
    metric_value,
    of_type,
    seconds,
    send_frame,
    unique,
)


async def test_burst_with_repeats_and_refusals_matches_one_by_one(system: System) -> None:
    alice, bob, carol = unique("alice"), unique("bob"), unique("carol")
    alice_1 = await Client.connect(system.ws_url, alice)
    bob_1 = await Client.connect(system.ws_url, bob)
    carol_1 = await Client.connect(system.ws_url, carol)

    # Sent back to back without waiting, so they reach the chat service together: new
    # messages to two peers, a repeat of a key first used inside the burst, a message to
    # oneself (refused) and a key reused for another conversation (conflict).
    frames = [send_frame(to=bob, client_msg_id=f"k{i}", body=f"m{i}") for i in range(12)]
    frames.insert(3, send_frame(to=bob, client_msg_id="k1", body="m1"))
    frames.insert(5, send_frame(to=alice, client_msg_id="self"))
    frames.insert(7, send_frame(to=carol, client_msg_id="c0", body="to carol"))
    frames.insert(9, send_frame(to=carol, client_msg_id="k2", body="reused"))
    for number, frame in enumerate(frames):
        await alice_1.send({**frame, "id": f"r{number}"})
    answers = {
        frame["id"]: frame
        for frame in await alice_1.take_n(
            lambda f: str(f.get("id", "")).startswith("r"), len(frames)
        )
    }

    assert answers["r5"]["type"] == "error" and answers["r5"]["code"] == "bad_request"
    assert answers["r9"]["type"] == "error" and answers["r9"]["code"] == "conflict"
    # The repeat answers with the message stored moments before, same id and seq.
    assert answers["r3"]["message"] == answers["r1"]["message"]
    to_bob = sorted(
        (answers[f"r{n}"]["message"] for n in range(len(frames)) if n not in (3, 5, 7, 9)),
        key=lambda message: message["seq"],
    )
    assert [m["client_msg_id"] for m in to_bob] == [f"k{i}" for i in range(12)]
    assert [m["seq"] for m in to_bob] == list(range(1, 13))
    assert answers["r7"]["message"]["seq"] == 1

    # Bob gets each new message once, in conversation order, with gap-free stream seqs.
    news = await bob_1.take_n(of_type("message.new"), 12)
    assert [n["message"]["client_msg_id"] for n in news] == [f"k{i}" for i in range(12)]
    seqs = [n["seq"] for n in news]
    assert seqs == list(range(seqs[0], seqs[0] + 12))
    carol_new = await carol_1.take(of_type("message.new"))
    assert carol_new["message"]["body"] == "to carol"
    await bob_1.settle()
    assert not bob_1.matching(of_type("message.new"))

    # Sync replays exactly what was pushed.
    synced = await bob_1.request({"type": "sync", "cursor": {}})
    assert [e for e in synced["events"] if e["type"] == "message.new"] == news

    for client in (alice_1, bob_1, carol_1):
        await client.close()


async def test_published_rows_are_deleted_without_being_published_again(system: System) -> None:
    # Deletes of published outbox rows ride along with the next batch's statement, or the
    # relay makes them when no batch comes: either way before the relay's grace period, so
    # nothing is published twice and the table does not grow.
    alice, bob = unique("alice"), unique("bob")
    alice_1 = await Client.connect(system.ws_url, alice)
    bob_1 = await Client.connect(system.ws_url, bob)
    relayed_before = await metric_value(system.chat, "realtime_outbox_published", path="relay")

    for i in range(30):
        await alice_1.send({**send_frame(to=bob, client_msg_id=f"o{i}"), "id": f"o{i}"})
    await bob_1.take_n(of_type("message.new"), 30)
    # The last batch has no successor: only the relay's delete can clear its rows.
    deadline = asyncio.get_running_loop().time() + seconds(5)
    conn = await asyncpg.connect(system.database_url)
    try:
        while await conn.fetchval("SELECT count(*) FROM chat.outbox") > 0:
            assert asyncio.get_running_loop().time() < deadline, "outbox rows left undeleted"
            await asyncio.sleep(0.05)
    finally:
        await conn.close()

    # Wait past the relay's grace period (1 s in these tests): nothing came back.
    await asyncio.sleep(seconds(1.5))
    await bob_1.settle()
    assert not bob_1.matching(of_type("message.new"))
    assert (
        await metric_value(system.chat, "realtime_outbox_published", path="relay") == relayed_before
    )
    for client in (alice_1, bob_1):
        await client.close()
