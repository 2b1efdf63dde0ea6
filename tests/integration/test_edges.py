"""The edges of a live gateway, tried from outside: tokens in URLs, connections per user and
per gateway, handshakes per address. Each limit is configured low on a gateway of the test's
own (the shared one runs with generous limits)."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus

from services.gateway.domain.limits import FD_RESERVE
from tests.integration.harness import (
    Client,
    ServiceProcess,
    System,
    metric_value,
    seconds,
    token,
    unique,
    ws_url,
)


async def upgrade_refusal(url: str, **kwargs: object) -> tuple[int, Headers]:
    """Status and headers of a refused upgrade, or 101 and no headers when it succeeds."""
    try:
        ws = await connect(url, **kwargs)  # type: ignore[arg-type]
    except InvalidStatus as exc:
        return exc.response.status_code, exc.response.headers
    await ws.close()
    return 101, Headers()


@contextlib.asynccontextmanager
async def gateway(
    system: System, name: str, max_open_files: int | None = None, **env: str
) -> AsyncIterator[ServiceProcess]:
    """An extra gateway of the test deployment with some settings of its own."""
    process = system.extra_gateway(name)
    process.env.update(env)
    if max_open_files is not None:
        limit = max_open_files
        process.preexec_fn = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    process.start()
    try:
        await process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.mark.parametrize("parameter", ["token", "access_token", "bearer", "jwt", "auth"])
async def test_a_token_in_the_query_string_is_never_accepted(
    system: System, parameter: str
) -> None:
    valid = token(unique("q"))
    status, _ = await upgrade_refusal(f"{system.ws_url}?{parameter}={valid}")
    assert status == 401
    async with httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{system.gateway.port}/v1/presence"
        response = await client.get(url, params={"ids": "x", parameter: valid})
        assert response.status_code == 401
    # The same token in the header works: only its place was wrong.
    assert (await upgrade_refusal(system.ws_url, additional_headers=bearer(valid)))[0] == 101


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def test_a_users_newest_connection_closes_the_oldest_and_handshakes_are_rate_limited(
    system: System,
) -> None:
    # Three handshakes at once, then one every 20 s: the fourth is refused however slow the
    # machine is.
    async with gateway(
        system,
        "gw-edge",
        MAX_CONNECTIONS_PER_USER="2",
        HANDSHAKE_RATE_PER_S="0.05",
        HANDSHAKE_BURST="3",
    ) as edge:
        url = ws_url(edge.port)
        user = unique("many")
        first = await Client.connect(url, user)
        second = await Client.connect(url, user)
        third = await Client.connect(url, user)
        deadline = time.monotonic() + seconds(10)
        while not first.closed:
            assert time.monotonic() < deadline, "the oldest connection was not closed"
            await asyncio.sleep(0.05)
        assert first.ws.close_code == 4010
        assert "replaced" in (first.ws.close_reason or "")
        for client in (second, third):
            assert (await client.request({"type": "ping"}))["type"] == "pong"

        status, headers = await upgrade_refusal(url, additional_headers=bearer(token(user)))
        assert status == 429
        assert 1 <= int(headers["Retry-After"]) <= 20
        # A client cannot name another address: no proxy is trusted on this gateway.
        spoofed = {**bearer(token(unique("other"))), "X-Forwarded-For": "198.51.100.7"}
        assert (await upgrade_refusal(url, additional_headers=spoofed))[0] == 429
        # The refused handshakes cost no connection: the user's two still work.
        assert (await second.request({"type": "ping"}))["type"] == "pong"

        assert await metric_value(edge, "realtime_gateway_upgrades_refused", status="429") >= 2
        assert await metric_value(edge, "realtime_gateway_closes", code="4010") == 1
        assert await metric_value(edge, "realtime_gateway_connections") == 2
        for client in (second, third):
            await client.close()


async def test_a_full_gateway_refuses_with_503_before_the_upgrade_under_its_fd_limit(
    system: System,
) -> None:
    # A generous configured cap, but only 300 file descriptors: the cap must fit under them.
    max_open_files = 300
    cap = max_open_files - FD_RESERVE
    async with gateway(
        system, "gw-small", max_open_files=max_open_files, GATEWAY_MAX_CONNECTIONS="100000"
    ) as small:
        assert await metric_value(small, "realtime_gateway_connection_limit") == cap
        url = ws_url(small.port)
        clients = [await Client.connect(url, unique("fill")) for _ in range(cap)]
        status, headers = await upgrade_refusal(url, additional_headers=bearer(token("late")))
        assert status == 503
        assert int(headers["Retry-After"]) >= 1
        assert await metric_value(small, "realtime_gateway_upgrades_refused", status="503") == 1
        # Every connection held still works, and a place freed is a place taken.
        assert (await clients[-1].request({"type": "ping"}))["type"] == "pong"
        await clients.pop().close()
        deadline = time.monotonic() + seconds(10)
        while (await upgrade_refusal(url, additional_headers=bearer(token("late"))))[0] != 101:
            assert time.monotonic() < deadline, "a freed place was not given to a new client"
            await asyncio.sleep(0.1)
        await asyncio.gather(*(client.close() for client in clients))
