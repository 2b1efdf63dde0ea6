"""When the server ends a page's connection for good, and a read on one of the user's devices.

- 4010: a gateway capped at one connection per user; the user's phone connects and the page
  (the older connection) is replaced. The SDK stays closed whatever happens in the browser,
  shows why, and connects again only when the user clicks "Reconnect here" (which replaces
  the phone in turn); what arrived meanwhile is synced.
- 4003: the real ``erase-user`` erases the user of two open tabs: both show the end, their
  stores are emptied, the SDK's IndexedDB database is deleted, nothing reconnects.
- A conversation read on the phone clears its unread count on the laptop, live.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, expect

from tests.integration.browser.demo import Demo, serve_demo, wait_connections
from tests.integration.conversations import poll
from tests.integration.erasure import erase_user
from tests.integration.harness import (
    Client,
    ServiceProcess,
    System,
    metric_value,
    of_type,
    seconds,
    send_frame,
    unique,
    ws_url,
)


@asynccontextmanager
async def _demo_gateway(system: System, name: str, **env: str) -> AsyncIterator[ServiceProcess]:
    """A gateway of the test deployment serving the demo, with settings of its own."""
    gateway = system.extra_gateway(name)
    serve_demo(gateway, **env)
    gateway.start()
    try:
        await gateway.wait_ready()
        yield gateway
    finally:
        gateway.stop()


async def _hellos(gateway: ServiceProcess) -> float:
    """Connections the gateway accepted so far (each one gets one ``hello``)."""
    return await metric_value(gateway, "realtime_frames_out", type="hello")


async def _stays_closed(
    context: BrowserContext, demos: list[Demo], gateway: ServiceProcess
) -> None:
    """Give the SDK every reason it has to reconnect at once (the network cut and back, the
    tab visible again), then watch for a while that it does not.

    The watch is the one fixed wait of these tests: nothing can signal a reconnection that
    does not happen. An SDK that reconnects does so at once on these events (and within its
    first backoff step, 0.5 s, after any close), well inside the window.
    """
    hellos = await _hellos(gateway)
    await context.set_offline(True)
    await context.set_offline(False)
    for demo in demos:
        await demo.page.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds(3)
    while loop.time() < until:
        assert await _hellos(gateway) == hellos, "the SDK reconnected"
        for demo in demos:
            assert await demo.page.locator("#status").get_attribute("data-status") == "ended"
        await asyncio.sleep(0.1)


async def test_a_page_replaced_by_a_newer_connection_waits_for_the_user_to_reconnect(
    browser: Browser, system: System, screenshots: Path
) -> None:
    rita, sam = unique("rita"), unique("sam")
    peer = await Client.connect(system.ws_url, sam)
    context = await browser.new_context()
    phone: Client | None = None
    try:
        async with _demo_gateway(system, "gw-one-per-user", MAX_CONNECTIONS_PER_USER="1") as gw:
            # Two tabs share one connection: within the cap.
            demos = [await Demo.open(context, gw, user=rita) for _ in range(2)]
            await wait_connections(gw, 1)

            # Rita's phone connects: the page's connection is the oldest and makes room.
            phone = await Client.connect(ws_url(gw.port), rita)
            for demo in demos:
                await demo.wait_status("ended")
                ended = demo.page.locator("#ended")
                await expect(ended).to_be_visible()
                await expect(ended).to_have_attribute("data-reason", "connection.replaced")
                await expect(demo.page.locator("#reconnect-here")).to_be_visible()
                await expect(demo.page.locator("#app")).to_be_visible()
            assert await metric_value(gw, "realtime_gateway_closes", code="4010") == 1
            await demos[0].page.screenshot(path=str(screenshots / "ended-replaced.png"))
            await _stays_closed(context, demos, gw)
            assert (await phone.request({"type": "ping"}))["type"] == "pong", "phone kept"

            # Meanwhile Sam writes; Rita chooses this page again: it connects and syncs, and
            # the phone, the oldest now, makes room.
            sent = await peer.request(send_frame(to=rita, client_msg_id=unique("m"), body="s1"))
            assert sent["type"] == "ack", sent
            await demos[1].page.click("#reconnect-here")
            for demo in demos:
                await demo.wait_status("open")
                await expect(demo.page.locator("#ended")).to_be_hidden()
            replaced = phone

            async def phone_closed() -> bool:
                return replaced.closed

            await poll(phone_closed, bool, seconds(20))
            assert replaced.ws.close_code == 4010
            await wait_connections(gw, 1)
            await demos[0].open_chat_with(sam)
            await demos[0].wait_bodies(["s1"])
    finally:
        await context.close()
        await peer.close()
        if phone is not None:
            await phone.close()


@pytest.mark.parametrize("tabs", ["shared-worker", "leader"])
async def test_an_erased_users_pages_forget_everything_and_never_reconnect(
    browser: Browser, web_gateway: ServiceProcess, system: System, screenshots: Path, tabs: str
) -> None:
    erin, fay = unique("erin"), unique("fay")
    peer = await Client.connect(system.ws_url, fay)
    context = await browser.new_context()
    try:
        demos = [await Demo.open(context, web_gateway, user=erin, tabs=tabs) for _ in range(2)]
        sent = await peer.request(send_frame(to=erin, client_msg_id=unique("m"), body="hi erin"))
        assert sent["type"] == "ack", sent
        await demos[0].open_chat_with(fay)
        await demos[0].send("hi fay")
        await demos[0].wait_message_status("hi fay", "sent")
        await demos[1].open_chat_with(fay)
        await demos[1].wait_bodies(["hi erin", "hi fay"])
        # What the browser keeps of Erin: her database, her two messages' cursor in it.
        await poll(
            lambda: demos[0].persisted_cursor(erin), lambda c: c.get("chat", 0) >= 2, seconds(20)
        )
        assert f"realtime:{erin}" in await demos[1].databases()
        closes = await metric_value(web_gateway, "realtime_gateway_closes", code="4003")

        code, lines = await erase_user(system, erin)
        assert code == 0, lines

        for demo in demos:
            await demo.wait_status("ended")
            ended = demo.page.locator("#ended")
            await expect(ended).to_have_attribute("data-reason", "account.erased")
            await expect(demo.page.locator("#reconnect-here")).to_be_hidden()
            await expect(demo.page.locator("#app")).to_be_hidden()
            # Every tab's stores are empty: the list and the open chat render nothing.
            await expect(demo.page.locator("#conversations li")).to_have_count(0)
            await expect(demo.page.locator("#messages li")).to_have_count(0)
        assert await metric_value(web_gateway, "realtime_gateway_closes", code="4003") == closes + 1
        await demos[0].page.screenshot(path=str(screenshots / "ended-erased.png"))
        # The database is deleted, not emptied (listed from each tab: one origin, one list).
        for demo in demos:
            await poll(demo.databases, lambda names: f"realtime:{erin}" not in names, seconds(20))
        await _stays_closed(context, demos, web_gateway)
        for demo in demos:
            assert f"realtime:{erin}" not in await demo.databases(), "nothing recreated it"
    finally:
        await context.close()
        await peer.close()


async def test_reading_on_one_device_clears_the_unread_count_on_the_other(
    browser: Browser, web_gateway: ServiceProcess, system: System
) -> None:
    gus, hal = unique("gus"), unique("hal")
    peer = await Client.connect(system.ws_url, hal)
    phone_context, laptop_context = await browser.new_context(), await browser.new_context()
    try:
        phone = await Demo.open(phone_context, web_gateway, user=gus)
        laptop = await Demo.open(laptop_context, web_gateway, user=gus)
        first = await peer.request(send_frame(to=gus, client_msg_id=unique("m"), body="one"))
        assert first["type"] == "ack", first
        conversation = first["message"]["conversation_id"]
        assert (await peer.request(send_frame(to=gus, client_msg_id=unique("m"), body="two")))[
            "type"
        ] == "ack"
        for demo in (phone, laptop):
            await expect(demo.unread_badge(conversation)).to_have_attribute("data-unread", "2")
        _, _, synced_at = await laptop.last_sync()

        # Gus reads it on his phone: the laptop's count clears, live.
        await phone.open_chat(conversation)
        await expect(phone.unread_badge(conversation)).to_have_count(0)
        await expect(laptop.unread_badge(conversation)).to_have_count(0)
        read = await peer.take(of_type("message.status", status="read"))
        assert (read["user_id"], read["up_to_seq"]) == (gus, 2)
        # Not from a reconnection's sync and list: the laptop stayed connected throughout.
        assert (await laptop.last_sync())[2] == synced_at
        assert await laptop.page.locator("#status").get_attribute("data-status") == "open"
        # The read is a durable frame of Gus's own stream (sync replays it), and the laptop's
        # cursor took it in.
        replay = await Client.connect(system.ws_url, gus)
        try:
            synced = await replay.request({"type": "sync", "cursor": {}})
        finally:
            await replay.close()
        (own,) = [
            f for f in synced["events"] if f["type"] == "message.status" and f["user_id"] == gus
        ]
        assert (own["conversation_id"], own["status"], own["up_to_seq"]) == (
            conversation,
            "read",
            2,
        )
        await poll(
            laptop.held_cursor, lambda cursor: cursor.get("chat", 0) >= own["seq"], seconds(20)
        )
    finally:
        await phone_context.close()
        await laptop_context.close()
        await peer.close()
