"""Web Push in the browser, as far as Chromium allows here.

Chromium cannot make a push subscription on this machine: its push service is Google's (FCM),
out of reach, so ``pushManager.subscribe`` fails at once in an off-the-record context (every
Playwright context: "AbortError: Registration failed - permission denied") and never settles
in a regular profile. Everything around that one step is real: ``enablePush()`` in the demo
(permission, the service worker, the VAPID key from hello, ``push.subscribe``) with the
browser's subscription made by the test on a fake push service (real P-256 keys); the
notifier storing it and pushing an encrypted message to it while the user is away (the fake
service checks the VAPID signature and decrypts with the browser's key); the decrypted payload
handed to the real service worker through DevTools (``ServiceWorker.deliverPushMessage``: what
Chromium does after decrypting a push), which shows it; and a click, synthesized in the worker
(nothing can click a system notification in a headless browser; a synthesized event has no
user activation, so focusing is refused and opening a new window is not tried), which tells
the open page, and the page opens the conversation.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import orjson
from playwright.async_api import Browser, BrowserContext, CDPSession, Page, expect

from tests.integration.browser.demo import Demo, demo_url
from tests.integration.harness import (
    Client,
    ServiceProcess,
    System,
    seconds,
    send_frame,
    unique,
)
from tests.integration.notifications import fetch, wait_connected
from tests.integration.push_service import FakePushService, until as holds

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


#: Stands in for the browser's push service in the page: ``subscribe`` answers with the
#: subscription the test made, and keeps what the SDK asked with.
STAND_IN = """subscription => {
    let held = null;
    window.subscribedWith = null;
    PushManager.prototype.getSubscription = async function () { return held; };
    PushManager.prototype.subscribe = async function (options) {
        window.subscribedWith = {
            userVisibleOnly: options.userVisibleOnly,
            key: Array.from(new Uint8Array(options.applicationServerKey)),
        };
        held = {endpoint: subscription.endpoint, expirationTime: null, toJSON: () => subscription};
        return held;
    };
}"""

#: A click on the shown notification, dispatched in the service worker.
CLICK = """async () => {
    const [shown] = await self.registration.getNotifications();
    self.dispatchEvent(new NotificationEvent("notificationclick", {notification: shown}));
}"""


async def _push_registration(
    context: BrowserContext, page: Page, scope: str
) -> tuple[CDPSession, str]:
    """DevTools on ``page`` and the registration id of the service worker of ``scope``."""
    devtools = await context.new_cdp_session(page)
    registrations: dict[str, str] = {}

    def updated(event: dict[str, Any]) -> None:
        for registration in event["registrations"]:
            registrations[registration["scopeURL"]] = registration["registrationId"]

    devtools.on("ServiceWorker.workerRegistrationUpdated", updated)
    await devtools.send("ServiceWorker.enable")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds(10)
    while scope not in registrations:
        assert loop.time() < deadline, "the registration never showed in DevTools"
        await asyncio.sleep(0.05)
    return devtools, registrations[scope]


async def test_a_push_is_shown_once_per_conversation_with_a_link_to_it(
    browser: Browser, web_gateway: ServiceProcess
) -> None:
    origin = f"http://127.0.0.1:{web_gateway.port}"
    context = await browser.new_context()
    try:
        await context.grant_permissions(["notifications"], origin=origin)
        page = await context.new_page()
        await page.goto(demo_url(web_gateway, user=unique("pushed")))
        scope = await page.evaluate(
            "navigator.serviceWorker.register('sw.js')"
            ".then(r => navigator.serviceWorker.ready.then(() => r.scope))"
        )
        assert scope == f"{origin}/dev/"
        devtools, registration = await _push_registration(context, page, scope)
        for body, count in (("first message", 1), ("second message", 2)):
            await devtools.send(
                "ServiceWorker.deliverPushMessage",
                {
                    "origin": origin,
                    "registrationId": registration,
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


async def test_enable_push_then_a_message_while_away_is_pushed_shown_and_clicked(
    browser: Browser, web_gateway: ServiceProcess, system: System
) -> None:
    fake = FakePushService(vapid_public_key=system.vapid_public_key)
    await fake.start()
    user, sender = unique("pushed"), unique("sender")
    subscription = fake.subscribe()
    origin = f"http://127.0.0.1:{web_gateway.port}"
    context = await browser.new_context()
    peer: Client | None = None
    try:
        await context.grant_permissions(["notifications"], origin=origin)
        await context.add_init_script(f"({STAND_IN})({json.dumps(subscription.to_json())})")

        # The bell's button: permission, the service worker, a subscription with hello's VAPID
        # key, push.subscribe; the notifier stores exactly the browser's keys.
        demo = await Demo.open(context, web_gateway, user=user)
        await demo.page.click("#bell")
        await demo.page.click("#enable-push")
        await expect(demo.page.locator("#push-status")).to_have_attribute("data-state", "on")
        asked = await demo.page.evaluate("window.subscribedWith")
        assert asked["userVisibleOnly"] is True
        vapid = system.vapid_public_key
        assert bytes(asked["key"]) == base64.urlsafe_b64decode(vapid + "=" * (-len(vapid) % 4))
        [stored] = await fetch(
            system,
            "SELECT user_id, p256dh, auth FROM notifier.push_subscriptions WHERE endpoint = $1",
            subscription.endpoint,
        )
        assert (stored["user_id"], bytes(stored["p256dh"]), bytes(stored["auth"])) == (
            user,
            subscription.p256dh,
            subscription.auth,
        )

        # Away (no page left open), a message: the notifier pushes it, encrypted for this browser.
        await demo.page.close()
        await wait_connected(system, user, False)
        peer = await Client.connect(system.ws_url, sender)
        sent = await peer.request(
            send_frame(to=user, client_msg_id=unique("m"), body="are you there?")
        )
        assert sent["type"] == "ack", sent
        conversation = sent["message"]["conversation_id"]
        await holds(lambda: len(fake.pushes_to(subscription.endpoint)) == 1, seconds(30))
        [push] = fake.pushes_to(subscription.endpoint)
        assert push.payload["notification"]["data"]["conversation_id"] == conversation

        # The browser hands the decrypted push to the service worker, which shows it.
        page = (await Demo.open(context, web_gateway, user=user)).page
        devtools, registration = await _push_registration(context, page, f"{origin}/dev/")
        await devtools.send(
            "ServiceWorker.deliverPushMessage",
            {
                "origin": origin,
                "registrationId": registration,
                "data": orjson.dumps(push.payload).decode(),
            },
        )
        await page.wait_for_function(f"() => {SHOWN}.then(ns => ns.length === 1)")
        [shown] = await page.evaluate(SHOWN)
        notification = push.payload["notification"]
        assert shown == {
            "title": notification["title"],
            "body": "are you there?",
            "tag": f"conversation:{conversation}",
            "url": f"{origin}/dev/?conversation={conversation}&notification={notification['id']}",
        }

        # A click: the notification closes, the open page is told and opens the conversation.
        await expect(page.locator("#chat")).not_to_have_attribute("data-chat", conversation)
        [worker] = context.service_workers
        await worker.evaluate(CLICK)
        await expect(page.locator("#chat")).to_have_attribute("data-chat", conversation)
        await page.wait_for_function(f"() => {SHOWN}.then(ns => ns.length === 0)")
    finally:
        await context.close()
        if peer is not None:
            await peer.close()
        await fake.stop()
