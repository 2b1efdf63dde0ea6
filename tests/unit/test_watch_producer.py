"""A producer that can no longer send is noticed, so that the service stops and is started
afresh: aiokafka's idempotent producer never recovers from OutOfOrderSequenceNumber (a broker
crash lost batches in flight), whether its sender routine ends or every batch keeps failing."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaTimeoutError, OutOfOrderSequenceNumber, UnknownProducerId

from services.runtime.kafka import ProducerFailed, make_producer, watch_producer


def failed_send(error: BaseException) -> asyncio.Future[object]:
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    future.set_exception(error)
    # The producer's callback reads the exception: the future counts as retrieved.
    return future


@pytest.mark.parametrize("error", [OutOfOrderSequenceNumber(), UnknownProducerId()])
async def test_a_send_failing_with_a_producer_state_error_fails_the_producer(
    error: BaseException,
) -> None:
    producer = make_producer("127.0.0.1:1", client_id="t")
    watch = asyncio.create_task(watch_producer(producer))
    producer._notice(failed_send(error))
    with pytest.raises(ProducerFailed, match=type(error).__name__):
        await watch
    await producer.stop()


async def test_ordinary_send_failures_leave_the_producer_alone() -> None:
    producer = make_producer("127.0.0.1:1", client_id="t")
    watch = asyncio.create_task(watch_producer(producer))
    producer._notice(failed_send(KafkaTimeoutError()))
    success: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    success.set_result(None)
    producer._notice(success)
    for _ in range(10):
        await asyncio.sleep(0)
    assert not watch.done()
    watch.cancel()
    await asyncio.gather(watch, return_exceptions=True)
    await producer.stop()
