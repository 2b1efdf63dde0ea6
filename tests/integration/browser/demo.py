"""Driving the SDK demo page (clients/js/demo) from tests: what a person sees and does."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

from playwright.async_api import (
    BrowserContext,
    Locator,
    Page,
    TimeoutError as PlaywrightTimeoutError,
    expect,
)

from tests.integration.harness import ALLOWED_ORIGIN, ServiceProcess, metric_value, seconds

#: Playwright timeouts in ms, scaled like every other wait of the tests.
TIMEOUT_MS = seconds(20) * 1000


async def wait_connections(gateway: ServiceProcess, expected: int) -> None:
    """Until the gateway counts exactly ``expected`` open WebSockets."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds(20)
    while await metric_value(gateway, "realtime_gateway_connections") != expected:
        assert loop.time() < deadline, f"the gateway never counted {expected} connections"
        await asyncio.sleep(0.1)


def serve_demo(gateway: ServiceProcess, **env: str) -> None:
    """Configure a gateway not started yet to serve the demo at /dev/ and mint development
    tokens (its own origin allowed), with ``env`` on top."""
    gateway.env = {
        **gateway.env,
        "GATEWAY_DEV_PAGE": "1",
        "GATEWAY_DEV_TOKENS": "1",
        "GATEWAY_ALLOWED_ORIGINS": f"{ALLOWED_ORIGIN},http://127.0.0.1:{gateway.port}",
        **env,
    }


def demo_url(gateway: ServiceProcess, host: str = "127.0.0.1", **params: str) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"http://{host}:{gateway.port}/dev/?{query}"


@dataclass
class Demo:
    """One tab of the demo."""

    page: Page

    @classmethod
    async def open(
        cls, context: BrowserContext, gateway: ServiceProcess, *, wait: bool = True, **params: str
    ) -> Demo:
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(demo_url(gateway, **params))
        demo = cls(page)
        if wait:
            await demo.wait_status("open")
        return demo

    async def wait_status(self, status: str) -> None:
        await expect(self.page.locator("#status")).to_have_attribute(
            "data-status", status, timeout=TIMEOUT_MS
        )

    async def open_chat(self, key: str) -> None:
        """Open a chat by conversation id, or ``@user`` for a direct one."""
        if key.startswith("@"):
            await self.page.fill("#new-chat input", key[1:])
            await self.page.click("#new-chat button")
        else:
            await self.page.click(f'#conversations li[data-chat="{key}"]')

    async def open_chat_with(self, peer: str) -> None:
        """Open the direct chat with ``peer`` from the conversation list."""
        await self.page.click(f'#conversations li[data-peer="{peer}"]', timeout=TIMEOUT_MS)

    async def send(self, body: str) -> None:
        await self.page.fill("#text", body)
        await self.page.click("#send")

    async def create_group(self, title: str, members: list[str]) -> str:
        """Create a group from the form; returns its id (the page opens it)."""
        await self.page.fill('#new-group input[name="title"]', title)
        await self.page.fill('#new-group input[name="members"]', ", ".join(members))
        await self.page.click("#new-group button")
        await expect(self.page.locator("#chat")).to_have_attribute("data-chat", re.compile("^grp_"))
        return await self.page.locator("#chat").get_attribute("data-chat") or ""

    def conversation(self, conversation_id: str) -> Locator:
        """The conversation's entry in the list."""
        return self.page.locator(f'#conversations li[data-chat="{conversation_id}"]')

    async def listed(self) -> list[str]:
        """The conversation list's ids, top to bottom."""
        ids: list[str] = await self.page.eval_on_selector_all(
            "#conversations li", "els => els.map(e => e.dataset.chat)"
        )
        return ids

    async def wait_listed(self, expected: list[str]) -> None:
        """Until the conversation list shows exactly these conversations, in this order."""
        await self.page.wait_for_function(
            """expected => JSON.stringify([...document.querySelectorAll('#conversations li')]
                .map(e => e.dataset.chat)) === JSON.stringify(expected)""",
            arg=expected,
            timeout=TIMEOUT_MS,
        )

    def unread_badge(self, conversation_id: str) -> Locator:
        return self.conversation(conversation_id).locator(".unread-badge")

    def line(self, body: str) -> Locator:
        """The chat window's line showing ``body``."""
        return self.page.locator("#messages li").filter(
            has=self.page.locator(".body", has_text=re.compile(f"^{re.escape(body)}$"))
        )

    async def message_action(self, body: str, action: str) -> None:
        """Click one of a line's actions (reply, react, edit, delete): shown on hover."""
        line = self.line(body)
        await line.hover()
        await line.locator(f'button[data-action="{action}"]').click()

    async def member_action(self, user: str, action: str) -> None:
        """Click an admin's action on a member of the open group (role, remove)."""
        await self.page.click(f'#members li[data-user="{user}"] button[data-action="{action}"]')

    async def messages(self) -> list[dict[str, Any]]:
        """The chat window's lines, top to bottom."""
        result: list[dict[str, Any]] = await self.page.eval_on_selector_all(
            "#messages li",
            """els => els.map(e => ({
                body: e.querySelector('.body').textContent,
                status: e.dataset.status,
                seq: e.dataset.seq,
                mine: e.classList.contains('mine'),
                client_msg_id: e.dataset.clientMsgId,
            }))""",
        )
        return result

    async def bodies(self) -> list[str]:
        return [line["body"] for line in await self.messages()]

    async def wait_bodies(self, expected: list[str]) -> None:
        """Until the chat window shows exactly these lines, in this order."""
        try:
            await self.page.wait_for_function(
                """expected => {
                    const shown = [...document.querySelectorAll('#messages li .body')]
                        .map(e => e.textContent);
                    return JSON.stringify(shown) === JSON.stringify(expected);
                }""",
                arg=expected,
                timeout=TIMEOUT_MS,
            )
        except PlaywrightTimeoutError:
            shown = await self.messages()
            raise AssertionError(f"expected lines {expected}, the page shows {shown}") from None

    async def wait_message_status(self, body: str, status: str) -> None:
        await self.page.wait_for_function(
            """([body, status]) => [...document.querySelectorAll('#messages li')].some(
                e => e.querySelector('.body').textContent === body
                    && e.dataset.status === status)""",
            arg=[body, status],
            timeout=TIMEOUT_MS,
        )

    async def last_sync(self) -> tuple[dict[str, int], int, str]:
        """The cursor the last sync asked from, how many frames it brought, and when."""
        footer = self.page.locator("#sync-info")
        cursor = json.loads(await footer.get_attribute("data-cursor") or "{}")
        events = int(await footer.get_attribute("data-events") or "0")
        return cursor, events, await footer.get_attribute("data-at") or ""

    async def persisted_cursor(self, key: str) -> dict[str, int]:
        """The cursor saved in this browser's IndexedDB for the SDK key ``key``."""
        cursor: dict[str, int] = await self.page.evaluate(
            """key => new Promise((resolve, reject) => {
                const open = indexedDB.open('realtime:' + key);
                open.onerror = () => reject(open.error);
                open.onsuccess = () => {
                    const store = open.result.transaction('state').objectStore('state');
                    const read = store.get('state');
                    read.onsuccess = () => {
                        open.result.close();
                        resolve(read.result?.cursor ?? {});
                    };
                    read.onerror = () => reject(read.error);
                };
            })""",
            key,
        )
        return cursor

    async def databases(self) -> list[str]:
        """The names of the page's IndexedDB databases (listing them opens, so creates, none)."""
        names: list[str] = await self.page.evaluate(
            "async () => (await indexedDB.databases()).map((d) => d.name)"
        )
        return names

    async def held_cursor(self) -> dict[str, int]:
        """The cursor the SDK holds now."""
        held: dict[str, int] = json.loads(
            await self.page.locator("#sync-info").get_attribute("data-held") or "{}"
        )
        return held
