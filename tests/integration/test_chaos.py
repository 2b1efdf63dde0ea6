"""A chaos soak over what exists today: direct messages, receipts, typing and presence at a
moderate rate from clients on two gateways, while a scheduler injects one fault after another:
SIGKILL and restart of chat, presence and a gateway; a gateway stalled (SIGSTOP, SIGCONT);
Kafka and Postgres restarted cleanly and crashed (``deploy/local/stack.py restart [--kill]``).

Clients behave as the protocol asks: a send that gets no ack (connection lost, ``unavailable``,
no answer in time) is sent again with the same ``client_msg_id`` after reconnecting, until it
is acked; a presence choice is repeated until acknowledged.

At the end, with the faults stopped and every send acked, the invariants are checked from the
outside (``sync``) and from the database:

- every acked message is in its sender's and its recipient's ``chat`` stream exactly once, in
  conversation order; each user's stream seqs are 1..n without gap or repeat;
- each conversation holds exactly the acked messages, numbered 1..n;
- presence converges to the truth: with everyone connected, each user shows the status last
  acknowledged; once everyone left, everyone shows offline;
- no dead-lettered record: every command came from a correct client.

``make test`` runs a short soak (``CHAOS_DURATION_S``, default 40 s of load with a fault about
every 6 s); ``make chaos`` runs ten minutes. The counts (messages, faults by kind, invariants
checked, violations) are written to ``CHAOS_REPORT`` (default: the test logs' directory) and
recorded in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.integration.harness import (
    PRESENCE_GATEWAY_EXPIRY_MS,
    PRESENCE_GRACE_MS,
    ROOT,
    ServiceProcess,
    System,
    seconds,
    token,
    unique,
    ws_url,
)

DURATION_S = float(os.environ.get("CHAOS_DURATION_S", "40"))
FAULT_INTERVAL_S = float(os.environ.get("CHAOS_FAULT_INTERVAL_S", "6"))
USERS = int(os.environ.get("CHAOS_USERS", "6"))
# Messages per second per user; with 6 users, 6 messages a second in all.
SEND_RATE_PER_USER = float(os.environ.get("CHAOS_RATE_PER_USER", "1"))
STACK = ROOT / "deploy" / "local" / "stack.py"
# A stall shorter than presence's gateway expiry: the gateway is slow, not dead.
STALL_S = PRESENCE_GATEWAY_EXPIRY_MS / 1000 / 2
ANSWER_TIMEOUT_S = seconds(10)
STATUSES = ("online", "away", "busy")

Frame = dict[str, Any]


class Disconnected(Exception):
    """The connection went away (or could not be made) while waiting."""


class NotAcked(Exception):
    """A frame was retried until the deadline without an ack: the system did not recover."""


@dataclass
class SoakClient:
    """One user's device: reconnects to any gateway, answers matched by request id."""

    user: str
    urls: list[str]
    ws: ClientConnection | None = None
    pending: dict[str, asyncio.Future[Frame]] = field(default_factory=dict)
    live: list[Frame] = field(default_factory=list)
    reconnects: int = 0
    _turn: itertools.count[int] = field(default_factory=itertools.count)
    _reader: asyncio.Task[None] | None = None

    async def ensure(self, deadline: float) -> ClientConnection:
        """The open connection, or a new one to the next gateway (retried with backoff)."""
        if self.ws is not None and self.ws.close_code is None:
            return self.ws
        delay = 0.05
        while True:
            url = self.urls[next(self._turn) % len(self.urls)]
            headers = {"Authorization": f"Bearer {token(self.user, ttl_s=7200)}"}
            try:
                ws = await asyncio.wait_for(
                    connect(url, additional_headers=headers, open_timeout=None), seconds(5)
                )
                hello = orjson.loads(await asyncio.wait_for(ws.recv(), seconds(5)))
                assert hello["type"] == "hello"
            except (OSError, TimeoutError, InvalidStatus, ConnectionClosed):
                if time.monotonic() > deadline:
                    raise Disconnected(f"{self.user} could not reconnect") from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            self.ws = ws
            self.reconnects += 1
            self._reader = asyncio.create_task(self._read(ws))
            return ws

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                frame = orjson.loads(message)
                waiter = self.pending.pop(frame.get("id") or "", None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(frame)
                elif frame.get("type") in ("message.new", "presence", "typing"):
                    self.live.append(frame)
                    del self.live[:-100]
        for waiter in self.pending.values():
            if not waiter.done():
                waiter.set_exception(Disconnected(self.user))
        self.pending.clear()

    async def request(self, frame: Frame, deadline: float) -> Frame:
        """Send ``frame`` with a fresh id and return its answer.

        Raises:
            Disconnected: the connection dropped, or no answer came in time.
        """
        ws = await self.ensure(deadline)
        request_id = uuid.uuid4().hex
        waiter: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = waiter
        try:
            await ws.send(orjson.dumps({**frame, "id": request_id}).decode())
            return await asyncio.wait_for(waiter, ANSWER_TIMEOUT_S)
        except (ConnectionClosed, TimeoutError):
            raise Disconnected(self.user) from None
        finally:
            self.pending.pop(request_id, None)

    async def until_acked(self, frame: Frame, deadline: float, report: Report) -> Frame:
        """``request`` until the answer is an ack; ``unavailable`` and lost connections are
        retried (same frame, so the same ``client_msg_id``), anything else is a violation.

        Raises:
            NotAcked: still no ack at ``deadline`` (the last answer says why).
        """
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                answer = await self.request(frame, deadline)
            except Disconnected:
                report.count("retries")
                last = "connection lost"
                if self.ws is not None:
                    await self.ws.close()
                continue
            if answer.get("type") == "ack":
                return answer
            if answer.get("code") in ("unavailable", "rate_limited"):
                report.count("retries")
                last = str(answer.get("code"))
                await asyncio.sleep(0.2)
                continue
            if frame["type"] == "typing" and answer.get("code") == "forbidden":
                # Presence learns memberships from chat's facts, after the message's ack: a
                # typing right after the first message of a conversation may come before it.
                report.count("typing_before_membership_known")
                return answer
            report.violation(f"{frame['type']} answered {answer.get('code')}: {answer}")
            return answer
        raise NotAcked(f"{self.user}: {frame['type']} not acked in time (last: {last})")

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


@dataclass
class Report:
    """What the soak did and found."""

    counts: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    invariants_checked: int = 0
    violations: list[str] = field(default_factory=list)

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def check(self, holds: bool, violation: str) -> None:
        self.invariants_checked += 1
        if not holds:
            self.violation(violation)

    def violation(self, text: str) -> None:
        if len(self.violations) < 50:
            self.violations.append(text)

    def as_dict(self) -> dict[str, Any]:
        return {
            "duration_s": DURATION_S,
            "users": USERS,
            "counts": dict(self.counts),
            "faults": dict(self.faults),
            "faults_total": sum(self.faults.values()),
            "invariants_checked": self.invariants_checked,
            "violations": self.violations,
        }


#: Restarts by the soak's supervisor (it outlives the test body, so it counts apart).
SUPERVISION = Report()


@dataclass
class Acked:
    """A message acknowledged to its sender."""

    sender: str
    recipient: str
    conversation_id: str
    message_id: str
    seq: int


async def stack(*args: str) -> None:
    """``deploy/local/stack.py`` with this run's environment (restarts of the local infra)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(STACK),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, f"stack.py {' '.join(args)}:\n{output.decode()}"


async def restart(service: ServiceProcess) -> None:
    """SIGKILL (a crash: no shutdown code runs) and start again."""
    service.kill()
    service.start()
    await service.wait_ready()


async def stall(service: ServiceProcess) -> None:
    """Stop the process's clock for a while (SIGSTOP), then let it go on (SIGCONT)."""
    assert service.process is not None
    service.process.send_signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(STALL_S)
    finally:
        service.process.send_signal(signal.SIGCONT)
    await service.wait_ready()


def faults(
    system: System, second: ServiceProcess
) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
    """The faults in the order the scheduler injects them, round after round."""
    return [
        ("chat_sigkill", lambda: restart(system.chat)),
        ("gateway_stall", lambda: stall(system.gateway)),
        ("postgres_crash", lambda: stack("restart", "postgres", "--kill")),
        ("presence_sigkill", lambda: restart(system.presence)),
        ("gateway_sigkill", lambda: restart(second)),
        ("kafka_crash", lambda: stack("restart", "kafka", "--kill")),
        ("postgres_restart", lambda: stack("restart", "postgres")),
        ("kafka_restart", lambda: stack("restart", "kafka")),
    ]


async def supervise(services: list[ServiceProcess], report: Report) -> None:
    """Start again any service that exited by itself, as a deployment's supervisor does
    (compose's ``restart: unless-stopped``): a service stops on purpose when it cannot go on
    (its Kafka producer failed), and must come back."""
    for service in services:
        assert service.process is not None
        if service.process.poll() is not None:
            report.count(f"supervisor_restarts_{service.name}")
            service.start()
            await service.wait_ready()


async def keep_supervising(services: list[ServiceProcess], report: Report) -> None:
    """:func:`supervise` every second, until cancelled (the whole soak and its checks)."""
    while True:
        await supervise(services, report)
        await asyncio.sleep(1.0)


async def schedule_faults(
    system: System, second: ServiceProcess, stop: asyncio.Event, report: Report
) -> None:
    """One fault every FAULT_INTERVAL_S (after the previous one recovered) until ``stop``."""
    for name, inject in itertools.cycle(faults(system, second)):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), FAULT_INTERVAL_S)
        if stop.is_set():
            return
        await inject()
        report.faults[name] += 1


async def dlq_end_offsets(system: System) -> dict[str, int]:
    """Records in each of this run's dead-letter topics."""
    admin = AIOKafkaAdminClient(bootstrap_servers=system.kafka_bootstrap)
    await admin.start()
    try:
        topics = [
            t
            for t in await admin.list_topics()
            if t.startswith(system.topic_prefix) and t.endswith(".dlq")
        ]
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=system.kafka_bootstrap)
    await consumer.start()
    try:
        totals = {}
        for topic in topics:
            partitions = consumer.partitions_for_topic(topic) or set()
            if not partitions:
                await consumer.topics()
                partitions = consumer.partitions_for_topic(topic) or set()
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
            totals[topic] = sum(ends.values())
        return totals
    finally:
        await consumer.stop()


@pytest.fixture
async def second_gateway(system: System) -> AsyncIterator[ServiceProcess]:
    """A second gateway; a supervisor keeps every service up while the soak runs, and the
    session's services are up again when it ends, whatever happened."""
    gateway = system.extra_gateway("gw-chaos")
    gateway.start()
    await gateway.wait_ready()
    services = [system.chat, system.presence, system.gateway, gateway]
    supervisor = asyncio.create_task(keep_supervising(services, SUPERVISION))
    yield gateway
    supervisor.cancel()
    await asyncio.gather(supervisor, return_exceptions=True)
    await supervise(services, SUPERVISION)
    gateway.stop()


async def sync_stream(client: SoakClient, deadline: float, report: Report) -> list[Frame]:
    """Every frame of the user's chat stream, from the beginning, page after page."""
    frames: list[Frame] = []
    cursor: dict[str, int] = {}
    while True:
        answer = await client.until_acked({"type": "sync", "cursor": cursor}, deadline, report)
        frames.extend(frame for frame in answer["events"] if frame.get("stream") == "chat")
        cursor = answer["cursor"]
        if not answer["has_more"]:
            return frames


async def test_chaos_soak_keeps_every_guarantee(
    system: System, second_gateway: ServiceProcess
) -> None:
    report = Report()
    rng = random.Random(os.environ.get("CHAOS_SEED", uuid.uuid4().hex))
    users = [unique(f"chaos{n}") for n in range(USERS)]
    urls = [system.ws_url, ws_url(second_gateway.port)]
    clients = {
        user: SoakClient(user, urls[i % 2 :] + urls[: i % 2]) for i, user in enumerate(users)
    }
    # Everyone talks to their two neighbours on a ring: every user has contacts on both gateways.
    peers = {user: [users[(i + 1) % USERS], users[(i - 1) % USERS]] for i, user in enumerate(users)}
    acked: list[Acked] = []
    chosen: dict[str, str] = {}
    dlq_before = await dlq_end_offsets(system)
    stop_load, stop_faults = asyncio.Event(), asyncio.Event()
    # Generous: every retry after the last fault fits, however slow the machine.
    final_deadline = time.monotonic() + DURATION_S + seconds(120)

    async def load(user: str) -> None:
        try:
            await load_of(user)
        except NotAcked as exc:
            report.violation(str(exc))

    async def load_of(user: str) -> None:
        client = clients[user]
        for n in itertools.count():
            if stop_load.is_set():
                return
            await asyncio.sleep(rng.expovariate(SEND_RATE_PER_USER))
            peer = rng.choice(peers[user])
            send = {
                "type": "message.send",
                "to": peer,
                "client_msg_id": f"{user}-{n}",
                "kind": "text",
                "body": f"soak {n}",
            }
            ack = await client.until_acked(send, final_deadline, report)
            message = ack["message"]
            acked.append(
                Acked(user, peer, message["conversation_id"], message["id"], message["seq"])
            )
            report.count("messages_acked")
            roll = rng.random()
            if roll < 0.3:
                receipt = {
                    "type": "receipt",
                    "conversation_id": message["conversation_id"],
                    "seq": message["seq"],
                    "status": rng.choice(["delivered", "read"]),
                }
                await client.until_acked(receipt, final_deadline, report)
                report.count("receipts_acked")
            elif roll < 0.5:
                typing = {
                    "type": "typing",
                    "conversation_id": message["conversation_id"],
                    "state": rng.choice(["start", "stop"]),
                }
                answer = await client.until_acked(typing, final_deadline, report)
                if answer["type"] == "ack":
                    report.count("typing_acked")
            elif roll < 0.6:
                status = rng.choice(STATUSES)
                await client.until_acked(
                    {"type": "presence.set", "status": status}, final_deadline, report
                )
                chosen[user] = status
                report.count("presence_sets_acked")

    loaders = [asyncio.create_task(load(user), name=f"load-{user}") for user in users]
    scheduler = asyncio.create_task(schedule_faults(system, second_gateway, stop_faults, report))
    try:
        await asyncio.sleep(DURATION_S)
    finally:
        stop_faults.set()
        await scheduler
        stop_load.set()
        await asyncio.gather(*loaders)
    assert not report.violations, report.violations

    deadline = time.monotonic() + seconds(120)
    # Every acked message, exactly once, in order, in both members' streams.
    by_user: dict[str, list[Acked]] = {user: [] for user in users}
    for message in acked:
        by_user[message.sender].append(message)
        by_user[message.recipient].append(message)
    for user in users:
        stream = await sync_stream(clients[user], deadline, report)
        seqs = [frame["seq"] for frame in stream]
        report.check(seqs == list(range(1, len(seqs) + 1)), f"{user}: stream seqs {seqs}")
        delivered = [frame["message"] for frame in stream if frame["type"] == "message.new"]
        occurrences = Counter(message["id"] for message in delivered)
        for message in by_user[user]:
            report.check(
                occurrences[message.message_id] == 1,
                f"{user}: {message.message_id} seen {occurrences[message.message_id]}x",
            )
        last: dict[str, int] = {}
        for message in delivered:
            conversation, seq = message["conversation_id"], message["seq"]
            report.check(
                seq > last.get(conversation, 0),
                f"{user}: {conversation} seq {seq} after {last.get(conversation)}",
            )
            last[conversation] = seq

    # The database holds exactly the acked messages, numbered without gap.
    conversations: dict[str, set[str]] = {}
    for message in acked:
        conversations.setdefault(message.conversation_id, set()).add(message.message_id)
    connection = await asyncpg.connect(system.database_url)
    try:
        for conversation, ids in conversations.items():
            rows = await connection.fetch(
                "SELECT id, seq FROM chat.messages WHERE conversation_id = $1 ORDER BY seq",
                conversation,
            )
            report.check(
                {row["id"] for row in rows} == ids,
                f"{conversation}: stored {len(rows)} messages, acked {len(ids)}",
            )
            report.check(
                [row["seq"] for row in rows] == list(range(1, len(rows) + 1)),
                f"{conversation}: seqs {[row['seq'] for row in rows]}",
            )

        # Presence converges to what users chose (everyone is still connected)...
        async def shown() -> dict[str, str]:
            rows = await connection.fetch(
                "SELECT user_id, shown FROM presence.users WHERE user_id = ANY($1)", users
            )
            return {row["user_id"]: row["shown"] for row in rows}

        for user in users:
            await clients[user].ensure(deadline)
        await supervise([system.chat, system.presence, system.gateway, second_gateway], report)
        truth = {user: chosen.get(user, "online") for user in users}
        report.check(await converges(shown, truth), f"presence: shown {truth}")
        # ...and to offline once everyone left.
        await asyncio.gather(*(client.close() for client in clients.values()))
        offline = dict.fromkeys(users, "offline")
        report.check(await converges(shown, offline), "presence: not all offline")
    finally:
        await connection.close()

    dlq_after = await dlq_end_offsets(system)
    for topic, records in dlq_after.items():
        report.check(
            records == dlq_before.get(topic, 0),
            f"{topic}: {records - dlq_before.get(topic, 0)} records dead-lettered",
        )
    report.count("reconnects", sum(client.reconnects for client in clients.values()))
    report.counts.update(SUPERVISION.counts)

    path = Path(os.environ.get("CHAOS_REPORT", system.logs / "chaos-report.json"))
    write_report(path, report)
    sys.stdout.write(f"chaos report ({path}): {json.dumps(report.as_dict())}\n")
    assert report.faults, "no fault was injected"
    assert not report.violations, report.violations


def write_report(path: Path, report: Report) -> None:
    """The counts as JSON, for docs/reliability.md and whoever runs ``make chaos``."""
    path.write_text(json.dumps(report.as_dict(), indent=2) + "\n")


async def converges(read: Callable[[], Awaitable[dict[str, str]]], truth: dict[str, str]) -> bool:
    """Whether what ``read`` returns becomes ``truth`` within presence's documented bound
    (grace, gateway expiry and a heartbeat), allowed three times over on a shared machine."""
    bound_s = (PRESENCE_GRACE_MS + PRESENCE_GATEWAY_EXPIRY_MS) / 1000 + 1
    deadline = time.monotonic() + seconds(3 * bound_s)
    while time.monotonic() < deadline:
        if await read() == truth:
            return True
        await asyncio.sleep(0.2)
    return await read() == truth
