"""Chat service settings, read once from the environment in ``main``."""

from __future__ import annotations

import os
import socket

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.runtime.settings import ServiceSettings


class ChatSettings(ServiceSettings):
    """Everything the chat service reads from the environment (the runtime's part included)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Internal HTTP (sync for gateways, health, metrics): loopback unless deployed otherwise.
    chat_host: str = "127.0.0.1"
    chat_port: int = 8001
    instance_id: str = Field(default_factory=lambda: f"chat-{socket.gethostname()}-{os.getpid()}")
    # Consumer group shared by every chat instance (the topic prefix is prepended, so
    # deployments sharing a cluster never share a group and never stall each other's rebalances).
    chat_group_id: str = "chat"
    # Records per consumed batch (one Postgres transaction).
    chat_max_batch_records: int = Field(default=500, ge=1)

    @property
    def http_address(self) -> tuple[str, int]:
        """Where the internal HTTP server listens."""
        return self.chat_host, self.chat_port

    @property
    def consumer_group(self) -> str:
        """The Kafka consumer group of this deployment's chat instances."""
        return self.kafka_topic_prefix + self.chat_group_id
