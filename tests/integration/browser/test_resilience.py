"""The SDK keeps its promises through failures: a gateway restarted or SIGKILLed while both
users send, a page whose network is cut, a reload."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from playwright.async_api import Browser

from tests.integration.browser.demo import Demo, wait_connections
from tests.integration.conversations import poll
from tests.integration.harness import (
    Client,
    ServiceProcess,
    System,
    of_type,
    seconds,
    send_frame,
    unique,
)


@pytest.mark.parametrize("how", ["restart", "sigkill"])
async def test_gateway_restart_while_both_send_shows_every_message_once_in_order(
    browser: Browser, web_gateway: ServiceProcess, how: str
) -> None:
    alice, bob = unique("alice"), unique("bob")
    alice_context, bob_context = await browser.new_context(), await browser.new_context()
    try:
        a = await Demo.open(alice_context, web_gateway, user=alice)
        b = await Demo.open(bob_context, web_gateway, user=bob)
        await a.open_chat(f"@{bob}")
        await a.send("a0")
        await b.open_chat_with(alice)
        await b.send("b0")
        await a.wait_bodies(["a0", "b0"])

        for round_ in range(1, 3):
            await a.send(f"a{round_}")
            await b.send(f"b{round_}")
        if how == "restart":
            web_gateway.stop()
        else:
            web_gateway.kill()
        # Sent while the gateway is gone: pending in the outbox.
        await a.send("a3")
        await b.send("b3")
        await a.wait_message_status("a3", "pending")
        await b.wait_message_status("b3", "pending")
        web_gateway.start()
        await web_gateway.wait_ready()
        await a.send("a4")
        await b.send("b4")

        expected = {f"a{i}" for i in range(5)} | {f"b{i}" for i in range(5)}
        for demo in (a, b):
            await demo.wait_status("open")
            await demo.page.wait_for_function(
                """expected => {
                    const lines = [...document.querySelectorAll('#messages li')];
                    return lines.length === expected.length
                        && lines.every(e => e.dataset.seq !== '');
                }""",
                arg=sorted(expected),
            )
        lines_a, lines_b = await a.messages(), await b.messages()
        assert [line["body"] for line in lines_a] == [line["body"] for line in lines_b]
        assert sorted(line["body"] for line in lines_a) == sorted(expected), "each exactly once"
        for lines in (lines_a, lines_b):
            seqs = [int(line["seq"]) for line in lines]
            assert seqs == list(range(1, len(expected) + 1)), "in conversation order, no holes"
            for who in "ab":
                own = [line["body"] for line in lines if line["body"].startswith(who)]
                assert own == [f"{who}{i}" for i in range(5)], "each sender's order kept"
    finally:
        await alice_context.close()
        await bob_context.close()


async def test_a_message_sent_offline_is_pending_then_delivered_once(
    browser: Browser, web_gateway: ServiceProcess, system: System
) -> None:
    erin, frank = unique("erin"), unique("frank")
    peer = await Client.connect(system.ws_url, frank)
    context = await browser.new_context()
    try:
        e = await Demo.open(context, web_gateway, user=erin)
        await e.open_chat(f"@{frank}")
        await context.set_offline(True)
        await e.wait_status("offline")
        await e.send("sent while offline")
        await e.wait_message_status("sent while offline", "pending")
        await peer.settle()
        assert not peer.matching(of_type("message.new")), "nothing left the page while offline"

        await context.set_offline(False)
        await e.wait_message_status("sent while offline", "sent")
        got = await peer.take(of_type("message.new", message_body="sent while offline"))
        assert got["message"]["sender_id"] == erin
        await peer.settle()
        assert not peer.matching(of_type("message.new")), "delivered once"
        assert await e.bodies() == ["sent while offline"]
    finally:
        await context.close()
        await peer.close()


async def _settled_cursor(system: System, demo: Demo, user: str) -> dict[str, int]:
    """The page's cursor once it holds every durable frame of the user.

    Opening a chat reads it, and the notifier then appends a ``notification.read`` to the
    user's notifications stream: wait until that is applied (nothing unread) and the page holds
    the last seq of both streams, so no frame is still on its way.
    """
    deadline = asyncio.get_running_loop().time() + seconds(20)
    while True:
        conn = await asyncpg.connect(system.database_url)
        try:
            row = await conn.fetchrow(
                "SELECT (SELECT last_seq FROM chat.user_streams WHERE user_id = $1) AS chat,"
                " (SELECT last_seq FROM notifier.user_streams WHERE user_id = $1) AS notes,"
                " (SELECT unread FROM notifier.inbox WHERE user_id = $1) AS unread",
                user,
            )
        finally:
            await conn.close()
        assert row is not None
        server = {"chat": row["chat"] or 0, "notifications": row["notes"] or 0}
        held = await demo.held_cursor()
        if not row["unread"] and held == server:
            return held
        assert asyncio.get_running_loop().time() < deadline, f"{held} never became {server}"
        await asyncio.sleep(0.05)


async def test_a_reload_resumes_from_the_cursor_in_indexeddb(
    browser: Browser, web_gateway: ServiceProcess, system: System
) -> None:
    gina, hal = unique("gina"), unique("hal")
    peer = await Client.connect(system.ws_url, hal)
    context = await browser.new_context()
    try:
        g = await Demo.open(context, web_gateway, user=gina)
        first_sync = await g.last_sync()
        assert first_sync[0] == {}, "a first visit syncs from the beginning"
        for body in ("one", "two"):
            answer = await peer.request(send_frame(to=gina, client_msg_id=unique("m"), body=body))
            assert answer["type"] == "ack", answer
        await g.open_chat_with(hal)
        await g.wait_bodies(["one", "two"])
        held = await _settled_cursor(system, g, gina)
        assert held.get("chat", 0) >= 2
        await poll(lambda: g.persisted_cursor(gina), lambda c: c == held, seconds(20))

        # Every tab of the user closes, a message arrives meanwhile. (The SharedWorker may
        # outlive its last tab a moment: wait until its connection is gone.)
        await g.page.close()
        await wait_connections(web_gateway, 0)
        answer = await peer.request(send_frame(to=gina, client_msg_id=unique("m"), body="three"))
        assert answer["type"] == "ack", answer
        g = await Demo.open(context, web_gateway, user=gina)
        await g.open_chat_with(hal)
        await g.wait_bodies(["one", "two", "three"])
        cursor, events, _ = await g.last_sync()
        assert cursor == held, "the sync started from the cursor kept in IndexedDB"
        assert events >= 1
        assert events < held["chat"] + 1, "only what is new was fetched"

        # A reload shows what was stored at once and resumes from the persisted cursor.
        before = await _settled_cursor(system, g, gina)
        await poll(lambda: g.persisted_cursor(gina), lambda c: c == before, seconds(20))
        await g.page.reload()
        await g.open_chat_with(hal)
        await g.wait_bodies(["one", "two", "three"])
        await g.wait_status("open")
        assert await g.held_cursor() == before
        cursor, events, _ = await g.last_sync()
        assert (cursor, events) == (before, 0), "resumed from IndexedDB; nothing new to fetch"
    finally:
        await context.close()
        await peer.close()
