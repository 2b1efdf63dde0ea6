"""Direct messages end to end: ack after storage, fan-out to every device, receipts."""

from __future__ import annotations

from tests.integration.harness import Client, System, of_type, send_frame, unique


async def test_message_reaches_every_device_and_receipts_come_back(system: System) -> None:
    alice, bob = unique("alice"), unique("bob")
    alice_1 = await Client.connect(system.ws_url, alice)
    alice_2 = await Client.connect(system.ws_url, alice, via="subprotocol")
    bob_1 = await Client.connect(system.ws_url, bob)
    bob_2 = await Client.connect(system.ws_url, bob, via="subprotocol")
    assert alice_2.ws.subprotocol == "chat.v1"

    ack = await alice_1.request(send_frame(to=bob, client_msg_id="m1", body="Hi Bob"))

    assert ack["type"] == "ack", ack
    message = ack["message"]
    assert message["seq"] == 1
    assert message["sender_id"] == alice
    assert message["body"] == "Hi Bob"
    assert message["client_msg_id"] == "m1"
    conversation = message["conversation_id"]
    for device in (bob_1, bob_2, alice_1, alice_2):
        new = await device.take(of_type("message.new", message_id=message["id"]))
        assert new["stream"] == "chat"
        assert new["message"] == message

    delivered = await bob_1.request(
        {"type": "receipt", "conversation_id": conversation, "seq": 1, "status": "delivered"}
    )
    assert delivered["type"] == "ack", delivered
    read = await bob_2.request(
        {"type": "receipt", "conversation_id": conversation, "seq": 1, "status": "read"}
    )
    assert read["type"] == "ack", read

    for device in (alice_1, alice_2):
        first = await device.take(of_type("message.status", status="delivered"))
        second = await device.take(of_type("message.status", status="read"))
        assert first["user_id"] == second["user_id"] == bob
        assert first["conversation_id"] == second["conversation_id"] == conversation
        assert first["up_to_seq"] == second["up_to_seq"] == 1
        assert first["stream"] == "chat"
        assert second["seq"] == first["seq"] + 1
    # The reader's own devices learn the read (their unread badges clear), every one of
    # them, as a durable frame of their own stream; a delivered watermark is not echoed.
    for device in (bob_1, bob_2):
        own = await device.take(of_type("message.status", status="read"))
        assert own["user_id"] == bob
        assert (own["conversation_id"], own["up_to_seq"], own["stream"]) == (
            conversation,
            1,
            "chat",
        )
    for device in (bob_1, bob_2):
        await device.settle()
        assert not device.matching(of_type("message.status"))
    synced = await bob_1.request({"type": "sync", "cursor": {}})
    chat = [f["type"] for f in synced["events"] if f["stream"] == "chat"]
    assert chat == ["message.new", "message.status"], "sync replays it"

    for client in (alice_1, alice_2, bob_1, bob_2):
        await client.close()


async def test_same_direct_conversation_whoever_writes_first(system: System) -> None:
    alice, bob = unique("alice"), unique("bob")
    alice_1 = await Client.connect(system.ws_url, alice)
    bob_1 = await Client.connect(system.ws_url, bob)

    from_bob = await bob_1.request(send_frame(to=alice, client_msg_id="b1"))
    from_alice = await alice_1.request(send_frame(to=bob, client_msg_id="a1"))

    assert from_bob["message"]["conversation_id"] == from_alice["message"]["conversation_id"]
    assert (from_bob["message"]["seq"], from_alice["message"]["seq"]) == (1, 2)
    # The conversation id works as an address too, for both members.
    by_id = await bob_1.request(
        {
            "type": "message.send",
            "conversation_id": from_alice["message"]["conversation_id"],
            "client_msg_id": "b2",
            "kind": "text",
            "body": "by id",
        }
    )
    assert by_id["type"] == "ack" and by_id["message"]["seq"] == 3
    await alice_1.close()
    await bob_1.close()


async def test_receipts_are_monotonic_and_read_implies_delivered(system: System) -> None:
    alice, bob = unique("alice"), unique("bob")
    alice_1 = await Client.connect(system.ws_url, alice)
    bob_1 = await Client.connect(system.ws_url, bob)
    acks = [await alice_1.request(send_frame(to=bob, client_msg_id=f"m{i}")) for i in range(1, 4)]
    conversation = acks[0]["message"]["conversation_id"]

    await bob_1.request(
        {"type": "receipt", "conversation_id": conversation, "seq": 3, "status": "read"}
    )
    # Lower watermarks and repeats change nothing and announce nothing.
    await bob_1.request(
        {"type": "receipt", "conversation_id": conversation, "seq": 2, "status": "delivered"}
    )
    await bob_1.request(
        {"type": "receipt", "conversation_id": conversation, "seq": 3, "status": "read"}
    )
    # Beyond the last message: clamped to it, so nothing moves either.
    await bob_1.request(
        {"type": "receipt", "conversation_id": conversation, "seq": 99, "status": "read"}
    )

    status = await alice_1.take(of_type("message.status"))
    assert (status["status"], status["up_to_seq"]) == ("read", 3)
    await alice_1.settle()
    assert not alice_1.matching(of_type("message.status"))
    await alice_1.close()
    await bob_1.close()
