"""Two users in browser contexts: ticks sent -> delivered -> read, typing and presence show,
the bell counts a message while its conversation is not open, and reading it clears the bell
on every tab and every device of the reader."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, expect

from tests.integration.browser.demo import TIMEOUT_MS, Demo
from tests.integration.harness import ServiceProcess, unique


async def test_ticks_typing_presence_and_bell(
    browser: Browser, web_gateway: ServiceProcess, screenshots: Path
) -> None:
    alice, bob = unique("alice"), unique("bob")
    alice_context, bob_context = await browser.new_context(), await browser.new_context()
    bob_laptop = await browser.new_context()
    try:
        a = await Demo.open(alice_context, web_gateway, user=alice)
        b = await Demo.open(bob_context, web_gateway, user=bob)
        b_tab = await Demo.open(bob_context, web_gateway, user=bob)
        await a.open_chat(f"@{bob}")

        # Bob is online with no chat open: delivered (his SDK acknowledges), not read.
        await a.send("hello bob")
        await a.wait_message_status("hello bob", "delivered")
        conversation = b.page.locator(f'#conversations li[data-peer="{alice}"]')
        await expect(conversation.locator(".unread-badge")).to_have_attribute("data-unread", "1")
        assert (await a.messages())[0]["status"] == "delivered"

        # The bell counts it while the conversation is not open: live on both tabs, and from
        # notifications.list on a device that opens the page only now.
        laptop = await Demo.open(bob_laptop, web_gateway, user=bob)
        for page in (b, b_tab, laptop):
            await expect(page.page.locator("#bell")).to_have_attribute("data-available", "true")
            await expect(page.page.locator("#bell-count")).to_have_attribute("data-count", "1")
            await expect(page.page.locator("#notifications li.unread")).to_have_count(1)

        # Bob opens it on one tab: read, everywhere the tick is shown, and the bell clears on
        # every tab and device (the notifier's notification.read reaches them all).
        await b.open_chat_with(alice)
        await a.wait_message_status("hello bob", "read")
        await expect(conversation.locator(".unread-badge")).to_have_count(0)
        for page in (b, b_tab, laptop):
            await expect(page.page.locator("#bell-count")).to_have_attribute("data-count", "0")
            await expect(page.page.locator("#notifications li.unread")).to_have_count(0)
        await laptop.page.close()
        await b_tab.page.close()

        # Presence: each sees the other online.
        await expect(a.page.locator("#peer-dot")).to_have_attribute("data-presence", "online")
        await expect(b.page.locator("#peer-dot")).to_have_attribute("data-presence", "online")

        # Typing shows while Bob types, and stops when he sends.
        await b.page.locator("#text").press_sequentially("typing a reply", delay=20)
        await expect(a.page.locator("#typing")).to_have_attribute("data-typing", bob)
        await a.page.screenshot(path=str(screenshots / "two-users-alice.png"))
        await b.page.click("#send")
        await a.wait_bodies(["hello bob", "typing a reply"])
        await expect(a.page.locator("#typing")).to_have_attribute("data-typing", "")
        await b.wait_message_status("typing a reply", "read")
        await b.page.screenshot(path=str(screenshots / "two-users-bob.png"))

        # Bob leaves: Alice sees him offline (after the presence grace period).
        await bob_context.close()
        await bob_laptop.close()
        await expect(a.page.locator("#peer-dot")).to_have_attribute(
            "data-presence", "offline", timeout=TIMEOUT_MS
        )
    finally:
        await alice_context.close()
        await bob_context.close()
        await bob_laptop.close()
