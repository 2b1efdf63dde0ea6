"""Publishes what the gateway hands on (:mod:`services.gateway.domain.commands`) to Kafka."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from services.gateway.domain.commands import Command
from services.runtime.codec import EventBuilder


class CommandPublisher:
    """Publishes commands; returns once Kafka acknowledged them (acks=all).

    Args:
        producer: a started idempotent producer.
        topic_prefix: the deployment's topic prefix.
        gateway_id: this gateway process's id (reply routing, heartbeats): its instance id
            and a part of its own, so that a process restarted under the same name is another.
        events: builds the records (source ``/gateway/<gateway id>``).
    """

    def __init__(
        self,
        *,
        producer: AIOKafkaProducer,
        topic_prefix: str,
        gateway_id: str,
        events: EventBuilder,
    ) -> None:
        self._producer = producer
        self._prefix = topic_prefix
        self._events = events
        self.gateway_id = gateway_id

    async def publish(self, command: Command) -> None:
        """Publish one command to its topic of this deployment and wait for Kafka's ack.

        Raises:
            aiokafka.errors.KafkaError: Kafka did not take the record.
        """
        await (await self.submit(command))

    async def submit(self, command: Command) -> asyncio.Future[object]:
        """Enqueue one command to the producer; the future resolves when Kafka acknowledged it
        (or fails). Records enqueued one after another keep their order per partition.

        Raises:
            aiokafka.errors.KafkaError: the producer could not even enqueue it.
        """
        record = self._events.record(
            self._prefix + command.topic,
            command.event_type,
            key=command.key,
            data=command.data.to_dict(),
        )
        delivered: asyncio.Future[object] = await self._producer.send(
            record.topic, record.value, key=record.key
        )
        return delivered
