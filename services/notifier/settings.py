"""Notifier settings, read once from the environment in ``main``."""

from __future__ import annotations

import os
import socket

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.notifier.push_settings import PushSettings
from services.runtime.settings import ServiceSettings


class NotifierSettings(ServiceSettings, PushSettings):
    """Everything the notifier reads from the environment: the runtime's part, Web Push's
    (VAPID key, allow-list, bounds; push is off without a VAPID pair) and its own."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Internal HTTP (sync and the bell's reads for gateways, health, metrics).
    notifier_host: str = "127.0.0.1"
    notifier_port: int = 8003
    instance_id: str = Field(
        default_factory=lambda: f"notifier-{socket.gethostname()}-{os.getpid()}"
    )
    # Consumer group shared by every notifier instance (the topic prefix is prepended).
    notifier_group_id: str = "notifier"
    # Records per consumed batch (one Postgres transaction): a job alert is up to 1,000
    # notifications, so batches are bounded in records rather than in notifications.
    notifier_max_batch_records: int = Field(default=100, ge=1)
    # Nothing the notifier consumes is on a message's path, so the broker may hold its fetch
    # until this much has gathered or this long has passed: at 1,000 msgs/s a transaction then
    # applies ~100 chat events (a conversation's burst folds into one notification update)
    # instead of one or two, freeing cores for chat and gateways (docs/performance.md, 18).
    # The cost: a bell action's ack and a new notification wait up to the hold.
    notifier_fetch_wait_ms: int = Field(default=100, ge=0, le=1000)
    notifier_fetch_min_bytes: int = Field(default=1_048_576, ge=1)
    # A large fetch (a burst of job alerts) is split by partition into up to this many
    # transactions side by side: one's Python decides while another's statements run
    # (docs/performance.md). Records of different partitions commute for the notifier: every
    # user's changes are serialised by the user's stream row lock, whichever part has them.
    notifier_parallel_transactions: int = Field(default=2, ge=1, le=8)

    @property
    def http_address(self) -> tuple[str, int]:
        """Where the internal HTTP server listens."""
        return self.notifier_host, self.notifier_port

    @property
    def consumer_group(self) -> str:
        """The Kafka consumer group of this deployment's notifier instances."""
        return self.kafka_topic_prefix + self.notifier_group_id
