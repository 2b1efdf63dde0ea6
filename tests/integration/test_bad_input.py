"""Bad input of every kind is refused precisely, and the system keeps serving everyone else."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from services.gateway.routes import served_frame_types
from services.runtime.partitioning import partition_for_key
from tests.integration.harness import (
    ALLOWED_ORIGIN,
    Client,
    System,
    dead_letters_until,
    of_type,
    seconds,
    send_frame,
    token,
    unique,
)


async def upgrade_status(url: str, **kwargs: object) -> int:
    """The HTTP status an upgrade attempt gets (101 when it succeeds)."""
    try:
        ws = await connect(url, **kwargs)  # type: ignore[arg-type]
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101


async def test_upgrade_is_refused_without_a_valid_token(system: System) -> None:
    user = unique("u")
    bearer = {"Authorization": f"Bearer {token(user)}"}
    assert await upgrade_status(system.ws_url) == 401
    assert (
        await upgrade_status(system.ws_url, additional_headers={"Authorization": "Basic x"}) == 401
    )
    assert (
        await upgrade_status(system.ws_url, additional_headers={"Authorization": "Bearer junk"})
        == 401
    )
    wrong_key = token(user, secret="another-secret-that-is-long-enough-0123")
    assert (
        await upgrade_status(
            system.ws_url, additional_headers={"Authorization": f"Bearer {wrong_key}"}
        )
        == 401
    )
    expired = token(user, ttl_s=-10)
    assert (
        await upgrade_status(
            system.ws_url, additional_headers={"Authorization": f"Bearer {expired}"}
        )
        == 401
    )
    assert await upgrade_status(system.ws_url, additional_headers=bearer) == 101
    assert (
        await upgrade_status(system.ws_url, additional_headers=bearer, origin="http://evil.example")
        == 403
    )
    assert (
        await upgrade_status(system.ws_url, additional_headers=bearer, origin=ALLOWED_ORIGIN) == 101
    )


async def test_malformed_frames_get_errors_and_the_connection_stays_open(system: System) -> None:
    user = unique("u")
    client = await Client.connect(system.ws_url, user)
    secret_body = "do-not-echo-" + "x" * 4000

    cases: list[tuple[str, str]] = [
        ("not json at all", "bad_request"),
        ("[1, 2]", "bad_request"),
        ('{"no_type": true}', "bad_request"),
        ('{"type": "launch.rockets", "id": "r1"}', "bad_request"),
        ('{"type": "message.send", "id": "r2", "to": "x"}', "bad_request"),
        (
            '{"type": "receipt", "id": "r3", "conversation_id": "c", "seq": "5", "status": "read"}',
            "bad_request",
        ),
        (
            orjson.dumps(
                {
                    "type": "message.send",
                    "id": "r4",
                    "to": "x",
                    "client_msg_id": "c",
                    "kind": "text",
                    "body": secret_body,
                }
            ).decode(),
            "too_large",
        ),
    ]
    for text, code in cases:
        await client.ws.send(text)
        error = await client.take(of_type("error"))
        assert error["code"] == code, (text[:60], error)
        assert "do-not-echo" not in error["message"]
    # Errors carry the request id when the frame had a readable one.
    assert [f for f in client.frames if f.get("type") == "error"] == []
    await client.ws.send('{"type": "launch.rockets", "id": "r9"}')
    assert (await client.take(of_type("error")))["id"] == "r9"
    pong = await client.request({"type": "ping"})
    assert pong["type"] == "pong"
    await client.close()


async def test_hello_lists_the_frame_types_answered_so_clients_need_not_probe(
    system: System,
) -> None:
    client = await Client.connect(system.ws_url, unique("u"))
    assert client.hello["features"] == served_frame_types()
    assert "launch.rockets" not in client.hello["features"]
    answer = await client.request({"type": "launch.rockets", "id": "r1"})
    assert answer["code"] == "bad_request"
    await client.close()


async def test_oversize_frame_closes_with_1009_and_others_are_unaffected(system: System) -> None:
    victim = await Client.connect(system.ws_url, unique("big"), max_size=None)
    bystander = await Client.connect(system.ws_url, unique("ok"))
    limit = victim.hello["limits"]["max_frame_bytes"]

    await victim.ws.send("x" * (limit + 1))
    await asyncio.wait_for(victim.ws.wait_closed(), seconds(10))

    assert victim.ws.close_code == 1009
    assert (await bystander.request({"type": "ping"}))["type"] == "pong"
    await bystander.close()


async def test_only_members_may_write_to_a_conversation(system: System) -> None:
    alice, bob, mallory = unique("alice"), unique("bob"), unique("mallory")
    alice_1 = await Client.connect(system.ws_url, alice)
    mallory_1 = await Client.connect(system.ws_url, mallory)
    ack = await alice_1.request(send_frame(to=bob, client_msg_id="m1"))
    conversation = ack["message"]["conversation_id"]

    intrusion = await mallory_1.request(
        {
            "type": "message.send",
            "conversation_id": conversation,
            "client_msg_id": "x",
            "kind": "text",
            "body": "let me in",
        }
    )
    receipt = await mallory_1.request(
        {"type": "receipt", "conversation_id": conversation, "seq": 1, "status": "read"}
    )
    unknown = await mallory_1.request(
        {
            "type": "message.send",
            "conversation_id": "no-such-conversation",
            "client_msg_id": "y",
            "kind": "text",
            "body": "hello?",
        }
    )

    for answer in (intrusion, receipt, unknown):
        assert (answer["type"], answer["code"]) == ("error", "forbidden"), answer
    synced = await mallory_1.request({"type": "sync", "cursor": {}})
    assert synced["events"] == []
    await alice_1.settle()
    assert not alice_1.matching(of_type("message.new", message_sender_id=mallory))
    assert not alice_1.matching(of_type("message.status"))
    await alice_1.close()
    await mallory_1.close()


async def test_rate_limit_answers_rate_limited(system: System) -> None:
    client = await Client.connect(system.ws_url, unique("fast"))
    burst = client.hello["limits"]["rate_per_s"] * 3
    for i in range(burst):
        await client.send({"type": "ping", "id": f"p{i}"})
    answers = await client.take_n(lambda f: f.get("id", "").startswith("p"), burst)
    codes = {a.get("code") for a in answers if a["type"] == "error"}
    assert codes == {"rate_limited"}
    assert sum(a["type"] == "pong" for a in answers) >= client.hello["limits"]["rate_per_s"]
    await client.close()


async def test_expired_token_closes_the_connection_with_4001(system: System) -> None:
    ws = await connect(
        system.ws_url, additional_headers={"Authorization": f"Bearer {token(unique('u'), ttl_s=2)}"}
    )
    await asyncio.wait_for(ws.wait_closed(), seconds(10))
    assert ws.close_code == 4001


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\x00\xffnot json", "invalid_envelope"),
        (
            orjson.dumps(
                {
                    "specversion": "1.0",
                    "id": "e1",
                    "source": "/test",
                    "type": "chat.message.send",
                    "time": "2026-01-01T00:00:00Z",
                    "data": {"sender_id": "x"},
                }
            ),
            "invalid_data",
        ),
        (
            orjson.dumps(
                {
                    "specversion": "1.0",
                    "id": "e2",
                    "source": "/test",
                    "type": "chat.unheard.of",
                    "time": "2026-01-01T00:00:00Z",
                    "data": {},
                }
            ),
            "unknown_type",
        ),
    ],
)
async def test_poison_command_goes_to_the_dlq_and_chat_continues(
    system: System, value: bytes, reason: str
) -> None:
    key = f"poison-{uuid.uuid4().hex}".encode()
    producer = AIOKafkaProducer(bootstrap_servers=system.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(system.topic("chat.commands.v1"), value, key=key)
    finally:
        await producer.stop()

    records = await dead_letters_until(system, "chat.commands.v1", key)
    found = next((record for record in records if record.key == key), None)
    assert found is not None, "poison record never reached the DLQ"
    headers = dict(found.headers)
    assert headers["dlq.reason"].decode().startswith(reason)
    assert headers["dlq.topic"].decode() == system.topic("chat.commands.v1")
    assert found.value == value

    alice, bob = unique("alice"), unique("bob")
    alice_1 = await Client.connect(system.ws_url, alice)
    after = await alice_1.request(send_frame(to=bob, client_msg_id="after-poison"))
    assert after["type"] == "ack"
    await alice_1.close()


async def test_a_malformed_delivery_record_is_dead_lettered_by_its_users_gateway_only(
    system: System,
) -> None:
    """A gateway reads the delivery records of the users connected to it: one for anybody else
    on the same partition is skipped unread (not dead-lettered: that user's gateway would),
    one for its own user that it cannot read goes to the DLQ, and the user's frames go on."""
    alice, bob = unique("alice"), unique("bob")
    partitions = int(system.env["DELIVERY_PARTITIONS"])
    home = partition_for_key(alice.encode(), partitions)
    elsewhere = next(
        user
        for user in (unique("nobody") for _ in range(1000))
        if partition_for_key(user.encode(), partitions) == home
    )
    alice_1 = await Client.connect(system.ws_url, alice)
    delivery = system.topic("delivery.frames.v1")
    producer = AIOKafkaProducer(bootstrap_servers=system.kafka_bootstrap)
    await producer.start()
    try:
        # In this order on one partition: when alice's reaches the DLQ, the other was read past.
        await producer.send_and_wait(delivery, b"not json", key=elsewhere.encode())
        await producer.send_and_wait(delivery, b"not json either", key=alice.encode())
    finally:
        await producer.stop()

    keys = {
        record.key
        for record in await dead_letters_until(system, "delivery.frames.v1", alice.encode())
    }
    assert alice.encode() in keys, "the gateway of alice never dead-lettered her record"
    assert elsewhere.encode() not in keys, "a record for a user connected nowhere was parsed"

    bob_1 = await Client.connect(system.ws_url, bob)
    sent = await bob_1.request(send_frame(to=alice, client_msg_id="after-bad-delivery"))
    assert sent["type"] == "ack"
    await alice_1.take(of_type("message.new"))
    await alice_1.close()
    await bob_1.close()
