"""Services create every topic of the system at start, the notifier's among them, with the
partition counts their settings give."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.harness import System


async def test_topics_the_notifier_will_read_exist_with_their_partition_counts(
    system: System,
) -> None:
    expected = {
        system.topic("notifier.commands.v1"): int(system.env["NOTIFIER_PARTITIONS"]),
        system.topic("jobs.events.v1"): int(system.env["JOBS_PARTITIONS"]),
        system.topic("applications.events.v1"): int(system.env["APPLICATIONS_PARTITIONS"]),
    }
    expected |= {f"{name}.dlq": 1 for name in expected}
    admin = AIOKafkaAdminClient(bootstrap_servers=system.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(expected))
    finally:
        await admin.close()
    found = {topic["topic"]: len(topic["partitions"]) for topic in described}
    assert found == expected
