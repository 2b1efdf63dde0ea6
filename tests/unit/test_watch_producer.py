"""A producer whose sender routine ended is reported, so that the service stops and is started
afresh (aiokafka's idempotent producer never sends again after OutOfOrderSequenceNumber)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

import pytest
from aiokafka.errors import OutOfOrderSequenceNumber

from services.runtime.kafka import ProducerFailed, watch_producer


@dataclass
class Sender:
    sender_task: asyncio.Task[None]


@dataclass
class Producer:
    """The one thing of an AIOKafkaProducer the watch reads."""

    _sender: Sender


async def test_a_dead_sender_routine_is_reported_with_its_error() -> None:
    async def routine() -> None:
        raise OutOfOrderSequenceNumber()

    task = asyncio.create_task(routine())
    with pytest.raises(ProducerFailed, match="OutOfOrderSequenceNumber"):
        await watch_producer(cast(Any, Producer(Sender(task))))


async def test_a_live_sender_routine_is_watched_until_it_ends() -> None:
    release = asyncio.Event()

    async def routine() -> None:
        await release.wait()

    watch = asyncio.create_task(
        watch_producer(cast(Any, Producer(Sender(asyncio.create_task(routine())))))
    )
    for _ in range(10):
        await asyncio.sleep(0)
    assert not watch.done()
    release.set()
    with pytest.raises(ProducerFailed, match="sender stopped"):
        await watch
