"""Every topic of the system, created at start with explicit partition counts (pure)."""

from __future__ import annotations

from schemas import topics
from services.runtime.kafka import TopicNames, standard_topics
from services.runtime.settings import KafkaSettings


# Every value is passed: settings also read the environment.
def kafka(*, notifier: int = 8, jobs: int = 8, applications: int = 8) -> KafkaSettings:
    return KafkaSettings(
        kafka_bootstrap_servers="k:9092",
        kafka_topic_prefix="it1.",
        chat_partitions=4,
        presence_partitions=4,
        delivery_partitions=16,
        notifier_partitions=notifier,
        jobs_partitions=jobs,
        applications_partitions=applications,
    )


def test_the_notifiers_topics_are_named_with_the_deployments_prefix() -> None:
    names = TopicNames.with_prefix("it1.")
    assert (
        names.notifier_commands == "it1." + topics.NOTIFIER_COMMANDS == "it1.notifier.commands.v1"
    )
    assert names.jobs_events == "it1.jobs.events.v1"
    assert names.applications_events == "it1.applications.events.v1"


def test_the_notifiers_topics_have_their_partition_counts_and_dead_letter_queues() -> None:
    specs = {
        spec.name: spec.partitions
        for spec in standard_topics(kafka(notifier=3, jobs=5, applications=7))
    }
    assert specs["it1.notifier.commands.v1"] == 3
    assert specs["it1.jobs.events.v1"] == 5
    assert specs["it1.applications.events.v1"] == 7
    for name in ("notifier.commands.v1", "jobs.events.v1", "applications.events.v1"):
        assert specs[f"it1.{name}.dlq"] == 1


def test_every_topic_has_a_dead_letter_queue() -> None:
    names = {spec.name for spec in standard_topics(kafka())}
    sources = {name for name in names if not name.endswith(".dlq")}
    assert {topics.dlq_topic(name) for name in sources} == names - sources
    assert len(sources) == 12


def test_connectivity_facts_are_compacted_so_a_new_reader_finds_every_users_latest() -> None:
    spec = next(
        spec
        for spec in standard_topics(kafka())
        if spec.name == "it1." + topics.PRESENCE_CONNECTIVITY
    )
    assert spec.config["cleanup.policy"] == "compact"
    assert spec.partitions == 4


def test_compacted_topics_forget_superseded_records_within_a_bound() -> None:
    # An erased user's id in a membership or connectivity fact outlives the erasure only
    # until compaction: bounded by max.compaction.lag.ms (docs/erasure.md).
    compacted = {
        spec.name: spec.config
        for spec in standard_topics(kafka())
        if spec.config.get("cleanup.policy") == "compact"
    }
    assert set(compacted) == {
        "it1." + topics.CHAT_CONVERSATIONS,
        "it1." + topics.PRESENCE_CONNECTIVITY,
        "it1." + topics.USERS_ERASURE,
    }
    assert {config["max.compaction.lag.ms"] for config in compacted.values()} == {"86400000"}


def test_topics_carrying_what_users_wrote_have_an_explicit_retention() -> None:
    retention = {spec.name: spec.config.get("retention.ms") for spec in standard_topics(kafka())}
    week = str(7 * 86_400_000)
    assert retention["it1." + topics.CHAT_COMMANDS] == week
    assert retention["it1." + topics.CHAT_EVENTS] == week
    assert retention["it1." + topics.NOTIFIER_COMMANDS] == week
    assert retention["it1." + topics.DELIVERY] == "86400000"
    assert retention["it1." + topics.USERS_ERASED] == "86400000"
