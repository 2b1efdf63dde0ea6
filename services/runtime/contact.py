"""Whether Kafka has been answering, and for how long: for timers that act on silence.

Presence declares a gateway dead when its heartbeats stop; during a Kafka outage no heartbeat
can get through, so silence means something only once Kafka has answered, without a miss, for
as long as the timer's own period. The probe asks the broker for the end offsets of the
consumer's assigned partitions several times per contact timeout and notes since when every
request was answered in time, and what the end offsets were. It runs only once someone asks.

The end offsets matter as much as the contact: after an outage the consumer may take seconds to
rejoin its group and fetch again, and until then its own idea of each partition's end is the one
from before the outage, so records produced since (the heartbeats a timer waits for) would look
consumed when they are not even fetched. A timer asks instead whether everything the broker
held a moment ago has been applied (:meth:`ContactProbe.recent_ends`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)


class ContactProbe:
    """Measures uninterrupted contact with Kafka through a started consumer.

    Args:
        consumer: the consumer whose assigned partitions are asked about.
        timeout_ms: Kafka counts as unreachable when a request is not answered within this.
    """

    def __init__(self, consumer: AIOKafkaConsumer, *, timeout_ms: int) -> None:
        self._consumer = consumer
        self._timeout_s = timeout_ms / 1000
        # Since when (monotonic) Kafka has answered every probe; None after a miss.
        self._since: float | None = None
        # (monotonic time, end offsets) of the latest answers, newest last; cleared by a miss.
        self._answers: deque[tuple[float, dict[TopicPartition, int]]] = deque(maxlen=8)
        self._task: asyncio.Task[None] | None = None

    def in_contact_for(self, seconds: float) -> bool:
        """Whether Kafka has answered without a miss for ``seconds``; starts the probe on the
        first call (and again if it died of something unexpected), counting afresh."""
        if self._task is None or self._task.done():
            self._since = None
            self._task = asyncio.create_task(self._probe(), name="kafka-contact")
        since = self._since
        return since is not None and time.monotonic() - since >= seconds

    def recent_ends(self) -> list[tuple[float, dict[TopicPartition, int]]]:
        """(age in seconds, end offsets) of the latest answers, newest first: the last two
        contact timeouts or so (empty before the first answer and after a miss)."""
        now = time.monotonic()
        return [(now - taken, ends) for taken, ends in reversed(self._answers)]

    async def stop(self) -> None:
        """End the probe (before the consumer stops)."""
        if self._task is None:
            return
        # Python 3.11's wait_for swallows a cancellation that arrives as the awaited request
        # completes: the probe then runs on, so cancel until it has really ended.
        while not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=self._timeout_s)

    async def _probe(self) -> None:
        """A task of its own: the consume loop may sit in a call that waits out a Kafka outage,
        and an outage that began and ended between two looks must still reset the count."""
        while True:
            assignment = list(self._consumer.assignment())
            answered = False
            if assignment:
                asked = time.monotonic()
                try:
                    ends = await asyncio.wait_for(
                        self._consumer.end_offsets(assignment), self._timeout_s
                    )
                    self._answers.append((asked, dict(ends)))
                    answered = True
                except (KafkaError, OSError, TimeoutError) as exc:
                    log.debug("kafka contact probe missed", extra={"error": type(exc).__name__})
            if not answered:
                self._since = None
                self._answers.clear()
            elif self._since is None:
                self._since = time.monotonic()
            await asyncio.sleep(self._timeout_s / 4)
