"""In-app notifications end to end (protocol.md, part 2): real WebSocket clients, the gateway,
chat, presence and the notifier on real Kafka and Postgres.

Where a test must show that something did NOT happen, it ends with a later event that must
happen, on the same path, and waits for that one: no fixed sleeps.
"""

from __future__ import annotations

import uuid

import httpx

from schemas import topics
from tests.integration.harness import (
    Client,
    Frame,
    System,
    of_type,
    seconds,
    send_frame,
    unique,
)
from tests.integration.notifications import (
    job_alert,
    notifications_stream,
    publish_binary,
    stream_until,
    unread_rows,
)
from tests.integration.push_service import BrowserSubscription


async def _send(client: Client, to: str, body: str) -> Frame:
    answer = await client.request_within_rate(
        send_frame(to=to, client_msg_id=uuid.uuid4().hex, body=body)
    )
    assert answer["type"] == "ack", answer
    message: Frame = answer["message"]
    return message


async def _alert(system: System, user: str, title: str = "Cleared Systems Engineer") -> None:
    data = job_alert([user])
    data["title"] = title
    # Keyed by user: a test's alerts land in one partition, in order.
    await publish_binary(system, topics.JOBS_EVENTS, topics.JOB_ALERT_MATCHED, key=user, data=data)


async def test_three_messages_to_an_offline_user_make_one_notification_counting_three(
    system: System,
) -> None:
    alice, bob = unique("alice"), unique("bob")
    alice_1 = await Client.connect(system.ws_url, alice)
    sent = [await _send(alice_1, bob, f"message {i}") for i in range(1, 4)]

    bob_1 = await Client.connect(system.ws_url, bob)
    frames = await stream_until(
        bob_1, lambda frames: bool(frames) and frames[-1]["notification"]["data"]["count"] == 3
    )
    assert len({frame["notification"]["id"] for frame in frames}) == 1
    # One frame per batch of the notifier, not per message: messages applied together show
    # only their last count. The counts still only rise, and the unread count stays one.
    counts = [frame["notification"]["data"]["count"] for frame in frames]
    assert counts == sorted(set(counts)) and counts[-1] == 3
    assert [frame["unread_count"] for frame in frames] == [1] * len(frames)
    assert [frame["seq"] for frame in frames] == list(range(1, len(frames) + 1))
    last = frames[-1]["notification"]
    assert last["kind"] == "message"
    assert last["data"] == {
        "conversation_id": sent[0]["conversation_id"],
        "sender_id": alice,
        "message_id": sent[-1]["id"],
        "count": 3,
    }
    assert (last["title"], last["body"]) == ("3 new messages", f"{alice}: message 3")

    bell = await bob_1.request({"type": "notifications.list"})
    assert bell["type"] == "ack", bell
    assert (bell["unread_count"], bell["has_more"]) == (1, False)
    assert bell["notifications"] == [{**last, "read": False}]
    assert await unread_rows(system, bob) == (1, 1)
    for client in (alice_1, bob_1):
        await client.close()


async def test_reading_the_conversation_clears_the_notification_on_every_device(
    system: System,
) -> None:
    alice, bob = unique("alice"), unique("bob")
    alice_1 = await Client.connect(system.ws_url, alice)
    bob_phone = await Client.connect(system.ws_url, bob)
    bob_laptop = await Client.connect(system.ws_url, bob)
    first = await _send(alice_1, bob, "one")
    await _send(alice_1, bob, "two")
    for device in (bob_phone, bob_laptop):
        # Count 1 then 2, or 2 alone when the notifier applied both messages in one batch.
        update = await device.take(of_type("notification.new", unread_count=1))
        while update["notification"]["data"]["count"] != 2:
            update = await device.take(of_type("notification.new", unread_count=1))
    notification_id = update["notification"]["id"]

    # Read up to the first message only: its notification covers a later one, so it stays.
    receipt = {"type": "receipt", "conversation_id": first["conversation_id"], "status": "read"}
    assert (await bob_phone.request({**receipt, "seq": 1}))["type"] == "ack"
    # Then up to the last: the notification is read on every device, its unread count gone.
    assert (await bob_phone.request({**receipt, "seq": 2}))["type"] == "ack"
    for device in (bob_laptop, bob_phone):
        read = await device.take(of_type("notification.read"))
        assert read == {
            "type": "notification.read",
            "stream": "notifications",
            "seq": update["seq"] + 1,
            "ids": [notification_id],
            "unread_count": 0,
        }
    bell = await bob_laptop.request({"type": "notifications.list"})
    assert [(n["id"], n["read"]) for n in bell["notifications"]] == [(notification_id, True)]
    assert bell["unread_count"] == 0
    unread = await bob_laptop.request({"type": "notifications.list", "unread_only": True})
    assert unread["notifications"] == []

    # The conversation's next message opens a new notification.
    await _send(alice_1, bob, "three")
    again = await bob_laptop.take(of_type("notification.new"))
    assert again["notification"]["id"] != notification_id
    assert (again["notification"]["data"]["count"], again["unread_count"]) == (1, 1)
    assert await unread_rows(system, bob) == (1, 1)
    for client in (alice_1, bob_phone, bob_laptop):
        await client.close()


async def test_a_muted_conversation_and_an_in_app_false_kind_make_no_notification(
    system: System,
) -> None:
    alice, bob, dave = unique("alice"), unique("bob"), unique("dave")
    alice_1 = await Client.connect(system.ws_url, alice)
    bob_1 = await Client.connect(system.ws_url, bob)
    dave_1 = await Client.connect(system.ws_url, dave)
    conversation = (await _send(alice_1, bob, "before muting"))["conversation_id"]
    before = await bob_1.take(of_type("notification.new"))

    muted = await bob_1.request(
        {"type": "conversation.mute", "conversation_id": conversation, "muted": True}
    )
    assert muted == {"type": "ack", "id": muted["id"]}
    await _send(alice_1, bob, "while muted")
    # The message itself arrives; its notification does not. Proof, on the conversation's own
    # partition (so after the muted message): reading up to the first message reads the
    # notification, which therefore still covers that message only.
    await bob_1.take(of_type("message.new", message_body="while muted"))
    await bob_1.request(
        {"type": "receipt", "conversation_id": conversation, "seq": 1, "status": "read"}
    )
    read = await bob_1.take(of_type("notification.read"))
    assert read["ids"] == [before["notification"]["id"]]
    assert not bob_1.matching(of_type("notification.new"))

    off = await bob_1.request(
        {"type": "notification.prefs.set", "kind": "job_alert", "in_app": False}
    )
    assert off["prefs"]["job_alert"] == {"in_app": False, "push": True}
    assert off["prefs"]["muted_conversations"] == [conversation]
    # One event to both: when dave has it, bob's part of it was decided (nothing).
    data = job_alert([bob, dave])
    await publish_binary(system, topics.JOBS_EVENTS, topics.JOB_ALERT_MATCHED, key=bob, data=data)
    await dave_1.take(of_type("notification.new"), seconds(20))
    frames = await notifications_stream(bob_1)
    assert [frame["type"] for frame in frames] == ["notification.new", "notification.read"]
    assert await unread_rows(system, bob) == (0, 0)
    for client in (alice_1, bob_1, dave_1):
        await client.close()


async def test_notification_read_by_ids_and_all_on_every_device(system: System) -> None:
    bob, eve = unique("bob"), unique("eve")
    bob_1 = await Client.connect(system.ws_url, bob)
    bob_2 = await Client.connect(system.ws_url, bob)
    eve_1 = await Client.connect(system.ws_url, eve)
    for title in ("A", "B", "C"):
        await _alert(system, bob, title=title)
    await _alert(system, eve, title="Eve's")
    news = await bob_1.take_n(of_type("notification.new"), 3, seconds(20))
    ids = [frame["notification"]["id"] for frame in news]
    assert [frame["unread_count"] for frame in news] == [1, 2, 3]
    eves = (await eve_1.take(of_type("notification.new"), seconds(20)))["notification"]["id"]

    # Another user's id is ignored and never revealed: the answer is the same as for nonsense.
    answer = await bob_1.request({"type": "notification.read", "ids": [ids[0], eves, "nope"]})
    assert answer == {"type": "ack", "id": answer["id"], "unread_count": 2}
    for device in (bob_1, bob_2):
        read = await device.take(of_type("notification.read"))
        assert (read["ids"], read["unread_count"]) == ([ids[0]], 2)
    # Nothing changes: acknowledged, no frame.
    again = await bob_1.request({"type": "notification.read", "ids": [ids[0]]})
    assert again["unread_count"] == 2

    everything = await bob_2.request({"type": "notification.read", "all": True})
    assert everything["unread_count"] == 0
    for device in (bob_1, bob_2):
        read = await device.take(of_type("notification.read"))
        assert (read.get("all"), read["unread_count"], "ids" in read) == (True, 0, False)
    eve_bell = await eve_1.request({"type": "notifications.list"})
    assert (eve_bell["unread_count"], eve_bell["notifications"][0]["read"]) == (1, False)
    assert await unread_rows(system, bob) == (0, 0)

    refused = await bob_1.request({"type": "notification.read", "ids": []})
    assert (refused["type"], refused["code"]) == ("error", "bad_request")
    too_many = await bob_1.request({"type": "notification.read", "ids": ["x"] * 501})
    assert (too_many["type"], too_many["code"]) == ("error", "bad_request")
    for client in (bob_1, bob_2, eve_1):
        await client.close()


async def test_the_bell_lists_newest_first_in_pages(system: System) -> None:
    user = unique("user")
    user_1 = await Client.connect(system.ws_url, user)
    for title in ("1", "2", "3", "4", "5"):
        await _alert(system, user, title=title)
    await user_1.take_n(of_type("notification.new"), 5, seconds(20))

    first = await user_1.request({"type": "notifications.list", "limit": 2})
    assert [n["title"] for n in first["notifications"]] == ["New job: 5", "New job: 4"]
    assert (first["has_more"], first["unread_count"]) == (True, 5)
    second = await user_1.request(
        {"type": "notifications.list", "limit": 2, "before": first["notifications"][-1]["id"]}
    )
    assert [n["title"] for n in second["notifications"]] == ["New job: 3", "New job: 2"]
    rest = await user_1.request(
        {"type": "notifications.list", "before": second["notifications"][-1]["id"]}
    )
    assert [n["title"] for n in rest["notifications"]] == ["New job: 1"]
    assert rest["has_more"] is False

    read_id = first["notifications"][1]["id"]
    await user_1.request({"type": "notification.read", "ids": [read_id]})
    unread = await user_1.request({"type": "notifications.list", "unread_only": True})
    assert [n["title"] for n in unread["notifications"]] == [
        "New job: 5",
        "New job: 3",
        "New job: 2",
        "New job: 1",
    ]
    assert all(n["read"] is False for n in unread["notifications"])
    assert unread["unread_count"] == 4

    unknown = await user_1.request({"type": "notifications.list", "before": "no-such-id"})
    assert (unknown["type"], unknown["code"]) == ("error", "not_found")
    for bad in ({"limit": 0}, {"limit": 101}, {"unread_only": "yes"}):
        refused = await user_1.request({"type": "notifications.list", **bad})
        assert (refused["type"], refused["code"]) == ("error", "bad_request"), bad
    await user_1.close()


async def test_preferences_have_the_protocols_shape_and_defaults(system: System) -> None:
    user = unique("user")
    user_1 = await Client.connect(system.ws_url, user)
    defaults = await user_1.request({"type": "notification.prefs.get"})
    everything_on = {"in_app": True, "push": True}
    assert defaults == {
        "type": "ack",
        "id": defaults["id"],
        "prefs": {
            "message": everything_on,
            "job_alert": everything_on,
            "application_status": everything_on,
            "muted_conversations": [],
        },
    }
    changed = await user_1.request(
        {"type": "notification.prefs.set", "kind": "message", "push": False}
    )
    assert changed["prefs"]["message"] == {"in_app": True, "push": False}
    await user_1.request({"type": "conversation.mute", "conversation_id": "c-b", "muted": True})
    await user_1.request({"type": "conversation.mute", "conversation_id": "c-a", "muted": True})
    await user_1.request({"type": "conversation.mute", "conversation_id": "c-b", "muted": False})
    read_back = await user_1.request({"type": "notification.prefs.get"})
    assert read_back["prefs"] == {
        "message": {"in_app": True, "push": False},
        "job_alert": everything_on,
        "application_status": everything_on,
        "muted_conversations": ["c-a"],
    }
    unknown_kind = await user_1.request(
        {"type": "notification.prefs.set", "kind": "newsletter", "push": False}
    )
    assert (unknown_kind["type"], unknown_kind["code"]) == ("error", "bad_request")
    await user_1.close()


async def test_hello_and_the_gateway_give_the_vapid_public_key(system: System) -> None:
    user_1 = await Client.connect(system.ws_url, unique("user"))
    assert user_1.hello["push"] == {"vapid_public_key": system.vapid_public_key}
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"http://127.0.0.1:{system.gateway.port}/v1/push/vapid-public-key"
        )
    assert response.status_code == 200
    assert response.json() == {"vapid_public_key": system.vapid_public_key}
    assert response.headers["access-control-allow-origin"] == "*"
    await user_1.close()


async def test_push_subscriptions_are_checked_and_answered(system: System) -> None:
    user_1 = await Client.connect(system.ws_url, unique("user"))
    # A browser's keys: an uncompressed P-256 point and a 16-byte secret.
    keys = BrowserSubscription.create("http://127.0.0.1:9/push/x").to_json()["keys"]
    off_list = await user_1.request(
        {
            "type": "push.subscribe",
            "subscription": {"endpoint": "https://attacker.example/x", "keys": keys},
        }
    )
    assert (off_list["type"], off_list["code"]) == ("error", "forbidden")
    bad_keys = await user_1.request(
        {
            "type": "push.subscribe",
            "subscription": {
                "endpoint": "http://127.0.0.1:9/push/x",
                "keys": {**keys, "auth": "c2hvcnQ"},
            },
        }
    )
    assert (bad_keys["type"], bad_keys["code"]) == ("error", "bad_request")
    assert "c2hvcnQ" not in bad_keys["message"]
    subscribed = await user_1.request(
        {
            "type": "push.subscribe",
            "subscription": {
                "endpoint": "http://127.0.0.1:9/push/x",
                "expirationTime": None,
                "keys": keys,
            },
        }
    )
    assert subscribed == {"type": "ack", "id": subscribed["id"]}
    gone = await user_1.request(
        {"type": "push.unsubscribe", "endpoint": "http://127.0.0.1:9/push/x"}
    )
    assert gone["type"] == "ack"
    await user_1.close()


async def test_a_deleted_messages_text_leaves_its_notification_and_every_stored_frame(
    system: System,
) -> None:
    alice, bob = unique("alice"), unique("bob")
    alice_1 = await Client.connect(system.ws_url, alice)
    first = await _send(alice_1, bob, "the secret")
    await _send(alice_1, bob, "second thoughts")
    gone = await alice_1.request(
        {
            "type": "message.delete",
            "conversation_id": first["conversation_id"],
            "message_id": first["id"],
        }
    )
    assert gone["type"] == "ack", gone
    last = await _send(alice_1, bob, "never mind")
    latest = await alice_1.request(
        {
            "type": "message.delete",
            "conversation_id": last["conversation_id"],
            "message_id": last["id"],
        }
    )
    assert latest["type"] == "ack", latest

    bob_1 = await Client.connect(system.ws_url, bob)

    def erased(frames: list[Frame]) -> bool:
        newest = frames[-1]["notification"] if frames else None
        return newest is not None and newest["data"]["count"] == 3 and newest["body"] == ""

    frames = await stream_until(bob_1, erased)
    # Each frame previewed the latest message of its moment (one frame per notifier batch, so
    # one to three of them); the deleted ones are blank.
    deleted = {first["id"], last["id"]}
    previews = [frame["notification"] for frame in frames]
    assert [preview["body"] for preview in previews] == [
        "" if preview["data"]["message_id"] in deleted else f"{alice}: second thoughts"
        for preview in previews
    ]
    assert [frame["seq"] for frame in frames] == list(range(1, len(frames) + 1))
    bell = await bob_1.request({"type": "notifications.list"})
    [notification] = bell["notifications"]
    assert (notification["body"], notification["data"]["count"]) == ("", 3)
    assert "secret" not in str(await notifications_stream(bob_1))
    for client in (alice_1, bob_1):
        await client.close()
