"""Composition root of the gateway: builds every component from settings and runs them.

    settings --> producer --> command publisher --\\
             --> consumer --> delivery tail ---> Endpoint (frames: routes.ROUTES) --> websockets
             --> httpx    --> sync client, chat and notifier reads, presence client --/
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import httpx
from aiokafka.errors import KafkaError
from websockets.asyncio.server import serve as ws_serve

from services.gateway.admission import Admission
from services.gateway.connections import Endpoint
from services.gateway.delivery import DeliveryTail
from services.gateway.devpage import dev_page_from_settings
from services.gateway.domain import commands
from services.gateway.domain.limits import HandshakeLimiter
from services.gateway.domain.registry import Registry
from services.gateway.domain.shedding import LoadShedder
from services.gateway.presence import PresenceClient
from services.gateway.publisher import CommandPublisher
from services.gateway.reads import ChatReads, NotifierReads
from services.gateway.routes import Upstream
from services.gateway.session import CLOSE_GOING_AWAY, GatewayConnection, Session
from services.gateway.settings import GatewaySettings
from services.gateway.sync import SyncClient
from services.runtime.codec import EventBuilder
from services.runtime.health import Readiness
from services.runtime.kafka import (
    CONSUMER_STOP_TIMEOUT_S,
    TopicNames,
    ensure_topics,
    make_consumer,
    make_producer,
    standard_topics,
    stop_consumer,
    watch_producer,
)
from services.runtime.lifecycle import (
    freeze_start_up,
    new_id,
    stop_signal,
    stop_within,
    utc_now,
)
from services.runtime.outbox import CONFIRM_TIMEOUT_S

log = logging.getLogger(__name__)

#: A request unanswered this long lost its answer (a dead-lettered command): load shedding
#: forgets it.
_FORGET_UNANSWERED_S = 30.0


async def _heartbeat(
    publisher: CommandPublisher, registry: Registry[Session], interval_s: float
) -> None:
    """Tell presence we are alive; when this stops (a crash), presence expires our users."""
    while True:
        try:
            await publisher.publish(
                commands.heartbeat(publisher.gateway_id, connections=len(registry))
            )
        except KafkaError as exc:
            log.warning("presence heartbeat not published", extra={"error": type(exc).__name__})
        await asyncio.sleep(interval_s)


async def serve(settings: GatewaySettings) -> None:
    """Run the gateway until SIGTERM or SIGINT, then drain.

    Shutdown: stop accepting, flush queued frames and close every connection with 1001
    (clients reconnect elsewhere and sync), stop tailing, flush the producer.
    """
    topic_names = TopicNames.with_prefix(settings.kafka_topic_prefix)
    await ensure_topics(settings, standard_topics(settings))
    producer = make_producer(
        settings.kafka_bootstrap_servers,
        client_id=settings.instance_id,
        linger_ms=settings.kafka_linger_ms,
    )
    await producer.start()
    consumer = make_consumer(
        settings.kafka_bootstrap_servers,
        client_id=settings.instance_id,
        group_id=None,
        start_at="latest",
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    # The producer waits for the topic's metadata, which may lag a topic created moments ago.
    partitions = len(await producer.partitions_for(topic_names.delivery))
    registry: Registry[Session] = Registry(partitions=partitions)
    shedder = LoadShedder(
        max_wait_s=settings.gateway_overload_wait_ms / 1000,
        min_pending=settings.gateway_overload_min_pending,
        forget_after_s=_FORGET_UNANSWERED_S,
        chance=random.random,
    )
    delivery = DeliveryTail(
        shedder=shedder,
        consumer=consumer,
        producer=producer,
        topic=topic_names.delivery,
        registry=registry,
        release_delay_s=settings.partition_release_delay_ms / 1000,
    )
    publisher = CommandPublisher(
        producer=producer,
        topic_prefix=settings.kafka_topic_prefix,
        # Presence declares a gateway dead by the silence of this id, so it names this process,
        # not the instance: a replacement started under the same INSTANCE_ID (a supervisor's
        # restart) would otherwise keep its dead predecessor's connections alive for good.
        gateway_id=f"{settings.instance_id}.{new_id()[:12]}",
        events=EventBuilder(source=f"/gateway/{settings.instance_id}", now=utc_now, new_id=new_id),
    )
    http = httpx.AsyncClient(timeout=httpx.Timeout(5.0))
    sync_client = SyncClient(
        client=http,
        stream_urls=settings.stream_owners(),
        internal_token=settings.required_internal_token(),
    )
    reads = ChatReads(
        client=http, base_url=settings.chat_url, internal_token=settings.required_internal_token()
    )
    presence = PresenceClient(
        client=http,
        base_url=settings.presence_url,
        internal_token=settings.required_internal_token(),
    )
    readiness = Readiness()

    async def kafka_ready() -> bool:
        return bool(await producer.partitions_for(topic_names.chat_commands))

    async def chat_ready() -> bool:
        response = await http.get(f"{settings.chat_url}/healthz", timeout=1.0)
        return response.status_code == 200

    readiness.add("kafka", kafka_ready)
    readiness.add("chat", chat_ready)
    admission = Admission(
        registry=registry,
        max_connections=settings.gateway_max_connections,
        per_user=settings.max_connections_per_user,
        handshakes=HandshakeLimiter(
            rate_per_s=settings.handshake_rate_per_s,
            burst=settings.handshake_burst,
            max_sources=settings.handshake_max_sources,
        ),
        trusted_proxies=settings.trusted_proxies(),
        clock=time.monotonic,
    )
    endpoint = Endpoint(
        settings=settings,
        registry=registry,
        delivery=delivery,
        upstream=Upstream(
            publisher=publisher,
            sync=sync_client,
            reads=reads,
            notifier=NotifierReads(
                client=http,
                base_url=settings.notifier_url or None,
                internal_token=settings.required_internal_token(),
            ),
            shedder=shedder,
            max_unconfirmed=settings.gateway_max_unconfirmed,
        ),
        presence=presence,
        readiness=readiness,
        admission=admission,
        now=utc_now,
        dev_page=dev_page_from_settings(settings),
    )
    freeze_start_up()
    stopping = stop_signal()

    delivery_task = asyncio.create_task(delivery.run(), name="delivery")
    producing = asyncio.create_task(watch_producer(producer), name="kafka-producer")
    heartbeat_task = asyncio.create_task(
        _heartbeat(publisher, registry, settings.presence_heartbeat_interval_ms / 1000),
        name="presence-heartbeat",
    )
    async with ws_serve(
        endpoint.handle,
        settings.gateway_host,
        settings.gateway_port,
        process_request=endpoint.process_request,
        select_subprotocol=endpoint.select_subprotocol,
        create_connection=GatewayConnection,
        compression="deflate" if settings.compression == "deflate" else None,
        max_size=settings.max_frame_bytes,
        ping_interval=settings.heartbeat_s,
        ping_timeout=settings.heartbeat_s,
        close_timeout=2,
        reuse_port=settings.gateway_reuse_port,
    ) as server:
        log.info(
            "gateway started",
            extra={"port": settings.gateway_port, "connection_cap": admission.cap},
        )
        stop_task = asyncio.create_task(stopping.wait())
        await asyncio.wait(
            {stop_task, delivery_task, producing}, return_when=asyncio.FIRST_COMPLETED
        )
        if producing.done():
            # Every command would be answered `unavailable` for good: exit 1, to be restarted
            # by the supervisor; clients reconnect to other gateways meanwhile.
            log.error("Kafka producer failed; stopping", exc_info=producing.exception())
        log.info("gateway stopping", extra={"connections": len(registry)})
        failed = producing.done()

        async def stopped() -> None:
            server.close(close_connections=False)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    endpoint.close_all(CLOSE_GOING_AWAY, "server shutting down"),
                    settings.drain_timeout_ms / 1000,
                )
            await server.wait_closed()
            for task in (delivery_task, heartbeat_task, producing):
                task.cancel()
            await asyncio.gather(delivery_task, heartbeat_task, producing, return_exceptions=True)
            await stop_consumer(consumer)
            await producer.stop()
            await http.aclose()

        # Connections drained, then the consumer's bound and Kafka's last acknowledgements.
        await stop_within(
            stopped(),
            settings.drain_timeout_ms / 1000 + CONSUMER_STOP_TIMEOUT_S + CONFIRM_TIMEOUT_S,
        )
    log.info("gateway stopped")
    if failed:
        raise SystemExit(1)
