"""Internal HTTP APIs of the running services require the internal token, and a service
started without one refuses to start (it never listens, never joins a consumer group)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from deploy.local.launcher import free_port
from tests.integration.harness import (
    INTERNAL_TOKEN,
    ServiceProcess,
    System,
    seconds,
    unique,
)


async def test_internal_apis_refuse_callers_without_the_token(system: System) -> None:
    user = unique("u")
    endpoints = [
        f"http://127.0.0.1:{system.chat.port}/internal/v1/streams/chat/{user}",
        f"http://127.0.0.1:{system.presence.port}/internal/v1/presence?requester={user}",
    ]
    async with httpx.AsyncClient() as client:
        for url in endpoints:
            assert (await client.get(url)).status_code == 401
            wrong = {"X-Internal-Token": INTERNAL_TOKEN[:-1] + "x"}
            assert (await client.get(url, headers=wrong)).status_code == 401
            right = {"X-Internal-Token": INTERNAL_TOKEN}
            assert (await client.get(url, headers=right)).status_code == 200
        # Probes and scrapes need no token.
        for service in (system.chat, system.presence, system.gateway):
            for path in ("/healthz", "/metrics"):
                response = await client.get(f"http://127.0.0.1:{service.port}{path}")
                assert response.status_code == 200


@pytest.mark.parametrize("name", ["chat", "presence", "gateway"])
async def test_a_service_without_an_internal_token_refuses_to_start(
    system: System, name: str
) -> None:
    port = free_port()
    env = {key: value for key, value in system.env.items() if key != "INTERNAL_TOKEN"}
    env[f"{name.upper()}_PORT"] = str(port)
    service = ServiceProcess(name, env, port, system.logs / f"{name}-no-token.log")
    service.start()
    assert service.process is not None
    deadline = time.monotonic() + seconds(30)
    while service.process.poll() is None:
        if time.monotonic() > deadline:
            service.stop()
            raise AssertionError(f"{name} started without an internal token")
        await asyncio.sleep(0.1)
    assert service.process.returncode != 0
    assert "INTERNAL_TOKEN" in service.log_tail()
