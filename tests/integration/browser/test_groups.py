"""Groups and rich messages in the demo, four users in four browser contexts against the real
stack: a group created from the page reaches every member; the list orders by activity and
counts unread messages until they are read; edits, replies, reactions and deletions show on
every member's page (a deleted text is gone after a reload too); admins promote, rename, add
and remove; a member added later pages the history back to the first message; a removed
member's page shows the removal and receives nothing more."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from playwright.async_api import Browser, expect

from tests.integration.browser.demo import TIMEOUT_MS, Demo
from tests.integration.harness import ServiceProcess, metric_value, seconds, unique

PERSISTED = """key => new Promise((resolve, reject) => {
    const open = indexedDB.open('realtime:' + key);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
        const read = open.result.transaction('state').objectStore('state').get('state');
        read.onsuccess = () => { open.result.close(); resolve(JSON.stringify(read.result ?? {})); };
        read.onerror = () => reject(read.error);
    };
})"""


async def _persisted_without(demo: Demo, key: str, text: str) -> None:
    """Until the state this browser saved in IndexedDB holds no ``text`` (and holds some)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds(20)
    while True:
        saved: str = await demo.page.evaluate(PERSISTED, key)
        if '"messages"' in saved and text not in saved:
            return
        assert loop.time() < deadline, "the erased text is still in IndexedDB"
        await asyncio.sleep(0.1)


async def _bad_requests(gateway: ServiceProcess) -> float:
    return await metric_value(gateway, "realtime_errors_total", code="bad_request")


async def test_a_group_from_the_demo_to_a_removed_member(
    browser: Browser, web_gateway: ServiceProcess, screenshots: Path
) -> None:
    ann, bob, cat, dan = (unique(name) for name in ("ann", "bob", "cat", "dan"))
    refused_before = await _bad_requests(web_gateway)
    contexts = [await browser.new_context() for _ in range(4)]
    try:
        # Ann's list comes a conversation per page, to page it later.
        a = await Demo.open(contexts[0], web_gateway, user=ann, page="1")
        b = await Demo.open(contexts[1], web_gateway, user=bob)
        c = await Demo.open(contexts[2], web_gateway, user=cat)
        await expect(a.page.locator("#search")).to_be_visible()

        # A direct chat first, so the group is not the only thing in Bob's list.
        await a.open_chat(f"@{bob}")
        await a.send("hi bob")
        await a.wait_message_status("hi bob", "delivered")
        direct = await a.page.locator("#chat").get_attribute("data-chat") or ""
        assert direct.startswith("dm_")

        # Created from the form: every member's list shows it, the newest activity first.
        group = await a.create_group("Launch", [bob, cat])
        for demo in (a, b, c):
            await expect(demo.conversation(group).locator(".name")).to_contain_text("Launch")
        await b.wait_listed([group, direct])
        await a.send("hello team")
        for demo in (b, c):
            await expect(demo.unread_badge(group)).to_have_attribute("data-unread", "1")

        # Ann writes to Bob directly: that conversation moves up, with both its unread messages.
        await a.open_chat(direct)
        await a.send("still there?")
        await b.wait_listed([direct, group])
        await expect(b.unread_badge(direct)).to_have_attribute("data-unread", "2")

        # Reading clears the count; the tick turns read once every member read.
        await b.open_chat(group)
        await expect(b.unread_badge(group)).to_have_count(0)
        await expect(b.unread_badge(direct)).to_have_attribute("data-unread", "2")
        await a.open_chat(group)
        await a.wait_message_status("hello team", "delivered")
        await c.open_chat(group)
        await a.wait_message_status("hello team", "read")
        await expect(c.unread_badge(group)).to_have_count(0)

        # An edit, a reply and a reaction show on every member's page.
        await a.message_action("hello team", "edit")
        await a.page.fill("#text", "hello, team!")
        await a.page.click("#send")
        for demo in (a, b, c):
            await expect(demo.line("hello, team!")).to_have_attribute("data-edited", "true")
        await c.message_action("hello, team!", "reply")
        await c.send("on it")
        await b.message_action("on it", "react")
        for demo in (a, b, c):
            line = demo.line("on it")
            await expect(line.locator(".reply")).to_have_text(f"↪ {ann}: hello, team!")
            await expect(line.locator(".reactions")).to_have_text("❤ 1")

        # A deletion: every page shows the line deleted, without its text.
        await b.send("oops, wrong chat")
        await a.line("oops, wrong chat").wait_for()
        erased = await b.line("oops, wrong chat").get_attribute("data-message-id") or ""
        await b.message_action("oops, wrong chat", "delete")
        for demo in (a, b, c):
            deleted = demo.page.locator(f'#messages li[data-message-id="{erased}"]')
            await expect(deleted).to_have_attribute("data-deleted", "true")
            await expect(deleted.locator(".body")).to_have_text("")
        # ...and after a reload: neither the page nor what it stored has the text.
        await _persisted_without(c, cat, "oops, wrong chat")
        await c.page.reload()
        await c.wait_status("open")
        await c.open_chat(group)
        deleted = c.page.locator(f'#messages li[data-message-id="{erased}"]')
        await expect(deleted).to_have_attribute("data-deleted", "true")
        assert "oops, wrong chat" not in await c.page.content()

        # Admins: Ann makes Bob one, who renames the group; every page follows.
        await a.member_action(bob, "role")
        await expect(b.page.locator("#group-panel")).to_have_attribute("data-manage", "true")
        await b.page.fill("#rename input", "Launch crew")
        await b.page.click("#rename button")
        for demo in (a, b, c):
            await expect(demo.page.locator("#chat-title")).to_have_text("Launch crew")

        # Enough messages for three pages of history, then Dan joins.
        # (The page renders a send after the click returns: what it shows is waited for, not read.)
        batch = [f"m{i:02}" for i in range(1, 11)]
        for body in batch:
            await a.send(body)
        everything = ["hello, team!", "on it", "", *batch]
        for demo in (a, b):
            await demo.wait_bodies(everything)
        d = await Demo.open(contexts[3], web_gateway, user=dan, history="5")
        await a.page.fill("#add-members input", dan)
        await a.page.click("#add-members button")
        await d.open_chat(group)
        await d.wait_bodies(["m10"])
        for _ in range(len(everything)):
            if await d.page.locator("#load-older").is_hidden():
                break
            shown = len(await d.bodies())
            await d.page.click("#load-older")
            await d.page.wait_for_function(
                "n => document.querySelectorAll('#messages li').length > n",
                arg=shown,
                timeout=TIMEOUT_MS,
            )
        await d.wait_bodies(everything)
        await expect(d.page.locator("#load-older")).to_be_hidden()
        await expect(d.page.locator(f'#messages li[data-message-id="{erased}"]')).to_have_attribute(
            "data-deleted", "true"
        )
        # Bob writes to Ann directly meanwhile: her bell and that conversation count it.
        await b.open_chat(direct)
        await b.send("see you at 3")
        await expect(a.page.locator("#bell-count")).to_have_attribute("data-count", "1")
        await expect(a.unread_badge(direct)).to_have_attribute("data-unread", "1")
        await a.wait_listed([direct, group])
        await a.page.screenshot(path=str(screenshots / "groups-ann.png"))
        await b.open_chat(group)

        # Cat is removed: the page says so and nothing more of the group arrives.
        await a.member_action(cat, "remove")
        await expect(c.conversation(group)).to_have_attribute("data-left", "true")
        await expect(c.page.locator("#left-note")).to_be_visible()
        await expect(c.page.locator("#text")).to_be_disabled()
        await a.send("after cat left")
        for demo in (b, d):
            await demo.line("after cat left").wait_for()
        await c.page.reload()
        await c.wait_status("open")
        await c.open_chat(group)
        await expect(c.conversation(group)).to_have_attribute("data-left", "true")
        assert "after cat left" not in await c.bodies()
        await expect(c.page.locator("#left-note")).to_be_visible()

        # Ann's list, a conversation per page: the next page comes with the cursor.
        await a.page.reload()
        await a.wait_status("open")
        await expect(a.page.locator("#more-conversations")).to_be_visible()
        await a.page.click("#more-conversations")
        await expect(a.page.locator("#more-conversations")).to_be_hidden()
        await expect(a.page.locator("#action-note")).to_have_text("")
        assert sorted(await a.listed()) == sorted([group, direct])
        held = json.loads(await a.page.locator("#sync-info").get_attribute("data-held") or "{}")
        assert held.get("chat", 0) > 0

        # Every page load connected without a single probe: the SDK reads features from hello.
        assert await _bad_requests(web_gateway) == refused_before
    finally:
        for context in contexts:
            await context.close()
