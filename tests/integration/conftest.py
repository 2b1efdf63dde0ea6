"""Fixtures of the integration tests: a fresh database and topic prefix per run, and the
chat, presence, notifier and gateway services started as real processes
(deploy/local/launcher.py) against the local Kafka and Postgres (``make test`` starts those and
exports KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from deploy.local.launcher import free_port, service_env
from services.notifier.vapid import generate
from tests.integration.harness import (
    ALLOWED_ORIGIN,
    AUTH_SECRET,
    INTERNAL_TOKEN,
    PRESENCE_GATEWAY_EXPIRY_MS,
    PRESENCE_GRACE_MS,
    PUSH_REQUEST_TIMEOUT_MS,
    PUSH_RETRY_BASE_MS,
    ServiceProcess,
    System,
)


def _required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: run integration tests with `make test`, which starts the local "
            "Kafka and Postgres and exports their addresses"
        )
    return value


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """A database of its own for this run, dropped afterwards."""
    admin_url = _required_env("DATABASE_URL")
    name = f"it_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = admin_url.rpartition("/")
    yield f"{base}/{name}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def system(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[System]:
    """chat, presence, notifier and gateway processes on ephemeral ports, with topics of their
    own; the notifier pushes with a VAPID pair of this run to push services on loopback."""
    kafka = _required_env("KAFKA_BOOTSTRAP_SERVERS")
    prefix = f"it{uuid.uuid4().hex[:8]}."
    logs = Path(tmp_path_factory.mktemp("logs"))
    ports = {name: free_port() for name in ("chat", "presence", "notifier", "gateway")}
    vapid_private_key, vapid_public_key = generate()
    env = service_env(
        os.environ,
        kafka_bootstrap=kafka,
        database_url=database_url,
        auth_secret=AUTH_SECRET,
        internal_token=INTERNAL_TOKEN,
        ports=ports,
        topic_prefix=prefix,
    ) | {
        # Presence timings shortened so the tests wait seconds, not half a minute; the rules
        # are the same at any scale (unit tests pin them with a fake clock).
        "PRESENCE_OFFLINE_GRACE_MS": str(PRESENCE_GRACE_MS),
        "PRESENCE_GATEWAY_EXPIRY_MS": str(PRESENCE_GATEWAY_EXPIRY_MS),
        "PRESENCE_SWEEP_INTERVAL_MS": "200",
        "PRESENCE_HEARTBEAT_INTERVAL_MS": "500",
        "GATEWAY_ALLOWED_ORIGINS": ALLOWED_ORIGIN,
        "CHAT_PARTITIONS": "4",
        "DELIVERY_PARTITIONS": "8",
        # The notifier's topics: few partitions, a lighter broker to crash.
        "NOTIFIER_PARTITIONS": "2",
        "JOBS_PARTITIONS": "3",
        "APPLICATIONS_PARTITIONS": "2",
        "OUTBOX_RELAY_GRACE_MS": "1000",
        "OUTBOX_RELAY_INTERVAL_MS": "200",
        # Web Push: the fake push services of the tests listen on 127.0.0.1 (plain http, allowed
        # because listed exactly); bounds short enough for tests to see retries.
        "VAPID_PRIVATE_KEY": vapid_private_key,
        "VAPID_PUBLIC_KEY": vapid_public_key,
        "VAPID_SUBJECT": "mailto:tests@example.org",
        "PUSH_ENDPOINT_ALLOWLIST": "127.0.0.1",
        "PUSH_REQUEST_TIMEOUT_MS": str(PUSH_REQUEST_TIMEOUT_MS),
        "PUSH_RETRY_BASE_MS": str(PUSH_RETRY_BASE_MS),
        "PUSH_RETRY_MAX_MS": str(4 * PUSH_RETRY_BASE_MS),
        "PUSH_PER_ORIGIN_CONCURRENCY": "4",
        # Every test connects from 127.0.0.1: the per-address handshake limit is tried by
        # test_edges.py on a gateway of its own.
        "HANDSHAKE_RATE_PER_S": "1000",
        "HANDSHAKE_BURST": "1000",
    }
    chat, presence, notifier, gateway = (
        ServiceProcess(name, env, ports[name], logs / f"{name}.log")
        for name in ("chat", "presence", "notifier", "gateway")
    )
    for service in (chat, presence, notifier, gateway):
        service.start()
        await service.wait_ready()
    yield System(
        chat=chat,
        presence=presence,
        notifier=notifier,
        gateway=gateway,
        logs=logs,
        env=env,
        topic_prefix=prefix,
        database_url=database_url,
        kafka_bootstrap=kafka,
        vapid_public_key=vapid_public_key,
    )
    for service in (gateway, notifier, presence, chat):
        service.stop()
    await delete_topics(kafka, prefix)


async def delete_topics(bootstrap: str, prefix: str) -> None:
    """Delete this run's topics, as its database is dropped: a broker that kept every run's
    partitions would take ever longer to recover from a crash (test_infra_faults.py crashes it).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ours = [topic for topic in await admin.list_topics() if topic.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()
