"""Faults around the services: Kafka and Postgres crash and come back mid-stream, a gateway is
shut down with clients on it, a client stops reading. Nothing acknowledged is ever lost.

The infrastructure restarts use ``deploy/local/stack.py restart <component> --kill`` (SIGKILL of
the broker, ``pg_ctl stop -m immediate`` of the database): same ports, same data, as a crash
and a supervisor's restart would leave them. The services are never restarted by these tests;
they must ride the outage out on their own. Every test that takes infrastructure down brings it
back in a ``finally``, so a failure here never leaves the shared stack down for later tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.integration.harness import (
    ROOT,
    Client,
    Frame,
    ServiceProcess,
    System,
    of_type,
    seconds,
    send_frame,
    token,
    unique,
    ws_url,
)

STACK = ROOT / "deploy" / "local" / "stack.py"
MESSAGES = 150
RESTART_AFTER = 40
# Without an answer this long, the sender resends under the same client_msg_id.
RESEND_AFTER_S = 3


async def stack(*args: str) -> str:
    """Run ``stack.py`` with this test run's environment; returns its output."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONASYNCIODEBUG"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(STACK),
        *args,
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"stack.py {' '.join(args)} failed:\n{text}"
    return text


@contextlib.asynccontextmanager
async def infrastructure_restored() -> AsyncIterator[None]:
    """Whatever happens inside, Kafka and Postgres are up again afterwards."""
    try:
        yield
    finally:
        await stack("up", "--infra-only")


@dataclass
class Sender:
    """A client that sends like a real one: resends the same client_msg_id until acked,
    backs off when rate limited, and retries when the gateway says ``unavailable``."""

    client: Client
    to: str
    acked: dict[str, Frame] = field(default_factory=dict)
    resends: int = 0
    unavailable: int = 0

    async def send(self, client_msg_id: str, body: str) -> Frame:
        """Send one message until it is acked; returns the acked message."""
        while True:
            try:
                answer = await self.client.request_within_rate(
                    send_frame(to=self.to, client_msg_id=client_msg_id, body=body),
                    timeout_s=seconds(RESEND_AFTER_S),
                )
            except AssertionError:
                self.resends += 1
                continue
            if answer["type"] == "ack":
                message: Frame = answer["message"]
                self.acked[client_msg_id] = message
                return message
            assert answer["code"] == "unavailable", answer
            self.unavailable += 1
            await asyncio.sleep(0.2)

    def late_acks_agree(self) -> None:
        """Answers to earlier attempts (arriving after a resend was acked) name the same
        message: one client_msg_id, one stored message, whatever was resent."""
        for frame in self.client.matching(of_type("ack")):
            if "message" in frame:
                message = frame["message"]
                assert message == self.acked[message["client_msg_id"]], frame


async def sync_all(client: Client, page_limit: int = 90) -> list[Frame]:
    """Every durable frame of the user's ``chat`` stream, paging through ``sync`` (which also
    serves the ``notifications`` stream)."""
    events: list[Frame] = []
    cursor: dict[str, int] = {}
    while True:
        page = await client.request({"type": "sync", "cursor": cursor, "limit": page_limit})
        assert page["type"] == "ack", page
        events += [event for event in page["events"] if event["stream"] == "chat"]
        cursor = page["cursor"]
        if not page["has_more"]:
            return events


async def stored_messages(database_url: str, conversation_id: str) -> list[tuple[str, int]]:
    """(client_msg_id, seq) of a conversation as Postgres holds it, on a fresh connection."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT client_msg_id, seq FROM chat.messages WHERE conversation_id = $1 ORDER BY seq",
            conversation_id,
        )
    finally:
        await conn.close()
    return [(row["client_msg_id"], row["seq"]) for row in rows]


async def services_survived(system: System) -> None:
    """No service was restarted by the test, so each must still run and become ready."""
    for service in (system.chat, system.presence, system.gateway):
        assert service.process is not None
        assert service.process.poll() is None, (
            f"{service.name} died during the outage:\n{service.log_tail()}"
        )
        await service.wait_ready(seconds(60))


async def restart_mid_stream(system: System, component: str) -> None:
    """Send MESSAGES direct messages; after RESTART_AFTER acks crash and restart
    ``component``; then check that every message was acked, stored and synced exactly once."""
    alice, bob = unique("alice"), unique("bob")
    alice_1 = await Client.connect(system.ws_url, alice)
    bob_live = await Client.connect(system.ws_url, bob)
    sender = Sender(alice_1, to=bob)
    time_to_restart = asyncio.Event()

    async def send_all() -> None:
        for i in range(MESSAGES):
            await sender.send(f"m{i:03d}", f"n{i}")
            if len(sender.acked) == RESTART_AFTER:
                time_to_restart.set()

    async with infrastructure_restored():
        sending = asyncio.create_task(send_all())
        try:
            await asyncio.wait_for(time_to_restart.wait(), seconds(60))
            output = await stack("restart", component, "--kill")
            assert f"killed {component}" in output, output
            assert not sending.done(), "the restart should have happened mid-stream"
            await asyncio.wait_for(asyncio.shield(sending), seconds(180))
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)

    await services_survived(system)
    ids = [f"m{i:03d}" for i in range(MESSAGES)]
    assert len(sender.acked) == MESSAGES
    # Sent one after another: conversation order is send order, no gap, no repeat.
    assert [sender.acked[i]["seq"] for i in ids] == list(range(1, MESSAGES + 1))
    await alice_1.settle()
    sender.late_acks_agree()

    conversation = sender.acked[ids[0]]["conversation_id"]
    stored = await stored_messages(system.database_url, conversation)
    assert stored == [(i, n + 1) for n, i in enumerate(ids)]

    # The live path came back: the last message reaches bob's open connection.
    await bob_live.take(of_type("message.new", message_client_msg_id=ids[-1]), seconds(30))
    bob_2 = await Client.connect(system.ws_url, bob)
    # Alice stayed connected throughout: the outage must not have made her look offline.
    snapshot = await bob_2.take(of_type("presence", user_id=alice))
    assert snapshot["status"] == "online", snapshot
    assert not bob_live.matching(of_type("presence", user_id=alice, status="offline"))
    events = await sync_all(bob_2)
    assert [event["type"] for event in events] == ["message.new"] * MESSAGES
    assert [event["seq"] for event in events] == list(range(1, MESSAGES + 1))
    assert [event["message"] for event in events] == [sender.acked[i] for i in ids]
    for client in (alice_1, bob_live, bob_2):
        await client.close()


async def test_postgres_crash_mid_stream_loses_and_duplicates_nothing(system: System) -> None:
    await restart_mid_stream(system, "postgres")


async def test_kafka_crash_mid_stream_loses_and_duplicates_nothing(system: System) -> None:
    await restart_mid_stream(system, "kafka")


@contextlib.asynccontextmanager
async def extra_gateway(system: System, name: str, **env: str) -> AsyncIterator[ServiceProcess]:
    """Another gateway of the deployment, started and ready; stopped on the way out."""
    gateway = system.extra_gateway(name)
    gateway.env.update(env)
    gateway.start()
    try:
        await gateway.wait_ready()
        yield gateway
    finally:
        await asyncio.to_thread(gateway.stop)


async def closed_with(client: Client, timeout_s: float) -> int | None:
    """Wait until the server closed ``client``; returns the close code it sent."""
    await asyncio.wait_for(client.ws.wait_closed(), timeout_s)
    return client.ws.close_code


async def test_graceful_gateway_shutdown_closes_1001_and_loses_nothing(system: System) -> None:
    alice, bob, carol = unique("alice"), unique("bob"), unique("carol")
    async with extra_gateway(system, "gateway-drain") as draining:
        url = ws_url(draining.port)
        bob_1 = await Client.connect(url, bob)
        carol_1 = await Client.connect(url, carol)
        alice_1 = await Client.connect(system.ws_url, alice)
        stopping = asyncio.create_task(asyncio.to_thread(draining.stop))
        # Sent while the gateway holding bob drains: bob may or may not see it live.
        sent = await Sender(alice_1, to=bob).send("during-shutdown", "are you there?")
        await stopping
        assert draining.process is not None
        assert draining.process.returncode == 0, draining.log_tail()
    assert await closed_with(bob_1, seconds(10)) == 1001
    assert await closed_with(carol_1, seconds(10)) == 1001

    bob_2 = await Client.connect(system.ws_url, bob)
    events = await sync_all(bob_2)
    assert [event["message"] for event in events if event["type"] == "message.new"] == [sent]
    for client in (alice_1, bob_2):
        await client.close()


SLOW_QUEUE_FRAMES = 8
# 4-byte UTF-8 characters at the body limit (4000 characters): 16 kB frames fill socket buffers
# several times faster than ASCII would.
BIG_BODY = "\U0001f4e8" * 4000


async def closes_counted(gateway: ServiceProcess, code: int) -> float:
    """``realtime_gateway_closes_total{code=...}`` of one gateway."""
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{gateway.port}/metrics")
    sample = f'realtime_gateway_closes_total{{code="{code}"}} '
    for line in response.text.splitlines():
        if line.startswith(sample):
            return float(line.removeprefix(sample))
    return 0.0


async def stuck_client(port: int, user_id: str) -> ClientConnection:
    """A client that reads nothing: its library stops reading the socket after one frame
    (``max_queue=1``) and its receive buffer is small, so the gateway's writes back up."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await connect(
        ws_url(port),
        sock=sock,
        additional_headers={"Authorization": f"Bearer {token(user_id)}"},
        max_queue=1,
    )


async def test_slow_client_is_closed_4009_and_loses_nothing(system: System) -> None:
    alice, bob, carol = unique("alice"), unique("bob"), unique("carol")
    async with extra_gateway(
        system, "gateway-slow", SEND_QUEUE_FRAMES=str(SLOW_QUEUE_FRAMES)
    ) as slow_gateway:
        url = ws_url(slow_gateway.port)
        bob_stuck = await stuck_client(slow_gateway.port, bob)
        try:
            carol_1 = await Client.connect(url, carol)
            # The sender is on the main gateway; its frames reach bob through the delivery topic.
            alice_1 = await Client.connect(system.ws_url, alice)
            sender = Sender(alice_1, to=bob)

            async def send_until_closed() -> None:
                while await closes_counted(slow_gateway, 4009) == 0:
                    for _ in range(10):
                        await sender.send(f"big-{len(sender.acked):05d}", BIG_BODY)
                    # The sender's own copies are not under test; keep its buffer small.
                    alice_1.frames.clear()

            await asyncio.wait_for(send_until_closed(), seconds(60))
            # The rest of the gateway is unaffected: others are answered at once.
            assert (await carol_1.request({"type": "ping"}, seconds(5)))["type"] == "pong"
            more = await sender.send("after-4009", "still here")
            assert more["seq"] == len(sender.acked)

            # Once bob reads again, what the gateway had written arrives, then the close frame.
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await asyncio.wait_for(bob_stuck.recv(), seconds(10))
            assert bob_stuck.close_code == 4009, (bob_stuck.close_code, bob_stuck.close_reason)
        finally:
            # A failure above must not leave the gateway's shutdown waiting on this socket.
            bob_stuck.transport.abort()

        # Reconnect and sync: every message alice got acked is there, in order, once.
        bob_2 = await Client.connect(url, bob)
        events = await sync_all(bob_2, page_limit=40)
        assert [event["message"] for event in events] == list(sender.acked.values())
        assert len(sender.acked) > SLOW_QUEUE_FRAMES
        for client in (alice_1, bob_2, carol_1):
            await client.close()
