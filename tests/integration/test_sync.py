"""Offline catch-up through sync, and idempotent sends.

The deployment also serves the ``notifications`` stream (the notifier), so a sync answer
carries it beside ``chat``; these tests check the chat stream's frames and cursor.
"""

from __future__ import annotations

from typing import Any

from tests.integration.harness import Client, Frame, System, of_type, send_frame, unique


def chat(answer: Frame) -> list[Any]:
    return [event for event in answer["events"] if event["stream"] == "chat"]


async def test_offline_user_syncs_exactly_the_missing_frames_in_order(system: System) -> None:
    alice, bob = unique("alice"), unique("bob")
    alice_1 = await Client.connect(system.ws_url, alice)
    sent = [
        (
            await alice_1.request_within_rate(
                send_frame(to=bob, client_msg_id=f"c{i}", body=f"message {i}")
            )
        )["message"]
        for i in range(50)
    ]
    assert [message["seq"] for message in sent] == list(range(1, 51))

    bob_1 = await Client.connect(system.ws_url, bob)
    everything = await bob_1.request({"type": "sync", "cursor": {}})

    assert everything["type"] == "ack", everything
    assert everything["has_more"] is False
    assert everything["cursor"]["chat"] == 50
    events = chat(everything)
    assert [event["seq"] for event in events] == list(range(1, 51))
    assert all(event["type"] == "message.new" for event in events)
    assert [event["message"] for event in events] == sent
    # The notifier may still be adding bob's message notification to his notifications
    # stream while these syncs run: each one checks the chat stream and its cursor.
    notifications = everything["cursor"]["notifications"]

    from_middle = await bob_1.request(
        {"type": "sync", "cursor": {"chat": 20, "notifications": notifications}}
    )
    assert [event["seq"] for event in chat(from_middle)] == list(range(21, 51))
    assert chat(from_middle) == events[20:]

    paged = await bob_1.request(
        {"type": "sync", "cursor": {"chat": 0, "notifications": notifications}, "limit": 30}
    )
    assert [event["seq"] for event in chat(paged)] == list(range(1, 31))
    assert paged["has_more"] is True
    assert paged["cursor"]["chat"] == 30
    rest = await bob_1.request({"type": "sync", "cursor": paged["cursor"], "limit": 30})
    assert [event["seq"] for event in chat(rest)] == list(range(31, 51))
    assert rest["cursor"]["chat"] == 50

    up_to_date = await bob_1.request({"type": "sync", "cursor": rest["cursor"]})
    assert chat(up_to_date) == [] and up_to_date["cursor"]["chat"] == 50
    await alice_1.close()
    await bob_1.close()


async def test_resent_client_msg_id_stores_once_and_delivers_once(system: System) -> None:
    alice, bob = unique("alice"), unique("bob")
    alice_1 = await Client.connect(system.ws_url, alice)
    bob_1 = await Client.connect(system.ws_url, bob)

    first = await alice_1.request(send_frame(to=bob, client_msg_id="same", body="once"))
    again = await alice_1.request(send_frame(to=bob, client_msg_id="same", body="once"))

    assert first["type"] == again["type"] == "ack"
    assert again["message"] == first["message"]
    await bob_1.take(of_type("message.new", message_id=first["message"]["id"]))
    await bob_1.settle()
    assert not bob_1.matching(of_type("message.new"))
    synced = await bob_1.request({"type": "sync", "cursor": {}})
    assert [event["message"]["id"] for event in chat(synced)] == [first["message"]["id"]]

    # The idempotency key belongs to one conversation: reusing it elsewhere is a conflict.
    carol = unique("carol")
    elsewhere = await alice_1.request(send_frame(to=carol, client_msg_id="same"))
    assert (elsewhere["type"], elsewhere["code"]) == ("error", "conflict")
    await alice_1.close()
    await bob_1.close()
