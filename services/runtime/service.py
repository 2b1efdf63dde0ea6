"""One start-up for every service that owns a schema and consumes Kafka (chat, presence, the
notifier): a service describes itself and builds its own parts; the runtime does the rest.

``python -m services.<name> [serve|migrate]`` runs :meth:`Service.main`::

    serve: topics --> migrations (the service's own, then the runtime's tables it uses)
           --> pool --> producer --> outbox --> compose(kit): the service's handlers,
           consumers (its part of user erasures among them), routes and tasks
           --> consumers and tasks start --> internal HTTP
           (health, readiness, metrics, the read route of its streams)
           --> until SIGTERM/SIGINT, or until a vital task ends (exit 1)
    stop:  HTTP stops accepting, consumers finish their batch and leave their groups, the
           other tasks are asked to stop (those that said how) or cancelled (the outbox relay
           among them), outbox confirmations drain,
           the producer flushes, the pool closes

A service's ``app.py`` is then a :class:`Service` and a ``compose`` function; everything it
needs from the runtime is on the :class:`Kit` it receives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import asyncpg
from aiokafka import AIOKafkaProducer

from services.runtime import lifecycle
from services.runtime.codec import EventBuilder
from services.runtime.consumer import RecordHandler, TransactionalConsumer
from services.runtime.db import create_pool
from services.runtime.delivery import DeliveryWriter
from services.runtime.erasure import Eraser, ErasureHandler, ErasureReports
from services.runtime.health import Readiness, postgres_check
from services.runtime.http import add_stream_route, internal_app
from services.runtime.kafka import (
    CONSUMER_STOP_TIMEOUT_S,
    TopicNames,
    ensure_topics,
    make_producer,
    standard_topics,
    watch_producer,
)
from services.runtime.outbox import CONFIRM_TIMEOUT_S, Outbox
from services.runtime.settings import ServiceSettings
from services.runtime.streams import Stream

log = logging.getLogger(__name__)

#: Longest a service's stop may take: its consumers leave their groups (bounded) while the
#: outbox waits for Kafka's last acknowledgements (bounded), then the pool closes. Past it the
#: process exits at once (:func:`lifecycle.stop_within`), to be started afresh.
STOP_TIMEOUT_S = CONSUMER_STOP_TIMEOUT_S + CONFIRM_TIMEOUT_S + 15.0


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


@dataclass(frozen=True, slots=True)
class _Task:
    name: str
    work: Callable[[], Coroutine[Any, Any, None]]
    start: Callable[[], Awaitable[None]] | None
    stop: Callable[[], None] | None
    vital: bool


class Kit(Generic[SettingsT]):
    """What a service's ``compose`` receives: the shared pieces, and where it registers its
    consumers, routes and tasks (the runtime starts and stops them).

    Attributes:
        settings: the service's settings, read once.
        topics: topic names of this deployment.
        pool: the service's Postgres pool.
        producer: the started idempotent producer.
        outbox: the service's outbox (publishing what consumers' handlers stage).
        events: builds the service's events (source ``/<service>/<instance id>``).
        delivery: builds delivery frames for users.
        erasure_reports: builds the service's ``user.erased`` reports (erasure follow-ups).
        http: the internal FastAPI app; add the service's routes to it.
        now: the clock to inject into domain code; new_id: ids to inject.
    """

    def __init__(
        self,
        *,
        service: Service[SettingsT],
        settings: SettingsT,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        readiness: Readiness,
    ) -> None:
        self._service = service
        self.settings = settings
        self.topics = TopicNames.with_prefix(settings.kafka_topic_prefix)
        self.pool = pool
        self.producer = producer
        self.outbox = Outbox(schema=service.schema, producer=producer)
        self.now: Callable[[], datetime] = lifecycle.utc_now
        self.new_id: Callable[[], str] = lifecycle.new_id
        self.events = EventBuilder(
            source=f"/{service.name}/{settings.instance_id}", now=self.now, new_id=self.new_id
        )
        self.delivery = DeliveryWriter(topic=self.topics.delivery, events=self.events)
        self.http = internal_app(
            title=f"{service.name} (internal)",
            readiness=readiness,
            internal_token=settings.required_internal_token(),
        )
        if service.streams:
            add_stream_route(
                self.http,
                streams=service.streams,
                pool=pool,
                default_limit=settings.sync_default_limit,
            )
        self.consumers: list[TransactionalConsumer] = []
        # Consumers whose assignment readiness waits for (the erasure consumer's is not: its
        # topic has fewer partitions than a large deployment has instances).
        self.gating: list[TransactionalConsumer] = []
        self.tasks: list[_Task] = []
        self.erasure_reports = ErasureReports(
            service=service.name, events=self.events, topic=self.topics.users_erased
        )

    def consume(
        self,
        *,
        group_id: str,
        topics: Sequence[str],
        handler: RecordHandler,
        max_batch_records: int = 500,
        dedupe_topics: Collection[str] = (),
        gates_readiness: bool = True,
        fetch_max_wait_ms: int = 500,
        fetch_min_bytes: int = 1,
        parallel_transactions: int = 1,
    ) -> TransactionalConsumer:
        """A transactional consumer of ``topics`` applying records with ``handler`` (offsets,
        outbox, DLQ and retries included); it runs with the service and gates readiness.

        Args:
            group_id: its consumer group (the deployment's topic prefix already applied).
            topics: what it subscribes to.
            handler: a record handler (optionally batch or skipping, see the consumer module).
            max_batch_records: most records per transaction.
            dedupe_topics: topics fed by other teams' services whose events are applied once
                per CloudEvent (source, id); the service must declare ``inbound_dedupe``.
            gates_readiness: ``/readyz`` waits until it owns a partition.
            fetch_max_wait_ms: how long the broker may hold a fetch for ``fetch_min_bytes``.
            fetch_min_bytes: what the broker waits for before it answers a fetch.
            parallel_transactions: most transactions a large fetch is split into (by
                partition, side by side), for handlers whose partitions commute.

        Raises:
            ValueError: dedupe asked of a service whose schema has no inbound tables.
        """
        if dedupe_topics and not self._service.inbound_dedupe:
            raise ValueError(f"{self._service.name}: dedupe needs Service(inbound_dedupe=True)")
        consumer = TransactionalConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=group_id,
            topics=topics,
            pool=self.pool,
            schema=self._service.schema,
            handler=handler,
            outbox=self.outbox,
            client_id=self.settings.instance_id,
            max_batch_records=max_batch_records,
            dedupe_topics=dedupe_topics,
            inbound_retention_ms=self.settings.inbound_retention_hours * 3_600_000,
            fetch_max_wait_ms=fetch_max_wait_ms,
            fetch_min_bytes=fetch_min_bytes,
            parallel_transactions=parallel_transactions,
        )
        self.consumers.append(consumer)
        if gates_readiness:
            self.gating.append(consumer)
        return consumer

    def erase_with(self, eraser: Eraser, *, group_id: str) -> TransactionalConsumer:
        """Apply the erasure requests of ``users.erasure.v1`` with the service's part, one
        request per transaction, reporting each on ``users.erased.v1``
        (:mod:`services.runtime.erasure`).

        Args:
            eraser: the service's part of an erasure.
            group_id: the consumer group of this service's erasures (prefix applied).
        """
        return self.consume(
            group_id=group_id,
            topics=[self.topics.users_erasure],
            handler=ErasureHandler(eraser=eraser, reports=self.erasure_reports),
            max_batch_records=1,
            gates_readiness=False,
        )

    def run(
        self,
        name: str,
        work: Callable[[], Coroutine[Any, Any, None]],
        *,
        start: Callable[[], Awaitable[None]] | None = None,
        stop: Callable[[], None] | None = None,
        vital: bool = True,
    ) -> None:
        """Run ``work()`` as a task of the service, cancelled at shutdown (or asked to stop).

        Args:
            name: names the task in logs.
            work: the task's body.
            start: awaited at start-up before any task runs (e.g. joining a group).
            stop: called at shutdown instead of cancelling the task, which is then awaited
                (a task that must finish what it started, within a bound of its own).
            vital: when the task ends on its own (it crashed), the service stops and exits 1;
                a task that retries its own failures forever may say False.
        """
        self.tasks.append(_Task(name, work, start, stop, vital))


@dataclass(frozen=True)
class Service(Generic[SettingsT]):
    """A service that owns a Postgres schema and consumes Kafka, described once.

    Args:
        name: the module under ``services`` (``chat``); names logs and event sources.
        schema: the Postgres schema it owns.
        settings: reads its settings from the environment (once, in ``main``).
        compose: builds its handlers, consumers, routes and tasks on the kit.
        migrations: the folder of its own SQL migrations.
        streams: the per-user streams it owns (the runtime's stream tables are then created
            in its schema and their reads served to gateways).
        inbound_dedupe: some consumer deduplicates inbound events (the runtime's inbound
            tables are then created in its schema).
        young_gc_threshold: allocations between collections of the youngest generation, for
            a service whose batches make thousands of objects (None: CPython's default; see
            :func:`lifecycle.freeze_start_up`).
    """

    name: str
    schema: str
    settings: Callable[[], SettingsT]
    compose: Callable[[Kit[SettingsT]], Awaitable[None]]
    migrations: Path | None = None
    streams: tuple[Stream, ...] = ()
    inbound_dedupe: bool = False
    young_gc_threshold: int | None = None

    @property
    def runtime_tables(self) -> tuple[str, ...]:
        """The runtime's tables its schema needs (services/runtime/tables)."""
        tables = ["offsets", "outbox"]
        if self.streams:
            tables.append("streams")
        if self.inbound_dedupe:
            tables.append("inbound")
        return tuple(tables)

    def main(self) -> None:
        """``python -m services.<name> [serve|migrate]``."""
        lifecycle.run_cli(
            service=self.name,
            load_settings=self.settings,
            log_level=lambda settings: settings.log_level,
            serve=self.serve,
            migrate=self.migrate,
        )

    async def migrate(self, settings: SettingsT) -> list[str]:
        """Apply pending migrations and the runtime's tables; returns the files applied."""
        return await lifecycle.migrate(
            settings.database_url,
            schema=self.schema,
            directory=self.migrations,
            runtime_tables=self.runtime_tables,
        )

    async def serve(self, settings: SettingsT) -> None:
        """Run until SIGTERM or SIGINT, or until a vital task ends; then stop in order.

        Raises:
            SystemExit: 1 when a vital task crashed.
        """
        await ensure_topics(settings, standard_topics(settings))
        await self.migrate(settings)
        pool = await create_pool(settings)
        producer = make_producer(
            settings.kafka_bootstrap_servers,
            client_id=settings.instance_id,
            linger_ms=settings.kafka_linger_ms,
        )
        await producer.start()
        readiness = Readiness()
        kit = Kit(
            service=self, settings=settings, pool=pool, producer=producer, readiness=readiness
        )
        await self.compose(kit)
        for consumer in kit.consumers:
            await consumer.start()
        for task in kit.tasks:
            if task.start is not None:
                await task.start()
        readiness.add("postgres", postgres_check(pool))
        lifecycle.freeze_start_up(young_gc_threshold=self.young_gc_threshold)

        async def consumers_assigned() -> bool:
            return all(consumer.assigned for consumer in kit.gating)

        readiness.add("kafka_consumer_assigned", consumers_assigned)
        host, port = settings.http_address
        server = lifecycle.http_server(kit.http, host=host, port=port)
        stopping = lifecycle.stop_signal()

        consuming = [
            asyncio.create_task(consumer.run(), name="consumer") for consumer in kit.consumers
        ]
        extra = {asyncio.create_task(task.work(), name=task.name): task for task in kit.tasks}
        relay = asyncio.create_task(
            kit.outbox.run_relay(
                pool,
                interval_ms=settings.outbox_relay_interval_ms,
                older_than_ms=settings.outbox_relay_grace_ms,
            ),
            name="outbox-relay",
        )
        http = asyncio.create_task(server.serve(), name="http")
        # A producer that can no longer send makes the process useless: stop, to be restarted.
        producing = asyncio.create_task(watch_producer(producer), name="kafka-producer")
        # The JSON formatter names the service on every line.
        log.info("service started", extra={"port": port})
        vital = [*consuming, *(t for t, task in extra.items() if task.vital), http, producing]
        crashed = await lifecycle.until_stopped(stopping, vital)
        log.info("service stopping")
        server.should_exit = True
        for consumer in kit.consumers:
            consumer.request_stop()
        for running, task in extra.items():
            if task.stop is not None:
                task.stop()
            else:
                running.cancel()
        relay.cancel()
        producing.cancel()

        async def stopped() -> None:
            await asyncio.gather(*consuming, http, *extra, relay, producing, return_exceptions=True)
            await producer.stop()
            await pool.close()

        await lifecycle.stop_within(stopped(), STOP_TIMEOUT_S)
        log.info("service stopped")
        if crashed:
            raise SystemExit(1)
