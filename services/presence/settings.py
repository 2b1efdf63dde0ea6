"""Presence service settings, read once from the environment in ``main``."""

from __future__ import annotations

import os
import socket

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.runtime.settings import ServiceSettings


class PresenceSettings(ServiceSettings):
    """Everything the presence service reads from the environment (the runtime's part
    included)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Internal HTTP (snapshots and the read API for gateways, health, metrics).
    presence_host: str = "127.0.0.1"
    presence_port: int = 8002
    instance_id: str = Field(
        default_factory=lambda: f"presence-{socket.gethostname()}-{os.getpid()}"
    )
    # Consumer groups (the topic prefix is prepended).
    presence_group_id: str = "presence"
    typing_group_id: str = "presence-typing"
    # A user whose last connection closed is still shown for this long (reloads, blips).
    presence_offline_grace_ms: int = Field(default=10000, ge=0)
    # A gateway silent for this long is dead: its connections are closed. With gateways
    # heart-beating every 5 s, users of a killed gateway are offline within
    # expiry + sweep interval (26 s) of its death.
    presence_gateway_expiry_ms: int = Field(default=25000, ge=1000)
    # How often due offlines and dead gateways are looked for.
    presence_sweep_interval_ms: int = Field(default=1000, ge=50)
    # Users offline and unseen for longer are deleted (their chosen status is forgotten).
    presence_retention_days: int = Field(default=30, ge=1)
    # A typing start not refreshed for this long ends with a stop (protocol: 6 s).
    typing_ttl_ms: int = Field(default=6000, ge=100)
    # A typist presence does not know as a member waits this long for the membership fact
    # (a first message's conversation reaches presence a moment after its ack) before being
    # refused; at most this many commands wait at a time.
    typing_membership_wait_ms: int = Field(default=2000, ge=0)
    typing_membership_wait_capacity: int = Field(default=10000, ge=0)

    @property
    def http_address(self) -> tuple[str, int]:
        """Where the internal HTTP server listens."""
        return self.presence_host, self.presence_port

    @property
    def consumer_group(self) -> str:
        """Group of the transactional presence consumer."""
        return self.kafka_topic_prefix + self.presence_group_id

    @property
    def typing_group(self) -> str:
        """Group of the typing relay."""
        return self.kafka_topic_prefix + self.typing_group_id
