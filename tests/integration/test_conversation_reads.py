"""conversations.list (activity order, unread counts, pages that stay consistent while messages
arrive) and history (pages newest first down to seq 1)."""

from __future__ import annotations

import asyncio

from tests.integration.conversations import create_group, list_all, ok, refused, say
from tests.integration.harness import Client, System, send_frame, unique


async def test_list_orders_by_activity_counts_unread_and_pages_without_gaps(
    system: System,
) -> None:
    me, ann, bob = unique("me"), unique("ann"), unique("bob")
    mine = await Client.connect(system.ws_url, me)
    a = await Client.connect(system.ws_url, ann)
    b = await Client.connect(system.ws_url, bob)

    # Six conversations; activity order (oldest first): quiet group (creation only), then one
    # message each in turn. ann writes 3 messages in hers, and one of mine follows in bob's.
    quiet = (await create_group(a, "Quiet", [me, bob]))["id"]
    ordered = [quiet]
    for n in range(3):
        ordered.append((await create_group(b, f"G{n}", [me]))["id"])
        await ok(b, say(ordered[-1], f"g{n}", f"group message {n}"))
    for n in range(3):
        ack = await ok(a, send_frame(to=me, client_msg_id=f"a{n}", body=f"from ann {n}"))
    with_ann = ack["message"]["conversation_id"]
    ordered.append(with_ann)
    ack = await ok(b, send_frame(to=me, client_msg_id="b0", body="from bob"))
    with_bob = ack["message"]["conversation_id"]
    await ok(mine, send_frame(to=bob, client_msg_id="m0", body="my answer"))
    ordered.append(with_bob)

    listed = await list_all(mine, limit=4)
    assert [c["id"] for c in listed] == ordered[::-1]
    unread = {c["id"]: c["unread_count"] for c in listed}
    # Messages of others after my read watermark; my own do not count.
    assert unread == {quiet: 0, **dict.fromkeys(ordered[1:4], 1), with_ann: 3, with_bob: 1}
    first = listed[0]
    assert first["kind"] == "direct" and "title" not in first
    assert first["last_message"]["body"] == "my answer"
    assert listed[-1]["last_message"] is None and listed[-1]["title"] == "Quiet"

    # A read receipt up to ann's second message leaves one unread; up to the last, none.
    await ok(mine, {"type": "receipt", "conversation_id": with_ann, "seq": 2, "status": "read"})
    page = await ok(mine, {"type": "conversations.list", "limit": 2})
    assert [c["unread_count"] for c in page["conversations"]] == [1, 1]
    await ok(mine, {"type": "receipt", "conversation_id": with_ann, "seq": 3, "status": "read"})
    page = await ok(mine, {"type": "conversations.list", "limit": 2})
    assert [(c["id"], c["unread_count"]) for c in page["conversations"]] == [
        (with_bob, 1),
        (with_ann, 0),
    ]

    # Paging while messages arrive: conversations already listed and ones still to come get
    # messages between pages. Every conversation comes exactly once, in the order of the
    # moment the first page was read; the new messages themselves arrive live.
    seen = [c["id"] for c in page["conversations"]]
    cursor = page["cursor"]
    assert page["has_more"]
    for n, conversation in enumerate((ordered[-1], ordered[1])):
        await ok(b, say(conversation, f"late{n}", "meanwhile"))
        page = await ok(mine, {"type": "conversations.list", "limit": 2, "before": cursor})
        seen += [c["id"] for c in page["conversations"]]
        cursor = page["cursor"]
    assert not page["has_more"]
    assert seen == ordered[::-1]
    # A fresh listing shows the new order.
    fresh = await list_all(mine)
    assert [c["id"] for c in fresh][:2] == [ordered[1], ordered[-1]]

    assert await refused(mine, {"type": "conversations.list", "before": "garbage"}) == "bad_request"
    assert await refused(mine, {"type": "conversations.list", "limit": 101}) == "bad_request"
    for client in (mine, a, b):
        await client.close()


async def test_history_pages_newest_first_without_overlap_or_gap(system: System) -> None:
    ann, bob = unique("ann"), unique("bob")
    a = await Client.connect(system.ws_url, ann)
    b = await Client.connect(system.ws_url, bob)

    async def send(client: Client, to: str, n: int) -> None:
        await ok(client, send_frame(to=to, client_msg_id=f"h{n}", body=f"message {n}"))

    # Two writers at once: 120 messages, numbered by the conversation in arrival order.
    await asyncio.gather(
        *(send(a, bob, n) for n in range(0, 120, 2)),
        *(send(b, ann, n) for n in range(1, 120, 2)),
    )
    conversation = (await ok(a, {"type": "conversations.list"}))["conversations"][0]["id"]

    pages = []
    frame = {"type": "history", "conversation_id": conversation}
    while True:
        page = await ok(b, frame)
        pages.append([m["seq"] for m in page["messages"]])
        if not page["has_more"]:
            break
        frame = {**frame, "before_seq": page["messages"][-1]["seq"]}
    assert [len(p) for p in pages] == [50, 50, 20]
    assert [seq for p in pages for seq in p] == list(range(120, 0, -1))

    small = await ok(a, {**frame, "before_seq": 5, "limit": 3})
    assert [m["seq"] for m in small["messages"]] == [4, 3, 2] and small["has_more"] is True
    assert await refused(a, {**frame, "limit": 201}) == "bad_request"
    stranger = await Client.connect(system.ws_url, unique("eve"))
    assert await refused(stranger, frame) == "forbidden"
    for client in (a, b, stranger):
        await client.close()
