"""Composition root of the presence service.

settings --> pool (migrations) --> producer --> outbox --> handler --> consumer
                                       |                     \\-> sweeper (timers)
                                       \\-> typing relay       \\-> HTTP (reads, health)
"""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import timedelta
from pathlib import Path

from services.presence import storage
from services.presence.domain.typing_indicators import TypingTracker
from services.presence.handlers import PresenceHandler
from services.presence.http import build_http_app
from services.presence.settings import PresenceSettings
from services.presence.sweeper import Sweeper
from services.presence.typing_relay import TypingRelay
from services.runtime import lifecycle
from services.runtime.codec import EventBuilder
from services.runtime.consumer import TransactionalConsumer
from services.runtime.db import create_pool
from services.runtime.delivery import DeliveryWriter
from services.runtime.health import Readiness, postgres_check
from services.runtime.kafka import (
    TopicNames,
    ensure_topics,
    make_consumer,
    make_producer,
    standard_topics,
)
from services.runtime.lifecycle import new_id, utc_now
from services.runtime.outbox import Outbox

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
#: The runtime's tables this service uses (services/runtime/tables).
RUNTIME_TABLES = ("offsets", "outbox")


async def migrate(settings: PresenceSettings) -> list[str]:
    """Apply pending migrations and return the files applied (the ``migrate`` command)."""
    return await lifecycle.migrate(
        settings.database_url,
        schema=storage.SCHEMA,
        directory=MIGRATIONS,
        runtime_tables=RUNTIME_TABLES,
    )


async def serve(settings: PresenceSettings) -> None:
    """Run until SIGTERM or SIGINT, then stop in order (HTTP, consumers, producer, pool)."""
    names = TopicNames.with_prefix(settings.kafka_topic_prefix)
    await ensure_topics(settings, standard_topics(settings))
    await migrate(settings)
    pool = await create_pool(settings)
    producer = make_producer(settings.kafka_bootstrap_servers, client_id=settings.instance_id)
    await producer.start()
    events = EventBuilder(source=f"/presence/{settings.instance_id}", now=utc_now, new_id=new_id)
    delivery = DeliveryWriter(topic=names.delivery, events=events)
    outbox = Outbox(schema=storage.SCHEMA, producer=producer)
    consumer = TransactionalConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.consumer_group,
        topics=[names.presence_commands, names.chat_conversations],
        pool=pool,
        schema=storage.SCHEMA,
        handler=PresenceHandler(
            delivery=delivery,
            grace=timedelta(milliseconds=settings.presence_offline_grace_ms),
            now=utc_now,
        ),
        outbox=outbox,
        client_id=settings.instance_id,
    )
    await consumer.start()
    relay = TypingRelay(
        consumer=make_consumer(
            settings.kafka_bootstrap_servers,
            client_id=f"{settings.instance_id}-typing",
            group_id=settings.typing_group,
            start_at="latest",
            auto_commit=True,
        ),
        producer=producer,
        topic=names.presence_typing,
        pool=pool,
        delivery=delivery,
        tracker=TypingTracker(ttl_s=settings.typing_ttl_ms / 1000),
    )
    await relay.start()
    sweeper = Sweeper(
        pool=pool,
        producer=producer,
        topic=names.presence_commands,
        events=events,
        grace=timedelta(milliseconds=settings.presence_offline_grace_ms),
        gateway_expiry=timedelta(milliseconds=settings.presence_gateway_expiry_ms),
        retention=timedelta(days=settings.presence_retention_days),
        # A gateway is declared dead only after Kafka answered for a whole expiry period:
        # during and right after a Kafka outage its heartbeats could not get through.
        caught_up=functools.partial(
            consumer.caught_up, in_contact_for_s=settings.presence_gateway_expiry_ms / 1000
        ),
        now=utc_now,
    )
    readiness = Readiness()
    readiness.add("postgres", postgres_check(pool))

    async def consumer_assigned() -> bool:
        return consumer.assigned

    readiness.add("kafka_consumer_assigned", consumer_assigned)
    server = lifecycle.http_server(
        build_http_app(
            pool=pool, readiness=readiness, internal_token=settings.internal_token, now=utc_now
        ),
        host=settings.presence_host,
        port=settings.presence_port,
    )
    stopping = lifecycle.stop_signal()

    consume_task = asyncio.create_task(consumer.run(), name="consumer")
    relay_task = asyncio.create_task(relay.run(), name="typing-relay")
    sweep_task = asyncio.create_task(
        sweeper.run(interval_s=settings.presence_sweep_interval_ms / 1000), name="sweeper"
    )
    outbox_task = asyncio.create_task(
        outbox.run_relay(
            pool,
            interval_ms=settings.outbox_relay_interval_ms,
            older_than_ms=settings.outbox_relay_grace_ms,
        ),
        name="outbox-relay",
    )
    http_task = asyncio.create_task(server.serve(), name="http")
    log.info("presence service started", extra={"port": settings.presence_port})
    crashed = await lifecycle.until_stopped(stopping, [consume_task, relay_task, http_task])
    log.info("presence service stopping")
    server.should_exit = True
    consumer.request_stop()
    for task in (relay_task, sweep_task, outbox_task):
        task.cancel()
    await asyncio.gather(
        consume_task, http_task, relay_task, sweep_task, outbox_task, return_exceptions=True
    )
    await producer.stop()
    await pool.close()
    log.info("presence service stopped")
    if crashed:
        raise SystemExit(1)
