"""Test harness: real service processes and real WebSocket clients.

Every timeout is a multiple of ``UNIT_S`` (``TEST_TIMEOUT_SCALE`` scales it on slow machines),
never a fixed sleep: waits poll a condition until it holds or the deadline passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from deploy.local import launcher
from deploy.local.launcher import free_port
from schemas.topics import dlq_topic
from services.gateway.domain.auth import mint_token
from services.runtime.consumer import TransactionalConsumer
from services.runtime.migrations import apply_migrations

UNIT_S = float(os.environ.get("TEST_TIMEOUT_SCALE", "1"))
ROOT = launcher.REPO
# HS256 wants at least 32 bytes of key; PyJWT warns (and warnings fail tests) below that.
AUTH_SECRET = "integration-test-secret-0123456789abcdef"
ALLOWED_ORIGIN = "http://allowed.example"
# The internal API token of this run's services (they refuse to start without one).
INTERNAL_TOKEN = secrets.token_urlsafe(32)
PRESENCE_GRACE_MS = 2000
PRESENCE_GATEWAY_EXPIRY_MS = 3000
# Web Push bounds of the notifier under test: a hanging push service times out in seconds.
PUSH_REQUEST_TIMEOUT_MS = int(5000 * UNIT_S)
PUSH_RETRY_BASE_MS = 200

Frame = dict[str, Any]


def seconds(n: float) -> float:
    """``n`` timeout units, in seconds."""
    return n * UNIT_S


def unique(prefix: str) -> str:
    """A user id (or other name) no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def token(user_id: str, *, ttl_s: float = 600, secret: str = AUTH_SECRET) -> str:
    """A valid HS256 token for ``user_id``."""
    return mint_token(secret=secret, user_id=user_id, expires_at=int(time.time() + ttl_s))


class ServiceProcess(launcher.ServiceProcess):
    """One service started as ``python -m services.<name>`` with its own log file (the
    launcher the local stack and the bench use), waiting in the tests' timeout units."""

    async def wait_ready(self, timeout_s: float = seconds(60)) -> None:
        await super().wait_ready(timeout_s)

    def kill(self, *, wait_s: float = seconds(10)) -> None:
        super().kill(wait_s=wait_s)

    def stop(self, *, wait_s: float = seconds(20)) -> None:
        super().stop(wait_s=wait_s)


@dataclass
class System:
    """The services under test and how to reach them."""

    chat: ServiceProcess
    presence: ServiceProcess
    notifier: ServiceProcess
    gateway: ServiceProcess
    logs: Path
    env: dict[str, str]
    topic_prefix: str
    database_url: str
    kafka_bootstrap: str
    # The notifier's VAPID public key (push services in tests check signatures with it).
    vapid_public_key: str

    @property
    def ws_url(self) -> str:
        return ws_url(self.gateway.port)

    def extra_gateway(self, name: str) -> ServiceProcess:
        """Another gateway process of the same deployment (started by the caller)."""
        port = free_port()
        env = {
            **self.env,
            "GATEWAY_PORT": str(port),
            "INSTANCE_ID": f"{name}-{uuid.uuid4().hex[:6]}",
        }
        return ServiceProcess("gateway", env, port, self.logs / f"{name}.log")

    def topic(self, name: str) -> str:
        return self.topic_prefix + name


@dataclass
class Client:
    """A WebSocket client that buffers every frame and lets a test wait for the ones it wants."""

    ws: ClientConnection
    hello: Frame
    frames: list[Frame] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, url: str, user_id: str, *, via: str = "header", **kwargs: Any) -> Client:
        if via == "header":
            ws = await connect(
                url, additional_headers={"Authorization": f"Bearer {token(user_id)}"}, **kwargs
            )
        else:
            ws = await connect(url, subprotocols=["chat.v1", f"bearer.{token(user_id)}"], **kwargs)  # type: ignore[list-item]
        hello = orjson.loads(await asyncio.wait_for(ws.recv(), seconds(10)))
        assert hello["type"] == "hello", hello
        client = cls(ws=ws, hello=hello)
        client._reader = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for message in self.ws:
                self.frames.append(orjson.loads(message))
                self._arrived.set()

    async def send(self, frame: Frame) -> None:
        await self.ws.send(orjson.dumps(frame).decode())

    async def take(
        self, predicate: Callable[[Frame], bool], timeout_s: float = seconds(10)
    ) -> Frame:
        """Remove and return the first buffered frame matching ``predicate``, waiting for it."""
        deadline = time.monotonic() + timeout_s
        while True:
            for index, frame in enumerate(self.frames):
                if predicate(frame):
                    return self.frames.pop(index)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching frame within {timeout_s} s; have {self.frames}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def take_n(
        self, predicate: Callable[[Frame], bool], count: int, timeout_s: float = seconds(10)
    ) -> list[Frame]:
        return [await self.take(predicate, timeout_s) for _ in range(count)]

    async def request(self, frame: Frame, timeout_s: float = seconds(10)) -> Frame:
        """Send a frame with a fresh id and return its one answer (ack, error or pong)."""
        request_id = uuid.uuid4().hex
        await self.send({**frame, "id": request_id})
        return await self.take(lambda f: f.get("id") == request_id, timeout_s)

    async def request_within_rate(self, frame: Frame, timeout_s: float = seconds(10)) -> Frame:
        """``request``, as a polite client does it: a ``rate_limited`` answer is waited out (one
        token at the announced rate) and the frame sent again. Returns the first other answer.

        A test that sends more than the burst on one connection must not depend on how fast the
        system answers: on a fast machine the acks come quicker than the bucket refills.
        """
        while True:
            answer = await self.request(frame, timeout_s)
            if answer.get("code") != "rate_limited":
                return answer
            await asyncio.sleep(1 / self.hello["limits"]["rate_per_s"])

    def matching(self, predicate: Callable[[Frame], bool]) -> list[Frame]:
        """Buffered frames matching ``predicate`` (not removed)."""
        return [frame for frame in self.frames if predicate(frame)]

    async def settle(self, quiet_s: float = seconds(0.5)) -> None:
        """Wait until no frame has arrived for ``quiet_s`` (to assert that nothing more comes)."""
        while True:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), quiet_s)
            except TimeoutError:
                return

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await self._reader

    @property
    def closed(self) -> bool:
        return self._reader is not None and self._reader.done()


async def metric_value(service: ServiceProcess, name: str, **labels: str) -> float:
    """A counter or gauge sample a service exports on ``/metrics`` (0 when absent)."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{service.port}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (name, f"{name}_total") and all(
                sample.labels.get(key) == value for key, value in labels.items()
            ):
                return sample.value
    return 0.0


@contextlib.asynccontextmanager
async def runtime_schema(
    database_url: str, schema: str, tables: Sequence[str], *, ddl: Sequence[str] = ()
) -> AsyncIterator[asyncpg.Pool]:
    """A pool on ``schema`` built from the runtime's ``tables`` (then ``ddl``), for tests that
    run a part of the runtime in-process; closed on exit."""
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn, schema=schema, directory=None, runtime_tables=tables)
        for statement in ddl:
            await conn.execute(statement)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=6)
    try:
        yield pool
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def running(consumer: TransactionalConsumer) -> AsyncIterator[TransactionalConsumer]:
    """``consumer`` started and running in a task; asked to stop and awaited on exit."""
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        consumer.request_stop()
        await task


async def create_topics(system: System, partitions: dict[str, int]) -> None:
    """Create topics (name: partition count) on the run's broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=system.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, count, 1) for name, count in partitions.items()])
    finally:
        await admin.close()


def ws_url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/v1/ws"


def of_type(frame_type: str, **fields: Any) -> Callable[[Frame], bool]:
    """Predicate: a frame of this type whose fields (dotted into ``message``) match."""

    def predicate(frame: Frame) -> bool:
        if frame.get("type") != frame_type:
            return False
        for key, value in fields.items():
            source = frame.get("message", {}) if key.startswith("message_") else frame
            if source.get(key.removeprefix("message_")) != value:
                return False
        return True

    return predicate


def send_frame(*, to: str, client_msg_id: str, body: str = "hello") -> Frame:
    return {
        "type": "message.send",
        "to": to,
        "client_msg_id": client_msg_id,
        "kind": "text",
        "body": body,
    }


async def dead_letters_until(
    system: System, topic: str, key: bytes, timeout_s: float = seconds(20)
) -> list[ConsumerRecord[bytes, bytes]]:
    """The records of ``topic``'s dead-letter topic from its start up to the first one keyed
    ``key``; every record read when that one has not come within ``timeout_s``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=system.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(dlq_topic(system.topic(topic)), 0)])
        deadline = time.monotonic() + timeout_s
        records: list[ConsumerRecord[bytes, bytes]] = []
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                records.extend(batch)
            if any(record.key == key for record in records):
                break
        return records
    finally:
        await consumer.stop()
