"""Exceptions of the shared runtime.

Tree::

    RuntimeServiceError          base; ``retriable`` says whether trying again may succeed
    ├── RecordRejected           a record cannot be parsed or applied: it goes to the DLQ
    └── InfrastructureError      Kafka or Postgres failed; retriable unless stated
"""

from __future__ import annotations


class RuntimeServiceError(Exception):
    """Base of every error raised by the runtime."""

    retriable: bool = False


class RecordRejected(RuntimeServiceError):
    """A record is malformed or cannot be applied; the consumer dead-letters it and moves on.

    Attributes:
        reason: short machine-readable cause written to the DLQ record (never a message body).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InfrastructureError(RuntimeServiceError):
    """Kafka or Postgres did not answer as needed; the batch is retried after a backoff."""

    retriable = True
