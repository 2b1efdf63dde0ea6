"""Dead-lettering: a record that cannot be parsed or applied is copied to ``<topic>.dlq``
with the reason in headers, counted, and the consumer moves on."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from schemas.topics import dlq_topic
from services.runtime.metrics import DLQ_RECORDS
from services.runtime.outbox import OutboundRecord


def dead_letter(record: ConsumerRecord, reason: str) -> OutboundRecord:
    """The DLQ copy of ``record``: same key and value, origin and reason in headers.

    Args:
        record: the record that failed.
        reason: short machine-readable cause (``kind:detail``), never a message body.
    """
    return OutboundRecord(
        topic=dlq_topic(record.topic),
        key=record.key,
        value=record.value or b"",
        headers=(
            ("dlq.reason", reason.encode()),
            ("dlq.topic", record.topic.encode()),
            ("dlq.partition", str(record.partition).encode()),
            ("dlq.offset", str(record.offset).encode()),
        ),
    )


def count_dead_letter(topic: str, reason: str) -> None:
    """Count a dead-lettered record by topic and reason kind (the part before ``:``)."""
    DLQ_RECORDS.labels(topic, reason.split(":", 1)[0]).inc()
