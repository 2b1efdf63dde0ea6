"""The Kafka contact probe keeps what the broker said and when, and forgets it on a miss."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from services.runtime.contact import ContactProbe

TP = TopicPartition("presence.commands.v1", 0)


class FakeConsumer:
    """Answers end-offset requests from a script (an exception is a miss)."""

    def __init__(self, answers: list[int | Exception]) -> None:
        self._answers = answers
        self.asked = 0
        self.more = asyncio.Event()

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        await asyncio.sleep(0)  # a request takes a turn of the loop at least
        answer = self._answers[min(self.asked, len(self._answers) - 1)]
        self.asked += 1
        self.more.set()
        if isinstance(answer, Exception):
            raise answer
        return {TP: answer}


async def _probe_until(consumer: FakeConsumer, probe: ContactProbe, asked: int) -> None:
    probe.in_contact_for(0)
    while consumer.asked < asked:
        consumer.more.clear()
        await consumer.more.wait()
    # The probe notes the answer once the request returns to it.
    await asyncio.sleep(0.005)


async def test_recent_ends_are_the_brokers_answers_newest_first() -> None:
    consumer = FakeConsumer([5, 7, 9])
    probe = ContactProbe(consumer, timeout_ms=40)
    try:
        await _probe_until(consumer, probe, 3)
        answers = probe.recent_ends()
        # Newest first: the repeated last answer, then 7, then 5 at the end.
        assert [ends[TP] for _, ends in answers][-3:] == [9, 7, 5]
        ages = [age for age, _ in answers]
        assert ages == sorted(ages)
        assert probe.in_contact_for(0.0)
    finally:
        await probe.stop()


async def test_a_miss_forgets_every_answer_and_the_contact() -> None:
    consumer = FakeConsumer([5, KafkaConnectionError()])
    probe = ContactProbe(consumer, timeout_ms=40)
    try:
        await _probe_until(consumer, probe, 2)
        assert probe.recent_ends() == []
        assert not probe.in_contact_for(0.0)
    finally:
        await probe.stop()


async def test_stopping_ends_the_probe_even_when_a_cancel_meets_a_finished_request() -> None:
    consumer = FakeConsumer([1])
    probe = ContactProbe(consumer, timeout_ms=4)
    for _ in range(20):
        await _probe_until(consumer, probe, consumer.asked + 1)
        await asyncio.wait_for(probe.stop(), 5)
        assert probe._task is not None and probe._task.done()
