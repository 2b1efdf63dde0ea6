"""The chaos soak's faults (tests/integration/test_chaos.py): what is injected, in which order,
and the supervisor that starts again a service that stopped by itself.

One fault every ``CHAOS_FAULT_INTERVAL_S`` after the previous one recovered, round after round:

| fault | how |
|---|---|
| chat crash | SIGKILL, start again |
| notifier crash | SIGKILL, start again |
| gateway stall | SIGSTOP for half the gateway expiry (slow, not dead), SIGCONT |
| Postgres crash | ``stack.py restart postgres --kill`` (``pg_ctl stop -m immediate``) |
| presence crash | SIGKILL, start again |
| gateway crash | SIGKILL of one gateway (the two in turn), start again |
| Kafka crash | ``stack.py restart kafka --kill`` (SIGKILL of the broker) |
| Postgres restart | ``stack.py restart postgres`` (fast shutdown) |
| Kafka restart | ``stack.py restart kafka`` (controlled shutdown) |
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.chaos_client import Report
from tests.integration.harness import (
    PRESENCE_GATEWAY_EXPIRY_MS,
    ROOT,
    ServiceProcess,
    System,
)

FAULT_INTERVAL_S = float(os.environ.get("CHAOS_FAULT_INTERVAL_S", "6"))
STACK = ROOT / "deploy" / "local" / "stack.py"
# A stall shorter than presence's gateway expiry: the gateway is slow, not dead.
STALL_S = PRESENCE_GATEWAY_EXPIRY_MS / 1000 / 2


async def stack(*args: str) -> None:
    """``deploy/local/stack.py`` with this run's environment (restarts of the local infra)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(STACK),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, f"stack.py {' '.join(args)}:\n{output.decode()}"


async def restart(service: ServiceProcess) -> None:
    """SIGKILL (a crash: no shutdown code runs) and start again."""
    service.kill()
    service.start()
    await service.wait_ready()


async def stall(service: ServiceProcess) -> None:
    """Stop the process's clock for a while (SIGSTOP), then let it go on (SIGCONT)."""
    assert service.process is not None
    service.process.send_signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(STALL_S)
    finally:
        service.process.send_signal(signal.SIGCONT)
    await service.wait_ready()


def faults(
    system: System, second: ServiceProcess, notifier_kills: list[float]
) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
    """The faults in the order the scheduler injects them, round after round (the notifier's
    SIGKILLs are noted: a push may be sent again after one, docs/notifications.md)."""
    gateways = itertools.cycle([second, system.gateway])

    async def kill_notifier() -> None:
        notifier_kills.append(time.time())
        await restart(system.notifier)

    return [
        ("chat_sigkill", lambda: restart(system.chat)),
        ("notifier_sigkill", kill_notifier),
        ("gateway_stall", lambda: stall(system.gateway)),
        ("postgres_crash", lambda: stack("restart", "postgres", "--kill")),
        ("presence_sigkill", lambda: restart(system.presence)),
        ("gateway_sigkill", lambda: restart(next(gateways))),
        ("kafka_crash", lambda: stack("restart", "kafka", "--kill")),
        ("postgres_restart", lambda: stack("restart", "postgres")),
        ("kafka_restart", lambda: stack("restart", "kafka")),
    ]


async def supervise(services: list[ServiceProcess], report: Report) -> None:
    """Start again any service that exited by itself, as a deployment's supervisor does
    (compose's ``restart: unless-stopped``): a service stops on purpose when it cannot go on
    (its Kafka producer failed), and must come back."""
    for service in services:
        assert service.process is not None
        if service.process.poll() is not None:
            report.count(f"supervisor_restarts_{service.name}")
            service.start()
            await service.wait_ready()


async def keep_supervising(services: list[ServiceProcess], report: Report) -> None:
    """:func:`supervise` every second, until cancelled (the whole soak and its checks)."""
    while True:
        await supervise(services, report)
        await asyncio.sleep(1.0)


async def schedule_faults(
    system: System,
    second: ServiceProcess,
    stop: asyncio.Event,
    report: Report,
    notifier_kills: list[float],
) -> None:
    """One fault every FAULT_INTERVAL_S (after the previous one recovered) until ``stop``."""
    for name, inject in itertools.cycle(faults(system, second, notifier_kills)):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), FAULT_INTERVAL_S)
        if stop.is_set():
            return
        await inject()
        report.faults[name] += 1


async def dlq_end_offsets(system: System) -> dict[str, int]:
    """Records in each of this run's dead-letter topics."""
    admin = AIOKafkaAdminClient(bootstrap_servers=system.kafka_bootstrap)
    await admin.start()
    try:
        topics = [
            t
            for t in await admin.list_topics()
            if t.startswith(system.topic_prefix) and t.endswith(".dlq")
        ]
    finally:
        await admin.close()
    return await end_offsets(system, topics)


async def end_offsets(system: System, topics: list[str]) -> dict[str, int]:
    """Records ever written to each topic (the sum of its partitions' end offsets)."""
    return {
        topic: sum(ends.values())
        for topic, ends in (await partition_end_offsets(system, topics)).items()
    }


async def partition_end_offsets(system: System, topics: list[str]) -> dict[str, dict[int, int]]:
    """Each partition's end offset, per topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=system.kafka_bootstrap)
    await consumer.start()
    try:
        totals: dict[str, dict[int, int]] = {}
        for topic in topics:
            partitions = consumer.partitions_for_topic(topic) or set()
            if not partitions:
                await consumer.topics()
                partitions = consumer.partitions_for_topic(topic) or set()
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
            totals[topic] = {tp.partition: offset for tp, offset in ends.items()}
        return totals
    finally:
        await consumer.stop()
