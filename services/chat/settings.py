"""Chat service settings, read once from the environment in ``main``."""

from __future__ import annotations

import os
import socket

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.runtime.settings import DatabaseServiceSettings, KafkaSettings


class ChatSettings(KafkaSettings, DatabaseServiceSettings):
    """Everything the chat service reads from the environment."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Internal HTTP (sync for gateways, health, metrics): loopback unless deployed otherwise.
    chat_host: str = "127.0.0.1"
    chat_port: int = 8001
    # Names this process in logs, CloudEvents sources and the Kafka client id.
    instance_id: str = Field(default_factory=lambda: f"chat-{socket.gethostname()}-{os.getpid()}")
    # Consumer group shared by every chat instance (the topic prefix is prepended, so
    # deployments sharing a cluster never share a group and never stall each other's rebalances).
    chat_group_id: str = "chat"
    # Records per consumed batch (one Postgres transaction).
    chat_max_batch_records: int = Field(default=500, ge=1)
    # Frames per sync answer when the client gives no limit.
    sync_default_limit: int = Field(default=200, ge=1, le=1000)
    log_level: str = "INFO"
    # When set, gateways must send it as X-Internal-Token to read streams.
    internal_token: str | None = None

    @property
    def consumer_group(self) -> str:
        """The Kafka consumer group of this deployment's chat instances."""
        return self.kafka_topic_prefix + self.chat_group_id
