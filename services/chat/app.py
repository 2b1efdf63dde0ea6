"""Composition root of the chat service: builds every component from settings and runs them.

settings --> pool (migrations) --> producer --> outbox --> handler --> consumer
                                                \\-> relay         \\-> HTTP (sync, health)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import uvicorn

from services.chat import storage
from services.chat.handlers import ChatCommandHandler
from services.chat.http import build_http_app
from services.chat.settings import ChatSettings
from services.runtime.consumer import TransactionalConsumer
from services.runtime.health import Readiness, postgres_check
from services.runtime.kafka import TopicNames, ensure_topics, make_producer, standard_topics
from services.runtime.migrations import apply_migrations
from services.runtime.outbox import Outbox

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the composition root owns shutdown order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def migrate(settings: ChatSettings) -> list[int]:
    """Apply pending migrations and return their versions (the ``migrate`` command)."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await apply_migrations(conn, schema=storage.SCHEMA, directory=MIGRATIONS)
    finally:
        await conn.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


async def serve(settings: ChatSettings) -> None:
    """Run the chat service until SIGTERM or SIGINT, then stop in order.

    Order on stop: HTTP stops accepting, the consumer finishes its batch and leaves the group,
    the outbox confirmations drain, the producer flushes, the pool closes.
    """
    topic_names = TopicNames.with_prefix(settings.kafka_topic_prefix)
    await ensure_topics(settings, standard_topics(settings))
    await migrate(settings)
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.database_pool_min,
        max_size=settings.database_pool_max,
    )
    producer = make_producer(settings.kafka_bootstrap_servers, client_id=settings.instance_id)
    await producer.start()
    outbox = Outbox(schema=storage.SCHEMA, producer=producer)
    handler = ChatCommandHandler(
        topic_names=topic_names, source=f"/chat/{settings.instance_id}", now=_now, new_id=_new_id
    )
    consumer = TransactionalConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.consumer_group,
        topics=[topic_names.chat_commands],
        pool=pool,
        schema=storage.SCHEMA,
        handler=handler,
        outbox=outbox,
        client_id=settings.instance_id,
        max_batch_records=settings.chat_max_batch_records,
    )
    await consumer.start()

    readiness = Readiness()
    readiness.add("postgres", postgres_check(pool))

    async def consumer_assigned() -> bool:
        return consumer.assigned

    readiness.add("kafka_consumer_assigned", consumer_assigned)
    app = build_http_app(
        pool=pool,
        readiness=readiness,
        internal_token=settings.internal_token,
        sync_default_limit=settings.sync_default_limit,
    )
    server = _Server(
        uvicorn.Config(
            app,
            host=settings.chat_host,
            port=settings.chat_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)

    consume_task = asyncio.create_task(consumer.run(), name="consumer")
    relay_task = asyncio.create_task(
        outbox.run_relay(
            pool,
            interval_ms=settings.outbox_relay_interval_ms,
            older_than_ms=settings.outbox_relay_grace_ms,
        ),
        name="outbox-relay",
    )
    http_task = asyncio.create_task(server.serve(), name="http")
    log.info("chat service started", extra={"port": settings.chat_port})
    stop_task = asyncio.create_task(stopping.wait())
    done, _ = await asyncio.wait(
        {consume_task, http_task, stop_task}, return_when=asyncio.FIRST_COMPLETED
    )
    crashed = [task for task in done if task is not stop_task and task.exception() is not None]
    for task in crashed:
        log.error(
            "component stopped unexpectedly",
            exc_info=task.exception(),
            extra={"component": task.get_name()},
        )
    log.info("chat service stopping")
    server.should_exit = True
    consumer.request_stop()
    relay_task.cancel()
    stop_task.cancel()
    await asyncio.gather(consume_task, http_task, relay_task, return_exceptions=True)
    await producer.stop()
    await pool.close()
    log.info("chat service stopped")
    if crashed:
        raise SystemExit(1)
