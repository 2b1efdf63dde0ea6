"""Kafka plumbing shared by services: topic names, topic creation, the producer, consumers."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import InvalidProducerEpoch, OutOfOrderSequenceNumber, UnknownProducerId

from schemas import topics
from services.runtime.partitioning import default_partitioner
from services.runtime.settings import KafkaSettings

log = logging.getLogger(__name__)

# Kafka's error code for "topic already exists": another process created it first.
_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True, slots=True)
class TopicNames:
    """The concrete topic names of one deployment (prefix applied)."""

    chat_commands: str
    chat_events: str
    chat_conversations: str
    delivery: str
    presence_commands: str
    presence_typing: str
    presence_connectivity: str
    notifier_commands: str
    jobs_events: str
    applications_events: str
    users_erasure: str
    users_erased: str

    @classmethod
    def with_prefix(cls, prefix: str) -> TopicNames:
        """Names for a deployment whose topics share ``prefix``."""
        return cls(
            chat_commands=prefix + topics.CHAT_COMMANDS,
            chat_events=prefix + topics.CHAT_EVENTS,
            chat_conversations=prefix + topics.CHAT_CONVERSATIONS,
            delivery=prefix + topics.DELIVERY,
            presence_commands=prefix + topics.PRESENCE_COMMANDS,
            presence_typing=prefix + topics.PRESENCE_TYPING,
            presence_connectivity=prefix + topics.PRESENCE_CONNECTIVITY,
            notifier_commands=prefix + topics.NOTIFIER_COMMANDS,
            jobs_events=prefix + topics.JOBS_EVENTS,
            applications_events=prefix + topics.APPLICATIONS_EVENTS,
            users_erasure=prefix + topics.USERS_ERASURE,
            users_erased=prefix + topics.USERS_ERASED,
        )


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create at start: name, partitions and config overrides."""

    name: str
    partitions: int
    config: dict[str, str]


def standard_topics(settings: KafkaSettings) -> list[TopicSpec]:
    """Every topic of the system with its partition count, DLQs included.

    Retention is explicit where records carry what a user wrote or owns (message bodies, push
    endpoints): an erasure cannot rewrite Kafka's logs, so these bounds are how long such data
    outlives its erasure there (docs/erasure.md). Compacted topics keep each key's latest
    record for as long as the topic lives; a superseded record (a membership fact naming an
    erased user) is compacted away within ``kafka_max_compaction_lag_ms``.
    """
    names = TopicNames.with_prefix(settings.kafka_topic_prefix)
    content = {"retention.ms": str(settings.kafka_content_retention_ms)}
    compacted = {
        "cleanup.policy": "compact",
        "max.compaction.lag.ms": str(settings.kafka_max_compaction_lag_ms),
    }
    specs = [
        TopicSpec(names.chat_commands, settings.chat_partitions, content),
        TopicSpec(names.chat_events, settings.chat_partitions, content),
        # Membership, read in full by a new consumer (presence builds its contacts from it):
        # compaction keeps every conversation's latest fact for as long as the topic lives.
        TopicSpec(names.chat_conversations, settings.chat_partitions, compacted),
        # Live tail only: durable catch-up comes from sync, so a day of frames is plenty.
        TopicSpec(names.delivery, settings.delivery_partitions, {"retention.ms": "86400000"}),
        TopicSpec(names.presence_commands, settings.presence_partitions, {}),
        # A typing indicator is worthless after seconds: keep a minute, never replay it.
        TopicSpec(names.presence_typing, settings.presence_partitions, {"retention.ms": "60000"}),
        # Each user's latest connectivity fact is the truth, read in full by a new notifier.
        TopicSpec(names.presence_connectivity, settings.presence_partitions, compacted),
        # Push subscriptions (endpoints and keys) travel here.
        TopicSpec(names.notifier_commands, settings.notifier_partitions, content),
        # Fed by other teams' services; read by the notifier.
        TopicSpec(names.jobs_events, settings.jobs_partitions, {}),
        TopicSpec(names.applications_events, settings.applications_partitions, {}),
        # Every erasure ever requested, read in full by a service rebuilt later.
        TopicSpec(names.users_erasure, settings.erasure_partitions, compacted),
        # Progress reports of erasures: read by erase-user within minutes.
        TopicSpec(names.users_erased, settings.erasure_partitions, {"retention.ms": "86400000"}),
    ]
    dlqs = [
        TopicSpec(topics.dlq_topic(spec.name), 1, {"retention.ms": str(14 * 86400000)})
        for spec in specs
    ]
    return specs + dlqs


async def ensure_topics(settings: KafkaSettings, specs: list[TopicSpec]) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are.

    Raises:
        aiokafka.errors.KafkaError: the cluster is unreachable or refused a creation.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return
        response = await admin.create_topics(
            [
                NewTopic(
                    name=spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=settings.kafka_replication_factor,
                    topic_configs=spec.config,
                )
                for spec in missing
            ]
        )
        for topic_error in response.topic_errors:
            name, code = topic_error[0], topic_error[1]
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"creating topic {name} failed with Kafka error code {code}")
        log.info("topics created", extra={"topics": [spec.name for spec in missing]})
    finally:
        await admin.close()


#: Broker answers after which an idempotent producer never sends to that partition again: its
#: producer id and sequence numbers no longer match the broker's (after a broker crash, KIP-360).
#: aiokafka 0.14 neither bumps its epoch nor takes a new id; only a new producer does.
FATAL_PRODUCE_ERRORS = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch)


class Producer(AIOKafkaProducer):  # type: ignore[misc]  # aiokafka has no type information
    """An idempotent producer that notices when it can no longer send.

    Every send's future is watched: one failing with a :data:`FATAL_PRODUCE_ERRORS` error marks
    the producer failed (:meth:`failure`), as does the end of its sender routine. The owning
    service watches that (:func:`watch_producer`) and stops, to be started afresh.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fatal: BaseException | None = None
        self._failed: asyncio.Event | None = None

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await super().send(*args, **kwargs)
        future.add_done_callback(self._notice)
        return future

    async def send_batch(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await super().send_batch(*args, **kwargs)
        future.add_done_callback(self._notice)
        return future

    def _notice(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or self._fatal is not None:
            return
        error = future.exception()
        if isinstance(error, FATAL_PRODUCE_ERRORS):
            self._fatal = error
            self._failed_event().set()

    def _failed_event(self) -> asyncio.Event:
        if self._failed is None:
            self._failed = asyncio.Event()
        return self._failed

    async def failure(self) -> str:
        """Wait until the producer can no longer send; returns the error's name."""
        # aiokafka 0.14 has no public handle on its sender routine: the private attribute.
        sender_task: asyncio.Task[None] | None = self._sender.sender_task
        failed = asyncio.ensure_future(self._failed_event().wait())
        watched: set[asyncio.Future[Any]] = {failed}
        if sender_task is not None:
            watched.add(sender_task)
        try:
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
        if self._fatal is not None or sender_task is None:
            return type(self._fatal).__name__
        error = None if sender_task.cancelled() else sender_task.exception()
        return type(error).__name__ if error is not None else "sender stopped"


#: Largest producer batch (bytes, one per partition per produce request). aiokafka keeps one
#: request in flight per broker and puts at most one batch per partition in it, so with its
#: 16 KiB default a backlog of 10,000 delivery records (a job alert, ~650 bytes each) took
#: some 26 round trips to the broker, one after the other. Below the broker's 1 MiB
#: ``message.max.bytes``; a batch is only as large as what is waiting, so a quiet producer
#: sends exactly what it did before.
MAX_BATCH_BYTES = 512 * 1024


def make_producer(bootstrap_servers: str, *, client_id: str, linger_ms: int = 0) -> Producer:
    """An idempotent producer (acks=all): a retried send is never written twice.

    No linger by default: records sent while a request to the broker is in flight are batched
    anyway, so lingering only adds its delay to every hop at low load (1 ms measured 1.2 ms
    more per hop here, docs/performance.md). Batches up to :data:`MAX_BATCH_BYTES`.
    """
    return Producer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=linger_ms,
        max_batch_size=MAX_BATCH_BYTES,
        request_timeout_ms=10000,
        partitioner=default_partitioner,
    )


class ProducerFailed(Exception):
    """A producer can no longer send: nothing it is given will ever reach Kafka."""


async def watch_producer(producer: Producer) -> None:
    """Wait while ``producer`` can send; raise :class:`ProducerFailed` once it cannot.

    After a broker crash lost batches in flight, the broker answers an idempotent producer
    ``OutOfOrderSequenceNumber`` and aiokafka never recovers: its sender routine ends, or every
    batch to the partition fails, for as long as the process lives (the chaos soak found a
    gateway answering ``unavailable`` for good, and chat's outbox relay failing until chat was
    restarted). A service runs this as a vital component, so such a process stops (exit 1) and
    its supervisor starts a fresh one, with a new producer id.

    Raises:
        ProducerFailed: naming the error that ended it.
    """
    raise ProducerFailed(await producer.failure())


def make_consumer(
    bootstrap_servers: str,
    *,
    client_id: str,
    group_id: str | None,
    start_at: Literal["earliest", "latest"],
    auto_commit: bool = False,
    fetch_max_wait_ms: int = 500,
    fetch_min_bytes: int = 1,
) -> AIOKafkaConsumer:
    """An unstarted consumer; every consumer of ours is made here.

    Args:
        bootstrap_servers: Kafka bootstrap list.
        client_id: names this process to the broker.
        group_id: the consumer group, or None for manual assignment (the gateway's tail).
        start_at: where a partition without a committed offset starts: ``earliest`` for
            consumers that must apply everything, ``latest`` for live tails.
        auto_commit: let Kafka commit offsets in the background (only where losing or
            repeating a few records is harmless, as for typing indicators).
        fetch_max_wait_ms: how long the broker may hold a fetch to fill it.
        fetch_min_bytes: what fills it (1: a fetch returns as soon as anything is there).

    A member of a group is declared dead after 10 s without a heartbeat (sent every second):
    prompt recovery after a SIGKILL matters more here than riding out long pauses.
    """
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        group_id=group_id,
        enable_auto_commit=auto_commit,
        auto_offset_reset=start_at,
        fetch_max_wait_ms=fetch_max_wait_ms,
        fetch_min_bytes=fetch_min_bytes,
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
    )


#: Longest wait for a consumer to stop. Leaving its group needs the group coordinator, which a
#: broker that just came back may not answer, nor ever a consumer whose coordination failed
#: (the chaos soak found presence's typing consumer heartbeating into the void for minutes
#: after its service decided to stop, the process up and useless).
CONSUMER_STOP_TIMEOUT_S = 15.0


async def stop_consumer(
    consumer: AIOKafkaConsumer, *, timeout_s: float = CONSUMER_STOP_TIMEOUT_S
) -> None:
    """Stop ``consumer``; after ``timeout_s``, go on without it (the group rebalances after
    its session timeout instead of at once)."""
    try:
        await asyncio.wait_for(consumer.stop(), timeout_s)
    except TimeoutError:
        log.warning("kafka consumer did not stop in time; leaving without it")
