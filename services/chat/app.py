"""Composition root of the chat service: builds every component from settings and runs them.

settings --> pool (migrations) --> producer --> outbox --> handler --> consumer
                                                \\-> relay         \\-> HTTP (sync, health)
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from services.chat import storage
from services.chat.handlers import ChatCommandHandler
from services.chat.http import build_http_app
from services.chat.settings import ChatSettings
from services.runtime import lifecycle
from services.runtime.codec import EventBuilder
from services.runtime.consumer import TransactionalConsumer
from services.runtime.db import create_pool
from services.runtime.delivery import DeliveryWriter
from services.runtime.health import Readiness, postgres_check
from services.runtime.kafka import TopicNames, ensure_topics, make_producer, standard_topics
from services.runtime.lifecycle import new_id, utc_now
from services.runtime.outbox import Outbox

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
#: The runtime's tables this service uses (services/runtime/tables).
RUNTIME_TABLES = ("offsets", "outbox", "streams")


async def migrate(settings: ChatSettings) -> list[str]:
    """Apply pending migrations and return the files applied (the ``migrate`` command)."""
    return await lifecycle.migrate(
        settings.database_url,
        schema=storage.SCHEMA,
        directory=MIGRATIONS,
        runtime_tables=RUNTIME_TABLES,
    )


async def serve(settings: ChatSettings) -> None:
    """Run the chat service until SIGTERM or SIGINT, then stop in order.

    Order on stop: HTTP stops accepting, the consumer finishes its batch and leaves the group,
    the outbox confirmations drain, the producer flushes, the pool closes.
    """
    topic_names = TopicNames.with_prefix(settings.kafka_topic_prefix)
    await ensure_topics(settings, standard_topics(settings))
    await migrate(settings)
    pool = await create_pool(settings)
    producer = make_producer(settings.kafka_bootstrap_servers, client_id=settings.instance_id)
    await producer.start()
    outbox = Outbox(schema=storage.SCHEMA, producer=producer)
    events = EventBuilder(source=f"/chat/{settings.instance_id}", now=utc_now, new_id=new_id)
    handler = ChatCommandHandler(
        topic_names=topic_names,
        events=events,
        delivery=DeliveryWriter(topic=topic_names.delivery, events=events),
        now=utc_now,
        new_id=new_id,
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
    server = lifecycle.http_server(app, host=settings.chat_host, port=settings.chat_port)
    stopping = lifecycle.stop_signal()

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
    crashed = await lifecycle.until_stopped(stopping, [consume_task, http_task])
    log.info("chat service stopping")
    server.should_exit = True
    consumer.request_stop()
    relay_task.cancel()
    await asyncio.gather(consume_task, http_task, relay_task, return_exceptions=True)
    await producer.stop()
    await pool.close()
    log.info("chat service stopped")
    if crashed:
        raise SystemExit(1)
