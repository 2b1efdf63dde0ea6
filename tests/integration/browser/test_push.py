"""The push service worker (clients/js/src/sw.ts) shows what a Web Push carries. The push is
delivered through Chromium's DevTools protocol (``ServiceWorker.deliverPushMessage``): the
payload the notifier encrypts and sends arrives at the worker exactly like this, while the
browser's own push service is out of reach here (and the notifier's push is not on main yet)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from playwright.async_api import Browser

from tests.integration.browser.demo import demo_url
from tests.integration.harness import ServiceProcess, seconds, unique

SHOWN = """navigator.serviceWorker.ready
    .then(r => r.getNotifications())
    .then(ns => ns.map(n => ({title: n.title, body: n.body, tag: n.tag, url: n.data.url})))"""


def _payload(notification_id: str, body: str, count: int) -> str:
    notification = {
        "id": notification_id,
        "kind": "message",
        "title": "Bob",
        "body": body,
        "data": {"conversation_id": "dm_1", "sender_id": "bob", "message_id": "m", "count": count},
        "created_at": "2026-11-30T12:00:00Z",
    }
    return orjson.dumps({"notification": notification, "unread_count": 1}).decode()


async def test_a_push_is_shown_once_per_conversation_with_a_link_to_it(
    browser: Browser, web_gateway: ServiceProcess
) -> None:
    origin = f"http://127.0.0.1:{web_gateway.port}"
    context = await browser.new_context()
    try:
        await context.grant_permissions(["notifications"], origin=origin)
        page = await context.new_page()
        await page.goto(demo_url(web_gateway, user=unique("pushed")))
        devtools = await context.new_cdp_session(page)
        registrations: dict[str, str] = {}

        def updated(event: dict[str, Any]) -> None:
            for registration in event["registrations"]:
                registrations[registration["scopeURL"]] = registration["registrationId"]

        devtools.on("ServiceWorker.workerRegistrationUpdated", updated)
        await devtools.send("ServiceWorker.enable")
        scope = await page.evaluate(
            "navigator.serviceWorker.register('sw.js')"
            ".then(r => navigator.serviceWorker.ready.then(() => r.scope))"
        )
        assert scope == f"{origin}/dev/"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds(10)
        while scope not in registrations:
            assert loop.time() < deadline, "the registration never showed in DevTools"
            await asyncio.sleep(0.05)

        for body, count in (("first message", 1), ("second message", 2)):
            await devtools.send(
                "ServiceWorker.deliverPushMessage",
                {
                    "origin": origin,
                    "registrationId": registrations[scope],
                    "data": _payload("n1", body, count),
                },
            )
            await page.wait_for_function(
                f"body => {SHOWN}.then(ns => ns.length === 1 && ns[0].body === body)", arg=body
            )
        [shown] = await page.evaluate(SHOWN)
        assert shown == {
            "title": "Bob",
            "body": "second message",
            "tag": "conversation:dm_1",
            "url": f"{origin}/dev/?conversation=dm_1&notification=n1",
        }
    finally:
        await context.close()
