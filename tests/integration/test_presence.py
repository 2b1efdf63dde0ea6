"""Presence across devices and gateways, without flapping; typing indicators; who may see what."""

from __future__ import annotations

import time

import httpx

from deploy.local.launcher import free_port
from tests.integration.harness import (
    PRESENCE_GATEWAY_EXPIRY_MS,
    PRESENCE_GRACE_MS,
    Client,
    ServiceProcess,
    System,
    of_type,
    seconds,
    send_frame,
    token,
    unique,
    ws_url,
)

GRACE_S = PRESENCE_GRACE_MS / 1000
# A dead gateway's users go offline within expiry + a sweep + heartbeat interval.
EXPIRY_BOUND_S = PRESENCE_GATEWAY_EXPIRY_MS / 1000 + 2


async def contacts(system: System) -> tuple[str, str, Client, Client]:
    """Two users who share a conversation, each with one open device (a, b)."""
    alice, bob = unique("alice"), unique("bob")
    a = await Client.connect(system.ws_url, alice)
    b = await Client.connect(system.ws_url, bob)
    assert (await a.request(send_frame(to=bob, client_msg_id="hi")))["type"] == "ack"
    return alice, bob, a, b


async def test_devices_aggregate_and_offline_is_debounced(system: System) -> None:
    alice, _, a_1, b = await contacts(system)
    a_2 = await Client.connect(system.ws_url, alice)
    await b.settle()
    b.frames.clear()

    await a_1.close()
    await b.settle(seconds(GRACE_S + 1))
    assert not b.matching(of_type("presence", user_id=alice)), "one device left: still online"

    await a_2.close()
    # A reload: back within the grace period. Bob must see nothing at all.
    a_3 = await Client.connect(system.ws_url, alice)
    await b.settle(seconds(GRACE_S + 1))
    assert not b.matching(of_type("presence", user_id=alice))

    closed_at = time.time()
    await a_3.close()
    offline = await b.take(
        of_type("presence", user_id=alice, status="offline"), seconds(GRACE_S + 5)
    )
    assert time.time() - closed_at >= GRACE_S * 0.9, "offline shown before the grace period ended"
    assert offline["last_seen"] is not None
    await b.close()


async def test_connecting_announces_online_and_hello_is_followed_by_a_snapshot(
    system: System,
) -> None:
    alice, bob, a, b = await contacts(system)
    b_2 = await Client.connect(system.ws_url, bob)
    # A late live frame (the message.new above, still on its way) may come before or after
    # it: only the snapshot's content is asserted.
    snapshot = await b_2.take(of_type("presence", user_id=alice))
    assert snapshot["status"] == "online"

    # Carol was online before she shared a conversation with Bob: her first message introduces
    # them, and each learns the other's presence at once.
    carol = unique("carol")
    c = await Client.connect(system.ws_url, carol)
    await c.request(send_frame(to=bob, client_msg_id="x"))
    online = await b.take(of_type("presence", user_id=carol, status="online"))
    assert online["last_seen"] is not None
    assert (await c.take(of_type("presence", user_id=bob)))["status"] == "online"
    # A second device of someone already online changes nothing for others.
    c_2 = await Client.connect(system.ws_url, carol)
    await b.settle()
    assert not b.matching(of_type("presence", user_id=carol))
    for client in (a, b, b_2, c, c_2):
        await client.close()


async def test_status_set_shows_on_every_device_and_to_contacts(system: System) -> None:
    alice, bob, a_1, b = await contacts(system)
    a_2 = await Client.connect(system.ws_url, alice)

    ack = await a_1.request({"type": "presence.set", "status": "away"})

    assert ack["type"] == "ack", ack
    for client in (b, a_2, a_1):
        seen = await client.take(of_type("presence", user_id=alice, status="away"))
        assert seen["last_seen"] is not None
    # Appear offline: others see offline, the user's own devices keep working.
    await a_2.request({"type": "presence.set", "status": "offline"})
    await b.take(of_type("presence", user_id=alice, status="offline"))
    assert (await a_1.request(send_frame(to=bob, client_msg_id="still-works")))["type"] == "ack"
    await a_1.request({"type": "presence.set", "status": "online"})
    await b.take(of_type("presence", user_id=alice, status="online"))
    for client in (a_1, a_2, b):
        await client.close()


async def test_killed_gateway_users_go_offline_within_the_bound(system: System) -> None:
    second = system.extra_gateway("gateway-2")
    second.start()
    await second.wait_ready()
    alice, bob, a_main, b = await contacts(system)
    dave = unique("dave")
    d_main = await Client.connect(system.ws_url, dave)
    await d_main.request(send_frame(to=bob, client_msg_id="d"))
    await d_main.close()
    await b.take(of_type("presence", user_id=dave, status="offline"), seconds(GRACE_S + 5))
    a_second = await Client.connect(ws_url(second.port), alice)
    d_second = await Client.connect(ws_url(second.port), dave)
    await b.take(of_type("presence", user_id=dave, status="online"))
    await b.settle()
    b.frames.clear()

    killed_at = time.time()
    second.kill()

    offline = await b.take(
        of_type("presence", user_id=dave, status="offline"), seconds(EXPIRY_BOUND_S + 5)
    )
    assert time.time() - killed_at <= EXPIRY_BOUND_S * 2
    assert offline["last_seen"] is not None
    await b.settle(seconds(1))
    assert not b.matching(of_type("presence", user_id=alice)), "alice still has a live device"
    assert a_second.closed and d_second.closed
    await a_main.close()
    await b.close()


async def test_a_gateway_restarted_under_its_name_still_expires_its_predecessors_users(
    system: System,
) -> None:
    """A supervisor restarts a dead gateway under the same INSTANCE_ID (compose does): the
    new process heart-beats under that name from the start, so only an id of each process's
    own lets presence see that the old one died. Found by the chaos soak: its users stayed
    online for good."""
    first = system.extra_gateway("gateway-named")
    port = free_port()
    replacement = ServiceProcess(
        "gateway", {**first.env, "GATEWAY_PORT": str(port)}, port, first.log_path
    )
    # Neither is left running when the test fails: they are no session services.
    try:
        first.start()
        await first.wait_ready()
        # The replacement is up before the old one dies: the name's heartbeats never pause.
        replacement.start()
        await replacement.wait_ready()
        _, bob, a, b = await contacts(system)
        dave = unique("dave")
        d = await Client.connect(ws_url(first.port), dave)
        await d.request(send_frame(to=bob, client_msg_id="d"))
        await b.take(of_type("presence", user_id=dave, status="online"), seconds(10))

        first.kill()

        await b.take(
            of_type("presence", user_id=dave, status="offline"), seconds(EXPIRY_BOUND_S + 5)
        )
        await a.close()
        await b.close()
    finally:
        replacement.stop()
        first.stop()


async def test_typing_reaches_the_other_members_and_lapses(system: System) -> None:
    alice, bob, a_1, b_1 = await contacts(system)
    b_2 = await Client.connect(system.ws_url, bob)
    a_2 = await Client.connect(system.ws_url, alice)
    conversation = (await a_1.request(send_frame(to=bob, client_msg_id="c")))["message"][
        "conversation_id"
    ]

    typing = {"type": "typing", "conversation_id": conversation}
    answer = await a_1.request({**typing, "state": "start"})
    started = time.monotonic()
    assert answer["type"] == "ack"
    for device in (b_1, b_2):
        frame = await device.take(of_type("typing", user_id=alice, state="start"))
        assert frame["conversation_id"] == conversation
    lapsed = await b_1.take(of_type("typing", user_id=alice, state="stop"), seconds(12))
    assert lapsed["conversation_id"] == conversation
    assert time.monotonic() - started >= 5.0, "a start must live about 6 s"
    await b_2.take(of_type("typing", user_id=alice, state="stop"))

    await a_1.send({**typing, "state": "start"})
    await b_1.take(of_type("typing", user_id=alice, state="start"))
    await a_1.send({**typing, "state": "stop"})
    await b_1.take(of_type("typing", user_id=alice, state="stop"))
    # Never echoed to the typist's own devices.
    await a_2.settle()
    assert not a_1.matching(of_type("typing")) and not a_2.matching(of_type("typing"))

    mallory = await Client.connect(system.ws_url, unique("mallory"))
    refused = await mallory.request({**typing, "state": "start"})
    assert (refused["type"], refused["code"]) == ("error", "forbidden")
    for client in (a_1, a_2, b_1, b_2, mallory):
        await client.close()


async def test_strangers_see_no_presence_by_frame_or_http(system: System) -> None:
    alice, bob, a, b = await contacts(system)
    eve = unique("eve")
    e = await Client.connect(system.ws_url, eve)
    await b.request({"type": "presence.set", "status": "busy"})
    await a.take(of_type("presence", user_id=bob, status="busy"))
    await e.settle()
    assert not e.matching(of_type("presence", user_id=bob))
    assert not e.matching(of_type("presence", user_id=alice))

    url = f"http://127.0.0.1:{system.gateway.port}/v1/presence"
    async with httpx.AsyncClient() as http:
        as_eve = await http.get(
            url, params={"ids": f"{bob},{alice}"}, headers={"Authorization": f"Bearer {token(eve)}"}
        )
        as_alice = await http.get(
            url, params={"ids": f"{bob},{eve}"}, headers={"Authorization": f"Bearer {token(alice)}"}
        )
        anonymous = await http.get(url, params={"ids": bob})
    assert as_eve.status_code == 200 and as_eve.json() == {"presence": []}
    assert as_alice.status_code == 200
    assert [(p["user_id"], p["status"]) for p in as_alice.json()["presence"]] == [(bob, "busy")]
    assert anonymous.status_code == 401
    for client in (a, b, e):
        await client.close()


async def test_presence_restart_keeps_state_and_sends_no_false_offline(system: System) -> None:
    alice, bob, a, b = await contacts(system)
    await a.request({"type": "presence.set", "status": "away"})
    await b.take(of_type("presence", user_id=alice, status="away"))

    system.presence.kill()
    system.presence.start()
    await system.presence.wait_ready()

    await b.settle(seconds(PRESENCE_GATEWAY_EXPIRY_MS / 1000 + 2))
    assert not b.matching(of_type("presence", user_id=alice, status="offline"))
    b_2 = await Client.connect(system.ws_url, bob)
    snapshot = await b_2.take(of_type("presence", user_id=alice))
    assert snapshot["status"] == "away"
    for client in (a, b, b_2):
        await client.close()
