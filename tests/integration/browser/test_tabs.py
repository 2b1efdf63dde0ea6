"""One user, three tabs: one WebSocket reaches the gateway, every tab updates, and closing the
tab that opened the connection (the leader, in the fallback mode) loses nothing."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.integration.browser.demo import Demo, wait_connections
from tests.integration.harness import (
    Client,
    ServiceProcess,
    System,
    of_type,
    send_frame,
    unique,
)


async def _modes(demos: list[Demo]) -> list[str]:
    return sorted([await d.page.locator("#mode").get_attribute("data-mode") or "" for d in demos])


@pytest.mark.parametrize("tabs", ["shared-worker", "leader"])
async def test_three_tabs_share_one_socket_and_survive_the_first_closing(
    browser: Browser, web_gateway: ServiceProcess, system: System, tabs: str
) -> None:
    carol, dave = unique("carol"), unique("dave")
    # Dave talks from a plain WebSocket on the System's own gateway: the browser gateway then
    # holds Carol's connections only.
    peer = await Client.connect(system.ws_url, dave)
    context = await browser.new_context()
    try:
        first = await Demo.open(context, web_gateway, user=carol, tabs=tabs)
        if tabs == "leader":
            await expect(first.page.locator("#mode")).to_have_attribute("data-mode", "leader")
        others = [await Demo.open(context, web_gateway, user=carol, tabs=tabs) for _ in range(2)]
        pages = [first, *others]
        for demo in others:
            expected_mode = "follower" if tabs == "leader" else "shared-worker"
            await expect(demo.page.locator("#mode")).to_have_attribute("data-mode", expected_mode)
        await wait_connections(web_gateway, 1)

        # Every tab shows what arrives, and what any tab sends.
        answer = await peer.request(send_frame(to=carol, client_msg_id=unique("m"), body="d1"))
        assert answer["type"] == "ack", answer
        for demo in pages:
            await demo.open_chat_with(dave)
        await others[1].send("c1")
        for demo in pages:
            await demo.wait_bodies(["d1", "c1"])
        await peer.take(of_type("message.new", message_body="c1"))

        # The tab that opened the connection goes; messages keep flowing both ways meanwhile.
        await first.page.close()
        answer = await peer.request(send_frame(to=carol, client_msg_id=unique("m"), body="d2"))
        assert answer["type"] == "ack", answer
        await others[0].send("c2")
        for demo in others:
            await demo.wait_bodies(["d1", "c1", "d2", "c2"])
            await demo.wait_message_status("c2", "sent")
        got = await peer.take(of_type("message.new", message_body="c2"))
        await peer.settle()
        assert not peer.matching(of_type("message.new", message_body="c2")), "c2 arrived twice"
        assert got["message"]["sender_id"] == carol
        await wait_connections(web_gateway, 1)
        if tabs == "leader":
            # One of the two remaining tabs took the lock over and holds the connection now.
            assert await _modes(others) == ["follower", "leader"]
    finally:
        await context.close()
        await peer.close()
