"""Sign-in with the site's NextAuth session cookie over a real upgrade: cookies minted by the real
next-auth (v4) and @auth/core (v5) packages open a WebSocket for the session's user from an
allowed Origin, and nothing else does."""

from __future__ import annotations

import asyncio
from typing import Literal

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.integration.harness import (
    ALLOWED_ORIGIN,
    AUTH_SECRET,
    System,
    metric_value,
    seconds,
    token,
    unique,
)
from tests.interop.cookies import cookie_header, mint_cookies, tampered


async def _status(url: str, *, cookie: str, origin: str | None, **kwargs: object) -> int:
    headers = {"Cookie": cookie, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    try:
        ws = await connect(url, additional_headers=headers, origin=origin, **kwargs)  # type: ignore[arg-type]
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101


@pytest.mark.parametrize("flavor", ["v4", "v5"])
@pytest.mark.parametrize("chunked", [False, True], ids=["single", "chunked"])
async def test_a_session_cookie_opens_a_socket_for_its_user(
    system: System, flavor: Literal["v4", "v5"], chunked: bool
) -> None:
    user = unique(f"cookie-{flavor}")
    claims = {"sub": user, "name": "Ada"}
    if chunked:
        # Two chunks: the whole Cookie header stays under the 8 KiB header line limit that
        # websockets (and nginx, by default) apply; see docs/protocol-notes.md.
        claims["picture"] = "p" * 4500
    cookies = mint_cookies(flavor, secret=AUTH_SECRET, claims=claims, secure=True)
    assert (len(cookies) > 1) == chunked
    async with connect(
        system.ws_url,
        additional_headers={"Cookie": "theme=dark; " + cookie_header(cookies)},
        origin=ALLOWED_ORIGIN,  # type: ignore[arg-type]
        subprotocols=["chat.v1"],  # type: ignore[list-item]
    ) as ws:
        assert ws.subprotocol == "chat.v1"
        hello = orjson.loads(await asyncio.wait_for(ws.recv(), seconds(10)))
        assert (hello["type"], hello["user_id"]) == ("hello", user)
        await ws.send(orjson.dumps({"type": "ping", "id": "p1"}).decode())
        pong = orjson.loads(await asyncio.wait_for(ws.recv(), seconds(10)))
        assert pong == {"type": "pong", "id": "p1"}


@pytest.mark.parametrize("flavor", ["v4", "v5"])
async def test_a_session_cookie_needs_an_allowed_origin(
    system: System, flavor: Literal["v4", "v5"]
) -> None:
    cookie = cookie_header(mint_cookies(flavor, secret=AUTH_SECRET, claims={"sub": unique("u")}))
    refused_before = await metric_value(
        system.gateway, "realtime_gateway_upgrades_refused", status="403"
    )
    assert await _status(system.ws_url, cookie=cookie, origin=None) == 403
    assert await _status(system.ws_url, cookie=cookie, origin="http://evil.example") == 403
    assert await _status(system.ws_url, cookie=cookie, origin=ALLOWED_ORIGIN) == 101
    refused_after = await metric_value(
        system.gateway, "realtime_gateway_upgrades_refused", status="403"
    )
    assert refused_after - refused_before == 2


@pytest.mark.parametrize("flavor", ["v4", "v5"])
async def test_a_tampered_or_expired_session_cookie_is_401(
    system: System, flavor: Literal["v4", "v5"]
) -> None:
    [(name, value)] = mint_cookies(flavor, secret=AUTH_SECRET, claims={"sub": unique("u")})
    [expired] = mint_cookies(flavor, secret=AUTH_SECRET, claims={"sub": "u"}, max_age_s=-60)
    tampered_cookie = cookie_header([(name, tampered(value))])
    assert await _status(system.ws_url, cookie=tampered_cookie, origin=ALLOWED_ORIGIN) == 401
    expired_cookie = cookie_header([expired])
    assert await _status(system.ws_url, cookie=expired_cookie, origin=ALLOWED_ORIGIN) == 401


async def test_a_bearer_token_still_wins_over_a_cookie(system: System) -> None:
    cookie_user, token_user = unique("cookie"), unique("token")
    cookie = cookie_header(mint_cookies("v5", secret=AUTH_SECRET, claims={"sub": cookie_user}))
    async with connect(
        system.ws_url,
        additional_headers={"Cookie": cookie, "Authorization": f"Bearer {token(token_user)}"},
    ) as ws:
        hello = orjson.loads(await asyncio.wait_for(ws.recv(), seconds(10)))
        assert hello["user_id"] == token_user
