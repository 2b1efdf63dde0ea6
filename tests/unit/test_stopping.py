"""A service's stop is bounded: a Kafka consumer that never stops, and a stop stuck anyway,
end in time (pure asyncio: awaitables that never finish stand for the stuck library)."""

from __future__ import annotations

import asyncio
from typing import NoReturn

import pytest

from services.runtime.kafka import stop_consumer
from services.runtime.lifecycle import stop_within


class NeverStops:
    """A consumer whose ``stop`` waits forever (leaving a group nobody coordinates)."""

    def __init__(self) -> None:
        self.asked = False

    async def stop(self) -> None:
        self.asked = True
        await asyncio.Event().wait()


class Exited(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


def exit_now(status: int) -> NoReturn:
    raise Exited(status)


async def test_a_consumer_that_never_stops_is_left_behind() -> None:
    consumer = NeverStops()
    await stop_consumer(consumer, timeout_s=0.05)
    assert consumer.asked


async def test_a_stop_that_finishes_returns_and_a_stuck_one_exits_with_1() -> None:
    finished: list[str] = []

    async def quick() -> None:
        finished.append("quick")

    await stop_within(quick(), 5.0, exit_now=exit_now)
    assert finished == ["quick"]
    with pytest.raises(Exited) as exited:
        await stop_within(asyncio.Event().wait(), 0.05, exit_now=exit_now)
    assert exited.value.status == 1
