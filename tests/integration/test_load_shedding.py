"""Past capacity a gateway refuses new commands (``unavailable`` with ``retry_after_ms``) rather
than queueing them, accepts again once answers catch up, and loses nothing it accepted.

The chat service is stopped so that answers stop coming: the gateway's oldest command then
waits longer than its bound, exactly what a system behind its load looks like from the edge.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from deploy.local.launcher import ServiceProcess, free_port
from tests.integration.harness import Client, Frame, System, seconds, send_frame, unique

PENDING = 3


def answer_to(request_id: str) -> Callable[[Frame], bool]:
    return lambda frame: frame.get("id") == request_id


async def test_an_overloaded_gateway_refuses_with_a_hint_and_recovers(system: System) -> None:
    port = free_port()
    gateway = ServiceProcess(
        "gateway",
        {
            **system.env,
            "GATEWAY_PORT": str(port),
            "INSTANCE_ID": f"shedding-{uuid.uuid4().hex[:6]}",
            # Any answer slower than a millisecond, with PENDING waiting, is "behind".
            "GATEWAY_OVERLOAD_WAIT_MS": "1",
            "GATEWAY_OVERLOAD_MIN_PENDING": str(PENDING),
        },
        port,
        system.logs / "gateway-shedding.log",
    )
    gateway.start()
    try:
        await gateway.wait_ready()
        alice, bob = unique("alice"), unique("bob")
        client = await Client.connect(f"ws://127.0.0.1:{port}/v1/ws", alice)
        system.chat.stop()
        try:
            handed_on = [f"k{i}" for i in range(PENDING)]
            for key in handed_on:
                await client.send({**send_frame(to=bob, client_msg_id=key), "id": key})
            refused: Frame | None = None
            attempt = 0
            while refused is None:
                attempt += 1
                request_id = f"late-{attempt}"
                await client.send({**send_frame(to=bob, client_msg_id="late"), "id": request_id})
                try:
                    refused = await client.take(answer_to(request_id), timeout_s=seconds(2))
                except AssertionError:
                    # Handed on before the first command had waited a millisecond: it waits
                    # for chat like the others (and is answered once chat is back).
                    continue
            assert refused["type"] == "error" and refused["code"] == "unavailable", refused
            assert 100 <= refused["retry_after_ms"] <= 10_000
        finally:
            system.chat.start()
            await system.chat.wait_ready()

        # The commands handed on before are applied and answered once chat is back ...
        acks = {
            frame["id"]: frame
            for frame in await client.take_n(
                lambda f: f.get("id") in handed_on, PENDING, timeout_s=seconds(60)
            )
        }
        assert all(answer["type"] == "ack" for answer in acks.values()), acks
        # ... and a resend of the refused one is accepted once nothing waits any more.
        while True:
            answer = await client.request(
                send_frame(to=bob, client_msg_id="late"), timeout_s=seconds(30)
            )
            if answer["type"] == "ack":
                break
            assert answer["code"] == "unavailable", answer
        stored = [acks[key]["message"] for key in handed_on] + [answer["message"]]

        # Nothing acked is lost: the recipient's chat stream holds every one, once, in order
        # (the notifier's stream, when deployed, has its notifications beside it).
        reader = await Client.connect(system.ws_url, bob)
        synced: list[Frame] = (await reader.request({"type": "sync", "cursor": {}}))["events"]
        chat = [event["message"] for event in synced if event.get("stream") == "chat"]
        assert chat == stored
        await reader.close()
        await client.close()
    finally:
        gateway.stop()
