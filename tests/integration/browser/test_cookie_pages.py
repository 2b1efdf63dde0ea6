"""A page of the site signs in with the session cookie the site's NextAuth set (minted by the
real next-auth v4 / @auth/core v5 packages): connected with no token from an allowed origin;
the same cookie from a foreign origin gets 403; a tampered one gets 401."""

from __future__ import annotations

from typing import Literal

import pytest
from playwright.async_api import Browser, BrowserContext, expect

from tests.integration.browser.demo import TIMEOUT_MS, Demo, demo_url
from tests.integration.harness import AUTH_SECRET, ServiceProcess, metric_value, unique
from tests.interop.cookies import mint_cookies, tampered


async def _set_cookies(
    context: BrowserContext, cookies: list[tuple[str, str]], host: str, port: int
) -> None:
    # As the site sets them: HttpOnly, SameSite=Lax, for the whole host.
    await context.add_cookies(
        [
            {
                "name": name,
                "value": value,
                "url": f"http://{host}:{port}/",
                "httpOnly": True,
                "sameSite": "Lax",
            }
            for name, value in cookies
        ]
    )


async def _refused(gateway: ServiceProcess, status: str) -> float:
    return await metric_value(gateway, "realtime_gateway_upgrades_refused", status=status)


@pytest.mark.parametrize("flavor", ["v4", "v5"])
async def test_a_site_session_cookie_signs_the_page_in(
    browser: Browser, web_gateway: ServiceProcess, flavor: Literal["v4", "v5"]
) -> None:
    user = unique(f"site-{flavor}")
    cookies = mint_cookies(flavor, secret=AUTH_SECRET, claims={"sub": user, "name": "Site"})
    context = await browser.new_context()
    try:
        await _set_cookies(context, cookies, "127.0.0.1", web_gateway.port)
        page = await Demo.open(context, web_gateway, auth="cookie")
        await expect(page.page.locator("#me")).to_have_text(f"signed in as {user}")
    finally:
        await context.close()


async def test_the_same_cookie_from_a_foreign_origin_is_403_and_a_tampered_one_401(
    browser: Browser, web_gateway: ServiceProcess
) -> None:
    user = unique("site")
    [(name, value)] = mint_cookies("v5", secret=AUTH_SECRET, claims={"sub": user})
    context = await browser.new_context()
    try:
        # The demo as served to http://localhost:<port>: an origin the gateway does not allow,
        # holding the same session cookie (the browser sends it with the upgrade).
        await _set_cookies(context, [(name, value)], "localhost", web_gateway.port)
        refused_403 = await _refused(web_gateway, "403")
        foreign = await context.new_page()
        await foreign.goto(demo_url(web_gateway, host="localhost", auth="cookie"))
        status = foreign.locator("#status")
        await expect(status).to_have_attribute("data-status", "waiting", timeout=TIMEOUT_MS)
        assert await _refused(web_gateway, "403") > refused_403
        await foreign.close()

        # A tampered cookie on the allowed origin.
        await _set_cookies(context, [(name, tampered(value))], "127.0.0.1", web_gateway.port)
        refused_401 = await _refused(web_gateway, "401")
        page = await Demo.open(context, web_gateway, wait=False, auth="cookie")
        await page.wait_status("waiting")
        assert await _refused(web_gateway, "401") > refused_401
        await expect(page.page.locator("#me")).to_have_text("")
    finally:
        await context.close()
